package bastion_test

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Benchmarks compare the bastion with a direct OpenSSH connection to the
// same sshd, with the same clients: session set-up (ssh HOST true) and an
// scp upload of 100 MiB. Results go in docs/BENCHMARKS.md.

func benchSSH(b *testing.B, e *env, direct bool, args ...string) {
	b.Helper()
	base := []string{"-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "LogLevel=ERROR"}
	if direct {
		host, port := splitAddr(e.sshd.Addr)
		base = append(base, "-i", e.keyUserKey, "-p", port, e.keyUser.Name+"@"+host)
	} else {
		base = append(base, "-i", e.aliceKey, "-p", e.port, e.keyUser.Name+"@"+e.hostID+"@127.0.0.1")
	}
	if out, err := exec.Command("ssh", append(base, args...)...).CombinedOutput(); err != nil {
		b.Fatalf("ssh: %v: %s", err, out)
	}
}

func splitAddr(a string) (string, string) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == ':' {
			return a[:i], a[i+1:]
		}
	}
	return a, ""
}

func BenchmarkSetup(b *testing.B) {
	e := newEnv(b)
	for _, m := range []struct {
		name   string
		direct bool
	}{{"direct", true}, {"bastion", false}} {
		b.Run(m.name, func(b *testing.B) {
			for b.Loop() {
				benchSSH(b, e, m.direct, "true")
			}
		})
	}
}

func BenchmarkSCP100MiB(b *testing.B) {
	e := newEnv(b)
	src := filepath.Join(e.tmp, "100m.bin")
	data := make([]byte, 100<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		b.Fatal(err)
	}
	for _, m := range []struct {
		name   string
		direct bool
	}{{"direct", true}, {"bastion", false}} {
		b.Run(m.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			base := []string{"-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
				"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "LogLevel=ERROR"}
			var dst string
			if m.direct {
				host, port := splitAddr(e.sshd.Addr)
				base = append(base, "-i", e.keyUserKey, "-P", port)
				dst = e.keyUser.Name + "@" + host + ":scp.bin"
			} else {
				base = append(base, "-i", e.aliceKey, "-P", e.port)
				dst = e.keyUser.Name + "@" + e.hostID + "@127.0.0.1:scp.bin"
			}
			for b.Loop() {
				if out, err := exec.Command("scp", append(base, src, dst)...).CombinedOutput(); err != nil {
					b.Fatalf("scp: %v: %s", err, out)
				}
			}
		})
	}
}
