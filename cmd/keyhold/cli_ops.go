package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
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
// migrate and restore work on the storage itself (as the server does), and
// backup on either, moving ciphertext only.

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
			if errors.Is(err, migrate.ErrLocked) {
				return fmt.Errorf("%s is in use by a running keyhold server: stop the servers on the source first", storageLabel(from))
			}
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

const backupLong = `Write every record of a deployment, from one consistent snapshot, to FILE.
Values stay encrypted; the root key is never in the backup: back it up
separately (a backup is useless without it). The file is written beside FILE
under a temporary name (mode 0600), read back and checked — header, record
counts and SHA-256 per table, gzip checksum — and only then renamed to FILE,
so a failed or cut-short backup never leaves a file at FILE. A progress line
goes to stderr, the summary (records, bytes, SHA-256 of the file) to stdout.

Where the backup is read from:
  --data-dir DIR, or --storage URL (env KEYHOLD_STORAGE)
      The storage itself, as the server opens it. PostgreSQL is read while
      the replicas run. An embedded data directory that a running server
      holds (its file is locked) is backed up through that server's API
      instead (as with --online); the result must open with DIR/root.key
      when that file is readable, so a profile pointing at another
      deployment is caught.
  --online, or neither of the above
      The running server, over its API (Keyhold action BackupDeployment),
      with the endpoint and credentials every client command uses (--endpoint,
      --profile, KEYHOLD_*). Only the root of the deployment's first account
      may call it. --timeout bounds each pause in the transfer, not the whole
      transfer.`

func newBackupCmd(a *app) *cobra.Command {
	var dataDir, storage, to string
	var online bool
	cmd := &cobra.Command{
		Use:   "backup --to FILE [--online | --data-dir DIR | --storage URL]",
		Short: "Write a consistent backup of a deployment, online (ciphertext only; the root key is not in it)",
		Long:  backupLong,
		Example: `  keyhold backup --to keyhold-$(date +%F).khb                  # through the server of your profile
  keyhold backup --data-dir /var/lib/keyhold --to keyhold.khb   # stopped server, or falls back to its API
  keyhold backup --storage 'postgres://keyhold@db:5432/keyhold' --to keyhold.khb`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return usagef("--to is required")
			}
			if online && (dataDir != "" || storage != "") {
				return usagef("--online backs up through the server's API; --data-dir and --storage read the storage itself: give one or the other")
			}
			ctx := cmd.Context()
			if !online && (dataDir != "" || storage != "" || os.Getenv("KEYHOLD_STORAGE") != "") {
				loc, err := storageLocation(dataDir, storage)
				if err != nil {
					return err
				}
				st, err := migrate.Open(ctx, loc)
				switch {
				case errors.Is(err, migrate.ErrLocked):
					fmt.Fprintf(a.io.err, "%s is in use by a running server: backing up through its API instead.\n", storageLabel(loc))
					return a.onlineBackup(cmd, to, loc)
				case err != nil:
					return fmt.Errorf("open storage: %w", err)
				}
				defer st.Close()
				res, err := a.writeBackup(cmd, to, "written", nil, func(w io.Writer) error {
					_, err := migrate.Backup(ctx, st, w)
					return err
				})
				if err != nil {
					return err
				}
				return a.emitBackup(res, fmt.Sprintf("backed up %s to %s, verified", storageLabel(loc), to))
			}
			return a.onlineBackup(cmd, to, "")
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "", "embedded storage's data directory (a running server's is backed up through its API)")
	f.StringVar(&storage, "storage", "", "postgres:// URL (env KEYHOLD_STORAGE)")
	f.StringVar(&to, "to", "", "backup file to write (mode 0600)")
	f.BoolVar(&online, "online", false, "back up through the server's API (the default when no storage is given)")
	return cmd
}

// onlineBackup downloads the backup from the server. dataDir is set when it
// stands in for a locked embedded data directory: the backup must then open
// with that directory's root key, when it can be read.
func (a *app) onlineBackup(cmd *cobra.Command, to, dataDir string) error {
	c, err := a.client()
	if err != nil {
		if dataDir == "" {
			return fmt.Errorf("backup through the server's API (no --data-dir or --storage given): %w", err)
		}
		return fmt.Errorf("backup through the server's API: %w", err)
	}
	var check keys.RootKeySource
	if dataDir != "" {
		src := keys.FileSource{Path: filepath.Join(dataDir, "root.key")}
		if _, err := src.Load(cmd.Context()); err == nil {
			check = src
		} else {
			fmt.Fprintf(a.io.err, "Note: cannot check that %s serves %s (%v).\n", c.Endpoint(), dataDir, err)
		}
	}
	res, err := a.writeBackup(cmd, to, "received", check, func(w io.Writer) error {
		_, err := c.DownloadBackup(cmd.Context(), w)
		return err
	})
	if errors.Is(err, migrate.ErrWrongRootKey) {
		return fmt.Errorf("the server at %s does not serve the deployment in %s (its root key does not open the backup); nothing was written to %s", c.Endpoint(), dataDir, to)
	}
	if err != nil {
		return err
	}
	return a.emitBackup(res, fmt.Sprintf("backed up the deployment at %s to %s, verified", c.Endpoint(), to))
}

// backupResult is what a written and verified backup file holds.
type backupResult struct {
	Bytes  int64
	SHA256 string
	Info   migrate.BackupInfo
}

// writeBackup runs produce into a temporary file beside to (mode 0600),
// syncs it, reads it back with migrate.Verify (and, when check is set,
// checks that root key opens it) and only then renames it to to.
func (a *app) writeBackup(cmd *cobra.Command, to, verb string, check keys.RootKeySource, produce func(io.Writer) error) (backupResult, error) {
	var res backupResult
	tmp, err := os.CreateTemp(filepath.Dir(to), ".keyhold-backup-*")
	if err != nil {
		return res, err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return res, err
	}
	h := sha256.New()
	pw := newProgress(a.io.err, verb, io.MultiWriter(tmp, h))
	err = produce(pw)
	pw.done(err == nil)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return res, err
	}
	fh, err := os.Open(tmp.Name())
	if err != nil {
		return res, err
	}
	res.Info, err = migrate.Verify(cmd.Context(), bufio.NewReaderSize(fh, 1<<16), check)
	fh.Close()
	if err != nil {
		if errors.Is(err, migrate.ErrWrongRootKey) {
			return res, err
		}
		return res, fmt.Errorf("the backup does not verify, so it was not kept: %w", err)
	}
	if err := os.Rename(tmp.Name(), to); err != nil {
		return res, err
	}
	syncDir(filepath.Dir(to))
	res.Bytes, res.SHA256 = pw.n, hex.EncodeToString(h.Sum(nil))
	return res, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not every filesystem supports it
		d.Close()
	}
}

func (a *app) emitBackup(r backupResult, msg string) error {
	sum := r.Info.Summary
	out := struct {
		Message string
		Records int
		Bytes   int64
		SHA256  string
		Created string
		Tables  migrate.Summary
	}{msg, sum.Records(), r.Bytes, r.SHA256, r.Info.Created.UTC().Format(time.RFC3339), sum}
	return a.emit(out, func(w *textOut) {
		w.line(msg)
		w.kv("Records", fmt.Sprint(out.Records))
		w.kv("Bytes", fmt.Sprint(out.Bytes))
		w.kv("SHA256", out.SHA256)
		w.kv("Created", out.Created)
		w.flushKV()
		rows := [][]string{}
		for _, t := range sum {
			rows = append(rows, []string{t.Table, fmt.Sprint(t.Records), t.SHA256[:16]})
		}
		w.table([]string{"TABLE", "RECORDS", "SHA256"}, rows)
	})
}

// progress counts the bytes written and shows them on stderr: a line
// rewritten in place on a terminal, one final line otherwise.
type progress struct {
	w    io.Writer
	errw io.Writer
	verb string // "received" or "written"
	tty  bool
	n    int64
	last time.Time
}

func newProgress(errw io.Writer, verb string, w io.Writer) *progress {
	p := &progress{w: w, errw: errw, verb: verb}
	if f, ok := errw.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.tty && time.Since(p.last) > 250*time.Millisecond {
		p.last = time.Now()
		fmt.Fprintf(p.errw, "\rbackup: %s %s", byteSize(p.n), p.verb)
	}
	return n, err
}

func (p *progress) done(ok bool) {
	if p.tty {
		fmt.Fprint(p.errw, "\r")
	}
	state := "verifying"
	if !ok {
		state = "failed"
	}
	fmt.Fprintf(p.errw, "backup: %s %s (%d bytes), %s\n", byteSize(p.n), p.verb, p.n, state)
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
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
Restore works offline: stop the servers on the target first (an embedded
data directory in use by a running server is refused).`,
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
			if errors.Is(err, migrate.ErrLocked) {
				return fmt.Errorf("%s is in use by a running keyhold server: stop it first (restore replaces the storage offline, under the server)", storageLabel(loc))
			}
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
