// Package pki owns Keyhold's deployment certificate authority and the TLS
// certificates the server serves.
//
// The CA is created once per deployment, on first start, and shared by every
// replica through storage: its certificate is stored in the clear and its
// private key sealed under the root key, so that agents and clients pin one
// CA whatever replica they reach. Serving certificates are issued by that CA
// per replica (see ServingCert). The package knows nothing of HTTP handlers;
// it hands the server a *tls.Config.
package pki

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/keyhold/keyhold/internal/store"
)

// Sealer encrypts small records under the deployment root key. The keys
// package implements it; pki declares only what it needs.
type Sealer interface {
	SealWithRoot(aad, plaintext []byte) ([]byte, error)
	OpenWithRoot(aad, sealed []byte) ([]byte, error)
}

// Storage location of the CA: one record, so certificate and key are
// written together or not at all.
const (
	metaTable = "meta"
	caKey     = "pki/ca"
	initLock  = "init"
)

// caAAD binds the sealed CA key to its purpose, so no other sealed record
// can be substituted for it.
var caAAD = []byte("pki/ca")

// CAValidity is the lifetime of a new deployment CA.
const CAValidity = 10 * 365 * 24 * time.Hour

// caRecord is the stored form of the CA.
type caRecord struct {
	Cert      []byte `json:"cert"`       // DER certificate, in the clear
	SealedKey []byte `json:"sealed_key"` // PKCS#8 DER, sealed with caAAD
}

// CA is the deployment certificate authority.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
	pem  []byte
}

// LoadOrCreateCA returns the deployment CA, creating it on first start.
//
// Creation runs under the storage lock "init" and re-checks storage inside
// it, because several replicas may start at once; the record is written
// with Insert so that a replica that still races loses cleanly and loads
// the winner's CA. The caller must not hold the "init" lock (it is not
// reentrant).
func LoadOrCreateCA(ctx context.Context, st store.Store, sealer Sealer) (*CA, error) {
	ca, err := loadCA(ctx, st, sealer)
	if !errors.Is(err, store.ErrNotFound) {
		return ca, err
	}
	unlock, err := st.Lock(ctx, initLock)
	if err != nil {
		return nil, fmt.Errorf("pki: take init lock: %w", err)
	}
	defer unlock()
	ca, err = loadCA(ctx, st, sealer)
	if !errors.Is(err, store.ErrNotFound) {
		return ca, err
	}

	ca, rec, err := newCA(sealer)
	if err != nil {
		return nil, err
	}
	val, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("pki: encode CA record: %w", err)
	}
	err = st.Update(ctx, func(tx store.Tx) error {
		return tx.Insert(metaTable, caKey, val)
	})
	if errors.Is(err, store.ErrExists) {
		return loadCA(ctx, st, sealer)
	}
	if err != nil {
		return nil, fmt.Errorf("pki: store CA: %w", err)
	}
	return ca, nil
}

// loadCA reads the stored CA; store.ErrNotFound when there is none yet.
func loadCA(ctx context.Context, st store.Store, sealer Sealer) (*CA, error) {
	var val []byte
	err := st.View(ctx, func(tx store.Tx) error {
		v, err := tx.Get(metaTable, caKey)
		val = v
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("pki: read CA: %w", err)
	}
	var rec caRecord
	if err := json.Unmarshal(val, &rec); err != nil {
		return nil, fmt.Errorf("pki: decode CA record: %w", err)
	}
	cert, err := x509.ParseCertificate(rec.Cert)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	der, err := sealer.OpenWithRoot(caAAD, rec.SealedKey)
	if err != nil {
		// Usually the wrong root key; the cause never holds key material.
		return nil, fmt.Errorf("pki: unseal CA key: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, errors.New("pki: CA key does not parse")
	}
	key, ok := k.(crypto.Signer)
	if !ok || !publicKeysEqual(key.Public(), cert.PublicKey) {
		return nil, errors.New("pki: CA key does not match the CA certificate")
	}
	return newCAFrom(cert, key), nil
}

func newCA(sealer Sealer) (*CA, caRecord, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, caRecord{}, fmt.Errorf("pki: generate CA key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, caRecord{}, fmt.Errorf("pki: encode CA public key: %w", err)
	}
	ski := sha256.Sum256(pub)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject: pkix.Name{
			Organization: []string{"Keyhold"},
			// The short id tells deployments apart when a user trusts several.
			CommonName: "Keyhold deployment CA " + hex.EncodeToString(ski[:4]),
		},
		SubjectKeyId:          ski[:20],
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew between replicas
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true, // issues leaf certificates only
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, caRecord{}, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, caRecord{}, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, caRecord{}, fmt.Errorf("pki: encode CA key: %w", err)
	}
	sealed, err := sealer.SealWithRoot(caAAD, keyDER)
	clear(keyDER)
	if err != nil {
		return nil, caRecord{}, fmt.Errorf("pki: seal CA key: %w", err)
	}
	return newCAFrom(cert, key), caRecord{Cert: certDER, SealedKey: sealed}, nil
}

func newCAFrom(cert *x509.Certificate, key crypto.Signer) *CA {
	return &CA{
		cert: cert,
		key:  key,
		pem:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
	}
}

// Certificate returns the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// CertPEM returns the CA certificate PEM-encoded, for clients to trust.
func (ca *CA) CertPEM() []byte { return append([]byte(nil), ca.pem...) }

// Pool returns a certificate pool holding only the CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// WriteCertFile writes the CA certificate as PEM to path (mode 0600, like
// every file Keyhold creates), replacing an older copy atomically. Users
// point clients at this file to trust the deployment.
func (ca *CA) WriteCertFile(path string) error {
	return writeFileAtomic(path, ca.pem, 0o600)
}

func randomSerial() *big.Int {
	// 128 random bits, positive: RFC 5280 allows up to 20 octets.
	b := make([]byte, 16)
	rand.Read(b)
	b[0] &= 0x7f
	return new(big.Int).SetBytes(b)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}
