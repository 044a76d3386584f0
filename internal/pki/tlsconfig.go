package pki

import (
	"crypto/tls"
	"crypto/x509"
	"sync"
	"sync/atomic"
	"time"
)

// Reloader serves a certificate that can be replaced while the server runs:
// on Reload (e.g. on SIGHUP after the operator replaced --tls-cert files),
// and on its own once the current certificate enters the last third of its
// lifetime, so a long-running replica never serves an expired certificate.
type Reloader struct {
	load func() (tls.Certificate, error)
	cur  atomic.Pointer[tls.Certificate]

	mu        sync.Mutex // one reload at a time
	renewing  atomic.Bool
	nextRetry atomic.Int64 // unix ns; spaces out background renewals
	onError   func(error)
}

// NewReloader loads a certificate with load and returns a Reloader serving
// it. load is called again for each reload; for the CA-issued certificate
// pass a func calling ServingCertificate, for user files one calling
// LoadKeyPair. onError (may be nil) hears failed background renewals; the
// old certificate stays in service meanwhile.
func NewReloader(load func() (tls.Certificate, error), onError func(error)) (*Reloader, error) {
	r := &Reloader{load: load, onError: onError}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload loads the certificate again and serves it from the next handshake.
// On error the current certificate stays.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.load()
	if err != nil {
		return err
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return err
		}
	}
	r.cur.Store(&c)
	return nil
}

// Leaf returns the certificate currently served.
func (r *Reloader) Leaf() *x509.Certificate { return r.cur.Load().Leaf }

// GetCertificate is the tls.Config hook.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := r.cur.Load()
	now := time.Now()
	if now.After(renewAt(c.Leaf)) && now.UnixNano() >= r.nextRetry.Load() && r.renewing.CompareAndSwap(false, true) {
		// Renew off the handshake path; this handshake still gets the
		// current (still valid) certificate.
		go func() {
			defer r.renewing.Store(false)
			err := r.Reload()
			// Also after success: user-provided files may still hold the
			// old certificate, and rereading them per handshake is waste.
			r.nextRetry.Store(time.Now().Add(time.Minute).UnixNano())
			if err != nil {
				if r.onError != nil {
					r.onError(err)
				}
			}
		}()
	}
	return c, nil
}

// ServerTLSConfig returns the server-side TLS configuration: TLS 1.2 or
// later (the Alibaba Cloud clients speak both 1.2 and 1.3) and the
// certificate from r.
func ServerTLSConfig(r *Reloader) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
	}
}
