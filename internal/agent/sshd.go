package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshdSettings are a user's effective sshd settings (sshd -T -C user=…).
type sshdSettings struct {
	PasswordLogin      bool
	PubkeyLogin        bool
	AuthorizedKeysFile string // first entry, with %h/%u/%% not yet expanded
	UsePAM             bool
	HostKeys           []string // private host key paths
}

// effectiveSettings asks sshd for the settings that apply to user when it
// logs in from localhost, so that verification uses only a method sshd
// really offers that user.
func effectiveSettings(ctx context.Context, sshdPath, config, user string) (sshdSettings, error) {
	args := []string{"-T", "-C", "user=" + user + ",host=localhost,addr=127.0.0.1"}
	if config != "" {
		args = append(args, "-f", config)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, sshdPath, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return sshdSettings{}, fmt.Errorf("sshd -T: %w: %s", err, firstLine(stderr.String()))
	}
	return parseSettings(out, user), nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// parseSettings derives which single-method logins sshd allows the user
// from sshd -T output.
func parseSettings(out []byte, user string) sshdSettings {
	kv := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		k = strings.ToLower(k)
		kv[k] = append(kv[k], strings.TrimSpace(v))
	}
	get := func(k string) string {
		if v := kv[k]; len(v) > 0 {
			return strings.ToLower(v[0])
		}
		return ""
	}
	s := sshdSettings{
		PasswordLogin: get("passwordauthentication") == "yes",
		PubkeyLogin:   get("pubkeyauthentication") == "yes",
		UsePAM:        get("usepam") == "yes",
	}
	s.HostKeys = kv["hostkey"]
	if v := kv["authorizedkeysfile"]; len(v) > 0 {
		if f := strings.Fields(v[0]); len(f) > 0 {
			s.AuthorizedKeysFile = f[0]
		}
	}
	if user == "root" {
		switch get("permitrootlogin") {
		case "yes":
		case "prohibit-password", "without-password":
			s.PasswordLogin = false
		default: // "no", "forced-commands-only": no interactive login to check with
			s.PasswordLogin, s.PubkeyLogin = false, false
		}
	}
	userMatches := func(list []string) bool {
		for _, line := range list {
			for _, pat := range strings.Fields(line) {
				up, _, _ := strings.Cut(pat, "@")
				if ok, _ := path.Match(up, user); ok {
					return true
				}
			}
		}
		return false
	}
	if userMatches(kv["denyusers"]) || (len(kv["allowusers"]) > 0 && !userMatches(kv["allowusers"])) {
		s.PasswordLogin, s.PubkeyLogin = false, false
	}
	// AuthenticationMethods: a method counts only if some list needs it alone.
	if am := get("authenticationmethods"); am != "" && am != "any" {
		alone := map[string]bool{}
		for _, list := range strings.Fields(am) {
			alone[list] = true
		}
		s.PasswordLogin = s.PasswordLogin && alone["password"]
		s.PubkeyLogin = s.PubkeyLogin && alone["publickey"]
	}
	return s
}

// hostKeys fetches the public host keys of the sshd at addr, one handshake
// per key algorithm, in authorized_keys form.
func hostKeys(ctx context.Context, addr string) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	seen := map[string]bool{}
	for _, alg := range []string{ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521, ssh.KeyAlgoRSASHA512} {
		var got ssh.PublicKey
		cfg := &ssh.ClientConfig{
			User:              "keyhold-hostkey-probe",
			HostKeyAlgorithms: []string{alg},
			HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
				got = k
				return errProbeDone
			},
			Timeout: 5 * time.Second,
		}
		conn, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		c, _, _, err := ssh.NewClientConn(conn, addr, cfg)
		if c != nil {
			c.Close()
		}
		conn.Close()
		if got != nil && !seen[string(got.Marshal())] {
			seen[string(got.Marshal())] = true
			keys = append(keys, got)
		}
		_ = err // no key of this algorithm: the handshake fails; try the next
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("sshd at %s offered no host key", addr)
	}
	return keys, nil
}

var errProbeDone = errors.New("host key probe done")

func dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	return d.DialContext(ctx, "tcp", addr)
}

// loginCheck logs in to sshd at addr as user with auth, trusting only the
// host keys known from the inventory, and runs nothing: an accepted
// authentication is the proof.
func loginCheck(ctx context.Context, addr, user string, known []ssh.PublicKey, auth ...ssh.AuthMethod) error {
	cfg := &ssh.ClientConfig{
		User: user,
		Auth: auth,
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			for _, kk := range known {
				if bytes.Equal(kk.Marshal(), k.Marshal()) {
					return nil
				}
			}
			return errors.New("sshd presented an unknown host key")
		},
		Timeout: 10 * time.Second,
	}
	conn, err := dial(ctx, addr)
	if err != nil {
		return fmt.Errorf("connect to sshd: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	c, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if err != nil {
		return errors.New("sshd refused the login with the new credential")
	}
	ssh.NewClient(c, chans, reqs).Close()
	return nil
}

// passwordAuth answers both password and keyboard-interactive prompts
// (sshd with PAM asks through the latter).
func passwordAuth(pw string) []ssh.AuthMethod {
	return []ssh.AuthMethod{ssh.Password(pw), ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
		ans := make([]string, len(questions))
		for i := range ans {
			ans[i] = pw
		}
		return ans, nil
	})}
}
