package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/client"
)

// keyholdAPIVersion selects Keyhold's own actions on the endpoint.
const keyholdAPIVersion = "2026-11-01"

// maxCheckpointBytes bounds a checkpoint file (a few hundred bytes).
const maxCheckpointBytes = 16 << 10

// The audit record and report types are the public client's.
type (
	AuditEvent  = client.AuditEvent
	AuditReport = client.AuditReport
)

func newAuditCmd(a *app) *cobra.Command {
	cmd := groupCmd("audit", "Read, export and verify the tamper-evident audit trail",
		`  keyhold audit list --since 2026-01-01T00:00:00Z --result Forbidden.NoPermission
  keyhold audit checkpoint > cp.json
  keyhold audit verify --checkpoint cp.json
  keyhold audit export --format jsonl > audit.jsonl`)
	cmd.AddCommand(newAuditListCmd(a), newAuditExportCmd(a), newAuditVerifyCmd(a), newAuditCheckpointCmd(a))
	return cmd
}

// auditFilters are the filter flags shared by list and export.
type auditFilters struct {
	since, until, principal, action, resource, result string
}

func (f *auditFilters) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.since, "since", "", "records at or after this time (RFC 3339, or a duration such as 24h meaning that long ago)")
	fl.StringVar(&f.until, "until", "", "records before this time (RFC 3339 or a duration ago)")
	fl.StringVar(&f.principal, "principal", "", "principal name, ARN or access key id")
	fl.StringVar(&f.action, "action", "", "action, e.g. GetSecretValue or kms:GetSecretValue")
	fl.StringVar(&f.resource, "resource", "", "resource ARN; a trailing * matches a prefix")
	fl.StringVar(&f.result, "result", "", `result: "OK", an error code, or "Pending" (attempts)`)
}

func (f *auditFilters) params(now time.Time) (map[string]string, error) {
	p := map[string]string{}
	for _, t := range []struct{ flag, value, param string }{{"since", f.since, "Since"}, {"until", f.until, "Until"}} {
		if t.value == "" {
			continue
		}
		if d, err := time.ParseDuration(t.value); err == nil {
			p[t.param] = now.Add(-d).UTC().Format(time.RFC3339)
			continue
		}
		if _, err := time.Parse(time.RFC3339Nano, t.value); err != nil {
			return nil, usagef("--%s must be an RFC 3339 time (2026-01-02T15:04:05Z) or a duration (24h), not %q", t.flag, t.value)
		}
		p[t.param] = t.value
	}
	for k, v := range map[string]string{"Principal": f.principal, "EventAction": f.action, "Resource": f.resource, "Result": f.result} {
		if v != "" {
			p[k] = v
		}
	}
	return p, nil
}

func newAuditListCmd(a *app) *cobra.Command {
	var f auditFilters
	var limit int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List audit records, oldest first",
		Example: `  keyhold audit list --principal alice --since 24h
  keyhold audit list --action GetSecretValue --resource 'acs:kms:*:*:secret/app/*' --output json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			params, err := f.params(time.Now())
			if err != nil {
				return err
			}
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			events, err := c.ListAuditEvents(cmd.Context(), params, limit)
			if err != nil {
				return err
			}
			return a.emit(struct{ Events []AuditEvent }{events}, func(w *textOut) {
				rows := make([][]string, 0, len(events))
				for _, e := range events {
					who := e.PrincipalName
					if who == "" {
						who = e.AccessKeyId
					}
					if e.OnBehalfOf != "" {
						who += " for " + e.OnBehalfOf
					}
					rows = append(rows, []string{strconv.FormatUint(e.Seq, 10), e.Time, who, e.Action, e.Resource, e.Result, e.SourceIp})
				}
				w.table([]string{"SEQ", "TIME", "PRINCIPAL", "ACTION", "RESOURCE", "RESULT", "SOURCE"}, rows)
			})
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&limit, "limit", 0, "stop after this many records (0: all)")
	return cmd
}

func newAuditExportCmd(a *app) *cobra.Command {
	var f auditFilters
	var format string
	cmd := &cobra.Command{
		Use:   "export",
		Short: "Write audit records as JSON lines (one record with its MAC per line) for a SIEM",
		Example: `  keyhold audit export --format jsonl > audit.jsonl
  keyhold audit export --format jsonl --since 2026-01-01T00:00:00Z --until 2026-02-01T00:00:00Z > january.jsonl`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "jsonl" {
				return usagef("--format must be jsonl")
			}
			params, err := f.params(time.Now())
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			params["MaxResults"] = "1000"
			for {
				var out struct {
					Data      string
					Count     int
					NextToken string
				}
				if err := c.Call(cmd.Context(), keyholdAPIVersion, "ExportAuditEvents", params, &out); err != nil {
					return err
				}
				if _, err := a.io.out.Write([]byte(out.Data)); err != nil {
					return err
				}
				if out.NextToken == "" {
					return nil
				}
				params["NextToken"] = out.NextToken
			}
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&format, "format", "jsonl", "output format (jsonl)")
	return cmd
}

func newAuditVerifyCmd(a *app) *cobra.Command {
	var cpFile string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Walk the audit chain and report the first altered or missing record",
		Long: `Walk the account's audit chain on the server and report the first record
that is altered, missing or out of place, or a head that does not match.
With --checkpoint (a file written by "keyhold audit checkpoint"), also check
that the chain still holds that head unchanged: this catches records cut
from the end, which a walk alone cannot. Exits 1 when the trail is not intact.`,
		Example: `  keyhold audit verify
  keyhold audit verify --checkpoint cp.json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cp := ""
			if cpFile != "" {
				b, err := a.readInput("--checkpoint", cpFile, maxCheckpointBytes)
				if err != nil {
					return err
				}
				if cp, err = checkpointJSON(b); err != nil {
					return err
				}
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			rep, err := c.VerifyAuditTrail(cmd.Context(), cp)
			if err != nil {
				return err
			}
			if err := a.emit(rep, func(w *textOut) {
				if rep.Valid {
					w.kv("Result", "intact")
				} else {
					w.kv("Result", "NOT INTACT")
					w.kv("FirstBadSeq", strconv.FormatUint(rep.FirstBadSeq, 10))
					w.kv("Problem", rep.Problem)
				}
				w.kv("RecordsChecked", strconv.FormatUint(rep.RecordCount, 10))
				w.kv("HeadSeq", strconv.FormatUint(rep.HeadSeq, 10))
				if rep.CheckpointSeq > 0 {
					w.kv("CheckpointSeq", strconv.FormatUint(rep.CheckpointSeq, 10))
				}
			}); err != nil {
				return err
			}
			if !rep.Valid {
				return fmt.Errorf("the audit trail is not intact (first bad record: %d)", rep.FirstBadSeq)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cpFile, "checkpoint", "", `checkpoint file from "keyhold audit checkpoint" ("-" for stdin)`)
	return cmd
}

// checkpointJSON accepts the checkpoint as "keyhold audit checkpoint" wrote
// it (the whole response) or the bare checkpoint object, and returns the
// object as the Checkpoint parameter.
func checkpointJSON(b []byte) (string, error) {
	var wrapped struct{ Checkpoint json.RawMessage }
	if err := json.Unmarshal(b, &wrapped); err != nil {
		return "", usagef("--checkpoint: the file is not JSON")
	}
	if len(wrapped.Checkpoint) > 0 {
		return string(wrapped.Checkpoint), nil
	}
	return strings.TrimSpace(string(b)), nil
}

func newAuditCheckpointCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "checkpoint",
		Short: "Print a signed checkpoint of the audit chain's head (keep it outside the deployment)",
		Long: `Print a checkpoint: the chain's current head (sequence number and MAC),
the time, and an Ed25519 signature by a key derived from the root key.
Keep it somewhere the deployment's storage administrators cannot write;
"keyhold audit verify --checkpoint FILE" later proves the chain still holds
that head, so records cut from the end are detected.`,
		Example: `  keyhold audit checkpoint > cp-$(date +%F).json`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var out struct {
				Checkpoint json.RawMessage `json:"Checkpoint"`
			}
			if err := c.Call(cmd.Context(), keyholdAPIVersion, "CreateAuditCheckpoint", nil, &out); err != nil {
				return err
			}
			// Always JSON: the output is a file for verify, not a view.
			var buf bytes.Buffer
			if err := json.Indent(&buf, []byte(`{"Checkpoint":`+string(out.Checkpoint)+`}`), "", "  "); err != nil {
				return err
			}
			buf.WriteByte('\n')
			_, err = a.io.out.Write(buf.Bytes())
			return err
		},
	}
}
