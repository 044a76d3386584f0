package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/internal/bastion"
)

const bastionLong = `Run the bastion: an SSH jump server that logs operators in to host
accounts with credentials it fetches from Keyhold at each connection, so
that operators never see a password or private key.

  ssh -p 2222 ACCOUNT@HOST@bastion      (HOST is the host id or name)

The bastion uses its own access key (flags, KEYHOLD_ACCESS_KEY_ID and
KEYHOLD_ACCESS_KEY_SECRET, or a profile, as every command takes them),
which should hold only the KeyholdBastionAccess system policy. Its data
directory holds its SSH host key, the inventory (hosts, accounts → secret
names, pinned host keys), operators, grants and the session log; never a
host credential. The subcommands below change that directory; a running
bastion notices within half a second, and ends the sessions a revoked grant
or a removed operator allowed. See docs/bastion.md.`

func newBastionCmd(a *app) *cobra.Command {
	var listen, server, dataDir string
	cmd := &cobra.Command{
		Use:   "bastion",
		Short: "SSH bastion that logs operators in with host secrets they never see",
		Long:  bastionLong,
		Example: `  keyhold bastion --listen 127.0.0.1:2222 --server https://127.0.0.1:8443 --data-dir /var/lib/keyhold-bastion
  keyhold bastion import --data-dir /var/lib/keyhold-bastion
  keyhold bastion operator add alice --public-key alice.pub --data-dir /var/lib/keyhold-bastion
  keyhold bastion grant alice web1 root --data-dir /var/lib/keyhold-bastion
  ssh -p 2222 root@web1@bastion.example.com`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if server != "" {
				a.endpoint = server
			}
			dir, err := bastion.OpenDir(dataDir)
			if err != nil {
				return usagef("%v", err)
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, nil))
			b, err := bastion.Start(bastion.Config{Dir: dir, Client: c, Listen: listen, Logger: log})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(a.io.err, "keyhold bastion listening on %s (data %s)\n", b.Addr(), dir.Path)
			<-ctx.Done()
			return b.Close()
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:2222", "address the SSH server listens on")
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", os.Getenv("KEYHOLD_BASTION_DIR"), "the bastion's data directory (env KEYHOLD_BASTION_DIR)")
	addBastionAdmin(a, cmd, &dataDir, &server)
	return cmd
}
