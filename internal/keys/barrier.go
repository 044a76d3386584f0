package keys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// ErrRootKeyMismatch is returned by Open when the storage was initialised
// with another root key.
var ErrRootKeyMismatch = errors.New("root key does not match this storage")

// Storage location of the root key check value.
const (
	tableMeta   = "meta"
	keyRootChk  = "rootkey-check"
	lockInit    = "init"
	checkAAD    = "keyhold/rootkey-check/v1"
	checkPlain  = "keyhold root key check value v1"
	barrierV1   = 1 // format byte of a root-sealed blob; room for root key rotation
	gcmNonceLen = 12
)

// Domain separation: what the barrier seals for itself (CMK material) can
// never be opened through the generic SealWithRoot/OpenWithRoot API, and the
// other way round.
const (
	domainCMK      = "keyhold/cmk\x00"
	domainExternal = "keyhold/ext\x00"
	domainCheck    = "keyhold/chk\x00"
)

// Barrier seals and opens blobs with the root key (AES-256-GCM). The raw
// root key is dropped once the cipher is built: only the expanded key
// schedule stays in memory.
type Barrier struct {
	aead cipher.AEAD
	// kdk is an HKDF pseudorandom key extracted from the root key, from
	// which DeriveKey expands purpose-bound keys (the audit chain's MAC
	// key, ...). Kept instead of the root key so that a derived key can
	// never be the root key itself.
	kdk []byte
}

// NewBarrier builds a barrier from a 32-byte root key and zeroes key.
func NewBarrier(key []byte) (*Barrier, error) {
	defer clear(key)
	if len(key) != RootKeySize {
		return nil, fmt.Errorf("root key has the wrong size (want %d bytes)", RootKeySize)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	kdk, err := hkdf.Extract(sha256.New, key, []byte(kdfSalt))
	if err != nil {
		return nil, err
	}
	return &Barrier{aead: aead, kdk: kdk}, nil
}

// kdfSalt separates Keyhold's key derivation from any other use of the
// root key.
const kdfSalt = "keyhold/kdf/v1"

// DeriveKey returns a 32-byte key bound to purpose (HKDF-SHA256 from the
// root key). The same root key gives the same key on every replica; a
// different purpose gives an unrelated key.
func (b *Barrier) DeriveKey(purpose string) []byte {
	k, err := hkdf.Expand(sha256.New, b.kdk, purpose, 32)
	if err != nil {
		// Only an over-long output length fails; 32 bytes never does.
		panic("keys: hkdf expand: " + err.Error())
	}
	return k
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// seal returns format byte | nonce | ciphertext+tag.
func (b *Barrier) seal(domain string, aad, plaintext []byte) ([]byte, error) {
	return sealGCM(b.aead, barrierV1, joinAAD(domain, aad), plaintext)
}

func (b *Barrier) open(domain string, aad, sealed []byte) ([]byte, error) {
	return openGCM(b.aead, barrierV1, joinAAD(domain, aad), sealed)
}

func joinAAD(domain string, aad []byte) []byte {
	out := make([]byte, 0, len(domain)+len(aad))
	return append(append(out, domain...), aad...)
}

var errOpen = errors.New("message authentication failed")

func sealGCM(aead cipher.AEAD, format byte, aad, plaintext []byte) ([]byte, error) {
	out := make([]byte, 1+gcmNonceLen, 1+gcmNonceLen+len(plaintext)+aead.Overhead())
	out[0] = format
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return aead.Seal(out, out[1:1+gcmNonceLen], plaintext, aad), nil
}

func openGCM(aead cipher.AEAD, format byte, aad, sealed []byte) ([]byte, error) {
	if len(sealed) < 1+gcmNonceLen+aead.Overhead() || sealed[0] != format {
		return nil, errOpen
	}
	pt, err := aead.Open(nil, sealed[1:1+gcmNonceLen], sealed[1+gcmNonceLen:], aad)
	if err != nil {
		return nil, errOpen
	}
	return pt, nil
}

// VerifyRootKey checks the barrier's key against the check value in st.
// It returns store.ErrNotFound when the storage has no check value yet and
// ErrRootKeyMismatch when the key is not the one the storage was set up with.
func (b *Barrier) VerifyRootKey(ctx context.Context, st store.Store) error {
	var chk []byte
	err := st.View(ctx, func(tx store.Tx) error {
		var err error
		chk, err = tx.Get(tableMeta, keyRootChk)
		return err
	})
	if err != nil {
		return err
	}
	return b.verifyCheck(chk)
}

func (b *Barrier) verifyCheck(chk []byte) error {
	pt, err := b.open(domainCheck, []byte(checkAAD), chk)
	if err != nil || string(pt) != checkPlain {
		return ErrRootKeyMismatch
	}
	return nil
}

// InitRootKey verifies the root key, writing the check value first when the
// storage has none. It holds the deployment-wide "init" lock so that
// replicas starting together agree on one root key.
func (b *Barrier) InitRootKey(ctx context.Context, st store.Store) error {
	err := b.VerifyRootKey(ctx, st)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	unlock, err := st.Lock(ctx, lockInit)
	if err != nil {
		return fmt.Errorf("root key init: %w", err)
	}
	defer unlock()
	chk, err := b.seal(domainCheck, []byte(checkAAD), []byte(checkPlain))
	if err != nil {
		return err
	}
	return st.Update(ctx, func(tx store.Tx) error {
		cur, err := tx.Get(tableMeta, keyRootChk)
		switch {
		case err == nil:
			return b.verifyCheck(cur) // another replica initialised first
		case errors.Is(err, store.ErrNotFound):
			return tx.Insert(tableMeta, keyRootChk, chk)
		default:
			return err
		}
	})
}

// SealWithRoot encrypts a small record under the root key, bound to aad
// (callers pass what identifies the record, so that a blob copied to
// another record fails to open).
func (b *Barrier) SealWithRoot(aad, plaintext []byte) ([]byte, error) {
	out, err := b.seal(domainExternal, aad, plaintext)
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "sealing under the root key failed")
	}
	return out, nil
}

// OpenWithRoot reverses SealWithRoot; a wrong aad or a damaged blob gives
// an errs.KindDecryptFailed error.
func (b *Barrier) OpenWithRoot(aad, sealed []byte) ([]byte, error) {
	pt, err := b.open(domainExternal, aad, sealed)
	if err != nil {
		return nil, errs.E(errs.KindDecryptFailed, "A record sealed under the root key could not be decrypted.")
	}
	return pt, nil
}
