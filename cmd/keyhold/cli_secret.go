package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/client"
)

// maxSecretBytes is the service's value limit; reading stops just past it
// so that a wrong file is refused before it is sent.
const maxSecretBytes = 30720

// callAndEmit runs one client call with its request and prints the result;
// text renders the text form.
func callAndEmit[Req, Resp any](cmd *cobra.Command, a *app, call func(*client.Client, context.Context, *Req) (*Resp, error), r *Req, text func(w *textOut, out *Resp)) error {
	return emitCall(cmd, a, func(c *client.Client, ctx context.Context) (*Resp, error) { return call(c, ctx, r) }, text)
}

// emitCall makes one client call and prints its response (text via text,
// or JSON): the body of most commands.
func emitCall[Resp any](cmd *cobra.Command, a *app, call func(*client.Client, context.Context) (*Resp, error), text func(w *textOut, out *Resp)) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	out, err := call(c, cmd.Context())
	if err != nil {
		return err
	}
	return a.emit(out, func(w *textOut) { text(w, out) })
}

func newSecretCmd(a *app) *cobra.Command {
	cmd := groupCmd("secret", "Create, read, version, rotate and delete secrets",
		`  printf 's3cr3t' | keyhold secret create MyDbCreds --value-file -
  keyhold secret get MyDbCreds
  keyhold secret list --output json`)
	cmd.AddCommand(
		newSecretCreateCmd(a), newSecretGetCmd(a), newSecretPutCmd(a), newSecretListCmd(a),
		newSecretDescribeCmd(a), newSecretUpdateCmd(a), newSecretDeleteCmd(a), newSecretRestoreCmd(a),
		newSecretVersionsCmd(a), newSecretStageCmd(a), newSecretRandomPasswordCmd(a),
		newSecretRotateCmd(a), newSecretRotationPolicyCmd(a), newSecretTagCmd(a), newSecretUntagCmd(a),
		newSecretPolicyCmd(a),
	)
	return cmd
}

// parseTags turns KEY=VALUE arguments into tags.
func parseTags(args []string) ([]client.Tag, error) {
	var tags []client.Tag
	for _, s := range args {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usagef("tag %q is not KEY=VALUE", s)
		}
		tags = append(tags, client.Tag{TagKey: k, TagValue: v})
	}
	return tags, nil
}

// parseKV turns KEY=VALUE arguments into a map (encryption context, custom
// data).
func parseKV(flag string, args []string) (map[string]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, s := range args {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usagef("%s %q is not KEY=VALUE", flag, s)
		}
		m[k] = v
	}
	return m, nil
}

// jsonArg reads a JSON document given inline or as @FILE.
func jsonArg(flag, v string) (map[string]any, error) {
	if v == "" {
		return nil, nil
	}
	b := []byte(v)
	if name, ok := strings.CutPrefix(v, "@"); ok {
		var err error
		if b, err = os.ReadFile(name); err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, usagef("%s is not a JSON object: %v", flag, err)
	}
	return m, nil
}

// secretValue reads the value for create/put/rotate and encodes it for the
// wire (Base64 for binary).
func (a *app) secretValue(valueFile, dataType string) (string, error) {
	b, err := a.readValue("--value-file", valueFile, maxSecretBytes)
	if err != nil {
		return "", err
	}
	if len(b) == 0 {
		return "", usagef("the secret value is empty")
	}
	if strings.EqualFold(dataType, "binary") {
		return base64.StdEncoding.EncodeToString(b), nil
	}
	return string(b), nil
}

func tagString(t *client.Tags) string {
	if t == nil {
		return ""
	}
	var parts []string
	for _, x := range t.Tag {
		parts = append(parts, x.TagKey+"="+x.TagValue)
	}
	return strings.Join(parts, ",")
}

const valueHelp = `The value is read from --value-file FILE, or from stdin ("--value-file -",
or stdin when it is not a terminal) — never from the command line. It is
stored exactly as read, including any trailing newline (use printf, not echo).`

func newSecretCreateCmd(a *app) *cobra.Command {
	var r client.CreateSecretRequest
	var valueFile, extCfg, policyFile string
	var tags []string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a secret with its first version",
		Long:  "Create a secret with its first version (stage ACSCurrent).\n\n" + valueHelp,
		Example: `  printf 's3cr3t' | keyhold secret create MyDbCreds --value-file -
  keyhold secret create app/api-token --value-file ./token.txt --description "API token" --tag env=prod
  keyhold secret create tls/key --data-type binary --value-file ./key.der`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.SecretName = args[0]
			var err error
			if r.Tags, err = parseTags(tags); err != nil {
				return err
			}
			if r.ExtendedConfig, err = jsonArg("--extended-config", extCfg); err != nil {
				return err
			}
			if policyFile != "" {
				b, err := os.ReadFile(policyFile)
				if err != nil {
					return fmt.Errorf("--policy-file: %w", err)
				}
				r.Policy = string(b)
			}
			if r.SecretData, err = a.secretValue(valueFile, r.SecretDataType); err != nil {
				return err
			}
			return callAndEmit(cmd, a, (*client.Client).CreateSecret, &r, func(w *textOut, out *client.CreateSecretResponse) {
				w.kv("SecretName", out.SecretName)
				w.kv("Arn", out.Arn)
				w.kv("SecretType", out.SecretType)
				w.kv("VersionId", out.VersionId)
				w.kv("AutomaticRotation", out.AutomaticRotation)
				w.kv("RotationInterval", out.RotationInterval)
				w.kv("NextRotationDate", out.NextRotationDate)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&valueFile, "value-file", "", `file holding the value, "-" for stdin`)
	f.StringVar(&r.VersionId, "version-id", "v1", "id of the first version")
	f.StringVar(&r.SecretType, "type", "", "secret type: Generic (default), Rds, RAMCredentials, ECS")
	f.StringVar(&r.SecretDataType, "data-type", "", "text (default) or binary (the file's bytes are sent Base64-encoded)")
	f.StringVar(&r.Description, "description", "", "description")
	f.StringVar(&r.EncryptionKeyId, "encryption-key-id", "", "key (id or alias) that protects the secret")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	f.StringVar(&extCfg, "extended-config", "", "ExtendedConfig JSON object, inline or @FILE")
	f.BoolVar(&r.EnableAutomaticRotation, "enable-rotation", false, "enable scheduled rotation (managed types)")
	f.StringVar(&r.RotationInterval, "rotation-interval", "", "rotation interval, e.g. 7d, 12h, 604800s")
	f.StringVar(&policyFile, "policy-file", "", "resource policy JSON file")
	return cmd
}

func newSecretGetCmd(a *app) *cobra.Command {
	var r client.GetSecretValueRequest
	var decode bool
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Print a secret's value",
		Long: `Print a secret version's value: ACSCurrent unless --version-id or --stage
says otherwise. With --output json the whole response (metadata and value)
is printed. Binary values print as Base64 unless --decode.`,
		Example: `  keyhold secret get MyDbCreds
  keyhold secret get MyDbCreds --stage ACSPrevious
  keyhold secret get MyDbCreds --version-id v1 --output json
  keyhold secret get tls/key --decode > key.der`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.SecretName = args[0]
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.GetSecretValue(cmd.Context(), &r)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.emit(out, nil)
			}
			val := []byte(out.SecretData)
			if decode && strings.EqualFold(out.SecretDataType, "binary") {
				if val, err = base64.StdEncoding.DecodeString(out.SecretData); err != nil {
					return fmt.Errorf("the binary value is not valid Base64")
				}
				return a.emitRaw(val, false)
			}
			return a.emitRaw(val, a.io.outTTY)
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.VersionId, "version-id", "", "version to read")
	f.StringVar(&r.VersionStage, "stage", "", "stage to read (default ACSCurrent)")
	f.BoolVar(&r.FetchExtendedConfig, "fetch-extended-config", false, "include ExtendedConfig (json output)")
	f.BoolVar(&decode, "decode", false, "print a binary value's raw bytes instead of Base64")
	return cmd
}

func newSecretPutCmd(a *app) *cobra.Command {
	var r client.PutSecretValueRequest
	var valueFile string
	cmd := &cobra.Command{
		Use:   "put NAME",
		Short: "Store a new version of a secret",
		Long: `Store a new version of a secret; it becomes ACSCurrent (the old current
becomes ACSPrevious) unless --stage says otherwise. Repeating a put with the
same --version-id and value is a harmless success.

` + valueHelp,
		Example: `  printf 'n3w-password' | keyhold secret put MyDbCreds --version-id v2 --value-file -
  keyhold secret put MyDbCreds --version-id v3 --value-file ./pw.txt --stage blue`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.SecretName = args[0]
			if r.VersionId == "" {
				// A readable, sortable default; pass --version-id for idempotent retries.
				r.VersionId = time.Now().UTC().Format("20060102T150405Z")
			}
			var err error
			if r.SecretData, err = a.secretValue(valueFile, r.SecretDataType); err != nil {
				return err
			}
			return callAndEmit(cmd, a, (*client.Client).PutSecretValue, &r, func(w *textOut, out *client.PutSecretValueResponse) {
				w.kv("SecretName", out.SecretName)
				w.kv("VersionId", out.VersionId)
				w.kv("VersionStages", stages(out.VersionStages.VersionStage))
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&valueFile, "value-file", "", `file holding the value, "-" for stdin`)
	f.StringVar(&r.VersionId, "version-id", "", "id of the new version (default: the current UTC time, e.g. 20260101T120000Z)")
	f.StringVar(&r.SecretDataType, "data-type", "", "text (default) or binary")
	f.StringArrayVar(&r.VersionStages, "stage", nil, "stage for the new version (repeatable; default ACSCurrent)")
	return cmd
}

func newSecretListCmd(a *app) *cobra.Command {
	var r client.ListSecretsRequest
	var filters []string
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List secrets (names and metadata, never values)",
		Example: `  keyhold secret list
  keyhold secret list --all --output json
  keyhold secret list --filter SecretName=app/ --filter TagKey=env --fetch-tags`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			byKey := map[string]int{}
			for _, s := range filters {
				k, v, ok := strings.Cut(s, "=")
				if !ok || k == "" {
					return usagef("--filter %q is not KEY=VALUE", s)
				}
				if i, seen := byKey[k]; seen {
					r.Filters[i].Values = append(r.Filters[i].Values, v)
					continue
				}
				byKey[k] = len(r.Filters)
				r.Filters = append(r.Filters, client.Filter{Key: k, Values: []string{v}})
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if all {
				r.PageNumber, r.PageSize = 1, 100
			}
			out, err := c.ListSecrets(cmd.Context(), &r)
			if err != nil {
				return err
			}
			for all && len(out.SecretList.Secret) < out.TotalCount {
				r.PageNumber++
				next, err := c.ListSecrets(cmd.Context(), &r)
				if err != nil {
					return err
				}
				if len(next.SecretList.Secret) == 0 {
					break
				}
				out.SecretList.Secret = append(out.SecretList.Secret, next.SecretList.Secret...)
			}
			return a.emit(out, func(w *textOut) {
				var rows [][]string
				for _, s := range out.SecretList.Secret {
					row := []string{s.SecretName, s.SecretType, s.CreateTime, s.UpdateTime, s.PlannedDeleteTime}
					if r.FetchTags {
						row = append(row, tagString(s.Tags))
					}
					rows = append(rows, row)
				}
				hdr := []string{"NAME", "TYPE", "CREATED", "UPDATED", "PLANNED_DELETE"}
				if r.FetchTags {
					hdr = append(hdr, "TAGS")
				}
				w.table(hdr, rows)
				if !all && out.TotalCount > len(out.SecretList.Secret) {
					w.line(fmt.Sprintf("(%d of %d; use --page or --all)", len(out.SecretList.Secret), out.TotalCount))
				}
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&r.PageNumber, "page", 0, "page number (default 1)")
	f.IntVar(&r.PageSize, "page-size", 0, "entries per page, 1–100 (default 10)")
	f.BoolVar(&all, "all", false, "fetch every page")
	f.StringArrayVar(&filters, "filter", nil, "filter KEY=VALUE, KEY one of SecretName, Description, TagKey, TagValue (repeatable)")
	f.BoolVar(&r.FetchTags, "fetch-tags", false, "include tags")
	return cmd
}

func newSecretDescribeCmd(a *app) *cobra.Command {
	var noTags bool
	cmd := &cobra.Command{
		Use:     "describe NAME",
		Short:   "Show a secret's metadata (never its value)",
		Example: "  keyhold secret describe MyDbCreds\n  keyhold secret describe MyDbCreds --output json",
		Args:    nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.DescribeSecret(cmd.Context(), args[0], !noTags)
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) {
				w.kv("SecretName", out.SecretName)
				w.kv("Arn", out.Arn)
				w.kv("SecretType", out.SecretType)
				w.kv("Description", out.Description)
				w.kv("EncryptionKeyId", out.EncryptionKeyId)
				w.kv("CreateTime", out.CreateTime)
				w.kv("UpdateTime", out.UpdateTime)
				w.kv("PlannedDeleteTime", out.PlannedDeleteTime)
				w.kv("AutomaticRotation", out.AutomaticRotation)
				w.kv("RotationInterval", out.RotationInterval)
				w.kv("LastRotationDate", out.LastRotationDate)
				w.kv("NextRotationDate", out.NextRotationDate)
				w.kv("ExtendedConfig", out.ExtendedConfig)
				w.kv("Tags", tagString(out.Tags))
			})
		},
	}
	cmd.Flags().BoolVar(&noTags, "no-tags", false, "do not fetch tags")
	return cmd
}

func newSecretUpdateCmd(a *app) *cobra.Command {
	var r client.UpdateSecretRequest
	var custom []string
	cmd := &cobra.Command{
		Use:   "update NAME",
		Short: "Change a secret's description or custom data",
		Example: `  keyhold secret update MyDbCreds --description "orders database"
  keyhold secret update MyDbCreds --custom-data owner=dba --custom-data ticket=OPS-12`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.SecretName = args[0]
			var err error
			if r.CustomData, err = parseKV("--custom-data", custom); err != nil {
				return err
			}
			if r.Description == "" && r.CustomData == nil {
				return usagef("nothing to update: give --description or --custom-data")
			}
			return callAndEmit(cmd, a, (*client.Client).UpdateSecret, &r, func(w *textOut, out *client.SecretNameResponse) { w.line("Updated secret " + out.SecretName) })
		},
	}
	cmd.Flags().StringVar(&r.Description, "description", "", "new description")
	cmd.Flags().StringArrayVar(&custom, "custom-data", nil, "ExtendedConfig.CustomData KEY=VALUE (repeatable; replaces all)")
	return cmd
}

func newSecretDeleteCmd(a *app) *cobra.Command {
	var r client.DeleteSecretRequest
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Schedule a secret's deletion (or delete it at once with --force)",
		Long: `Schedule a secret's deletion after a recovery window (7–30 days, default
30); "keyhold secret restore" cancels it. --force deletes at once, without
recovery.`,
		Example: `  keyhold secret delete MyDbCreds --recovery-window-days 7
  keyhold secret delete scratch/test --force`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.SecretName = args[0]
			if r.ForceDeleteWithoutRecovery && r.RecoveryWindowInDays != 0 {
				return usagef("--force and --recovery-window-days exclude each other")
			}
			return callAndEmit(cmd, a, (*client.Client).DeleteSecret, &r, func(w *textOut, out *client.DeleteSecretResponse) {
				w.kv("SecretName", out.SecretName)
				w.kv("PlannedDeleteTime", out.PlannedDeleteTime)
			})
		},
	}
	cmd.Flags().IntVar(&r.RecoveryWindowInDays, "recovery-window-days", 0, "days before the deletion takes effect, 7–30 (default 30)")
	cmd.Flags().BoolVar(&r.ForceDeleteWithoutRecovery, "force", false, "delete at once, without a recovery window")
	return cmd
}

func newSecretRestoreCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "restore NAME",
		Short:   "Cancel a scheduled secret deletion",
		Example: "  keyhold secret restore MyDbCreds",
		Args:    nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.RestoreSecret(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) { w.line("Restored secret " + out.SecretName) })
		},
	}
}

func newSecretVersionsCmd(a *app) *cobra.Command {
	var r client.ListSecretVersionIdsRequest
	cmd := &cobra.Command{
		Use:     "versions NAME",
		Short:   "List a secret's versions and their stages",
		Example: "  keyhold secret versions MyDbCreds\n  keyhold secret versions MyDbCreds --include-deprecated --output json",
		Args:    nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.SecretName = args[0]
			return callAndEmit(cmd, a, (*client.Client).ListSecretVersionIds, &r, func(w *textOut, out *client.ListSecretVersionIdsResponse) {
				var rows [][]string
				for _, v := range out.VersionIds.VersionId {
					rows = append(rows, []string{v.VersionId, stages(v.VersionStages.VersionStage), v.CreateTime})
				}
				w.table([]string{"VERSION_ID", "STAGES", "CREATED"}, rows)
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&r.IncludeDeprecated, "include-deprecated", false, "include versions without a stage")
	f.IntVar(&r.PageNumber, "page", 0, "page number")
	f.IntVar(&r.PageSize, "page-size", 0, "entries per page")
	return cmd
}

func newSecretStageCmd(a *app) *cobra.Command {
	var r client.UpdateSecretVersionStageRequest
	cmd := &cobra.Command{
		Use:   "stage NAME STAGE",
		Short: "Move or remove a stage label",
		Long: `Move a stage label to a version (--move-to), remove it from one
(--remove-from), or both. Moving ACSCurrent makes the old current ACSPrevious.`,
		Example: `  keyhold secret stage MyDbCreds ACSCurrent --move-to v1 --remove-from v2   # roll back
  keyhold secret stage MyDbCreds blue --move-to v3`,
		Args: nArgs("NAME", "STAGE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.SecretName, r.VersionStage = args[0], args[1]
			if r.MoveToVersion == "" && r.RemoveFromVersion == "" {
				return usagef("give --move-to VERSION, --remove-from VERSION or both")
			}
			return callAndEmit(cmd, a, (*client.Client).UpdateSecretVersionStage, &r, func(w *textOut, out *client.SecretNameResponse) {
				w.kv("SecretName", out.SecretName)
				w.kv("VersionStage", r.VersionStage)
				w.kv("MovedTo", r.MoveToVersion)
				w.kv("RemovedFrom", r.RemoveFromVersion)
			})
		},
	}
	cmd.Flags().StringVar(&r.MoveToVersion, "move-to", "", "version that gets the stage")
	cmd.Flags().StringVar(&r.RemoveFromVersion, "remove-from", "", "version that loses the stage")
	return cmd
}

func newSecretRandomPasswordCmd(a *app) *cobra.Command {
	var r client.GetRandomPasswordRequest
	cmd := &cobra.Command{
		Use:   "random-password",
		Short: "Print a random password generated by the server",
		Example: `  keyhold secret random-password --length 24 --exclude-punctuation
  keyhold secret random-password | keyhold secret put MyDbCreds --version-id v3 --value-file -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.GetRandomPassword(cmd.Context(), &r)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.emit(out, nil)
			}
			return a.emitRaw([]byte(out.RandomPassword), a.io.outTTY)
		},
	}
	f := cmd.Flags()
	f.IntVar(&r.PasswordLength, "length", 0, "length, 8–128 (default 32)")
	f.StringVar(&r.ExcludeCharacters, "exclude-characters", "", "characters never to use")
	f.BoolVar(&r.ExcludeLowercase, "exclude-lowercase", false, "no lower-case letters")
	f.BoolVar(&r.ExcludeUppercase, "exclude-uppercase", false, "no upper-case letters")
	f.BoolVar(&r.ExcludeNumbers, "exclude-numbers", false, "no digits")
	f.BoolVar(&r.ExcludePunctuation, "exclude-punctuation", false, "no punctuation")
	f.BoolVar(&r.RequireEachIncludedType, "require-each-type", false, "at least one character of each included type")
	return cmd
}

func newSecretRotateCmd(a *app) *cobra.Command {
	var r client.RotateSecretRequest
	var valueFile string
	cmd := &cobra.Command{
		Use:   "rotate NAME",
		Short: "Rotate a managed secret now",
		Long: `Rotate a managed (ECS, Rds, RAMCredentials) secret now. The server generates
the new value unless --value-file supplies one (Keyhold extension; the value
is read from the file or stdin, never from the command line). An ECS value
is JSON: {"UserName","Password"} or {"UserName","PublicKey","PrivateKey"}.

The call returns at once; an ECS rotation then runs on the host in the
background (keyhold rotation list|show). A second rotation while one runs is
refused (Rejected.ResourceInUse); repeating a --version-id is a success.`,
		Example: `  keyhold secret rotate acs/ecs/web-1/root
  keyhold secret rotate acs/ecs/web-1/root --version-id r-2026-01 --value-file ./new-pw`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.SecretName = args[0]
			if r.VersionId == "" {
				r.VersionId = "r" + time.Now().UTC().Format("20060102T150405Z")
			}
			if valueFile != "" {
				var err error
				if r.SecretData, err = a.secretValue(valueFile, ""); err != nil {
					return err
				}
			}
			return callAndEmit(cmd, a, (*client.Client).RotateSecret, &r, func(w *textOut, out *client.RotateSecretResponse) {
				w.kv("SecretName", out.SecretName)
				w.kv("Arn", out.Arn)
				w.kv("VersionId", out.VersionId)
				// ECS rotations run in the background on the host.
				w.line("Follow it with: keyhold rotation list --secret-name " + out.SecretName)
			})
		},
	}
	cmd.Flags().StringVar(&r.VersionId, "version-id", "", "idempotency key for the new version (default: r + current UTC time)")
	cmd.Flags().StringVar(&valueFile, "value-file", "", `new value from FILE or "-" (stdin); default: generated by the server`)
	return cmd
}

func newSecretRotationPolicyCmd(a *app) *cobra.Command {
	var r client.UpdateSecretRotationPolicyRequest
	var enable, disable bool
	cmd := &cobra.Command{
		Use:   "rotation-policy NAME",
		Short: "Turn scheduled rotation on or off",
		Example: `  keyhold secret rotation-policy acs/ecs/web-1/root --enable --interval 30d
  keyhold secret rotation-policy acs/ecs/web-1/root --disable`,
		Args: nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if enable == disable {
				return usagef("give exactly one of --enable or --disable")
			}
			r.SecretName, r.EnableAutomaticRotation = args[0], enable
			return callAndEmit(cmd, a, (*client.Client).UpdateSecretRotationPolicy, &r, func(w *textOut, out *client.SecretNameResponse) {
				w.kv("SecretName", out.SecretName)
				w.kv("AutomaticRotation", map[bool]string{true: "Enabled", false: "Disabled"}[enable])
				w.kv("RotationInterval", r.RotationInterval)
			})
		},
	}
	cmd.Flags().BoolVar(&enable, "enable", false, "enable scheduled rotation")
	cmd.Flags().BoolVar(&disable, "disable", false, "disable scheduled rotation")
	cmd.Flags().StringVar(&r.RotationInterval, "interval", "", "rotation interval, e.g. 7d, 12h (1h to 365d)")
	return cmd
}

func newSecretTagCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "tag NAME KEY=VALUE...",
		Short:   "Add or overwrite tags of a secret",
		Example: "  keyhold secret tag MyDbCreds env=prod team=payments",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("%s takes NAME and at least one KEY=VALUE", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			tags, err := parseTags(args[1:])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.TagResource(cmd.Context(), &client.TagResourceRequest{SecretName: args[0], Tags: tags})
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) { w.line("Tagged secret " + args[0]) })
		},
	}
}

func newSecretUntagCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "untag NAME KEY...",
		Short:   "Remove tags from a secret",
		Example: "  keyhold secret untag MyDbCreds env team",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("%s takes NAME and at least one tag KEY", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.UntagResource(cmd.Context(), &client.UntagResourceRequest{SecretName: args[0], TagKeys: args[1:]})
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) { w.line("Untagged secret " + args[0]) })
		},
	}
}

func newSecretPolicyCmd(a *app) *cobra.Command {
	cmd := groupCmd("policy", "Read or replace a secret's resource policy",
		"  keyhold secret policy get MyDbCreds\n  keyhold secret policy set MyDbCreds --policy-file policy.json")
	var getName, setName, file string
	get := &cobra.Command{
		Use:     "get NAME",
		Short:   "Print a secret's resource policy",
		Example: "  keyhold secret policy get MyDbCreds",
		Args:    nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.GetSecretPolicy(cmd.Context(), args[0], getName)
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) { w.line(out.Policy) })
		},
	}
	get.Flags().StringVar(&getName, "policy-name", "", "policy name (default \"default\")")
	set := &cobra.Command{
		Use:     "set NAME",
		Short:   "Replace a secret's resource policy",
		Example: "  keyhold secret policy set MyDbCreds --policy-file policy.json",
		Args:    nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return usagef("--policy-file is required")
			}
			b, err := a.readInput("--policy-file", file, 1<<16)
			if err != nil {
				return err
			}
			if !json.Valid(b) {
				return usagef("--policy-file does not hold JSON")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.SetSecretPolicy(cmd.Context(), &client.SetSecretPolicyRequest{SecretName: args[0], PolicyName: setName, Policy: string(b)})
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) { w.line("Set policy of secret " + args[0]) })
		},
	}
	set.Flags().StringVar(&setName, "policy-name", "", "policy name (default \"default\")")
	set.Flags().StringVar(&file, "policy-file", "", `policy JSON file, "-" for stdin`)
	cmd.AddCommand(get, set)
	return cmd
}
