// Package wire holds what both ends of the agent protocol share: the
// enrollment token format, the request-signing scheme and the JSON bodies.
// It imports neither net/http nor any server package, so the agent can use
// it without pulling in the server.
package wire

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"time"
)

// Paths under the server's /agent/v1/ prefix.
const (
	Prefix     = "/agent/v1/"
	PathEnroll = Prefix + "enroll"
	PathPoll   = Prefix + "poll"
	PathReport = Prefix + "report"
)

// Request headers of an authenticated agent request.
const (
	HeaderHostID    = "X-Keyhold-Host-Id"
	HeaderTimestamp = "X-Keyhold-Timestamp" // RFC 3339, UTC
	HeaderNonce     = "X-Keyhold-Nonce"
	HeaderSignature = "X-Keyhold-Signature" // base64 std ed25519 signature
	HeaderBodyHash  = "X-Keyhold-Content-Sha256"
)

// MaxSkew is how far a request's timestamp may be from the server's clock.
const MaxSkew = 5 * time.Minute

// StringToSign is what the agent signs: every field that identifies the
// request, so that a signature cannot be moved to another host, path or body.
func StringToSign(method, path, timestamp, nonce, bodySHA256Hex, hostID string) string {
	return strings.Join([]string{"KEYHOLD-AGENT-V1", method, path, timestamp, nonce, bodySHA256Hex, hostID}, "\n")
}

// BodyHash is the hex SHA-256 of a request body.
func BodyHash(body []byte) string {
	h := sha256.Sum256(body)
	return hex.EncodeToString(h[:])
}

// NewNonce returns a random request nonce.
func NewNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Token format: "kh1.<secret>.<pin>", secret 32 random bytes and pin the
// SHA-256 of the deployment CA certificate (DER), both base64url without
// padding. Only a hash of the whole token is stored.
const tokenPrefix = "kh1"

// CAPin is the pin of a CA certificate (DER).
func CAPin(der []byte) string {
	h := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// NewToken returns a fresh token pinning the CA with the given pin.
func NewToken(pin string) string {
	b := make([]byte, 32)
	rand.Read(b)
	return tokenPrefix + "." + base64.RawURLEncoding.EncodeToString(b) + "." + pin
}

// ErrBadToken is returned for a string that is not an enrollment token.
var ErrBadToken = errors.New("not a Keyhold enrollment token")

// ParseToken checks the form of a token and returns its CA pin.
func ParseToken(tok string) (pin string, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != tokenPrefix {
		return "", ErrBadToken
	}
	for _, p := range parts[1:] {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil || len(b) != 32 {
			return "", ErrBadToken
		}
	}
	return parts[2], nil
}

// TokenHash is the stored form of a token.
func TokenHash(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// LocalUser is one account in an agent's report.
type LocalUser struct {
	Name          string `json:"name"`
	UID           int    `json:"uid"`
	Allowed       bool   `json:"allowed"`
	PasswordLogin bool   `json:"password_login"`
	PubkeyLogin   bool   `json:"pubkey_login"`
}

// Inventory is what an agent reports about its host.
type Inventory struct {
	HostName     string      `json:"host_name"`
	SSHAddress   string      `json:"ssh_address"`
	SSHHostKeys  []string    `json:"ssh_host_keys"`
	LocalUsers   []LocalUser `json:"local_users"`
	AllowUsers   []string    `json:"allow_users"`
	AgentVersion string      `json:"agent_version"`
}

// EnrollRequest is the body of POST enroll.
type EnrollRequest struct {
	Token     string    `json:"token"`
	PublicKey string    `json:"public_key"` // base64 std ed25519 public key
	Inventory Inventory `json:"inventory"`
	// Proof is the agent's signature over "KEYHOLD-ENROLL-V1\n"+Token, so
	// that the key being registered is one the caller holds.
	Proof string `json:"proof"`
}

// EnrollProof is the string an enrolling agent signs.
func EnrollProof(token string) string { return "KEYHOLD-ENROLL-V1\n" + token }

// EnrollResponse is the answer to enroll.
type EnrollResponse struct {
	HostID  string `json:"host_id"`
	Account string `json:"account"`
}

// Command is one command as sent to the agent.
type Command struct {
	ID         string `json:"id"`
	RotationID string `json:"rotation_id"`
	Op         string `json:"op"`
	User       string `json:"user"`
	Password   string `json:"password,omitempty"`
	PublicKey  string `json:"public_key,omitempty"`
	PrivateKey string `json:"private_key,omitempty"`
}

// PollRequest is the body of POST poll.
type PollRequest struct {
	// WaitSeconds bounds how long the server holds the request (0: the
	// server's default, at most ~25 s).
	WaitSeconds int `json:"wait_seconds,omitempty"`
}

// PollResponse carries the host's pending commands (possibly none).
type PollResponse struct {
	Commands []Command `json:"commands"`
}

// Result is an agent's report on one command.
type Result struct {
	CommandID string    `json:"command_id"`
	Status    string    `json:"status"`
	Check     string    `json:"check,omitempty"`
	Error     string    `json:"error,omitempty"`
	Time      time.Time `json:"time"`
}

// DriftEvent is one change the agent did not make.
type DriftEvent struct {
	User string    `json:"user"`
	What string    `json:"what"`
	Time time.Time `json:"time"`
}

// ReportRequest is the body of POST report: any of results, drift and a
// fresh inventory.
type ReportRequest struct {
	Results   []Result     `json:"results,omitempty"`
	Drift     []DriftEvent `json:"drift,omitempty"`
	Inventory *Inventory   `json:"inventory,omitempty"`
}

// ErrorResponse is the body of every non-2xx answer.
type ErrorResponse struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}
