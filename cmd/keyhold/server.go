package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/internal/server"
)

func newServerCmd() *cobra.Command {
	cfg := server.Config{}
	var logLevel, logFormat string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Keyhold server (KMS-compatible secrets and keys API)",
		Long: `Run the Keyhold server.

On first start with an empty data directory it creates, each with mode 0600:
the root key file (unless --root-key-file points elsewhere), the deployment
CA (kept encrypted in storage) and a serving certificate it issues, and the
account's root access key pair in DATA_DIR/root-credentials.json. Import that
file into a CLI profile ("keyhold configure import") and delete it: the
server warns at every start while it exists. Later starts reuse all of it.

Both listeners serve the same API; plain HTTP is refused on a non-loopback
address unless --insecure-http is given.`,
		Example: `  # Start on the defaults (data in ` + server.DefaultDataDir() + `)
  keyhold server

  # Keep the root key apart from the data, listen for TLS on all interfaces
  keyhold server --data-dir /var/lib/keyhold --root-key-file /etc/keyhold/root.key \
    --tls-listen 0.0.0.0:8443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Logger = log
			ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			srv, err := server.Start(ctx, cfg)
			if err != nil {
				return err
			}
			<-ctx.Done()
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", server.DefaultDataDir(), "directory holding the embedded storage, keys and bootstrap files")
	f.StringVar(&cfg.Storage, "storage", os.Getenv("KEYHOLD_STORAGE"), `"embedded" (DATA_DIR/keyhold.db, the default) or a postgres:// URL shared by several replicas (env KEYHOLD_STORAGE)`)
	f.StringVar(&cfg.ReplicaID, "replica-id", "", "this replica's name in keyhold status (default host name + random suffix)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:8080", `plain HTTP listen address ("" to disable)`)
	f.StringVar(&cfg.TLSListen, "tls-listen", "127.0.0.1:8443", `HTTPS listen address ("" to disable)`)
	f.BoolVar(&cfg.InsecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address (unencrypted: not for production)")
	f.StringVar(&cfg.RootKeyFile, "root-key-file", "", "root key file (default DATA_DIR/root.key; created on first start)")
	f.StringVar(&cfg.TLSCert, "tls-cert", "", "serving certificate (PEM) instead of one issued by the deployment CA")
	f.StringVar(&cfg.TLSKey, "tls-key", "", "private key (PEM) for --tls-cert")
	f.StringVar(&cfg.Region, "region", "cn-hangzhou", "region id used in ARNs and DescribeRegions")
	f.StringVar(&cfg.AuditFile, "audit-file", "", "also append every audit record to this file as JSON lines (mode 0600), for a SIEM agent to tail")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	// Hidden: for tests and demos that need a scheduled rotation within
	// seconds (internal/e2e/failover). Not for production.
	f.DurationVar(&cfg.DevMinRotationInterval, "dev-min-rotation-interval", 0, "NOT FOR PRODUCTION: accept automatic rotation intervals down to this (1s to under 1h)")
	f.DurationVar(&cfg.Rotation.ScanInterval, "rotation-scan-interval", 0, "how often the leader looks for due scheduled rotations and open ones to resume (default 30s)")
	f.DurationVar(&cfg.Rotation.ApplyTimeout, "rotation-apply-timeout", 0, "how long a rotation waits for the agent's apply result before it rolls back (default 2m)")
	f.MarkHidden("dev-min-rotation-interval")
	f.MarkHidden("rotation-scan-interval")
	f.MarkHidden("rotation-apply-timeout")
	return cmd
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
}
