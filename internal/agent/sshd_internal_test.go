package agent

import "testing"

func TestParseSettings(t *testing.T) {
	base := "passwordauthentication yes\npubkeyauthentication yes\nusepam no\nauthorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2\nhostkey /etc/ssh/k\n"
	cases := []struct {
		name, extra, user string
		pw, key           bool
	}{
		{"plain user", "permitrootlogin yes\n", "alice", true, true},
		{"root yes", "permitrootlogin yes\n", "root", true, true},
		{"root prohibit-password", "permitrootlogin prohibit-password\n", "root", false, true},
		{"root without-password", "permitrootlogin without-password\n", "root", false, true},
		{"root no", "permitrootlogin no\n", "root", false, false},
		{"allowusers excludes", "allowusers bob carol@10.0.0.1\n", "alice", false, false},
		{"allowusers pattern", "allowusers al*\n", "alice", true, true},
		{"denyusers", "denyusers alice\n", "alice", false, false},
		{"two factors needed", "authenticationmethods publickey,password\n", "alice", false, false},
		{"key alone allowed", "authenticationmethods publickey,password publickey\n", "alice", false, true},
		{"no passwords", "passwordauthentication no\n", "alice", false, true},
	}
	for _, c := range cases {
		// Later lines win in the map only when first: put overrides first.
		s := parseSettings([]byte(c.extra+base), c.user)
		if s.PasswordLogin != c.pw || s.PubkeyLogin != c.key {
			t.Errorf("%s: password %v key %v, want %v %v", c.name, s.PasswordLogin, s.PubkeyLogin, c.pw, c.key)
		}
		if s.AuthorizedKeysFile != ".ssh/authorized_keys" || s.UsePAM || len(s.HostKeys) != 1 {
			t.Errorf("%s: %+v", c.name, s)
		}
	}
}

func TestCheckServerURL(t *testing.T) {
	for _, ok := range []string{"https://keyhold.example:8443", "http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:80"} {
		if _, err := checkServerURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://10.0.0.1:8080", "http://keyhold.example", "ftp://x", "keyhold.example:8443", ""} {
		if _, err := checkServerURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
