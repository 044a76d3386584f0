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

// credential is an ECS secret's value, held only in memory for one login.
type credential struct {
	UserName   string `json:"UserName"`
	Password   string `json:"Password"`
	PrivateKey string `json:"PrivateKey"`
}

func (c *credential) auth() ([]ssh.AuthMethod, error) {
	if c.PrivateKey != "" {
		signer, err := ssh.ParsePrivateKey([]byte(c.PrivateKey))
		if err != nil {
			return nil, errors.New("the secret's PrivateKey is not a usable private key") // no parser detail: it may quote the key
		}
		return []ssh.AuthMethod{ssh.PublicKeys(signer)}, nil
	}
	if c.Password != "" {
		pw := c.Password
		return []ssh.AuthMethod{ssh.Password(pw), ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
			a := make([]string, len(qs))
			for i := range a {
				a[i] = pw
			}
			return a, nil
		})}, nil
	}
	return nil, errors.New("the secret holds neither a Password nor a PrivateKey")
}

// stages are tried in order: a rotation in flight may already have changed
// the host to the pending value, or a failed one may have left the old one.
var stages = []string{"ACSCurrent", "ACSPending", "ACSPrevious"}

// connectTarget fetches the account's credential on behalf of the operator
// and logs in to the host with it. The value lives only in this call.
func (s *Server) connectTarget(ctx context.Context, ss *session, h *Host, a *Account) (ssh.Conn, <-chan ssh.NewChannel, <-chan *ssh.Request, error) {
	actx := client.WithOnBehalfOf(ctx, ss.operator+"/"+ss.id)
	for i, stage := range stages {
		v, err := s.cfg.Client.GetSecretValue(actx, &client.GetSecretValueRequest{SecretName: a.Secret, VersionStage: stage})
		if err != nil {
			if i == 0 {
				return nil, nil, nil, readRefusal(a.Secret, err)
			}
			continue // no such version: nothing to fall back to
		}
		var cred credential
		if err := json.Unmarshal([]byte(v.SecretData), &cred); err != nil {
			return nil, nil, nil, refusef("secret %s does not hold an ECS credential (JSON with UserName and Password or PrivateKey)", a.Secret)
		}
		methods, err := cred.auth()
		cred = credential{}
		if err != nil {
			return nil, nil, nil, refusef("secret %s: %v", a.Secret, err)
		}
		c, chans, reqs, err := s.dial(ctx, h, a.User, methods)
		if err == nil {
			if i > 0 {
				s.log.Info("logged in with a fallback version", "session", ss.id, "secret", a.Secret, "stage", stage)
			}
			return c, chans, reqs, nil
		}
		if !isAuthFailure(err) {
			return nil, nil, nil, err
		}
	}
	return nil, nil, nil, refusef("host %s refused the stored credential for %s (tried %s)", ss.hostName, a.User, strings.Join(stages, ", "))
}

func readRefusal(secret string, err error) error {
	var ae *client.Error
	if errors.As(err, &ae) {
		return refusef("the bastion may not read secret %s (%s)", secret, ae.Code)
	}
	return refusef("the secrets service is unreachable; try again later")
}

func isAuthFailure(err error) bool {
	return strings.Contains(err.Error(), "unable to authenticate")
}

// hostKeyError says the host offered a key that is not pinned.
type hostKeyError struct{ msg string }

func (e *hostKeyError) Error() string { return e.msg }

// dial logs in to h as user, checking the host key against the pinned ones
// (trust on first use only for hosts without an agent).
func (s *Server) dial(ctx context.Context, h *Host, user string, methods []ssh.AuthMethod) (ssh.Conn, <-chan ssh.NewChannel, <-chan *ssh.Request, error) {
	var pinned []ssh.PublicKey
	for _, k := range h.HostKeys {
		if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err == nil {
			pinned = append(pinned, pk)
		}
	}
	if len(pinned) == 0 && h.Agent {
		return nil, nil, nil, refusef("host %s has no pinned host key although its agent should report one; run: keyhold bastion hosts repin %s", h.ID, h.ID)
	}
	var tofu ssh.PublicKey
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: methods,
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if len(pinned) == 0 {
				tofu = key
				return nil
			}
			for _, p := range pinned {
				if string(p.Marshal()) == string(key.Marshal()) {
					return nil
				}
			}
			return &hostKeyError{fmt.Sprintf("host key of %s (%s) changed: it offered %s %s, which is not pinned; refusing. If the change is legitimate: keyhold bastion hosts repin %s",
				h.ID, h.Address, key.Type(), ssh.FingerprintSHA256(key), h.ID)}
		},
		HostKeyAlgorithms: hostKeyAlgorithms(pinned),
		ClientVersion:     "SSH-2.0-KeyholdBastion",
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", h.Address)
	if err != nil {
		return nil, nil, nil, refusef("host %s (%s) is unreachable", h.ID, h.Address)
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	c, chans, reqs, err := ssh.NewClientConn(nc, h.Address, cfg)
	if err != nil {
		nc.Close()
		var hk *hostKeyError
		if errors.As(err, &hk) {
			return nil, nil, nil, &refusal{hk.msg}
		}
		if isAuthFailure(err) {
			return nil, nil, nil, err
		}
		return nil, nil, nil, refusef("host %s (%s): SSH handshake failed", h.ID, h.Address)
	}
	nc.SetDeadline(time.Time{})
	if tofu != nil {
		if err := s.pinTOFU(h.ID, tofu); err != nil {
			c.Close()
			return nil, nil, nil, err
		}
	}
	return c, chans, reqs, nil
}

// pinTOFU records the key a host without an agent offered at its first
// login, unless someone pinned one meanwhile.
func (s *Server) pinTOFU(hostID string, key ssh.PublicKey) error {
	return s.cfg.Dir.Update(func(st *State) error {
		h := st.Host(hostID)
		if h == nil {
			return refusef("host %s was removed", hostID)
		}
		if len(h.HostKeys) > 0 {
			for _, k := range h.HostKeys {
				if pk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err == nil && string(pk.Marshal()) == string(key.Marshal()) {
					return nil
				}
			}
			return refusef("host key of %s changed while connecting; refusing", hostID)
		}
		h.HostKeys = []string{KeyString(key)}
		s.log.Info("pinned host key on first use", "host", hostID, "key", ssh.FingerprintSHA256(key))
		return nil
	})
}

func hostKeyAlgorithms(keys []ssh.PublicKey) []string {
	if len(keys) == 0 {
		return nil
	}
	var algs []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algs = append(algs, x)
			}
		}
	}
	for _, k := range keys {
		if k.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		} else {
			add(k.Type())
		}
	}
	return algs
}
