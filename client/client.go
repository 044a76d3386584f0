// Package client is Keyhold's public Go client. It speaks the Alibaba Cloud
// KMS RPC API (2016-01-20) and Keyhold's own actions over the same transport,
// signing every request with acssign (ACS3-HMAC-SHA256 by default, or V1).
//
// It depends only on the standard library and acssign, never on Keyhold's
// server internals, so that applications, the CLI and the bastion talk to
// the server exactly as any third-party program would.
//
// Nothing here logs; a secret value only ever travels in a request body or a
// response struct handed back to the caller.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyhold/keyhold/acssign"
)

// API versions understood by a Keyhold server.
const (
	VersionKMS     = "2016-01-20"
	VersionKeyhold = "2026-11-01"
)

// Signature schemes for Config.SignatureScheme.
const (
	SchemeACS3 = "ACS3"
	SchemeV1   = "V1"
)

// DefaultRegionID is the region a Keyhold deployment answers to unless
// configured otherwise; it matches the SDKs' usual default.
const DefaultRegionID = "cn-hangzhou"

// maxResponseBytes bounds what we read from a server so that a broken or
// hostile endpoint cannot exhaust memory.
const maxResponseBytes = 16 << 20

// Config configures a Client.
type Config struct {
	// Endpoint is "https://host:port", "http://host:port" or a bare
	// "host:port" (https is assumed).
	Endpoint        string
	AccessKeyID     string
	AccessKeySecret string
	// RegionId is sent as the RegionId parameter; default cn-hangzhou.
	RegionId string
	// HTTPClient, when set, is used as is; CACertPEM and InsecureSkipVerify
	// must then be left empty (configure its transport instead).
	HTTPClient *http.Client
	// CACertPEM pins TLS verification to the deployment CA (only these
	// certificates are trusted).
	CACertPEM []byte
	// InsecureSkipVerify disables certificate verification (tests only).
	InsecureSkipVerify bool
	// SignatureScheme is "ACS3" (default) or "V1".
	SignatureScheme string
	// Timeout bounds each HTTP attempt when HTTPClient is nil; default 30s.
	Timeout time.Duration
	// ReadRetries is how often an idempotent read (Get*, Describe*, List*)
	// is retried after a connection error; 0 means the default of 2,
	// a negative value disables retries. Writes are never retried, since the
	// server may have applied them.
	ReadRetries int
	// UserAgent is sent in User-Agent; default "keyhold-go-client".
	UserAgent string
}

// Client calls a Keyhold (or KMS-compatible) endpoint. It is safe for
// concurrent use.
type Client struct {
	url     string
	host    string
	akID    string
	akSec   string
	region  string
	scheme  string
	hc      *http.Client
	retries int
	ua      string
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	if cfg.Endpoint == "" {
		return nil, errors.New("client: Endpoint is required")
	}
	if cfg.AccessKeyID == "" || cfg.AccessKeySecret == "" {
		return nil, errors.New("client: AccessKeyID and AccessKeySecret are required")
	}
	u, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	c := &Client{
		url:    u.String(),
		host:   u.Host,
		akID:   cfg.AccessKeyID,
		akSec:  cfg.AccessKeySecret,
		region: cfg.RegionId,
		ua:     cfg.UserAgent,
	}
	if c.region == "" {
		c.region = DefaultRegionID
	}
	if c.ua == "" {
		c.ua = "keyhold-go-client"
	}
	switch strings.ToUpper(cfg.SignatureScheme) {
	case "", SchemeACS3, acssign.AlgorithmACS3:
		c.scheme = SchemeACS3
	case SchemeV1, "HMAC-SHA1":
		c.scheme = SchemeV1
	default:
		return nil, fmt.Errorf("client: unknown SignatureScheme %q (want ACS3 or V1)", cfg.SignatureScheme)
	}
	switch {
	case cfg.ReadRetries == 0:
		c.retries = 2
	case cfg.ReadRetries > 0:
		c.retries = cfg.ReadRetries
	}
	if cfg.HTTPClient != nil {
		if len(cfg.CACertPEM) > 0 || cfg.InsecureSkipVerify {
			return nil, errors.New("client: set CACertPEM/InsecureSkipVerify on your HTTPClient's transport, not in Config")
		}
		c.hc = cfg.HTTPClient
		return c, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a secrets endpoint is addressed directly, never through an ambient proxy
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(cfg.CACertPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CACertPEM) {
			return nil, errors.New("client: CACertPEM holds no PEM certificate")
		}
		tlsCfg.RootCAs = pool
	}
	tlsCfg.InsecureSkipVerify = cfg.InsecureSkipVerify
	tr.TLSClientConfig = tlsCfg
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	c.hc = &http.Client{Transport: tr, Timeout: timeout}
	return c, nil
}

func parseEndpoint(ep string) (*url.URL, error) {
	if !strings.Contains(ep, "://") {
		ep = "https://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil {
		return nil, fmt.Errorf("client: bad Endpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: Endpoint scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: Endpoint %q has no host", ep)
	}
	// RPC calls always go to "/"; a path in the endpoint would be signed
	// by us but not by other clients, so refuse it rather than guess.
	if u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("client: Endpoint must not have a path (%q)", u.Path)
	}
	u.Path, u.RawQuery, u.Fragment = "/", "", ""
	return u, nil
}

// Endpoint returns the normalised endpoint URL.
func (c *Client) Endpoint() string { return c.url }

// AccessKeyID returns the access key id the client signs with.
func (c *Client) AccessKeyID() string { return c.akID }

type ctxKey int

const onBehalfKey ctxKey = 0

// WithOnBehalfOf returns a context whose calls carry
// x-keyhold-on-behalf-of: who (e.g. "operator/session"); the server records
// it in the audit trail next to the caller. The header is signed.
func WithOnBehalfOf(ctx context.Context, who string) context.Context {
	return context.WithValue(ctx, onBehalfKey, who)
}

// Call invokes action of the given API version with params as a form body
// and decodes the JSON response into out (which may be nil). A response
// with an error status becomes *Error.
func (c *Client) Call(ctx context.Context, version, action string, params map[string]string, out any) error {
	if version == "" || action == "" {
		return errors.New("client: version and action are required")
	}
	p := make(map[string]string, len(params)+10)
	for k, v := range params {
		p[k] = v
	}
	if _, ok := p["RegionId"]; !ok {
		p["RegionId"] = c.region
	}
	attempts := 1
	if isRead(action) {
		attempts += c.retries
	}
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(100<<i) * time.Millisecond):
			}
		}
		var retry bool
		retry, err = c.do(ctx, version, action, p, out)
		if err == nil || !retry {
			return err
		}
	}
	return err
}

// isRead reports whether an action only reads, so that repeating it after a
// lost connection cannot change anything.
func isRead(action string) bool {
	for _, p := range []string{"Get", "Describe", "List"} {
		if strings.HasPrefix(action, p) {
			return true
		}
	}
	return false
}

// do makes one attempt; retry is true only for transport failures.
func (c *Client) do(ctx context.Context, version, action string, params map[string]string, out any) (retry bool, err error) {
	req, err := c.newRequest(ctx, version, action, params)
	if err != nil {
		return false, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		return true, fmt.Errorf("client: %s: %w", action, err)
	}
	defer resp.Body.Close()
	body, err := readBody(resp)
	if err != nil {
		return false, fmt.Errorf("client: %s: reading response: %w", action, err)
	}
	if len(body) > maxResponseBytes {
		return false, fmt.Errorf("client: %s: response larger than %d bytes", action, maxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, decodeError(resp.StatusCode, body)
	}
	if out == nil {
		return false, nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		// The body is not echoed: a successful response may hold a secret.
		return false, fmt.Errorf("client: %s: decoding response: %w", action, err)
	}
	return false, nil
}

// readBody reads at most maxResponseBytes+1 bytes into a buffer sized from
// Content-Length when the server sent one, which spares io.ReadAll's
// grow-and-copy steps on every call.
func readBody(resp *http.Response) ([]byte, error) {
	r := io.LimitReader(resp.Body, maxResponseBytes+1)
	n := resp.ContentLength
	if n < 0 || n > maxResponseBytes {
		return io.ReadAll(r)
	}
	buf := make([]byte, n+1) // +1: a body longer than announced is not cut silently
	m, err := io.ReadFull(r, buf)
	switch {
	case err == nil: // more than Content-Length: read the rest the slow way
		rest, err := io.ReadAll(r)
		return append(buf, rest...), err
	case m == int(n) && (err == io.EOF || err == io.ErrUnexpectedEOF):
		return buf[:m], nil
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return nil, io.ErrUnexpectedEOF // shorter than announced
	}
	return nil, err
}

func (c *Client) newRequest(ctx context.Context, version, action string, params map[string]string) (*http.Request, error) {
	form := url.Values{}
	var body []byte
	if c.scheme == SchemeV1 {
		p := make(map[string]string, len(params)+9)
		for k, v := range params {
			p[k] = v
		}
		p["Action"] = action
		p["Version"] = version
		p["Format"] = "JSON"
		p["AccessKeyId"] = c.akID
		p["SignatureMethod"] = acssign.SignatureMethodV1
		p["SignatureVersion"] = acssign.SignatureVersionV1
		p["SignatureNonce"] = acssign.NewNonce()
		p["Timestamp"] = time.Now().UTC().Format(acssign.TimeFormat)
		p["Signature"] = acssign.SignV1(http.MethodPost, p, c.akSec)
		for k, v := range p {
			form.Set(k, v)
		}
		body = []byte(form.Encode())
	} else {
		for k, v := range params {
			form.Set(k, v)
		}
		body = []byte(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Host = c.host
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if who, _ := ctx.Value(onBehalfKey).(string); who != "" {
		req.Header.Set("x-keyhold-on-behalf-of", who)
	}
	if c.scheme == SchemeACS3 {
		req.Header.Set(acssign.HeaderAction, action)
		req.Header.Set(acssign.HeaderVersion, version)
		acssign.SignRequestACS3(req, body, c.akID, c.akSec)
	}
	return req, nil
}
