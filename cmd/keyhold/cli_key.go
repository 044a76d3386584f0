package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/client"
)

// maxPlaintextBytes is KMS's Encrypt limit (6 KiB).
const maxPlaintextBytes = 6144

func newKeyCmd(a *app) *cobra.Command {
	cmd := groupCmd("key", "Manage keys (CMKs), aliases and envelope encryption",
		`  keyhold key create --description "app key"
  keyhold key alias create alias/app <KeyId>
  printf 'hello' | keyhold key encrypt alias/app --plaintext-file -`)
	cmd.AddCommand(
		newKeyCreateCmd(a), newKeyListCmd(a), newKeyDescribeCmd(a),
		keyAction(a, "enable", "Enable a key", "EnableKey", (*client.Client).EnableKey),
		keyAction(a, "disable", "Disable a key (using it then fails with Rejected.Disabled)", "DisableKey", (*client.Client).DisableKey),
		newKeyScheduleDeletionCmd(a),
		keyAction(a, "cancel-deletion", "Cancel a key's scheduled deletion", "CancelKeyDeletion", (*client.Client).CancelKeyDeletion),
		newKeyUpdateDescriptionCmd(a), newKeyRotateCmd(a), newKeyVersionsCmd(a),
		newKeyAliasCmd(a), newKeyEncryptCmd(a), newKeyDecryptCmd(a), newKeyReEncryptCmd(a), newKeyGenerateDataKeyCmd(a),
	)
	return cmd
}

func keyMetadataView(w *textOut, m client.KeyMetadata) {
	w.kv("KeyId", m.KeyId)
	w.kv("Arn", m.Arn)
	w.kv("KeyState", m.KeyState)
	w.kv("KeySpec", m.KeySpec)
	w.kv("KeyUsage", m.KeyUsage)
	w.kv("Origin", m.Origin)
	w.kv("ProtectionLevel", m.ProtectionLevel)
	w.kv("Description", m.Description)
	w.kv("CreationDate", m.CreationDate)
	w.kv("PrimaryKeyVersion", m.PrimaryKeyVersion)
	w.kv("AutomaticRotation", m.AutomaticRotation)
	w.kv("RotationInterval", m.RotationInterval)
	w.kv("LastRotationDate", m.LastRotationDate)
	w.kv("NextRotationDate", m.NextRotationDate)
	w.kv("DeleteDate", m.DeleteDate)
}

func newKeyCreateCmd(a *app) *cobra.Command {
	var r client.CreateKeyRequest
	var tags []string
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a symmetric key",
		Example: `  keyhold key create --description "app key"
  keyhold key create --enable-rotation --rotation-interval 365d --tag team=payments --output json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if r.Tags, err = parseTags(tags); err != nil {
				return err
			}
			return callAndEmit(cmd, a, (*client.Client).CreateKey, &r, func(w *textOut, out *client.KeyResponse) { keyMetadataView(w, out.KeyMetadata) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.Description, "description", "", "description")
	f.StringVar(&r.KeySpec, "key-spec", "", "key spec (default Aliyun_AES_256)")
	f.StringVar(&r.KeyUsage, "key-usage", "", "key usage (default ENCRYPT/DECRYPT)")
	f.StringVar(&r.Origin, "origin", "", "key material origin (default Aliyun_KMS)")
	f.StringVar(&r.ProtectionLevel, "protection-level", "", "protection level (default SOFTWARE)")
	f.BoolVar(&r.EnableAutomaticRotation, "enable-rotation", false, "rotate the key automatically")
	f.StringVar(&r.RotationInterval, "rotation-interval", "", "key rotation interval, e.g. 365d")
	f.StringArrayVar(&tags, "tag", nil, "tag KEY=VALUE (repeatable)")
	return cmd
}

func newKeyListCmd(a *app) *cobra.Command {
	var page client.Page
	var all bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List keys",
		Example: "  keyhold key list\n  keyhold key list --all --output json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if all {
				page = client.Page{PageNumber: 1, PageSize: 100}
			}
			out, err := c.ListKeys(cmd.Context(), page, "")
			if err != nil {
				return err
			}
			for all && len(out.Keys.Key) < out.TotalCount {
				page.PageNumber++
				next, err := c.ListKeys(cmd.Context(), page, "")
				if err != nil {
					return err
				}
				if len(next.Keys.Key) == 0 {
					break
				}
				out.Keys.Key = append(out.Keys.Key, next.Keys.Key...)
			}
			return a.emit(out, func(w *textOut) {
				var rows [][]string
				for _, k := range out.Keys.Key {
					rows = append(rows, []string{k.KeyId, k.KeyArn})
				}
				w.table([]string{"KEY_ID", "ARN"}, rows)
				if !all && out.TotalCount > len(out.Keys.Key) {
					w.line(fmt.Sprintf("(%d of %d; use --page or --all)", len(out.Keys.Key), out.TotalCount))
				}
			})
		},
	}
	cmd.Flags().IntVar(&page.PageNumber, "page", 0, "page number")
	cmd.Flags().IntVar(&page.PageSize, "page-size", 0, "entries per page, 1–100")
	cmd.Flags().BoolVar(&all, "all", false, "fetch every page")
	return cmd
}

func newKeyDescribeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "describe KEY",
		Short:   "Show a key's metadata (KEY is an id, ARN or alias/…)",
		Example: "  keyhold key describe alias/app\n  keyhold key describe 1234abcd-12ab-34cd-56ef-1234567890ab --output json",
		Args:    nArgs("KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return emitCall(cmd, a, func(c *client.Client, ctx context.Context) (*client.KeyResponse, error) {
				return c.DescribeKey(ctx, args[0])
			}, func(w *textOut, out *client.KeyResponse) { keyMetadataView(w, out.KeyMetadata) })
		},
	}
}

// keyAction builds a command for the actions that take only a key id.
func keyAction(a *app, use, short, action string, fn func(*client.Client, context.Context, string) (*client.Response, error)) *cobra.Command {
	return &cobra.Command{
		Use:     use + " KEY",
		Short:   short,
		Example: "  keyhold key " + use + " alias/app",
		Args:    nArgs("KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return emitCall(cmd, a, func(c *client.Client, ctx context.Context) (*client.Response, error) {
				return fn(c, ctx, args[0])
			}, func(w *textOut, _ *client.Response) { w.line(action + ": " + args[0] + ": done") })
		},
	}
}

func newKeyScheduleDeletionCmd(a *app) *cobra.Command {
	var days int
	cmd := &cobra.Command{
		Use:   "schedule-deletion KEY",
		Short: "Schedule a key's deletion after a waiting period",
		Long: `Schedule a key's deletion after --pending-window-days (7–366, default 30).
Everything encrypted under the key becomes unreadable once it is deleted;
"keyhold key cancel-deletion" stops it in the meantime.`,
		Example: "  keyhold key schedule-deletion alias/old --pending-window-days 7",
		Args:    nArgs("KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return emitCall(cmd, a, func(c *client.Client, ctx context.Context) (*client.Response, error) {
				return c.ScheduleKeyDeletion(ctx, args[0], days)
			}, func(w *textOut, out *client.Response) {
				w.line(fmt.Sprintf("Key %s is scheduled for deletion in %d days", args[0], days))
			})
		},
	}
	cmd.Flags().IntVar(&days, "pending-window-days", 30, "days before deletion, 7–366")
	return cmd
}

func newKeyUpdateDescriptionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "update-description KEY DESCRIPTION",
		Short:   "Replace a key's description",
		Example: `  keyhold key update-description alias/app "payments app key"`,
		Args:    nArgs("KEY", "DESCRIPTION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return emitCall(cmd, a, func(c *client.Client, ctx context.Context) (*client.Response, error) {
				return c.UpdateKeyDescription(ctx, args[0], args[1])
			}, func(w *textOut, out *client.Response) { w.line("Updated key " + args[0]) })
		},
	}
}

func newKeyRotateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "rotate KEY",
		Short:   "Create a new key version (new encryptions use it)",
		Example: "  keyhold key rotate alias/app",
		Args:    nArgs("KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return emitCall(cmd, a, func(c *client.Client, ctx context.Context) (*client.CreateKeyVersionResponse, error) {
				return c.CreateKeyVersion(ctx, args[0])
			}, func(w *textOut, out *client.CreateKeyVersionResponse) {
				w.kv("KeyId", out.KeyVersion.KeyId)
				w.kv("KeyVersionId", out.KeyVersion.KeyVersionId)
				w.kv("CreationDate", out.KeyVersion.CreationDate)
			})
		},
	}
}

func newKeyVersionsCmd(a *app) *cobra.Command {
	var page client.Page
	cmd := &cobra.Command{
		Use:     "versions KEY",
		Short:   "List a key's versions",
		Example: "  keyhold key versions alias/app",
		Args:    nArgs("KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return emitCall(cmd, a, func(c *client.Client, ctx context.Context) (*client.ListKeyVersionsResponse, error) {
				return c.ListKeyVersions(ctx, args[0], page)
			}, func(w *textOut, out *client.ListKeyVersionsResponse) {
				var rows [][]string
				for _, v := range out.KeyVersions.KeyVersion {
					rows = append(rows, []string{v.KeyVersionId, v.CreationDate})
				}
				w.table([]string{"KEY_VERSION_ID", "CREATED"}, rows)
			})
		},
	}
	cmd.Flags().IntVar(&page.PageNumber, "page", 0, "page number")
	cmd.Flags().IntVar(&page.PageSize, "page-size", 0, "entries per page")
	return cmd
}

func newKeyAliasCmd(a *app) *cobra.Command {
	cmd := groupCmd("alias", "Create, repoint, delete and list key aliases (alias/…)",
		"  keyhold key alias create alias/app <KeyId>\n  keyhold key alias list")
	mk := func(use, short, example string, n int, fn func(c *client.Client, cmd *cobra.Command, args []string) (*client.Response, error)) *cobra.Command {
		names := []string{"ALIAS", "KEY"}[:n]
		return &cobra.Command{
			Use: use + " " + map[int]string{1: "ALIAS", 2: "ALIAS KEY"}[n], Short: short, Example: example,
			Args: nArgs(names...),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := a.client()
				if err != nil {
					return err
				}
				out, err := fn(c, cmd, args)
				if err != nil {
					return err
				}
				return a.emit(out, func(w *textOut) { w.line(use + " " + args[0] + ": done") })
			},
		}
	}
	cmd.AddCommand(
		mk("create", "Create an alias for a key", "  keyhold key alias create alias/app 1234abcd-…", 2,
			func(c *client.Client, cmd *cobra.Command, args []string) (*client.Response, error) {
				return c.CreateAlias(cmd.Context(), args[0], args[1])
			}),
		mk("update", "Point an alias at another key", "  keyhold key alias update alias/app 5678efgh-…", 2,
			func(c *client.Client, cmd *cobra.Command, args []string) (*client.Response, error) {
				return c.UpdateAlias(cmd.Context(), args[0], args[1])
			}),
		mk("delete", "Delete an alias (the key stays)", "  keyhold key alias delete alias/app", 1,
			func(c *client.Client, cmd *cobra.Command, args []string) (*client.Response, error) {
				return c.DeleteAlias(cmd.Context(), args[0])
			}),
		newKeyAliasListCmd(a),
	)
	return cmd
}

func newKeyAliasListCmd(a *app) *cobra.Command {
	var keyID string
	var page client.Page
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List aliases (all, or one key's with --key-id)",
		Example: "  keyhold key alias list\n  keyhold key alias list --key-id 1234abcd-…",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var out *client.ListAliasesResponse
			if keyID != "" {
				out, err = c.ListAliasesByKeyId(cmd.Context(), keyID, page)
			} else {
				out, err = c.ListAliases(cmd.Context(), page)
			}
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) {
				var rows [][]string
				for _, al := range out.Aliases.Alias {
					rows = append(rows, []string{al.AliasName, al.KeyId, al.AliasArn})
				}
				w.table([]string{"ALIAS", "KEY_ID", "ARN"}, rows)
			})
		},
	}
	cmd.Flags().StringVar(&keyID, "key-id", "", "only this key's aliases")
	cmd.Flags().IntVar(&page.PageNumber, "page", 0, "page number")
	cmd.Flags().IntVar(&page.PageSize, "page-size", 0, "entries per page")
	return cmd
}

func newKeyEncryptCmd(a *app) *cobra.Command {
	var file string
	var ctxKV []string
	cmd := &cobra.Command{
		Use:   "encrypt KEY",
		Short: "Encrypt up to 6 KiB under a key; prints the ciphertext blob",
		Long: `Encrypt the bytes of --plaintext-file (or stdin) under KEY and print the
CiphertextBlob. The plaintext is read from a file or stdin, never from the
command line. Decrypt with "keyhold key decrypt" and the same --context.`,
		Example: `  printf 'hello' | keyhold key encrypt alias/app --plaintext-file - > msg.enc
  keyhold key encrypt alias/app --plaintext-file ./dek.bin --context app=billing`,
		Args: nArgs("KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ec, err := parseKV("--context", ctxKV)
			if err != nil {
				return err
			}
			pt, err := a.readValue("--plaintext-file", file, maxPlaintextBytes)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.Encrypt(cmd.Context(), &client.EncryptRequest{KeyId: args[0],
				Plaintext: base64.StdEncoding.EncodeToString(pt), EncryptionContext: ec})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.emit(out, nil)
			}
			return a.emitRaw([]byte(out.CiphertextBlob+"\n"), false)
		},
	}
	cmd.Flags().StringVar(&file, "plaintext-file", "", `file to encrypt, "-" for stdin`)
	cmd.Flags().StringArrayVar(&ctxKV, "context", nil, "encryption context KEY=VALUE (repeatable)")
	return cmd
}

// ciphertextArg takes the blob from --ciphertext or --ciphertext-file; a
// ciphertext is not secret, so the command line is fine for it.
func (a *app) ciphertextArg(inline, file string) (string, error) {
	if (inline == "") == (file == "") {
		return "", usagef("give exactly one of --ciphertext BLOB or --ciphertext-file FILE|-")
	}
	if inline != "" {
		return inline, nil
	}
	b, err := a.readInput("--ciphertext-file", file, 1<<16)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

func newKeyDecryptCmd(a *app) *cobra.Command {
	var inline, file string
	var ctxKV []string
	var asBase64 bool
	cmd := &cobra.Command{
		Use:   "decrypt",
		Short: "Decrypt a ciphertext blob; prints the plaintext bytes",
		Example: `  keyhold key decrypt --ciphertext-file msg.enc
  keyhold key decrypt --ciphertext "$BLOB" --context app=billing --base64`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ec, err := parseKV("--context", ctxKV)
			if err != nil {
				return err
			}
			blob, err := a.ciphertextArg(inline, file)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.Decrypt(cmd.Context(), &client.DecryptRequest{CiphertextBlob: blob, EncryptionContext: ec})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.emit(out, nil)
			}
			if asBase64 {
				return a.emitRaw([]byte(out.Plaintext), a.io.outTTY)
			}
			pt, err := base64.StdEncoding.DecodeString(out.Plaintext)
			if err != nil {
				// Encrypted by a client that did not Base64 its plaintext: print as is.
				pt = []byte(out.Plaintext)
			}
			return a.emitRaw(pt, false)
		},
	}
	f := cmd.Flags()
	f.StringVar(&inline, "ciphertext", "", "ciphertext blob")
	f.StringVar(&file, "ciphertext-file", "", `file holding the ciphertext blob, "-" for stdin`)
	f.StringArrayVar(&ctxKV, "context", nil, "encryption context KEY=VALUE (repeatable)")
	f.BoolVar(&asBase64, "base64", false, "print the plaintext Base64-encoded, as the API returns it")
	return cmd
}

func newKeyReEncryptCmd(a *app) *cobra.Command {
	var inline, file string
	var srcCtx, dstCtx []string
	cmd := &cobra.Command{
		Use:     "re-encrypt DESTINATION_KEY",
		Short:   "Re-encrypt a ciphertext under another key, server-side",
		Example: "  keyhold key re-encrypt alias/new --ciphertext-file msg.enc > msg.new.enc",
		Args:    nArgs("DESTINATION_KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			sc, err := parseKV("--source-context", srcCtx)
			if err != nil {
				return err
			}
			dc, err := parseKV("--context", dstCtx)
			if err != nil {
				return err
			}
			blob, err := a.ciphertextArg(inline, file)
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.ReEncrypt(cmd.Context(), &client.ReEncryptRequest{CiphertextBlob: blob, DestinationKeyId: args[0],
				SourceEncryptionContext: sc, DestinationEncryptionContext: dc})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return a.emit(out, nil)
			}
			return a.emitRaw([]byte(out.CiphertextBlob+"\n"), false)
		},
	}
	f := cmd.Flags()
	f.StringVar(&inline, "ciphertext", "", "ciphertext blob")
	f.StringVar(&file, "ciphertext-file", "", `file holding the ciphertext blob, "-" for stdin`)
	f.StringArrayVar(&srcCtx, "source-context", nil, "encryption context of the source KEY=VALUE (repeatable)")
	f.StringArrayVar(&dstCtx, "context", nil, "encryption context for the new ciphertext KEY=VALUE (repeatable)")
	return cmd
}

func newKeyGenerateDataKeyCmd(a *app) *cobra.Command {
	var r client.GenerateDataKeyRequest
	var ctxKV []string
	var noPlain bool
	cmd := &cobra.Command{
		Use:   "generate-data-key KEY",
		Short: "Generate a data key for envelope encryption",
		Long: `Generate a data key: prints the wrapped key (CiphertextBlob) and, unless
--without-plaintext, the plain key (Base64). Store only the blob; use the
plain key in memory and discard it.`,
		Example: `  keyhold key generate-data-key alias/app --output json
  keyhold key generate-data-key alias/app --without-plaintext --key-spec AES_128`,
		Args: nArgs("KEY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			r.KeyId = args[0]
			var err error
			if r.EncryptionContext, err = parseKV("--context", ctxKV); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			if noPlain {
				out, err := c.GenerateDataKeyWithoutPlaintext(cmd.Context(), &r)
				if err != nil {
					return err
				}
				return a.emit(out, func(w *textOut) {
					w.kv("KeyId", out.KeyId)
					w.kv("KeyVersionId", out.KeyVersionId)
					w.kv("CiphertextBlob", out.CiphertextBlob)
				})
			}
			out, err := c.GenerateDataKey(cmd.Context(), &r)
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) {
				w.kv("KeyId", out.KeyId)
				w.kv("KeyVersionId", out.KeyVersionId)
				w.kv("CiphertextBlob", out.CiphertextBlob)
				w.kv("Plaintext", out.Plaintext)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&r.KeySpec, "key-spec", "", "AES_256 (default) or AES_128")
	f.IntVar(&r.NumberOfBytes, "number-of-bytes", 0, "data key length in bytes (instead of --key-spec)")
	f.StringArrayVar(&ctxKV, "context", nil, "encryption context KEY=VALUE (repeatable)")
	f.BoolVar(&noPlain, "without-plaintext", false, "return only the wrapped key")
	return cmd
}
