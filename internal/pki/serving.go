package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ServingValidity is the lifetime of a serving certificate issued by the CA.
const ServingValidity = 365 * 24 * time.Hour

// Serving certificate files, relative to the data directory.
const (
	ServingCertFile = "tls/server.crt"
	ServingKeyFile  = "tls/server.key"
)

// DefaultHosts are the names a serving certificate covers unless told
// otherwise: the loopback addresses, localhost and this machine's host name.
func DefaultHosts() []string {
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if h, err := os.Hostname(); err == nil && h != "" && !slices.Contains(hosts, strings.ToLower(h)) {
		hosts = append(hosts, h)
	}
	return hosts
}

// IssueServerCert issues a serving certificate for hosts (IP addresses
// become IP SANs, anything else DNS SANs) with a fresh ECDSA P-256 key.
// Nothing is stored.
func (ca *CA) IssueServerCert(hosts []string, validity time.Duration) (tls.Certificate, error) {
	ips, names, err := splitHosts(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	if validity <= 0 {
		validity = ServingValidity
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: generate serving key: %w", err)
	}
	cn := "keyhold"
	if len(names) > 0 {
		cn = names[0]
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		// A leaf outliving its issuer would fail verification anyway.
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{Organization: []string{"Keyhold"}, CommonName: cn},
		NotBefore:    now.Add(-5 * time.Minute), // clock skew between server and clients
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: issue serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: parse serving certificate: %w", err)
	}
	return tls.Certificate{
		Certificate: [][]byte{der, ca.cert.Raw},
		PrivateKey:  key,
		Leaf:        leaf,
	}, nil
}

// ServingCertificate returns this replica's serving certificate issued by
// ca, kept in dataDir/tls/server.crt and server.key (mode 0600).
//
// Why files rather than a fresh certificate in memory at each start: the
// certificate a client saw stays the same across restarts (some clients pin
// the leaf), and an operator can inspect it. The files are replica-local and
// only a cache: a certificate is reissued when it is missing or unreadable,
// not issued by the current CA, within the last third of its lifetime, or
// when its SANs differ from hosts (so a host removed from the list stops
// being served).
func ServingCertificate(ca *CA, dataDir string, hosts []string) (tls.Certificate, error) {
	certFile := filepath.Join(dataDir, ServingCertFile)
	keyFile := filepath.Join(dataDir, ServingKeyFile)
	if c, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil && ca.servingCertOK(&c, hosts) {
		return c, nil
	}
	c, err := ca.IssueServerCert(hosts, ServingValidity)
	if err != nil {
		return tls.Certificate{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: encode serving key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	clear(keyDER)
	var certPEM []byte
	for _, der := range c.Certificate {
		certPEM = append(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: create TLS directory: %w", err)
	}
	// Key first: a crash between the two writes leaves a mismatched pair,
	// which the next start detects and replaces.
	err = writeFileAtomic(keyFile, keyPEM, 0o600)
	clear(keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: write serving key: %w", err)
	}
	if err := writeFileAtomic(certFile, certPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: write serving certificate: %w", err)
	}
	return c, nil
}

// servingCertOK reports whether a stored certificate may be reused.
func (ca *CA) servingCertOK(c *tls.Certificate, hosts []string) bool {
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return false
		}
		c.Leaf = leaf
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:     ca.Pool(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil || time.Now().After(renewAt(leaf)) {
		return false
	}
	ips, names, err := splitHosts(hosts)
	if err != nil {
		return false
	}
	return sameIPs(ips, leaf.IPAddresses) && sameNames(names, leaf.DNSNames)
}

// renewAt is when a certificate should be replaced: two thirds into its
// lifetime, leaving a third for retries.
func renewAt(leaf *x509.Certificate) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(life * 2 / 3)
}

// LoadKeyPair loads a user-provided certificate chain and key (PEM files, as
// given with --tls-cert and --tls-key). An expired certificate is refused so
// that the mistake shows at start rather than at the first handshake.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		// The standard library's errors never quote key material.
		return tls.Certificate{}, fmt.Errorf("pki: load %s / %s: %w", certFile, keyFile, err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("pki: parse %s: %w", certFile, err)
		}
	}
	if time.Now().After(c.Leaf.NotAfter) {
		return tls.Certificate{}, fmt.Errorf("pki: certificate %s expired on %s", certFile, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return c, nil
}

func splitHosts(hosts []string) (ips []net.IP, names []string, err error) {
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		h = strings.ToLower(strings.TrimSuffix(h, "."))
		if strings.ContainsAny(h, " /:@") {
			return nil, nil, fmt.Errorf("pki: %q is neither an IP address nor a host name", h)
		}
		if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	if len(ips) == 0 && len(names) == 0 {
		return nil, nil, errors.New("pki: a serving certificate needs at least one host")
	}
	return ips, names, nil
}

func sameIPs(a, b []net.IP) bool {
	if len(a) != len(b) {
		return false
	}
	for _, ip := range a {
		if !slices.ContainsFunc(b, ip.Equal) {
			return false
		}
	}
	return true
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for _, n := range a {
		if !slices.ContainsFunc(b, func(m string) bool { return strings.EqualFold(n, m) }) {
			return false
		}
	}
	return true
}

// writeFileAtomic replaces path with data: a reader sees the old file or the
// new one, never a torn write, and the new one survives a crash.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // created 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the rename durable; best effort on filesystems that refuse
		d.Close()
	}
	return nil
}
