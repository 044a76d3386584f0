package kmsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/audit"
	"github.com/keyhold/keyhold/internal/errs"
)

// AuditService is what the audit actions and the audit hook need from the
// trail; implemented by *audit.Trail.
type AuditService interface {
	Append(ctx context.Context, e audit.Event) (audit.Record, error)
	List(ctx context.Context, account string, q audit.Query) ([]audit.Record, uint64, error)
	Verify(ctx context.Context, account string, cp *audit.Checkpoint) (audit.Report, error)
	Checkpoint(ctx context.Context, account string) (audit.Checkpoint, error)
}

// TrailAuditor makes the trail the server's Auditor.
func TrailAuditor(svc AuditService) Auditor { return trailAuditor{svc} }

type trailAuditor struct{ svc AuditService }

func (a trailAuditor) Record(ctx context.Context, e Event) error {
	ae := audit.Event{
		Time:          e.Time,
		Account:       e.Account,
		PrincipalType: e.Principal.Kind,
		PrincipalName: e.Principal.Name,
		AccessKeyID:   e.AccessKeyID,
		SourceIP:      e.SourceIP,
		OnBehalfOf:    e.OnBehalf,
		APIVersion:    e.Version,
		Action:        e.Action,
		Resource:      e.Resource,
		RequestID:     e.RequestID,
		Stage:         audit.StageOutcome,
		Result:        e.Code,
		HTTPStatus:    e.Status,
		Params:        e.Params, // Append redacts
	}
	switch {
	case e.Attempt:
		ae.Stage, ae.Result = audit.StageAttempt, audit.ResultPending
	case e.Code == "":
		ae.Result = "OK"
	}
	_, err := a.svc.Append(ctx, ae)
	return err
}

// readOnlyAction reports whether an action changes nothing, so that one
// record, written after the handler and before the response, is enough to
// fail it closed: Get*, List* and Describe* actions (which must stay free
// of side effects) and the cryptographic operations, which only compute.
// Every other action is recorded as an attempt before its handler runs too.
func readOnlyAction(action string) bool {
	for _, p := range []string{"Get", "List", "Describe"} {
		if strings.HasPrefix(action, p) {
			return true
		}
	}
	switch action {
	case "Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
		"VerifyAuditTrail", "ExportAuditEvents", "CreateAuditCheckpoint":
		return true
	}
	return false
}

// record appends the call's audit record (the attempt, or the outcome with
// status and code) and turns a failure into ServiceUnavailableTemporary.
func (s *Server) record(ctx context.Context, c *apiCall, attempt bool, status int, code string) error {
	ev := Event{
		Time: c.start, RequestID: c.id, AccessKeyID: c.accessKeyID, Principal: c.principal,
		Account: c.principal.Account, SourceIP: c.sourceIP, OnBehalf: c.onBehalf, Version: c.version,
		Resource: c.resource, Attempt: attempt, Authorized: c.authorized, Status: status, Code: code,
	}
	if c.action != "" {
		ev.Action = actionPrefix(c.version) + c.action
	}
	if len(c.params) > 0 {
		ev.Params = make(Params, len(c.params))
		for k, v := range c.params {
			ev.Params[k] = v
		}
		for _, name := range signatureParams {
			delete(ev.Params, name)
		}
	}
	// A refused call goes to the trail of the account whose key it claimed,
	// so that the key's owner sees attempts made with it.
	if ev.Account == "" && c.accessKeyID != "" && len(c.accessKeyID) <= 128 {
		if p, _, err := s.cfg.Credentials.LookupAccessKey(ctx, c.accessKeyID); err == nil {
			ev.Account = p.Account
		}
	}
	// The record must land even when the client has gone: a handler that
	// ran must not end up with its attempt alone.
	if err := s.cfg.Audit.Record(context.WithoutCancel(ctx), ev); err != nil {
		s.log.Error("audit: record cannot be written; the call fails closed", "request_id", c.id,
			"action", ev.Action, "attempt", attempt, "err", err)
		return errs.Wrap(errs.KindUnavailable, err, "The request cannot be recorded in the audit trail; it was refused. Try again later.")
	}
	return nil
}

// Audit actions' paging.
const (
	auditListDefault   = 50
	auditListMax       = 100
	auditExportDefault = 500
	auditExportMax     = audit.MaxList
)

// AuditRoutes returns the Keyhold audit actions. Each is authorized as
// keyhold:<Action> on acs:keyhold:{region}:{uid}:audit, and each account
// sees only its own trail.
func AuditRoutes(svc AuditService) []Route {
	h := auditHandlers{svc: svc}
	res := func(r *Request) string { return "acs:keyhold:" + r.Region + ":" + r.Principal.Account + ":audit" }
	return []Route{
		{Version: VersionKeyhold, Action: "ListAuditEvents", Handler: h.list, Resource: res},
		{Version: VersionKeyhold, Action: "ExportAuditEvents", Handler: h.export, Resource: res},
		{Version: VersionKeyhold, Action: "VerifyAuditTrail", Handler: h.verify, Resource: res},
		{Version: VersionKeyhold, Action: "CreateAuditCheckpoint", Handler: h.checkpoint, Resource: res},
	}
}

type auditHandlers struct{ svc AuditService }

// query reads the filter and paging parameters shared by List and Export.
func auditQuery(r *Request, def, max int) (audit.Query, error) {
	var q audit.Query
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"Since", &q.Since}, {"Until", &q.Until}} {
		if v := r.Params.String(t.name); v != "" {
			ts, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return q, errs.E(errs.KindInvalidParameter, "The parameter %s must be a time in RFC 3339 form, e.g. 2026-01-02T15:04:05Z.", t.name)
			}
			*t.dst = ts
		}
	}
	q.Principal = r.Params.String("Principal")
	q.Action = r.Params.String("EventAction")
	q.Resource = r.Params.String("Resource")
	q.Result = r.Params.String("Result")
	n, err := r.Params.Int("MaxResults", def)
	if err != nil {
		return q, err
	}
	if n < 1 || n > max {
		return q, errs.E(errs.KindInvalidParameter, "The parameter MaxResults must be between 1 and %d.", max)
	}
	q.Limit = n
	if tok := r.Params.String("NextToken"); tok != "" {
		after, err := strconv.ParseUint(tok, 10, 64)
		if err != nil {
			return q, errs.E(errs.KindInvalidParameter, "The parameter NextToken is not valid.")
		}
		q.After = after
	}
	return q, nil
}

func nextToken(next uint64) string {
	if next == 0 {
		return ""
	}
	return strconv.FormatUint(next, 10)
}

type auditEventList struct {
	Event []audit.Record `json:"Event"`
}

func (h auditHandlers) list(ctx context.Context, r *Request) (any, error) {
	q, err := auditQuery(r, auditListDefault, auditListMax)
	if err != nil {
		return nil, err
	}
	recs, next, err := h.svc.List(ctx, r.Principal.Account, q)
	if err != nil {
		return nil, err
	}
	if recs == nil {
		recs = []audit.Record{}
	}
	return struct {
		Events    auditEventList `json:"Events"`
		NextToken string         `json:"NextToken"`
	}{auditEventList{recs}, nextToken(next)}, nil
}

// export returns a page of records as JSON lines (one record per line,
// with its Mac), ready to append to a file a SIEM ingests.
func (h auditHandlers) export(ctx context.Context, r *Request) (any, error) {
	q, err := auditQuery(r, auditExportDefault, auditExportMax)
	if err != nil {
		return nil, err
	}
	recs, next, err := h.svc.List(ctx, r.Principal.Account, q)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, rec := range recs {
		if err := enc.Encode(rec); err != nil {
			return nil, err
		}
	}
	return struct {
		Data      string `json:"Data"`
		Count     int    `json:"Count"`
		NextToken string `json:"NextToken"`
	}{buf.String(), len(recs), nextToken(next)}, nil
}

func (h auditHandlers) verify(ctx context.Context, r *Request) (any, error) {
	var cp *audit.Checkpoint
	if s := r.Params.String("Checkpoint"); s != "" {
		var err error
		if cp, err = audit.ParseCheckpoint(s); err != nil {
			return nil, err
		}
	}
	return h.svc.Verify(ctx, r.Principal.Account, cp)
}

func (h auditHandlers) checkpoint(ctx context.Context, r *Request) (any, error) {
	cp, err := h.svc.Checkpoint(ctx, r.Principal.Account)
	if err != nil {
		return nil, err
	}
	return struct {
		Checkpoint audit.Checkpoint `json:"Checkpoint"`
	}{cp}, nil
}
