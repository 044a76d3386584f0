package pki

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
)

// newTestSealer returns the real root-key barrier (keys.Barrier) under a
// random key: it is what the server passes as the Sealer.
func newTestSealer(t *testing.T) *keys.Barrier {
	t.Helper()
	k := make([]byte, 32)
	rand.Read(k)
	b, err := keys.NewBarrier(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	st, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCACreatedOnceAndReloadedIdentical(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyhold.db")
	sealer := newTestSealer(t)

	st := openStore(t, path)
	ca1, err := LoadOrCreateCA(ctx, st, sealer)
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := LoadOrCreateCA(ctx, st, sealer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca1.Certificate().Raw, ca2.Certificate().Raw) {
		t.Fatal("second call created another CA")
	}
	st.Close()

	st = openStore(t, path)
	defer st.Close()
	ca3, err := LoadOrCreateCA(ctx, st, sealer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca1.CertPEM(), ca3.CertPEM()) {
		t.Fatal("CA changed across reopen")
	}
	if !ca1.key.(*ecdsa.PrivateKey).Equal(ca3.key) {
		t.Fatal("CA key changed across reopen")
	}
	c := ca1.Certificate()
	if !c.IsCA || c.Subject.CommonName[:len("Keyhold deployment CA ")] != "Keyhold deployment CA " {
		t.Fatalf("unexpected CA certificate: IsCA=%v CN=%q", c.IsCA, c.Subject.CommonName)
	}
	if life := c.NotAfter.Sub(time.Now()); life < 9*365*24*time.Hour {
		t.Fatalf("CA valid for only %v", life)
	}
}

func TestCAWithWrongRootKeyRefused(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "keyhold.db"))
	defer st.Close()
	if _, err := LoadOrCreateCA(ctx, st, newTestSealer(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateCA(ctx, st, newTestSealer(t)); err == nil {
		t.Fatal("CA loaded with another root key")
	}
}

func TestConcurrentLoadOrCreateCAYieldsOneCA(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, filepath.Join(t.TempDir(), "keyhold.db"))
	defer st.Close()
	sealer := newTestSealer(t)

	const n = 4
	cas := make([]*CA, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { cas[i], errs[i] = LoadOrCreateCA(ctx, st, sealer) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !bytes.Equal(cas[i].Certificate().Raw, cas[0].Certificate().Raw) {
			t.Fatalf("goroutine %d got a different CA", i)
		}
	}
}

func TestIssuedCertVerifiesForLoopbackAndLocalhost(t *testing.T) {
	ca := testCA(t)
	c, err := ca.IssueServerCert(DefaultHosts(), 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost"} {
		_, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: ca.Pool()})
		if err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: "example.com", Roots: ca.Pool()}); err == nil {
		t.Error("certificate verified for a host it does not name")
	}
	if len(c.Leaf.IPAddresses) != 2 || !c.Leaf.IPAddresses[1].Equal(net.IPv6loopback) {
		t.Errorf("IP SANs = %v", c.Leaf.IPAddresses)
	}
}

func TestTLSHandshakeWithIssuedCert(t *testing.T) {
	ca := testCA(t)
	r, err := NewReloader(func() (tls.Certificate, error) {
		return ca.IssueServerCert([]string{"127.0.0.1", "localhost"}, time.Hour)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerTLSConfig(r))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			conn.(*tls.Conn).Handshake()
			conn.Close()
		}
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool()})
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	conn.Close()
}

func TestServingCertFilesReusedAndReissued(t *testing.T) {
	ca := testCA(t)
	dir := t.TempDir()
	hosts := []string{"127.0.0.1", "localhost"}

	c1, err := ServingCertificate(ca, dir, hosts)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ServingCertFile, ServingKeyFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	c2, err := ServingCertificate(ca, dir, []string{"localhost", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c1.Certificate[0], c2.Certificate[0]) {
		t.Fatal("unchanged hosts: certificate was reissued")
	}
	c3, err := ServingCertificate(ca, dir, append(hosts, "keyhold.internal"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(c1.Certificate[0], c3.Certificate[0]) {
		t.Fatal("new host: certificate was not reissued")
	}
	if _, err := c3.Leaf.Verify(x509.VerifyOptions{DNSName: "keyhold.internal", Roots: ca.Pool()}); err != nil {
		t.Fatal(err)
	}

	// A certificate from another CA (storage reset) is replaced.
	other := testCA(t)
	c4, err := ServingCertificate(other, dir, append(hosts, "keyhold.internal"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c4.Leaf.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: other.Pool()}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadKeyPair(t *testing.T) {
	ca := testCA(t)
	dir := t.TempDir()
	if _, err := ServingCertificate(ca, dir, []string{"localhost"}); err != nil {
		t.Fatal(err)
	}
	c, err := LoadKeyPair(filepath.Join(dir, ServingCertFile), filepath.Join(dir, ServingKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if c.Leaf == nil || c.Leaf.DNSNames[0] != "localhost" {
		t.Fatalf("leaf = %+v", c.Leaf)
	}
	if _, err := LoadKeyPair(filepath.Join(dir, ServingCertFile), filepath.Join(dir, "missing.key")); err == nil {
		t.Fatal("missing key file accepted")
	}
}

func TestWriteCertFile(t *testing.T) {
	ca := testCA(t)
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := ca.WriteCertFile(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || !bytes.Equal(blk.Bytes, ca.Certificate().Raw) {
		t.Fatal("ca.pem does not hold the CA certificate")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
}

func TestCAPrivateKeyNotInStoreFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "keyhold.db")
	st := openStore(t, path)
	ca, err := LoadOrCreateCA(ctx, st, newTestSealer(t))
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !containsEncoded(raw, ca.Certificate().Raw) {
		t.Fatal("CA certificate not found in the store file; the grep below proves nothing")
	}
	der, err := x509.MarshalPKCS8PrivateKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	scalar, err := ca.key.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if containsEncoded(raw, der) {
		t.Fatal("PKCS#8 CA key found in plain in the store file")
	}
	if containsEncoded(raw, scalar) {
		t.Fatal("CA private scalar found in plain in the store file")
	}
}

// containsEncoded reports whether b holds secret raw, base64 (as JSON
// encodes []byte) or hex encoded.
func containsEncoded(b, secret []byte) bool {
	return bytes.Contains(b, secret) ||
		bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(secret))) ||
		bytes.Contains(b, []byte(base64.RawStdEncoding.EncodeToString(secret))) ||
		bytes.Contains(b, []byte(hex.EncodeToString(secret)))
}

func testCA(t *testing.T) *CA {
	t.Helper()
	ca, _, err := newCA(newTestSealer(t))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestReloaderRenewsCertificateNearExpiry(t *testing.T) {
	ca := testCA(t)
	var mu sync.Mutex
	loads := 0
	r, err := NewReloader(func() (tls.Certificate, error) {
		mu.Lock()
		loads++
		mu.Unlock()
		// One minute of validity after five of back-dating: already in the
		// last third of its lifetime.
		return ca.IssueServerCert([]string{"localhost"}, time.Minute)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := r.Leaf()
	if _, err := r.GetCertificate(nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Leaf() == first {
		if time.Now().After(deadline) {
			t.Fatal("certificate near expiry was not renewed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Renewal is spaced out: more handshakes within the minute reload nothing.
	for range 10 {
		r.GetCertificate(nil)
	}
	time.Sleep(20 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if loads != 2 {
		t.Fatalf("%d loads, want 2", loads)
	}
}
