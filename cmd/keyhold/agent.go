package main

import (
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/internal/agent"
)

func newAgentCmd() *cobra.Command {
	var cfg agent.Config
	var allow, logLevel, logFormat string
	var servers []string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the host agent (as root): enroll once, then carry out credential rotations",
		Long: `Run the Keyhold host agent.

The first run generates the agent's Ed25519 key in --data-dir (mode 0600),
enrolls with --token (trusting only the deployment CA the token pins) and
stores its identity there; later runs reuse it and need no token.

The agent only connects outbound (a signed long-poll); the host opens no
port. It changes only accounts in its allow-list: ordinary users (UID >=
1000), plus root or system users named in --allow-users. It verifies every
change by logging in to the local sshd (--sshd-addr) when sshd offers that
method to that user, and otherwise checks locally.

With several replicas, give each one's URL (repeat --server, or separate
URLs with commas). The agent enrolls with the first that answers and
moves to the next when one cannot be reached, fails the TLS or CA pin
check, or answers 502/503/504. All replicas must serve certificates from
the deployment CA pinned by the token. A later run with another --server
list replaces the stored one; it is refused when a URL answers but none
presents a certificate from the pinned CA (another deployment's server).`,
		Example: `  keyhold agent --server https://keyhold.example:8443 --token kh1.… --data-dir /var/lib/keyhold-agent
  keyhold agent --server https://kh1.example:8443,https://kh2.example:8443 --token kh1.… --data-dir /var/lib/keyhold-agent
  keyhold agent --data-dir /var/lib/keyhold-agent --allow-users root --advertise-addr 10.0.0.5:22`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(logLevel, logFormat)
			if err != nil {
				return err
			}
			cfg.Logger = log
			cfg.Servers = servers
			for _, u := range strings.Split(allow, ",") {
				if u = strings.TrimSpace(u); u != "" {
					cfg.AllowUsers = append(cfg.AllowUsers, u)
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			ag, err := agent.New(ctx, cfg)
			if err != nil {
				return err
			}
			log.Info("agent running", "host_id", ag.HostID())
			return ag.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&servers, "server", nil, "Keyhold server URL (https://; http:// only to loopback); repeat it or separate URLs with commas for several replicas")
	f.StringVar(&cfg.Token, "token", "", "enrollment token (first run only; from `keyhold host token create`)")
	f.StringVar(&cfg.DataDir, "data-dir", "/var/lib/keyhold-agent", "directory for the agent's key, identity and journal")
	f.StringVar(&cfg.SSHDAddr, "sshd-addr", "127.0.0.1:22", "the local sshd, used to verify logins")
	f.StringVar(&cfg.SSHDConfig, "sshd-config", "", "sshd_config that sshd -T reads for per-user settings (default: sshd's own)")
	f.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "", "HOST:PORT where others reach this host's sshd (default --sshd-addr)")
	f.StringVar(&allow, "allow-users", "", "comma-separated root or system users the agent may also change")
	f.DurationVar(&cfg.PollTimeout, "poll-timeout", 25*time.Second, "how long the server may hold a poll")
	f.DurationVar(&cfg.DriftInterval, "drift-interval", time.Minute, "how often managed accounts are checked for drift")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&logFormat, "log-format", "text", "text or json")
	return cmd
}
