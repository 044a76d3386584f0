package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/migrate"
)

// Operator commands: status goes through the API like every client command;
// migrate, backup and restore work on the storage itself (as the server
// does), moving ciphertext only.

// DeploymentInfo is DescribeDeployment's response.
type DeploymentInfo struct {
	RequestId    string
	Storage      string
	Version      string
	ServedBy     string
	Leader       string
	LeaderSince  string
	LeaderToken  uint64
	LeaseExpires string
	ReplicaCount int
	Replicas     struct {
		Replica []struct {
			ReplicaId, Address, Version, StartTime, LastSeen string
			Online, Leader                                   bool
		}
	}
}

func newStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "status",
		Short:   "Show the deployment: storage, replicas seen, the leader and since when",
		Example: "  keyhold status\n  keyhold status --output json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			var out DeploymentInfo
			if err := c.Call(cmd.Context(), client.VersionKeyhold, "DescribeDeployment", nil, &out); err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) {
				w.kv("Storage", out.Storage)
				w.kv("Version", out.Version)
				w.kv("ServedBy", out.ServedBy)
				leader := out.Leader
				if leader == "" {
					leader = "(none: no replica holds the lease)"
				}
				w.kv("Leader", leader)
				w.kv("LeaderSince", out.LeaderSince)
				w.flushKV()
				rows := [][]string{}
				for _, r := range out.Replicas.Replica {
					state := "offline"
					if r.Online {
						state = "online"
					}
					if r.Leader {
						state += ",leader"
					}
					rows = append(rows, []string{r.ReplicaId, r.Address, r.Version, state, r.StartTime, r.LastSeen})
				}
				w.table([]string{"REPLICA", "ADDRESS", "VERSION", "STATE", "STARTED", "LAST SEEN"}, rows)
			})
		},
	}
}

// storageLoc is a --from/--to value: a postgres:// URL or a data directory.
func storageLabel(loc string) string {
	if strings.HasPrefix(loc, "postgres://") || strings.HasPrefix(loc, "postgresql://") {
		return "postgresql"
	}
	return "embedded (" + filepath.Join(loc, "keyhold.db") + ")"
}

func newMigrateCmd(a *app) *cobra.Command {
	var from, to string
	var force bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Copy a deployment's storage to another backend (embedded <-> PostgreSQL), as stored",
		Long: `Copy every table and record, still encrypted, from one storage to another
and verify the copy (record counts and SHA-256 per table). The root key does
not change: run the servers on the target with the same root key file.

Stop the servers on the source first (the embedded storage is locked by a
running server, and writes after the snapshot would not be copied). A target
that already holds data is refused unless --force, which replaces it.`,
		Example: `  keyhold migrate --from /var/lib/keyhold --to 'postgres://keyhold@db:5432/keyhold'
  keyhold migrate --from 'postgres://keyhold@db:5432/keyhold' --to /var/lib/keyhold-copy`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if from == "" || to == "" {
				return usagef("--from and --to are required")
			}
			ctx := cmd.Context()
			src, err := migrate.Open(ctx, from)
			if err != nil {
				return fmt.Errorf("open source: %w", err)
			}
			defer src.Close()
			dst, err := migrate.Open(ctx, to)
			if err != nil {
				return fmt.Errorf("open target: %w", err)
			}
			defer dst.Close()
			start := time.Now()
			sum, err := migrate.Copy(ctx, src, dst, force)
			if err != nil {
				return err
			}
			return a.emitSummary(sum, fmt.Sprintf("copied %s -> %s in %s, verified", storageLabel(from), storageLabel(to), time.Since(start).Round(time.Millisecond)))
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "", "source: a data directory (embedded) or a postgres:// URL")
	f.StringVar(&to, "to", "", "target: a data directory (embedded) or a postgres:// URL")
	f.BoolVar(&force, "force", false, "replace the target's contents if it is not empty")
	return cmd
}

func (a *app) emitSummary(sum migrate.Summary, msg string) error {
	out := struct {
		Message string
		Records int
		Tables  migrate.Summary
	}{msg, sum.Records(), sum}
	return a.emit(out, func(w *textOut) {
		w.line(msg)
		rows := [][]string{}
		for _, t := range sum {
			rows = append(rows, []string{t.Table, fmt.Sprint(t.Records), t.SHA256[:16]})
		}
		w.table([]string{"TABLE", "RECORDS", "SHA256"}, rows)
	})
}

// storageFlags is --data-dir / --storage as the server takes them.
func storageLocation(dataDir, storage string) (string, error) {
	if storage == "" {
		storage = os.Getenv("KEYHOLD_STORAGE")
	}
	switch {
	case storage != "" && storage != "embedded":
		return storage, nil
	case dataDir != "":
		return dataDir, nil
	}
	return "", usagef("--data-dir or --storage is required")
}

func newBackupCmd(a *app) *cobra.Command {
	var dataDir, storage, to string
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Write a consistent backup of the storage (ciphertext only; the root key is not in it)",
		Long: `Write every record of the storage, from one consistent snapshot, to a file
(mode 0600). Values stay encrypted; the root key is never in the backup —
back it up separately. PostgreSQL storage is backed up while the replicas
run; embedded storage is locked by a running server, so stop it first.`,
		Example: `  keyhold backup --storage 'postgres://keyhold@db:5432/keyhold' --to keyhold-$(date +%F).khb
  keyhold backup --data-dir /var/lib/keyhold --to keyhold.khb`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, err := storageLocation(dataDir, storage)
			if err != nil {
				return err
			}
			if to == "" {
				return usagef("--to is required")
			}
			ctx := cmd.Context()
			st, err := migrate.Open(ctx, loc)
			if err != nil {
				return fmt.Errorf("open storage: %w", err)
			}
			defer st.Close()
			// Written beside the target and renamed, so a failed backup
			// never leaves a truncated file under the final name.
			tmp, err := os.CreateTemp(filepath.Dir(to), ".keyhold-backup-*")
			if err != nil {
				return err
			}
			defer os.Remove(tmp.Name())
			if err := tmp.Chmod(0o600); err != nil {
				return err
			}
			sum, err := migrate.Backup(ctx, st, tmp)
			if err == nil {
				err = tmp.Sync()
			}
			if cerr := tmp.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Rename(tmp.Name(), to); err != nil {
				return err
			}
			return a.emitSummary(sum, fmt.Sprintf("backed up %s to %s", storageLabel(loc), to))
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "", "embedded storage's data directory")
	f.StringVar(&storage, "storage", "", "postgres:// URL (env KEYHOLD_STORAGE)")
	f.StringVar(&to, "to", "", "backup file to write")
	return cmd
}

func newRestoreCmd(a *app) *cobra.Command {
	var dataDir, storage, from, rootKeyFile string
	var force bool
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a backup into a storage (refused if its root key is another one)",
		Long: `Restore a backup written by "keyhold backup" into an empty storage (or replace
one with --force). The root key file the deployment will run with
(--root-key-file, default DATA_DIR/root.key) must be the key the backup was
made under: otherwise the restore is refused before anything is written.
Stop the servers on the target while restoring.`,
		Example: `  keyhold restore --from keyhold.khb --data-dir /var/lib/keyhold-new --root-key-file /etc/keyhold/root.key
  keyhold restore --from keyhold.khb --storage 'postgres://keyhold@db:5432/keyhold' --root-key-file /etc/keyhold/root.key`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, err := storageLocation(dataDir, storage)
			if err != nil {
				return err
			}
			if from == "" {
				return usagef("--from is required")
			}
			if rootKeyFile == "" {
				if dataDir == "" {
					return usagef("--root-key-file is required with --storage")
				}
				rootKeyFile = filepath.Join(dataDir, "root.key")
			}
			fh, err := os.Open(from)
			if err != nil {
				return err
			}
			defer fh.Close()
			ctx := cmd.Context()
			// Check the key before creating anything at the target.
			if _, err := (keys.FileSource{Path: rootKeyFile}).Load(ctx); err != nil {
				return err
			}
			st, err := migrate.Open(ctx, loc)
			if err != nil {
				return fmt.Errorf("open storage: %w", err)
			}
			defer st.Close()
			sum, err := migrate.Restore(ctx, fh, st, keys.FileSource{Path: rootKeyFile}, force)
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return errors.New("the backup file is truncated")
			}
			if err != nil {
				return err
			}
			return a.emitSummary(sum, fmt.Sprintf("restored %s into %s, verified", from, storageLabel(loc)))
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "", "embedded storage's data directory")
	f.StringVar(&storage, "storage", "", "postgres:// URL (env KEYHOLD_STORAGE)")
	f.StringVar(&from, "from", "", "backup file to read")
	f.StringVar(&rootKeyFile, "root-key-file", "", "the deployment's root key file (default DATA_DIR/root.key)")
	f.BoolVar(&force, "force", false, "replace the target's contents if it is not empty")
	return cmd
}

// opsCommands are registered by the root command.
func opsCommands(a *app) []*cobra.Command {
	return []*cobra.Command{newStatusCmd(a), newMigrateCmd(a), newBackupCmd(a), newRestoreCmd(a)}
}
