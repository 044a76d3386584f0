// Package bench is Keyhold's load generator: it measures signed
// GetSecretValue through the whole server path (as the account root and as a
// RAM user holding a 20-statement policy), the same load against a bare
// net/http handler returning the same body (the baseline), and durable
// PutSecretValue, and renders the report "keyhold bench" prints.
//
// Requests go through the public client package, so request signing and
// response decoding cost what they cost any Go application; the baseline
// uses the same client and transport (its handler ignores the signature), so
// the ratio between the two isolates what the server adds.
package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/server"
)

// Phase names.
const (
	PhaseGet     = "get"      // signed GetSecretValue through the server, as root
	PhaseGetUser = "get-user" // the same, as a RAM user with a 20-statement policy
	PhaseBare    = "bare"     // the same client against a bare net/http handler
	PhasePut     = "put"      // durable PutSecretValue, a new version each
)

var allPhases = []string{PhaseGet, PhaseGetUser, PhaseBare, PhasePut}

// Config configures Run. The zero value is usable: in-process server, 5 s
// phases at 1 and 32 clients, 1 KiB values.
type Config struct {
	Duration    time.Duration // per phase; default 5s
	Warmup      time.Duration // per phase, unrecorded; default Duration/10, at most 1s
	Clients     []int         // default 1, 32
	ValueSize   int           // secret value bytes; default 1024
	MaxRequests int           // per phase; default 1,000,000
	Phases      []string      // subset of get, get-user, bare, put; default all

	// Endpoint, when set, is a running server to measure instead of an
	// in-process one; AccessKeyID/AccessKeySecret are then required.
	// Secrets the run creates there are force-deleted at the end.
	Endpoint        string
	AccessKeyID     string
	AccessKeySecret string
	CACertPEM       []byte
	Insecure        bool

	// Progress receives one line per phase (e.g. os.Stderr); nil: none.
	Progress io.Writer
}

func (c *Config) defaults() error {
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.Warmup == 0 {
		c.Warmup = min(c.Duration/10, time.Second)
	}
	if len(c.Clients) == 0 {
		c.Clients = []int{1, 32}
	}
	for _, n := range c.Clients {
		if n < 1 || n > 4096 {
			return fmt.Errorf("bench: clients must be between 1 and 4096, not %d", n)
		}
	}
	if c.ValueSize == 0 {
		c.ValueSize = 1024
	}
	if c.ValueSize < 1 || c.ValueSize > 30720 {
		return fmt.Errorf("bench: value size must be between 1 and 30720 bytes, not %d", c.ValueSize)
	}
	if c.MaxRequests <= 0 {
		c.MaxRequests = 1_000_000
	}
	if len(c.Phases) == 0 {
		c.Phases = allPhases
	}
	for _, p := range c.Phases {
		if !slices.Contains(allPhases, p) {
			return fmt.Errorf("bench: unknown phase %q (want %s)", p, strings.Join(allPhases, ", "))
		}
	}
	if c.Endpoint != "" && (c.AccessKeyID == "" || c.AccessKeySecret == "") {
		return errors.New("bench: an endpoint needs an access key id and secret")
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return nil
}

func (c *Config) has(phase string) bool { return slices.Contains(c.Phases, phase) }

// Run starts (or connects to) the server, creates its secrets (and, for
// get-user, a RAM user), runs the phases in order — for each client count
// GetSecretValue as root, as the user, then the bare baseline; then
// PutSecretValue for each client count — and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	rep := &Report{
		Machine:   DescribeMachine(),
		Target:    "in-process server, plain HTTP on loopback",
		Duration:  cfg.Duration,
		Warmup:    cfg.Warmup,
		Clients:   cfg.Clients,
		ValueSize: cfg.ValueSize,
	}

	endpoint, id, secret := cfg.Endpoint, cfg.AccessKeyID, cfg.AccessKeySecret
	if endpoint == "" {
		srv, dir, err := startServer(ctx)
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		defer srv.Close()
		if endpoint, id, secret, err = readRootCredentials(dir); err != nil {
			return nil, err
		}
		endpoint = srv.HTTPURL
	} else {
		rep.Target = endpoint
	}

	maxClients := 1
	for _, n := range cfg.Clients {
		maxClients = max(maxClients, n)
	}
	hc, err := httpClient(maxClients, cfg.CACertPEM, cfg.Insecure)
	if err != nil {
		return nil, err
	}
	defer hc.CloseIdleConnections()
	kc, err := newClient(endpoint, id, secret, hc)
	if err != nil {
		return nil, err
	}

	prefix := "bench-" + randHex(4)
	value := randValue(cfg.ValueSize)
	var created []string
	defer func() {
		if cfg.Endpoint == "" {
			return // the temp data dir goes with the server
		}
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, name := range created {
			_, _ = kc.DeleteSecret(dctx, &client.DeleteSecretRequest{SecretName: name, ForceDeleteWithoutRecovery: true})
		}
	}()
	create := func(name string) error {
		_, err := kc.CreateSecret(ctx, &client.CreateSecretRequest{SecretName: name, SecretData: value, VersionId: "v0"})
		if err != nil {
			return fmt.Errorf("bench: create secret %s: %w", name, err)
		}
		created = append(created, name)
		return nil
	}

	if cfg.has(PhaseGet) || cfg.has(PhaseGetUser) || cfg.has(PhaseBare) {
		getName := prefix + "-get"
		if err := create(getName); err != nil {
			return nil, err
		}
		// The user reads the same secret with the same client code; only
		// the principal differs, so the ratio to root is the cost of
		// evaluating its policy (root is allowed without one).
		var uc *client.Client
		if cfg.has(PhaseGetUser) {
			u, err := createUser(ctx, kc, prefix, getName)
			if err != nil {
				return nil, err
			}
			if cfg.Endpoint != "" {
				defer u.remove(kc)
			}
			if uc, err = newClient(endpoint, u.keyID, u.keySecret, hc); err != nil {
				return nil, err
			}
		}
		// One real call, recorded on the wire, gives the baseline its body.
		body, hdr, err := captureGet(ctx, endpoint, id, secret, hc, getName)
		if err != nil {
			return nil, err
		}
		rep.BodyBytes = len(body)
		bare, bareURL, err := startBare(body, hdr)
		if err != nil {
			return nil, err
		}
		defer bare.Close()
		bc, err := newClient(bareURL, id, secret, hc)
		if err != nil {
			return nil, err
		}
		getOp := func(c *client.Client) Op {
			req := &client.GetSecretValueRequest{SecretName: getName}
			return func(ctx context.Context, _, _ int) error {
				r, err := c.GetSecretValue(ctx, req)
				if err == nil && len(r.SecretData) != len(value) {
					err = fmt.Errorf("GetSecretValue returned %d bytes, want %d", len(r.SecretData), len(value))
				}
				return err
			}
		}
		for _, n := range cfg.Clients {
			if cfg.has(PhaseGet) {
				rep.add(cfg.Progress, PhaseGet, "GetSecretValue (signed, full path)", cfg.load(n), RunLoad(ctx, cfg.load(n), getOp(kc)))
			}
			if cfg.has(PhaseGetUser) {
				rep.add(cfg.Progress, PhaseGetUser, "GetSecretValue as user, 20-stmt policy", cfg.load(n), RunLoad(ctx, cfg.load(n), getOp(uc)))
			}
			if cfg.has(PhaseBare) {
				rep.add(cfg.Progress, PhaseBare, "bare net/http, same body", cfg.load(n), RunLoad(ctx, cfg.load(n), getOp(bc)))
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}

	if cfg.has(PhasePut) {
		for _, n := range cfg.Clients {
			// One secret per client: concurrent writers never contend on
			// one secret, and each secret passes the 10 versions kept, so
			// pruning runs within the measured writes.
			names := make([]string, n)
			for w := range n {
				names[w] = fmt.Sprintf("%s-put%d-%d", prefix, n, w)
				if err := create(names[w]); err != nil {
					return nil, err
				}
			}
			op := func(ctx context.Context, w, seq int) error {
				_, err := kc.PutSecretValue(ctx, &client.PutSecretValueRequest{
					SecretName: names[w],
					VersionId:  "v" + itoa(seq+1),
					SecretData: value,
				})
				return err
			}
			rep.add(cfg.Progress, PhasePut, "PutSecretValue (durable, new version)", cfg.load(n), RunLoad(ctx, cfg.load(n), op))
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	rep.finish()
	return rep, nil
}

func (c *Config) load(clients int) Load {
	return Load{Clients: clients, Duration: c.Duration, MaxRequests: c.MaxRequests, Warmup: c.Warmup}
}

// startServer starts a server in a fresh temp dir, plain HTTP on loopback
// only, logging nothing.
func startServer(ctx context.Context) (*server.Server, string, error) {
	dir, err := os.MkdirTemp("", "keyhold-bench-")
	if err != nil {
		return nil, "", err
	}
	srv, err := server.Start(ctx, server.Config{
		DataDir: dir,
		Listen:  "127.0.0.1:0",
		Logger:  slog.New(slog.DiscardHandler),
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("bench: start server: %w", err)
	}
	return srv, dir, nil
}

func readRootCredentials(dir string) (endpoint, id, secret string, err error) {
	raw, err := os.ReadFile(filepath.Join(dir, "root-credentials.json"))
	if err != nil {
		return "", "", "", fmt.Errorf("bench: %w", err)
	}
	var c struct {
		ID       string `json:"access_key_id"`
		Secret   string `json:"access_key_secret"`
		Endpoint string `json:"endpoint"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", "", "", fmt.Errorf("bench: root-credentials.json: %w", err)
	}
	return c.Endpoint, c.ID, c.Secret, nil
}

// httpClient is the one transport every client of the run shares: keep-alive
// with enough idle connections per host that no client count reconnects.
func httpClient(maxClients int, caPEM []byte, insecure bool) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.MaxIdleConns = 2*maxClients + 16
	tr.MaxIdleConnsPerHost = maxClients + 8
	tr.MaxConnsPerHost = 0
	tr.DisableCompression = true
	if len(caPEM) > 0 || insecure {
		tlsCfg, err := tlsConfig(caPEM, insecure)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tlsCfg
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

func newClient(endpoint, id, secret string, hc *http.Client) (*client.Client, error) {
	return client.New(client.Config{
		Endpoint:        endpoint,
		AccessKeyID:     id,
		AccessKeySecret: secret,
		HTTPClient:      hc,
		ReadRetries:     -1, // an error is counted, never hidden by a retry
		UserAgent:       "keyhold-bench",
	})
}

// captureGet makes one GetSecretValue through the public client and returns
// the response body and headers exactly as the server sent them.
func captureGet(ctx context.Context, endpoint, id, secret string, hc *http.Client, name string) ([]byte, http.Header, error) {
	rec := &recorder{next: hc.Transport}
	c, err := newClient(endpoint, id, secret, &http.Client{Transport: rec, Timeout: hc.Timeout})
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: name}); err != nil {
		return nil, nil, fmt.Errorf("bench: GetSecretValue %s: %w", name, err)
	}
	return rec.body, rec.header, nil
}

type recorder struct {
	next   http.RoundTripper
	body   []byte
	header http.Header
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	r.body, r.header = b, resp.Header.Clone()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// startBare serves body (with the real response's content headers) for
// every request on a loopback port: no parsing, no signature check. It
// reads the request body, as any handler must to reuse the connection.
func startBare(body []byte, hdr http.Header) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	ct := hdr.Get("Content-Type")
	if ct == "" {
		ct = "application/json;charset=utf-8"
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		wh := w.Header()
		wh.Set("Content-Type", ct)
		wh.Set("Cache-Control", "no-store")
		wh.Set("x-acs-request-id", "00000000-0000-4000-8000-000000000000")
		_, _ = w.Write(body)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, "http://" + ln.Addr().String(), nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randValue is n printable bytes (a text secret of exactly n bytes).
func randValue(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func itoa(n int) string { return fmt.Sprint(n) }

// DescribeMachine reports what the figures were measured on.
func DescribeMachine() Machine {
	m := Machine{GoVersion: runtime.Version(), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, NumCPU: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && k == "MemTotal" {
				m.Memory = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
