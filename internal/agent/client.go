package agent

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold/internal/agentapi/wire"
)

// checkServerURL refuses plain HTTP to anything but loopback: commands
// carry credentials.
func checkServerURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("--server %q is not a URL", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			return nil, fmt.Errorf("refusing plain http:// to %s: commands carry credentials; use the server's https:// URL", host)
		}
	default:
		return nil, fmt.Errorf("--server must be an https:// URL")
	}
	if u.User != nil {
		// URLs are logged (a switch between replicas names them).
		return nil, fmt.Errorf("--server %s must not carry credentials", u.Redacted())
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return u, nil
}

// pinnedTLS trusts only the CA whose certificate hashes to pin (found in
// the chain the server presents, or given as ca), and checks the server
// name against it.
func pinnedTLS(serverName, pin string, ca *x509.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is done below against the pinned CA alone, not the
		// system roots.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("server presented no certificate")
			}
			root := ca
			if root == nil {
				for _, c := range cs.PeerCertificates {
					if wire.CAPin(c.Raw) == pin {
						root = c
						break
					}
				}
			}
			if root == nil || wire.CAPin(root.Raw) != pin {
				return errors.New("the server's certificate is not issued by the CA pinned in the enrollment token")
			}
			roots := x509.NewCertPool()
			roots.AddCert(root)
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: serverName})
			return err
		},
	}
}

// caFromChain returns the pinned CA certificate from a TLS connection
// state, to be stored with the identity.
func caFromChain(cs *tls.ConnectionState, pin string) *x509.Certificate {
	if cs == nil {
		return nil
	}
	for _, c := range cs.PeerCertificates {
		if wire.CAPin(c.Raw) == pin {
			return c
		}
	}
	return nil
}

func encodeCA(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func decodeCA(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// parseServers turns the --server values (each one URL or several
// separated by commas) into the replica list, in the order given, without
// duplicates. Every URL passes checkServerURL.
func parseServers(raw []string) ([]*url.URL, error) {
	var out []*url.URL
	seen := map[string]bool{}
	for _, r := range raw {
		for _, s := range strings.Split(r, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				return nil, fmt.Errorf("--server %q has an empty entry: give each replica's URL once, separated by commas or in repeated --server flags", r)
			}
			u, err := checkServerURL(s)
			if err != nil {
				return nil, err
			}
			if !seen[u.String()] {
				seen[u.String()] = true
				out = append(out, u)
			}
		}
	}
	return out, nil
}

func urlStrings(us []*url.URL) []string {
	s := make([]string, len(us))
	for i, u := range us {
		s[i] = u.String()
	}
	return s
}

// endpoint is one replica: its URL and an HTTP client whose TLS check
// verifies that URL's own host name under the one pinned CA.
type endpoint struct {
	base *url.URL
	http *http.Client
}

// apiClient talks the agent protocol to one replica at a time and moves to
// the next when the current one cannot answer (see failover).
type apiClient struct {
	eps    []endpoint
	log    *slog.Logger
	hostID string
	key    ed25519.PrivateKey
	now    func() time.Time

	mu  sync.Mutex
	cur int // index into eps of the replica in use
}

func newAPIClient(bases []*url.URL, pin string, ca *x509.Certificate, log *slog.Logger) *apiClient {
	c := &apiClient{log: log, now: time.Now}
	for _, b := range bases {
		c.eps = append(c.eps, endpoint{base: b, http: newHTTPClient(b, pin, ca)})
	}
	return c
}

// closeIdle drops every idle connection (after a failed round, so that the
// next one dials afresh).
func (c *apiClient) closeIdle() {
	for _, ep := range c.eps {
		ep.http.CloseIdleConnections()
	}
}

// current is the index and URL of the replica in use.
func (c *apiClient) current() (int, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur, c.eps[c.cur].base.String()
}

// switchFrom moves to the replica after idx, unless another request
// already moved on (the poll and the drift loop fail together).
func (c *apiClient) switchFrom(idx int, cause error) {
	if len(c.eps) < 2 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != idx {
		return
	}
	c.cur = (idx + 1) % len(c.eps)
	c.log.Warn("agent: switching to server "+c.eps[c.cur].base.String(), "from", c.eps[idx].base.String(), "err", cause)
}

// transportError is a request that got no complete answer: the connection
// failed, the TLS handshake or the pin check failed, or the answer broke off.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// failover reports whether another replica may answer where this one did
// not: no complete answer, or a gateway or "unavailable" status (a replica
// that lost its database answers 503). Any other answer is the
// deployment's own (the replicas share one database) and would be the same
// on every replica.
func failover(err error) bool {
	var te *transportError
	if errors.As(err, &te) {
		return true
	}
	var se *statusError
	if errors.As(err, &se) {
		switch se.Status {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
	}
	return false
}

func newHTTPClient(base *url.URL, pin string, ca *x509.Certificate) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil, // the agent talks to its server directly
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // long-poll: bounded by the request context
		MaxIdleConns:          2,
		IdleConnTimeout:       90 * time.Second,
	}
	if base.Scheme == "https" {
		tr.TLSClientConfig = pinnedTLS(base.Hostname(), pin, ca)
	}
	return &http.Client{Transport: tr}
}

// probe reports whether any of bases presents a certificate under the
// pinned CA (a TLS handshake, nothing sent), and whether any answered at
// all. Plain http:// (loopback only) has no certificate to check and
// counts as not answered.
func probe(ctx context.Context, bases []*url.URL, pin string, ca *x509.Certificate) (verified, answered bool) {
	for _, b := range bases {
		if b.Scheme != "https" {
			continue
		}
		host := b.Host
		if b.Port() == "" {
			host = net.JoinHostPort(b.Hostname(), "443")
		}
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := (&net.Dialer{}).DialContext(dctx, "tcp", host)
		if err != nil {
			cancel()
			continue
		}
		answered = true
		tc := tls.Client(conn, pinnedTLS(b.Hostname(), pin, ca))
		err = tc.HandshakeContext(dctx)
		tc.Close()
		cancel()
		if err == nil {
			return true, true
		}
	}
	return false, answered
}

// statusError is a non-2xx answer from the server.
type statusError struct {
	Status int
	Code   string
	Msg    string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Msg)
}

// revoked reports whether the server says this identity is no longer valid.
func revoked(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.Status == http.StatusForbidden && (se.Code == "Forbidden.HostRemoved")
}

// do sends one request to the replica in use and, when it cannot answer
// (failover), to each other replica in turn, once per call: a full round
// that fails returns the error and the caller backs off. A request that a
// replica may have carried out before the connection broke is safe to send
// again: polls only fetch, and the server keeps the first report of a
// command's result.
func (c *apiClient) do(ctx context.Context, path string, in, out any, signed bool) (*http.Response, error) {
	start, _ := c.current()
	var errs []error
	for i := range c.eps {
		idx := (start + i) % len(c.eps)
		resp, err := c.doOne(ctx, c.eps[idx], path, in, out, signed)
		if err == nil || !failover(err) || ctx.Err() != nil {
			return resp, err
		}
		if len(c.eps) == 1 {
			return resp, err
		}
		errs = append(errs, fmt.Errorf("%s: %w", c.eps[idx].base, err))
		c.switchFrom(idx, err)
	}
	return nil, fmt.Errorf("no server answered: %w", errors.Join(errs...))
}

func (c *apiClient) doOne(ctx context.Context, ep endpoint, path string, in, out any, signed bool) (*http.Response, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	u := *ep.base
	u.Path = ep.base.Path + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if signed {
		ts := c.now().UTC().Format(time.RFC3339)
		nonce := wire.NewNonce()
		bh := wire.BodyHash(body)
		sig := ed25519.Sign(c.key, []byte(wire.StringToSign(http.MethodPost, u.Path, ts, nonce, bh, c.hostID)))
		req.Header.Set(wire.HeaderHostID, c.hostID)
		req.Header.Set(wire.HeaderTimestamp, ts)
		req.Header.Set(wire.HeaderNonce, nonce)
		req.Header.Set(wire.HeaderBodyHash, bh)
		req.Header.Set(wire.HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	}
	resp, err := ep.http.Do(req)
	clear(body)
	if err != nil {
		return nil, &transportError{err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp, &transportError{err}
	}
	defer clear(data)
	if resp.StatusCode/100 != 2 {
		var e wire.ErrorResponse
		json.Unmarshal(data, &e)
		return resp, &statusError{Status: resp.StatusCode, Code: e.Code, Msg: e.Message}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp, fmt.Errorf("server answer is not valid JSON: %w", err)
		}
	}
	return resp, nil
}
