package bastion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keyhold/keyhold/client"
)

// ecsPrefix is where Keyhold keeps ECS (host) secrets.
const ecsPrefix = "acs/ecs/"

// AddHost adds a host by hand, or updates its address, name and accounts.
// Without keys, the host key is pinned on first use.
func (d *Dir) AddHost(h Host) error {
	if err := ValidName("host id", h.ID); err != nil {
		return err
	}
	if h.Name != "" {
		if err := ValidName("host name", h.Name); err != nil {
			return err
		}
	}
	if _, _, err := net.SplitHostPort(h.Address); err != nil {
		return fmt.Errorf("address %q: want HOST:PORT", h.Address)
	}
	for _, k := range h.HostKeys {
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return fmt.Errorf("host key %q: not an SSH public key", k)
		}
	}
	for _, a := range h.Accounts {
		if a.User == "" || strings.Contains(a.User, "@") || a.Secret == "" {
			return fmt.Errorf("account %q=%q: want USER=SECRET_NAME", a.User, a.Secret)
		}
	}
	return d.Update(func(st *State) error {
		if other := st.Host(h.Name); h.Name != "" && other != nil && other.ID != h.ID {
			return fmt.Errorf("host name %s is taken by %s", h.Name, other.ID)
		}
		if old := st.Host(h.ID); old != nil && old.ID == h.ID {
			if h.Name != "" {
				old.Name = h.Name
			}
			old.Address = h.Address
			if len(h.HostKeys) > 0 {
				old.HostKeys, old.Agent = h.HostKeys, h.Agent
			}
			for _, a := range h.Accounts {
				if ex := old.Account(a.User); ex != nil {
					ex.Secret = a.Secret
				} else {
					old.Accounts = append(old.Accounts, a)
				}
			}
			return nil
		}
		st.Hosts = append(st.Hosts, h)
		return nil
	})
}

// RemoveHost removes a host and every grant on it (ending their sessions).
func (d *Dir) RemoveHost(ref string) error {
	return d.Update(func(st *State) error {
		h := st.Host(ref)
		if h == nil {
			return fmt.Errorf("no host %s", ref)
		}
		id := h.ID
		hosts := st.Hosts[:0]
		for _, x := range st.Hosts {
			if x.ID != id {
				hosts = append(hosts, x)
			}
		}
		st.Hosts = hosts
		grants := st.Grants[:0]
		for _, g := range st.Grants {
			if g.Host != id {
				grants = append(grants, g)
			}
		}
		st.Grants = grants
		return nil
	})
}

// Repin replaces a host's pinned keys after a legitimate change: from its
// agent's latest report when it has one (c must then be set), else from
// what the host offers now. It returns the new keys.
func (d *Dir) Repin(ctx context.Context, c *client.Client, ref string) ([]string, error) {
	st, err := d.Load()
	if err != nil {
		return nil, err
	}
	h := st.Host(ref)
	if h == nil {
		return nil, fmt.Errorf("no host %s", ref)
	}
	var keys []string
	if h.Agent {
		if c == nil {
			return nil, errors.New("this host has an agent: repin needs the server (--server and an access key)")
		}
		hd, err := c.DescribeHost(ctx, h.ID)
		if err != nil {
			return nil, err
		}
		keys = hd.SshHostKeys.SshHostKey
		if len(keys) == 0 {
			return nil, fmt.Errorf("the agent on %s reported no host keys", h.ID)
		}
	} else {
		k, err := ProbeHostKey(ctx, h.Address)
		if err != nil {
			return nil, err
		}
		keys = []string{KeyString(k)}
	}
	id := h.ID
	return keys, d.Update(func(st *State) error {
		h := st.Host(id)
		if h == nil {
			return fmt.Errorf("no host %s", id)
		}
		h.HostKeys = keys
		return nil
	})
}

// ProbeHostKey returns the host key an sshd offers (one handshake, no login).
func ProbeHostKey(ctx context.Context, addr string) (ssh.PublicKey, error) {
	var got ssh.PublicKey
	errGot := errors.New("got key")
	cfg := &ssh.ClientConfig{User: "keyhold-bastion-probe", HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
		got = k
		return errGot
	}, Timeout: 10 * time.Second}
	var dl net.Dialer
	nc, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s is unreachable: %w", addr, err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	_, _, _, err = ssh.NewClientConn(nc, addr, cfg)
	if got == nil {
		return nil, fmt.Errorf("%s: no host key: %v", addr, err)
	}
	return got, nil
}

// AddOperator adds an operator, or adds keys to one.
func (d *Dir) AddOperator(name string, keys []ssh.PublicKey) error {
	if err := ValidName("operator", name); err != nil {
		return err
	}
	if len(keys) == 0 {
		return errors.New("at least one public key is required")
	}
	return d.Update(func(st *State) error {
		for _, k := range keys {
			if op := st.OperatorByKey(k); op != nil && op.Name != name {
				return fmt.Errorf("key %s already belongs to operator %s", ssh.FingerprintSHA256(k), op.Name)
			}
		}
		op := st.Operator(name)
		if op == nil {
			st.Operators = append(st.Operators, Operator{Name: name})
			op = &st.Operators[len(st.Operators)-1]
		}
		for _, k := range keys {
			if !hasKey(op, KeyString(k)) {
				op.PublicKeys = append(op.PublicKeys, KeyString(k))
			}
		}
		return nil
	})
}

// RemoveOperator removes an operator and their grants; the running bastion
// ends their sessions.
func (d *Dir) RemoveOperator(name string) error {
	return d.Update(func(st *State) error {
		if st.Operator(name) == nil {
			return fmt.Errorf("no operator %s", name)
		}
		ops := st.Operators[:0]
		for _, o := range st.Operators {
			if o.Name != name {
				ops = append(ops, o)
			}
		}
		st.Operators = ops
		grants := st.Grants[:0]
		for _, g := range st.Grants {
			if g.Operator != name {
				grants = append(grants, g)
			}
		}
		st.Grants = grants
		return nil
	})
}

// AddGrant gives an operator a host account (replacing the forwarding
// options of an existing grant).
func (d *Dir) AddGrant(g Grant) (Grant, error) {
	err := d.Update(func(st *State) error {
		if st.Operator(g.Operator) == nil {
			return fmt.Errorf("no operator %s (add one with: keyhold bastion operator add)", g.Operator)
		}
		h := st.Host(g.Host)
		if h == nil {
			return fmt.Errorf("no host %s", g.Host)
		}
		if h.Account(g.Account) == nil {
			return fmt.Errorf("host %s has no account %s", g.Host, g.Account)
		}
		g.Host = h.ID
		if ex := st.Grant(g.Operator, g.Host, g.Account); ex != nil {
			*ex = g
			return nil
		}
		st.Grants = append(st.Grants, g)
		return nil
	})
	return g, err
}

// Revoke removes a grant; the running bastion ends the sessions it allowed.
func (d *Dir) Revoke(operator, host, account string) error {
	return d.Update(func(st *State) error {
		id := host
		if h := st.Host(host); h != nil {
			id = h.ID
		}
		if st.Grant(operator, id, account) == nil {
			return fmt.Errorf("operator %s has no grant for %s@%s", operator, account, host)
		}
		grants := st.Grants[:0]
		for _, g := range st.Grants {
			if !(g.Operator == operator && g.Host == id && g.Account == account) {
				grants = append(grants, g)
			}
		}
		st.Grants = grants
		return nil
	})
}

// Imported is one host account that Import created or updated.
type Imported struct {
	Host, Address, Account, Secret string
	HostKeys                       int
	Agent                          bool
}

// Import lists the ECS secrets the bastion's key may see and creates the
// host accounts from them. Each host's SSH address and host keys come from
// its agent's report (DescribeHost), unless addrs gives the address
// (instance id → HOST:PORT). The user name comes from the secret's value
// (UserName), which is read once and kept no further.
func Import(ctx context.Context, c *client.Client, d *Dir, addrs map[string]string) ([]Imported, error) {
	var names []string
	for page := 1; ; page++ {
		r, err := c.ListSecrets(ctx, &client.ListSecretsRequest{Page: client.Page{PageNumber: page, PageSize: 100}})
		if err != nil {
			return nil, err
		}
		for _, s := range r.SecretList.Secret {
			if strings.HasPrefix(s.SecretName, ecsPrefix) {
				names = append(names, s.SecretName)
			}
		}
		if len(r.SecretList.Secret) == 0 || page*100 >= r.TotalCount {
			break
		}
	}
	hosts := map[string]*Host{}
	var out []Imported
	ictx := client.WithOnBehalfOf(ctx, "import/"+newID())
	for _, name := range names {
		ds, err := c.DescribeSecret(ctx, name, false)
		if err != nil {
			return out, fmt.Errorf("describe %s: %w", name, err)
		}
		var ext struct{ InstanceId, SecretSubType string }
		json.Unmarshal([]byte(ds.ExtendedConfig), &ext)
		if ext.InstanceId == "" {
			continue
		}
		v, err := c.GetSecretValue(ictx, &client.GetSecretValueRequest{SecretName: name})
		if err != nil {
			return out, fmt.Errorf("read the user name of %s: %w", name, err)
		}
		var cred credential
		json.Unmarshal([]byte(v.SecretData), &cred)
		user := cred.UserName
		cred, v = credential{}, nil
		if user == "" {
			continue
		}
		h := hosts[ext.InstanceId]
		if h == nil {
			h = &Host{ID: ext.InstanceId}
			hd, err := c.DescribeHost(ctx, ext.InstanceId)
			if err == nil {
				h.Name, h.Address, h.HostKeys, h.Agent = hd.HostName, hd.SshAddress, hd.SshHostKeys.SshHostKey, true
			} else if addrs[ext.InstanceId] == "" {
				return out, fmt.Errorf("host %s: %w (or give its address with --address %s=HOST:PORT)", ext.InstanceId, err, ext.InstanceId)
			}
			if a := addrs[ext.InstanceId]; a != "" {
				h.Address = a
			}
			if h.Address == "" {
				return out, fmt.Errorf("host %s: its agent reported no SSH address (start it with --advertise-addr, or give --address %s=HOST:PORT)", ext.InstanceId, ext.InstanceId)
			}
			if h.Name != "" && ValidName("host name", h.Name) != nil {
				h.Name = ""
			}
			hosts[ext.InstanceId] = h
		}
		h.Accounts = append(h.Accounts, Account{User: user, Secret: name})
		out = append(out, Imported{Host: h.ID, Address: h.Address, Account: user, Secret: name, HostKeys: len(h.HostKeys), Agent: h.Agent})
	}
	for _, h := range hosts {
		if err := d.importHost(*h); err != nil {
			return out, err
		}
	}
	return out, nil
}

// importHost merges an imported host: a host name taken by another host is
// dropped rather than failing the import.
func (d *Dir) importHost(h Host) error {
	return d.Update(func(st *State) error {
		if other := st.Host(h.Name); h.Name != "" && other != nil && other.ID != h.ID {
			h.Name = ""
		}
		old := st.Host(h.ID)
		if old == nil || old.ID != h.ID {
			st.Hosts = append(st.Hosts, h)
			return nil
		}
		if h.Name != "" {
			old.Name = h.Name
		}
		old.Address = h.Address
		if h.Agent {
			old.HostKeys, old.Agent = h.HostKeys, true
		}
		for _, a := range h.Accounts {
			if ex := old.Account(a.User); ex != nil {
				ex.Secret = a.Secret
			} else {
				old.Accounts = append(old.Accounts, a)
			}
		}
		return nil
	})
}
