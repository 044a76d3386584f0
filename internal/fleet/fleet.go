// Package fleet is the server side of enrolled hosts: enrollment tokens,
// the host registry with what each agent reports, drift events, and a
// durable per-host command queue with its results.
//
// It knows no HTTP: the agent protocol's wire side lives in
// internal/agentapi, the operator actions in internal/kmsapi. Commands may
// carry credentials (a new password, a new private key); they are sealed
// with the root key before they are stored and are handed only to the
// host's own authenticated agent.
package fleet

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/keyhold/keyhold/internal/store"
)

// Storage tables. Host and token records are account-scoped; the two
// index tables map an unauthenticated lookup key (a token hash, a host id
// presented by an agent) to its account.
const (
	tableTokens     = "fleet_tokens"      // <acct>/<token hash> -> tokenRecord
	tableTokenIndex = "fleet_token_index" // <token hash> -> acct
	tableHosts      = "fleet_hosts"       // <acct>/<host id> -> hostRecord
	tableHostIndex  = "fleet_host_index"  // <host id> -> acct
	tableCommands   = "fleet_commands"    // <acct>/<host id>/<seq> -> sealed command
	tableCommandIDs = "fleet_command_ids" // <acct>/<host id>/<command id> -> seq
	tableResults    = "fleet_results"     // <acct>/<host id>/<command id> -> Result
)

// Command operations understood by the agent.
const (
	OpPasswordApply   = "password.apply"
	OpPasswordRestore = "password.restore"
	OpSSHKeyApply     = "sshkey.apply"
	OpSSHKeyCleanup   = "sshkey.cleanup"
	OpSSHKeyRestore   = "sshkey.restore"
)

// Result statuses and checks.
const (
	StatusOK     = "ok"
	StatusFailed = "failed"

	CheckSSHLogin = "ssh-login"
	CheckLocal    = "local"
)

// Host is an enrolled host as its agent last reported it.
type Host struct {
	ID           string // "i-" + 20 lowercase alphanumerics
	Account      string
	HostName     string
	SSHAddress   string   // where others reach its sshd (--advertise-addr)
	SSHHostKeys  []string // authorized_keys format
	LocalUsers   []LocalUser
	AllowUsers   []string // the agent's explicit allow-list (--allow-users)
	AgentVersion string
	EnrolledAt   time.Time
	LastSeen     time.Time
	Online       bool // seen within OnlineWindow
	Drift        []DriftEvent
	Removed      bool
}

// LocalUser is one account on the host.
type LocalUser struct {
	Name    string
	UID     int
	Allowed bool // the agent may change it
	// Effective sshd settings for the user (sshd -T -C user=…).
	PasswordLogin bool
	PubkeyLogin   bool
}

// DriftEvent is a change to a managed account that Keyhold did not make.
type DriftEvent struct {
	User string
	What string // "password" (shadow entry) or "authorized_keys"
	Time time.Time
}

// Drift kinds.
const (
	DriftPassword       = "password"
	DriftAuthorizedKeys = "authorized_keys"
)

// Command is one instruction for a host's agent.
type Command struct {
	ID         string // unique; the agent's journal makes a repeated ID apply once and re-report its result
	RotationID string
	Op         string // OpPasswordApply, OpPasswordRestore, OpSSHKeyApply, OpSSHKeyCleanup, OpSSHKeyRestore
	User       string
	// Password is the new password for OpPasswordApply. It travels only
	// inside TLS to the agent, is sealed in storage and never logged.
	Password string `json:",omitempty"`
	// PublicKey: OpSSHKeyApply adds it (the old key is kept);
	// OpSSHKeyCleanup removes it (it is the OLD key).
	PublicKey string `json:",omitempty"`
	// PrivateKey (PEM) for OpSSHKeyApply, only so that the agent can verify
	// by logging in; the agent never writes it to disk.
	PrivateKey string `json:",omitempty"`
}

// HasCredential reports whether the command carries a secret value.
func (c Command) HasCredential() bool { return c.Password != "" || c.PrivateKey != "" }

// Result is an agent's report on one command.
type Result struct {
	CommandID, HostID, RotationID, Op string
	Status                            string // StatusOK | StatusFailed
	Check                             string // CheckSSHLogin | CheckLocal | ""
	Error                             string // never contains a value
	Time                              time.Time
}

// Sealer seals command payloads with the root key (*keys.Service).
type Sealer interface {
	SealWithRoot(aad, plaintext []byte) ([]byte, error)
	OpenWithRoot(aad, sealed []byte) ([]byte, error)
}

// Service is the fleet domain.
type Service struct {
	st      store.Store
	sealer  Sealer
	now     func() time.Time
	caPin   string
	online  time.Duration
	onDrift func(ctx context.Context, account, hostID string, ev DriftEvent)
}

// Option configures a Service.
type Option func(*Service)

// WithClock overrides the clock (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithCAPin sets the deployment CA pin embedded in enrollment tokens
// (see CAPin).
func WithCAPin(pin string) Option { return func(s *Service) { s.caPin = pin } }

// WithOnlineWindow sets how recently a host must have been seen to count
// as online (default 3 × the agent's poll timeout).
func WithOnlineWindow(d time.Duration) Option { return func(s *Service) { s.online = d } }

// WithDriftHook is called once for each drift event an agent reports
// (the server audits them).
func WithDriftHook(fn func(ctx context.Context, account, hostID string, ev DriftEvent)) Option {
	return func(s *Service) { s.onDrift = fn }
}

// PollTimeout is how long a long-poll is held open without news.
const PollTimeout = 25 * time.Second

// New returns the fleet service.
func New(st store.Store, sealer Sealer, opts ...Option) *Service {
	s := &Service{st: st, sealer: sealer, now: time.Now, online: 3 * PollTimeout}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.now() }

// Store is the storage the service uses (the agent API subscribes to its
// topics and records request nonces in it).
func (s *Service) Store() store.Store { return s.st }

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newHostID returns "i-" + 20 lowercase alphanumerics, the ECS instance id
// form.
func newHostID() string {
	b := make([]byte, 20)
	rand.Read(b)
	out := make([]byte, 0, 22)
	out = append(out, 'i', '-')
	for _, c := range b {
		// 252 = 7×36: rejection-free bias is negligible for an identifier,
		// but keep it exact anyway by re-drawing the few high bytes.
		for c >= 252 {
			var x [1]byte
			rand.Read(x[:])
			c = x[0]
		}
		out = append(out, idAlphabet[int(c)%36])
	}
	return string(out)
}

// ValidHostID reports whether id has the instance id form.
func ValidHostID(id string) bool {
	if len(id) != 22 || id[:2] != "i-" {
		return false
	}
	for i := 2; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// CommandsTopic is notified when a command is queued for the host.
func (s *Service) CommandsTopic(account, hostID string) string {
	return "fleet/commands/" + account + "/" + hostID
}

// ResultsTopic is notified when a result for the host arrives.
func (s *Service) ResultsTopic(account, hostID string) string {
	return "fleet/results/" + account + "/" + hostID
}

// HostsTopic is notified when a host record changes (enrolment, report,
// drift, removal).
func (s *Service) HostsTopic(account string) string { return "fleet/hosts/" + account }
