package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// keyhold host …: enrolled hosts, through the public client only.

func newHostCmd(a *app) *cobra.Command {
	cmd := groupCmd("host", "Enrolled hosts: enrollment tokens, list, show, remove",
		"  keyhold host token create --ttl 1h\n  keyhold host list\n  keyhold host show i-0123456789abcdefghij")
	token := groupCmd("token", "Enrollment tokens for `keyhold agent`", "  keyhold host token create --ttl 30m --uses 5")
	token.AddCommand(newHostTokenCreateCmd(a))
	cmd.AddCommand(token, newHostListCmd(a), newHostShowCmd(a), newHostRemoveCmd(a))
	return cmd
}

func newHostTokenCreateCmd(a *app) *cobra.Command {
	var ttl string
	var uses int
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create an enrollment token (shown once) and print the agent command to run on the host",
		Long: `Create an enrollment token. The token is shown once; only its hash is
stored. It is valid for --ttl and --uses enrollments, and it pins the
deployment CA: the agent trusts that CA and nothing else.`,
		Example: "  keyhold host token create\n  keyhold host token create --ttl 24h --uses 20 --output json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if uses < 0 {
				return usagef("--uses must be at least 1")
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			tok, err := c.CreateEnrollmentToken(cmd.Context(), ttl, uses)
			if err != nil {
				return err
			}
			return a.emit(tok, func(w *textOut) {
				w.kv("Token", tok.Token)
				w.kv("ExpireTime", tok.ExpireTime)
				w.kv("Uses", strconv.Itoa(tok.Uses))
				w.line("")
				w.line("Run on the host, as root (the token is needed on the first run only):")
				w.line(fmt.Sprintf("  keyhold agent --server %s --token %s --data-dir /var/lib/keyhold-agent", c.Endpoint(), tok.Token))
				w.line("With several replicas, list each one (--server URL1,URL2,…): the agent moves to the next when one fails.")
			})
		},
	}
	cmd.Flags().StringVar(&ttl, "ttl", "1h", "how long the token is valid (1m to 720h)")
	cmd.Flags().IntVar(&uses, "uses", 1, "how many hosts may enroll with it")
	return cmd
}

func onlineWord(online bool) string {
	if online {
		return "online"
	}
	return "offline"
}

func newHostListCmd(a *app) *cobra.Command {
	var max int
	var next string
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "List enrolled hosts: id, host name, agent version, last seen, online, drift",
		Example: "  keyhold host list\n  keyhold host list --output json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := c.ListHosts(cmd.Context(), max, next)
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) {
				rows := [][]string{}
				for _, h := range out.Hosts.Host {
					drift := "-"
					if h.DriftCount > 0 {
						drift = strconv.Itoa(h.DriftCount) + " event(s)"
					}
					rows = append(rows, []string{h.InstanceId, h.HostName, h.SshAddress, h.AgentVersion, h.LastSeen, onlineWord(h.Online), drift})
				}
				w.table([]string{"INSTANCE ID", "HOST NAME", "SSH ADDRESS", "AGENT", "LAST SEEN", "STATE", "DRIFT"}, rows)
				if out.NextToken != "" {
					w.line("More: --next-token " + out.NextToken)
				}
			})
		},
	}
	cmd.Flags().IntVar(&max, "max-results", 0, "hosts per page (1-100, default 50)")
	cmd.Flags().StringVar(&next, "next-token", "", "continue a listing")
	return cmd
}

func newHostShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "show INSTANCE_ID",
		Short:   "Show a host: address, host keys, local users (and which the agent may change), drift",
		Example: "  keyhold host show i-0123456789abcdefghij",
		Args:    nArgs("INSTANCE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			h, err := c.DescribeHost(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return a.emit(h, func(w *textOut) {
				w.kv("InstanceId", h.InstanceId)
				w.kv("HostName", h.HostName)
				w.kv("SshAddress", h.SshAddress)
				w.kv("AgentVersion", h.AgentVersion)
				w.kv("EnrollTime", h.EnrollTime)
				w.kv("LastSeen", h.LastSeen)
				w.kv("State", onlineWord(h.Online))
				w.kv("AllowUsers", strings.Join(h.AllowUsers.UserName, ","))
				w.flushKV()
				if len(h.SshHostKeys.SshHostKey) > 0 {
					w.line("Host keys:")
					for _, k := range h.SshHostKeys.SshHostKey {
						w.line("  " + k)
					}
				}
				rows := [][]string{}
				for _, u := range h.LocalUsers.LocalUser {
					if !u.Allowed {
						continue
					}
					rows = append(rows, []string{u.UserName, strconv.Itoa(u.Uid), yesNo(u.PasswordLogin), yesNo(u.PubkeyLogin)})
				}
				w.line("Managed users (the agent may change them):")
				w.table([]string{"USER", "UID", "SSH PASSWORD LOGIN", "SSH KEY LOGIN"}, rows)
				if len(h.Drift.DriftEvent) > 0 {
					rows = nil
					for _, d := range h.Drift.DriftEvent {
						rows = append(rows, []string{d.Time, d.UserName, d.What})
					}
					w.line("Drift (changes made outside Keyhold):")
					w.table([]string{"TIME", "USER", "CHANGED"}, rows)
				}
			})
		},
	}
}

func newHostRemoveCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "remove INSTANCE_ID",
		Short:   "Remove a host: its agent's identity is revoked and its queued commands dropped",
		Example: "  keyhold host remove i-0123456789abcdefghij",
		Args:    nArgs("INSTANCE_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.RemoveHost(cmd.Context(), args[0]); err != nil {
				return err
			}
			return a.emit(map[string]string{"InstanceId": args[0]}, func(w *textOut) {
				w.line("Removed " + args[0] + "; its agent is refused from now on.")
			})
		},
	}
}
