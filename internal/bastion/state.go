// Package bastion is `keyhold bastion`: an SSH jump server that logs
// operators in to host accounts with credentials it fetches from Keyhold at
// each connection, so that operators never see a password or private key.
//
// It is a client of Keyhold's public API (package client) like any
// third-party program and imports no server internals. Its data directory
// holds the inventory (hosts, accounts → secret names, pinned host keys),
// operators and grants, its own SSH host key and the session log; never a
// host credential.
package bastion

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/crypto/ssh"
)

// Files in the data directory.
const (
	stateFile   = "bastion.json"
	lockFile    = "bastion.lock"
	hostKeyFile = "host_key"
	sessionFile = "sessions.jsonl"
	killDir     = "kill"
)

// Account is a host account: a login name whose credential is the value of
// an ECS secret.
type Account struct {
	User   string `json:"user"`
	Secret string `json:"secret"`
}

// Host is a target the bastion logs in to.
type Host struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Address string `json:"address"` // host:port
	// HostKeys are pinned public keys in authorized_keys form.
	HostKeys []string `json:"host_keys,omitempty"`
	// Agent marks a host whose keys came from its enrolled agent: these are
	// never replaced on first use.
	Agent    bool      `json:"agent,omitempty"`
	Accounts []Account `json:"accounts,omitempty"`
}

// Operator is a person who logs in to the bastion with an SSH key.
type Operator struct {
	Name       string   `json:"name"`
	PublicKeys []string `json:"public_keys"`
}

// Grant lets an operator use one host account.
type Grant struct {
	Operator        string `json:"operator"`
	Host            string `json:"host"` // host id
	Account         string `json:"account"`
	AgentForwarding bool   `json:"agent_forwarding,omitempty"`
	PortForwarding  bool   `json:"port_forwarding,omitempty"`
}

// State is everything the bastion keeps about its inventory and operators.
type State struct {
	Hosts     []Host     `json:"hosts"`
	Operators []Operator `json:"operators"`
	Grants    []Grant    `json:"grants"`
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidName checks an operator, host id or host name: no '@' (it separates
// the parts of the SSH user string) and nothing a shell or log would mangle.
func ValidName(kind, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%s %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", kind, s)
	}
	return nil
}

// Host finds a host by id, else by name.
func (s *State) Host(ref string) *Host {
	for i := range s.Hosts {
		if s.Hosts[i].ID == ref {
			return &s.Hosts[i]
		}
	}
	for i := range s.Hosts {
		if s.Hosts[i].Name != "" && s.Hosts[i].Name == ref {
			return &s.Hosts[i]
		}
	}
	return nil
}

// Account finds a host account by user name.
func (h *Host) Account(user string) *Account {
	for i := range h.Accounts {
		if h.Accounts[i].User == user {
			return &h.Accounts[i]
		}
	}
	return nil
}

// Operator finds an operator by name.
func (s *State) Operator(name string) *Operator {
	for i := range s.Operators {
		if s.Operators[i].Name == name {
			return &s.Operators[i]
		}
	}
	return nil
}

// OperatorByKey finds the operator holding key.
func (s *State) OperatorByKey(key ssh.PublicKey) *Operator {
	want := string(key.Marshal())
	for i := range s.Operators {
		for _, k := range s.Operators[i].PublicKeys {
			pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k))
			if err == nil && string(pk.Marshal()) == want {
				return &s.Operators[i]
			}
		}
	}
	return nil
}

// Grant finds the grant of operator on hostID/account.
func (s *State) Grant(operator, hostID, account string) *Grant {
	for i := range s.Grants {
		g := &s.Grants[i]
		if g.Operator == operator && g.Host == hostID && g.Account == account {
			return g
		}
	}
	return nil
}

func (s *State) sort() {
	sort.Slice(s.Hosts, func(i, j int) bool { return s.Hosts[i].ID < s.Hosts[j].ID })
	for i := range s.Hosts {
		a := s.Hosts[i].Accounts
		sort.Slice(a, func(i, j int) bool { return a[i].User < a[j].User })
	}
	sort.Slice(s.Operators, func(i, j int) bool { return s.Operators[i].Name < s.Operators[j].Name })
	sort.Slice(s.Grants, func(i, j int) bool {
		a, b := s.Grants[i], s.Grants[j]
		if a.Operator != b.Operator {
			return a.Operator < b.Operator
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		return a.Account < b.Account
	})
}

// Dir is a bastion data directory. The admin commands and the running
// bastion share it: every change is a read-modify-write under an exclusive
// flock and lands by atomic rename, and the bastion re-reads the file when
// it changes (see Server.watch), so no admin socket is needed.
type Dir struct{ Path string }

// OpenDir creates the directory (0700) if needed.
func OpenDir(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("--data-dir is required")
	}
	if err := os.MkdirAll(filepath.Join(path, killDir), 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o700); err != nil {
		return nil, err
	}
	return &Dir{Path: path}, nil
}

func (d *Dir) file(name string) string { return filepath.Join(d.Path, name) }

// Load reads the state (empty when there is none yet).
func (d *Dir) Load() (*State, error) {
	b, err := os.ReadFile(d.file(stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &State{}, nil
	} else if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", d.file(stateFile), err)
	}
	return &s, nil
}

// Update applies fn to the state under the lock and saves it unless fn
// fails.
func (d *Dir) Update(fn func(*State) error) error {
	lf, err := os.OpenFile(d.file(lockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
	s, err := d.Load()
	if err != nil {
		return err
	}
	if err := fn(s); err != nil {
		return err
	}
	s.sort()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(d.file(stateFile), append(b, '\n'))
}

func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ParseTarget splits the SSH user string ACCOUNT@HOST at the last '@'
// (OpenSSH does the same with ACCOUNT@HOST@bastion, leaving us the rest).
func ParseTarget(user string) (account, host string, err error) {
	i := strings.LastIndexByte(user, '@')
	if i <= 0 || i == len(user)-1 {
		return "", "", fmt.Errorf("malformed user %q: connect as ACCOUNT@HOST@bastion, e.g. ssh -p 2222 root@web1@bastion", user)
	}
	return user[:i], user[i+1:], nil
}

// KeyString is a key's one-line form for pinning and display.
func KeyString(k ssh.PublicKey) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) }
