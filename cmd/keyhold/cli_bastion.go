package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/keyhold/keyhold/internal/bastion"
)

// keyhold bastion …: administration of a bastion's data directory. Every
// command edits the directory under its lock; a running bastion picks the
// change up by itself (see bastion.Dir).

func addBastionAdmin(a *app, cmd *cobra.Command, dataDir, server *string) {
	dir := func() (*bastion.Dir, error) {
		d, err := bastion.OpenDir(*dataDir)
		if err != nil {
			return nil, usagef("%v", err)
		}
		return d, nil
	}
	// onDir and onState open the data directory (and load its state) for a
	// command, so each command is only its own work.
	onDir := func(fn func(cmd *cobra.Command, args []string, d *bastion.Dir) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			d, err := dir()
			if err != nil {
				return err
			}
			return fn(cmd, args, d)
		}
	}
	onState := func(fn func(st *bastion.State) error) func(*cobra.Command, []string) error {
		return onDir(func(_ *cobra.Command, _ []string, d *bastion.Dir) error {
			st, err := d.Load()
			if err != nil {
				return err
			}
			return fn(st)
		})
	}
	clientCmd := func() {
		if *server != "" {
			a.endpoint = *server
		}
	}
	cmd.PersistentFlags().StringVar(server, "server", "", "Keyhold server URL (same as --endpoint)")

	// import
	var addrs []string
	imp := &cobra.Command{
		Use:   "import [--address ID=HOST:PORT]...",
		Short: "Create host accounts from the ECS secrets the bastion's key may read",
		Long: `List the ECS secrets (acs/ecs/…) the bastion's key may see and create a host
account for each: the host from the secret's InstanceId, its SSH address and
host keys from the host's agent (DescribeHost), or the address from
--address. The account's user name is read from the secret's value, which is
used for nothing else and never stored.`,
		Example: "  keyhold bastion import --data-dir /var/lib/keyhold-bastion\n  keyhold bastion import --address i-0abc=10.0.0.5:22",
		Args:    noArgs,
		RunE: onDir(func(cmd *cobra.Command, args []string, d *bastion.Dir) error {
			m := map[string]string{}
			for _, s := range addrs {
				id, addr, ok := strings.Cut(s, "=")
				if !ok || id == "" || addr == "" {
					return usagef("--address %q: want ID=HOST:PORT", s)
				}
				m[id] = addr
			}
			clientCmd()
			c, err := a.client()
			if err != nil {
				return err
			}
			out, err := bastion.Import(cmd.Context(), c, d, m)
			if err != nil {
				return err
			}
			return a.emit(out, func(w *textOut) {
				rows := [][]string{}
				for _, i := range out {
					rows = append(rows, []string{i.Host, i.Address, i.Account, i.Secret, strconv.Itoa(i.HostKeys), yesNo(i.Agent)})
				}
				w.table([]string{"HOST", "ADDRESS", "ACCOUNT", "SECRET", "HOST KEYS", "AGENT"}, rows)
			})
		}),
	}
	imp.Flags().StringArrayVar(&addrs, "address", nil, "SSH address of a host: INSTANCE_ID=HOST:PORT (repeatable)")

	// hosts
	hosts := groupCmd("hosts", "Hosts and their accounts", "  keyhold bastion hosts list\n  keyhold bastion hosts repin web1")
	var hname, haddr string
	var haccts, hkeys []string
	hadd := &cobra.Command{
		Use:   "add ID --address HOST:PORT [--name NAME] [--account USER=SECRET]... [--host-key KEY]...",
		Short: "Add a host by hand (or update one); without --host-key its key is pinned on first use",
		Example: `  keyhold bastion hosts add lab1 --address 10.0.0.9:22 --name lab --account root=acs/ecs/lab1/root
  keyhold bastion hosts add lab1 --address 10.0.0.9:22 --host-key "$(cat /etc/ssh/ssh_host_ed25519_key.pub)"`,
		Args: nArgs("ID"),
		RunE: onDir(func(cmd *cobra.Command, args []string, d *bastion.Dir) error {
			h := bastion.Host{ID: args[0], Name: hname, Address: haddr, HostKeys: hkeys}
			for _, s := range haccts {
				u, sec, ok := strings.Cut(s, "=")
				if !ok {
					return usagef("--account %q: want USER=SECRET_NAME", s)
				}
				h.Accounts = append(h.Accounts, bastion.Account{User: u, Secret: sec})
			}
			if err := d.AddHost(h); err != nil {
				return usagef("%v", err)
			}
			fmt.Fprintf(a.io.out, "Host %s saved\n", h.ID)
			return nil
		}),
	}
	hadd.Flags().StringVar(&hname, "name", "", "short name operators may use instead of the id")
	hadd.Flags().StringVar(&haddr, "address", "", "SSH address HOST:PORT (required)")
	hadd.Flags().StringArrayVar(&haccts, "account", nil, "host account USER=SECRET_NAME (repeatable)")
	hadd.Flags().StringArrayVar(&hkeys, "host-key", nil, `host public key to pin, "TYPE BASE64" (repeatable)`)
	hadd.MarkFlagRequired("address")
	hlist := &cobra.Command{
		Use: "list", Short: "List hosts, accounts and pinned keys", Args: noArgs,
		Example: "  keyhold bastion hosts list --data-dir /var/lib/keyhold-bastion\n  keyhold bastion hosts list --output json",
		RunE: onState(func(st *bastion.State) error {
			return a.emit(st.Hosts, func(w *textOut) {
				rows := [][]string{}
				for _, h := range st.Hosts {
					var accts []string
					for _, ac := range h.Accounts {
						accts = append(accts, ac.User+"="+ac.Secret)
					}
					rows = append(rows, []string{h.ID, h.Name, h.Address, fingerprints(h.HostKeys), yesNo(h.Agent), strings.Join(accts, " ")})
				}
				w.table([]string{"ID", "NAME", "ADDRESS", "HOST KEYS", "AGENT", "ACCOUNTS"}, rows)
			})
		}),
	}
	hrepin := &cobra.Command{
		Use:     "repin HOST",
		Short:   "Pin a host's new key after a legitimate change (from its agent, else from the host itself)",
		Example: "  keyhold bastion hosts repin web1",
		Args:    nArgs("HOST"),
		RunE: onDir(func(cmd *cobra.Command, args []string, d *bastion.Dir) error {
			clientCmd()
			c, _ := a.client() // only needed for hosts with an agent
			keys, err := d.Repin(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.io.out, "Pinned %s for %s\n", fingerprints(keys), args[0])
			return nil
		}),
	}
	hremove := &cobra.Command{
		Use: "remove HOST", Short: "Remove a host and the grants on it", Args: nArgs("HOST"),
		Example: "  keyhold bastion hosts remove lab1",
		RunE: onDir(func(cmd *cobra.Command, args []string, d *bastion.Dir) error {
			if err := d.RemoveHost(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.io.out, "Removed host %s\n", args[0])
			return nil
		}),
	}
	hosts.AddCommand(hadd, hlist, hrepin, hremove)

	// operators
	op := groupCmd("operator", "Operators: people who log in with their SSH keys", "  keyhold bastion operator add alice --public-key alice.pub")
	var pubFiles []string
	opadd := &cobra.Command{
		Use: "add NAME --public-key FILE", Short: "Add an operator (or add keys to one)", Args: nArgs("NAME"),
		Example: "  keyhold bastion operator add alice --public-key ~alice/.ssh/id_ed25519.pub",
		RunE: onDir(func(cmd *cobra.Command, args []string, d *bastion.Dir) error {
			if len(pubFiles) == 0 {
				return usagef("--public-key is required")
			}
			var keys []ssh.PublicKey
			for _, f := range pubFiles {
				b, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				for rest := b; len(strings.TrimSpace(string(rest))) > 0; {
					k, _, _, r, err := ssh.ParseAuthorizedKey(rest)
					if err != nil {
						return usagef("%s: not an SSH public key (want the .pub file, e.g. id_ed25519.pub)", f)
					}
					keys, rest = append(keys, k), r
				}
			}
			if err := d.AddOperator(args[0], keys); err != nil {
				return usagef("%v", err)
			}
			fmt.Fprintf(a.io.out, "Operator %s: %d key(s) added\n", args[0], len(keys))
			return nil
		}),
	}
	opadd.Flags().StringArrayVar(&pubFiles, "public-key", nil, "file with the operator's SSH public key(s) (repeatable)")
	oplist := &cobra.Command{
		Use: "list", Short: "List operators", Args: noArgs,
		Example: "  keyhold bastion operator list",
		RunE: onState(func(st *bastion.State) error {
			return a.emit(st.Operators, func(w *textOut) {
				rows := [][]string{}
				for _, o := range st.Operators {
					rows = append(rows, []string{o.Name, fingerprints(o.PublicKeys)})
				}
				w.table([]string{"NAME", "KEYS"}, rows)
			})
		}),
	}
	oprm := &cobra.Command{
		Use: "remove NAME", Short: "Remove an operator, their grants and open sessions", Args: nArgs("NAME"),
		Example: "  keyhold bastion operator remove alice",
		RunE: onDir(func(cmd *cobra.Command, args []string, d *bastion.Dir) error {
			if err := d.RemoveOperator(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.io.out, "Removed operator %s\n", args[0])
			return nil
		}),
	}
	op.AddCommand(opadd, oplist, oprm)

	// grants
	var agentFwd, portFwd bool
	grant := &cobra.Command{
		Use: "grant NAME HOST ACCOUNT", Short: "Let an operator use a host account",
		Example: "  keyhold bastion grant alice web1 root\n  keyhold bastion grant alice web1 deploy --allow-port-forwarding",
		Args:    nArgs("NAME", "HOST", "ACCOUNT"),
		RunE: onDir(func(cmd *cobra.Command, args []string, d *bastion.Dir) error {
			g, err := d.AddGrant(bastion.Grant{Operator: args[0], Host: args[1], Account: args[2], AgentForwarding: agentFwd, PortForwarding: portFwd})
			if err != nil {
				return err
			}
			fmt.Fprintf(a.io.out, "Granted %s %s@%s\n", g.Operator, g.Account, g.Host)
			return nil
		}),
	}
	grant.Flags().BoolVar(&agentFwd, "allow-agent-forwarding", false, "allow ssh -A through this grant")
	grant.Flags().BoolVar(&portFwd, "allow-port-forwarding", false, "allow -L/-R/-W through this grant")
	revoke := &cobra.Command{
		Use: "revoke NAME HOST ACCOUNT", Short: "Revoke a grant and end the sessions it allowed", Args: nArgs("NAME", "HOST", "ACCOUNT"),
		Example: "  keyhold bastion revoke alice web1 deploy",
		RunE: onDir(func(cmd *cobra.Command, args []string, d *bastion.Dir) error {
			if err := d.Revoke(args[0], args[1], args[2]); err != nil {
				return err
			}
			fmt.Fprintf(a.io.out, "Revoked %s %s@%s\n", args[0], args[2], args[1])
			return nil
		}),
	}
	grants := &cobra.Command{
		Use: "grants", Short: "List grants", Args: noArgs,
		Example: "  keyhold bastion grants --output json",
		RunE: onState(func(st *bastion.State) error {
			return a.emit(st.Grants, func(w *textOut) {
				rows := [][]string{}
				for _, g := range st.Grants {
					rows = append(rows, []string{g.Operator, g.Host, g.Account, yesNo(g.AgentForwarding), yesNo(g.PortForwarding)})
				}
				w.table([]string{"OPERATOR", "HOST", "ACCOUNT", "AGENT FWD", "PORT FWD"}, rows)
			})
		}),
	}

	// sessions
	sessions := &cobra.Command{
		Use: "sessions", Short: "List sessions (open, closed, refused) from the session log", Args: noArgs,
		Example: "  keyhold bastion sessions\n  keyhold bastion sessions --output json\n  keyhold bastion sessions kill 3f2a9c0d1e4b5a67",
		RunE: onDir(func(cmd *cobra.Command, args []string, d *bastion.Dir) error {
			ss, err := d.Sessions()
			if err != nil {
				return err
			}
			if ss == nil {
				ss = []bastion.Session{}
			}
			return a.emit(ss, func(w *textOut) {
				rows := [][]string{}
				for _, s := range ss {
					end, exit := "", ""
					if s.End != nil {
						end = s.End.Format(time.RFC3339)
					}
					if s.ExitStatus != nil {
						exit = strconv.FormatInt(*s.ExitStatus, 10)
					}
					rows = append(rows, []string{s.ID, s.State, s.Operator, s.Source, s.Account + "@" + s.Host, s.Start.Format(time.RFC3339), end,
						strconv.FormatInt(s.BytesIn, 10), strconv.FormatInt(s.BytesOut, 10), exit, s.Result})
				}
				w.table([]string{"ID", "STATE", "OPERATOR", "SOURCE", "ACCOUNT@HOST", "START", "END", "IN", "OUT", "EXIT", "RESULT"}, rows)
			})
		}),
	}
	kill := &cobra.Command{
		Use: "kill ID", Short: "End an open session", Args: nArgs("ID"),
		Example: "  keyhold bastion sessions kill 3f2a9c0d1e4b5a67",
		RunE: onDir(func(cmd *cobra.Command, args []string, d *bastion.Dir) error {
			if err := d.RequestKill(args[0]); err != nil {
				return err
			}
			// Wait (bounded) for the running bastion to carry it out.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				ss, _ := d.Sessions()
				for _, s := range ss {
					if s.ID == args[0] && s.State != "open" {
						fmt.Fprintf(a.io.out, "Session %s ended\n", args[0])
						return nil
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			return fmt.Errorf("session %s: kill requested, but the bastion has not ended it (is it running on this data directory?)", args[0])
		}),
	}
	sessions.AddCommand(kill)

	cmd.AddCommand(imp, hosts, op, grant, revoke, grants, sessions)
}

func fingerprints(keys []string) string {
	var out []string
	for _, k := range keys {
		if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err == nil {
			out = append(out, ssh.FingerprintSHA256(pk))
		}
	}
	return strings.Join(out, " ")
}
