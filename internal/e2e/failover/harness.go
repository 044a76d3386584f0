// Package failover holds end-to-end tests that run Keyhold as an operator
// does: the real `keyhold` binary as separate processes (three server
// replicas on one PostgreSQL, an agent), a real sshd, and faults done with
// signals (kill -9, SIGSTOP). They talk to the deployment only through the
// public client and the CLI; this file is their process harness.
package failover

import (
	"bufio"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/testutil/logbuf"
)

// BuildBinary builds cmd/keyhold once into the test's temporary directory.
func BuildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "keyhold")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/keyhold/keyhold/cmd/keyhold").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// LogBuffer collects a process's output; safe for concurrent use.
type LogBuffer = logbuf.Buffer

// Proc is a child process in its own process group, killed (the whole
// group, by its id) when the test ends, whatever happens.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  *LogBuffer
	Done chan struct{} // closed when it has exited
	Err  error         // its exit status, once Done is closed
	// lines receives each output line until the process exits (for
	// readiness checks); nil when not wanted.
	lines chan string
}

// Start runs bin with args. Its stdout and stderr go to Log.
func Start(t testing.TB, name, bin string, args ...string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	pw.Close()
	p := &Proc{Name: name, Cmd: cmd, Log: &LogBuffer{}, Done: make(chan struct{}), lines: make(chan string, 256)}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.Log.Write([]byte(line + "\n"))
			select {
			case p.lines <- line:
			default: // nobody is waiting for lines any more
			}
		}
		io.Copy(io.Discard, pr)
		pr.Close()
	}()
	go func() {
		p.Err = cmd.Wait()
		<-copied
		close(p.Done)
	}()
	t.Cleanup(func() {
		// The group: an agent's chpasswd or sshd -T child goes too.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-p.Done
	})
	return p
}

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.Done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process itself (not its group).
func (p *Proc) Signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: signal %v: %v", p.Name, sig, err)
	}
}

// KillAndWait sends SIGKILL to the process (kill -9) and waits until it is
// gone.
func (p *Proc) KillAndWait(t testing.TB) {
	t.Helper()
	p.Signal(t, syscall.SIGKILL)
	select {
	case <-p.Done:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not exit after SIGKILL", p.Name)
	}
}

var listeningRE = regexp.MustCompile(`url=(https?://127\.0\.0\.1:\d+)`)

// Server is a running `keyhold server`.
type Server struct {
	*Proc
	ID       string
	DataDir  string
	HTTPURL  string
	HTTPSURL string
}

// StartServer runs `keyhold server` with the given id and data directory,
// listening on free loopback ports, plus extra flags, and waits until it
// logs both listener URLs.
func StartServer(t testing.TB, bin, id, dataDir string, extra ...string) *Server {
	t.Helper()
	args := append([]string{"server", "--replica-id", id, "--data-dir", dataDir,
		"--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0"}, extra...)
	s := &Server{Proc: Start(t, id, bin, args...), ID: id, DataDir: dataDir}
	deadline := time.After(60 * time.Second)
	for s.HTTPURL == "" || s.HTTPSURL == "" {
		select {
		case line := <-s.lines:
			if m := listeningRE.FindStringSubmatch(line); m != nil && strings.Contains(line, "listening") {
				if strings.HasPrefix(m[1], "https://") {
					s.HTTPSURL = m[1]
				} else {
					s.HTTPURL = m[1]
				}
			}
		case <-s.Done:
			t.Fatalf("%s exited while starting: %v\n%s", id, s.Err, s.Log.String())
		case <-deadline:
			t.Fatalf("%s did not log its listener URLs:\n%s", id, s.Log.String())
		}
	}
	return s
}

// Balancer is a TCP load balancer on a loopback port, as docs/ha.md puts
// in front of the replicas: each connection goes to the first backend, in
// order, that accepts it, so a dead replica is skipped.
type Balancer struct {
	Addr string
	ln   net.Listener
}

// StartBalancer forwards to the host:port addresses backends returns at
// each connection.
func StartBalancer(t testing.TB, backends func() []string) *Balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Balancer{Addr: ln.Addr().String(), ln: ln}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.Close()
				var out net.Conn
				for _, addr := range backends() {
					if out, err = net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
						break
					}
				}
				if out == nil {
					return
				}
				defer out.Close()
				track(in, true)
				track(out, true)
				defer track(in, false)
				defer track(out, false)
				done := make(chan struct{}, 2)
				pipe := func(dst, src net.Conn) {
					io.Copy(dst, src)
					// Half-close is not enough: a dead backend must reset
					// the client's connection, as a real balancer does.
					dst.Close()
					src.Close()
					done <- struct{}{}
				}
				go pipe(out, in)
				go pipe(in, out)
				<-done
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return b
}

// HostPort strips the scheme of a listener URL.
func HostPort(url string) string {
	_, hp, _ := strings.Cut(url, "://")
	return hp
}
