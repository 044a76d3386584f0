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
	"net"
	"net/http"
	"net/url"
	"strings"
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

// apiClient talks the agent protocol.
type apiClient struct {
	base   *url.URL
	http   *http.Client
	hostID string
	key    ed25519.PrivateKey
	now    func() time.Time
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

func (c *apiClient) do(ctx context.Context, path string, in, out any, signed bool) (*http.Response, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	u := *c.base
	u.Path = c.base.Path + path
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
	resp, err := c.http.Do(req)
	clear(body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp, err
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
