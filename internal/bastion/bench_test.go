package bastion_test

import (
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Benchmarks compare the bastion with a direct OpenSSH connection to the
// same sshd, with the same clients: session set-up (ssh HOST true) and an
// scp upload of 100 MiB. Each iteration runs the direct and the bastion
// variant back to back, so that load from elsewhere on the machine hits
// both alike; the metrics are per variant and their ratio. Results go in
// docs/BENCHMARKS.md.

func benchBase() []string {
	return []string{"-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "LogLevel=ERROR"}
}

func splitAddr(a string) (string, string) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == ':' {
			return a[:i], a[i+1:]
		}
	}
	return a, ""
}

func timed(b *testing.B, name string, args ...string) time.Duration {
	b.Helper()
	t0 := time.Now()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s: %v: %s", name, err, out)
	}
	return time.Since(t0)
}

func BenchmarkSetup(b *testing.B) {
	e := newEnv(b)
	host, port := splitAddr(e.sshd.Addr)
	direct := append(benchBase(), "-i", e.keyUserKey, "-p", port, e.keyUser.Name+"@"+host, "true")
	via := append(benchBase(), "-i", e.aliceKey, "-p", e.port, e.keyUser.Name+"@"+e.hostID+"@127.0.0.1", "true")
	var d, v time.Duration
	for b.Loop() {
		d += timed(b, "ssh", direct...)
		v += timed(b, "ssh", via...)
	}
	n := float64(b.N)
	b.ReportMetric(float64(d.Milliseconds())/n, "direct-ms/op")
	b.ReportMetric(float64(v.Milliseconds())/n, "bastion-ms/op")
	b.ReportMetric(float64(v)/float64(d), "bastion/direct")
}

func BenchmarkSCP100MiB(b *testing.B) {
	e := newEnv(b)
	src := filepath.Join(e.tmp, "100m.bin")
	data := make([]byte, 100<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		b.Fatal(err)
	}
	host, port := splitAddr(e.sshd.Addr)
	direct := append(benchBase(), "-i", e.keyUserKey, "-P", port, src, e.keyUser.Name+"@"+host+":scp.bin")
	via := append(benchBase(), "-i", e.aliceKey, "-P", e.port, src, e.keyUser.Name+"@"+e.hostID+"@127.0.0.1:scp.bin")
	var d, v time.Duration
	for b.Loop() {
		d += timed(b, "scp", direct...)
		v += timed(b, "scp", via...)
	}
	mb := float64(len(data)) / 1e6 * float64(b.N)
	b.ReportMetric(mb/d.Seconds(), "direct-MB/s")
	b.ReportMetric(mb/v.Seconds(), "bastion-MB/s")
	b.ReportMetric(d.Seconds()/v.Seconds(), "bastion/direct-throughput")
}
