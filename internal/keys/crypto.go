package keys

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// Ciphertext formats. Every blob starts with a self-describing header
//
//	magic 'K' | kind | len(keyID) | keyID | len(versionID) | versionID
//
// so that Decrypt and OpenValue need no KeyId. The header is part of the
// AAD, so it cannot be edited to point at another key or version.
const (
	blobMagic      = 'K'
	kindDirect     = 1 // Encrypt / GenerateDataKey: sealGCM under the CMK version
	kindValue      = 2 // SealValue: wrapped data key, then the value under the data key
	maxPlaintext   = 6 * 1024
	dataKeySize    = 32
	maxDataKeySize = 1024
)

func blobHeader(kind byte, keyID, versionID string) []byte {
	h := make([]byte, 0, 4+len(keyID)+len(versionID))
	h = append(h, blobMagic, kind, byte(len(keyID)))
	h = append(h, keyID...)
	h = append(h, byte(len(versionID)))
	return append(h, versionID...)
}

// parseHeader returns the header fields and the rest of the blob.
func parseHeader(blob []byte) (kind byte, keyID, versionID string, header, rest []byte, ok bool) {
	if len(blob) < 4 || blob[0] != blobMagic {
		return 0, "", "", nil, nil, false
	}
	kind = blob[1]
	n := int(blob[2])
	if len(blob) < 3+n+1 {
		return 0, "", "", nil, nil, false
	}
	keyID = string(blob[3 : 3+n])
	m := int(blob[3+n])
	end := 3 + n + 1 + m
	if len(blob) < end || n == 0 || m == 0 {
		return 0, "", "", nil, nil, false
	}
	versionID = string(blob[3+n+1 : end])
	return kind, keyID, versionID, blob[:end], blob[end:], true
}

func errBadCiphertext() error {
	return errs.E(errs.KindInvalidParameter, "The CiphertextBlob is invalid.")
}

func errDecrypt() error {
	return errs.E(errs.KindDecryptFailed, "The ciphertext could not be decrypted: it was altered or the encryption context does not match.")
}

// --- loading CMKs ----------------------------------------------------------------

// entry returns the unwrapped CMK, from the cache when possible.
func (s *Service) entry(ctx context.Context, account, keyID string) (*cmkEntry, error) {
	now := s.now()
	e, gen := s.cache.get(account, keyID, now)
	if e != nil {
		return e, nil
	}
	var rec *keyRecord
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		rec, err = getKey(tx, account, keyID)
		return err
	})
	if err != nil {
		return nil, storeErr(err)
	}
	e = &cmkEntry{account: account, rec: *rec, aeads: make(map[string]cipher.AEAD, len(rec.Versions)), loaded: now}
	for _, v := range rec.Versions {
		material, err := s.barrier.open(domainCMK, cmkAAD(account, rec.KeyID, v.ID), v.Material)
		if err != nil {
			return nil, errs.Wrap(errs.KindInternal, err, "unwrapping the material of key %s failed", rec.KeyID)
		}
		aead, err := newGCM(material)
		clear(material)
		if err != nil {
			return nil, errs.Wrap(errs.KindInternal, err, "loading key %s failed", rec.KeyID)
		}
		e.aeads[v.ID] = aead
	}
	s.cache.put(e, gen)
	return e, nil
}

// usable resolves a KeyId parameter to an enabled CMK. Resolving an alias
// costs a store read; a key id or ARN is served from the cache.
func (s *Service) usable(ctx context.Context, account, ref string) (*cmkEntry, error) {
	id, alias, err := parseRef(account, ref)
	if err != nil {
		return nil, err
	}
	if alias != "" {
		err := s.st.View(ctx, func(tx store.Tx) error {
			a, err := getAlias(tx, account, alias)
			if err != nil {
				return err
			}
			id = a.KeyID
			return nil
		})
		if err != nil {
			return nil, storeErr(err)
		}
	}
	e, err := s.entry(ctx, account, id)
	if err != nil {
		return nil, err
	}
	if e.rec.State != StateEnabled {
		return nil, errDisabled(&e.rec)
	}
	return e, nil
}

// contextAAD canonicalises an EncryptionContext: JSON with sorted keys, or
// nothing when empty.
func contextAAD(ec map[string]string) []byte {
	if len(ec) == 0 {
		return nil
	}
	b, _ := json.Marshal(ec) // map keys are sorted; strings cannot fail
	return b
}

func directAAD(account string, header []byte, ec map[string]string) []byte {
	aad := make([]byte, 0, 64+len(header))
	aad = append(aad, "keyhold/encrypt/v1\x00"...)
	aad = append(aad, account...)
	aad = append(aad, 0)
	aad = append(aad, header...)
	return append(aad, contextAAD(ec)...)
}

func (s *Service) encryptDirect(e *cmkEntry, plaintext []byte, ec map[string]string) ([]byte, error) {
	vid := e.rec.PrimaryVersion
	aead := e.aeads[vid]
	if aead == nil {
		return nil, errs.E(errs.KindInternal, "The primary version of key %s is missing.", e.rec.KeyID)
	}
	h := blobHeader(kindDirect, e.rec.KeyID, vid)
	sealed, err := sealGCM(aead, 1, directAAD(e.account, h, ec), plaintext)
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "encryption failed")
	}
	return append(h, sealed...), nil
}

// --- the KMS cryptographic API ------------------------------------------------------

// Encrypt encrypts up to 6 KiB under the key's primary version. The
// encryption context is authenticated, not stored: Decrypt needs the same.
func (s *Service) Encrypt(ctx context.Context, account, keyID string, plaintext []byte, encryptionContext map[string]string) (blob []byte, outKeyID, keyVersionID string, err error) {
	if len(plaintext) == 0 {
		return nil, "", "", errs.E(errs.KindMissingParameter, "The parameter Plaintext is required.")
	}
	if len(plaintext) > maxPlaintext {
		return nil, "", "", errs.E(errs.KindInvalidParameter, "The Plaintext is larger than 6 KiB.")
	}
	e, err := s.usable(ctx, account, keyID)
	if err != nil {
		return nil, "", "", err
	}
	blob, err = s.encryptDirect(e, plaintext, encryptionContext)
	if err != nil {
		return nil, "", "", err
	}
	return blob, e.rec.KeyID, e.rec.PrimaryVersion, nil
}

// Decrypt reverses Encrypt (and opens GenerateDataKey's CiphertextBlob).
func (s *Service) Decrypt(ctx context.Context, account string, blob []byte, encryptionContext map[string]string) (plaintext []byte, keyID, keyVersionID string, err error) {
	kind, keyID, vid, h, rest, ok := parseHeader(blob)
	if !ok || kind != kindDirect {
		return nil, "", "", errBadCiphertext()
	}
	e, err := s.entry(ctx, account, keyID)
	if err != nil {
		return nil, "", "", err
	}
	if e.rec.State != StateEnabled {
		return nil, "", "", errDisabled(&e.rec)
	}
	aead := e.aeads[vid]
	if aead == nil {
		return nil, "", "", errDecrypt()
	}
	pt, err := openGCM(aead, 1, directAAD(account, h, encryptionContext), rest)
	if err != nil {
		return nil, "", "", errDecrypt()
	}
	return pt, e.rec.KeyID, vid, nil
}

// CiphertextKeyARN names the key a Decrypt/ReEncrypt blob was made with,
// for authorization before the call; it does not check that the key exists.
func (s *Service) CiphertextKeyARN(account string, blob []byte) (string, error) {
	_, keyID, _, _, _, ok := parseHeader(blob)
	if !ok {
		return "", errBadCiphertext()
	}
	return s.keyARN(account, keyID), nil
}

// ReEncrypt decrypts a blob and encrypts the plaintext under another key
// (or the same key's current primary version) without revealing it.
func (s *Service) ReEncrypt(ctx context.Context, account string, blob []byte, sourceContext map[string]string, destinationKeyID string, destinationContext map[string]string) (newBlob []byte, keyID, keyVersionID string, err error) {
	if destinationKeyID == "" {
		return nil, "", "", errs.E(errs.KindMissingParameter, "The parameter DestinationKeyId is required.")
	}
	pt, _, _, err := s.Decrypt(ctx, account, blob, sourceContext)
	if err != nil {
		return nil, "", "", err
	}
	defer clear(pt)
	return s.Encrypt(ctx, account, destinationKeyID, pt, destinationContext)
}

// DataKeySize returns the data key length for GenerateDataKey: NumberOfBytes
// (1–1024) when given, else KeySpec AES_256 (default) or AES_128.
func DataKeySize(keySpec string, numberOfBytes int) (int, error) {
	if numberOfBytes != 0 {
		if numberOfBytes < 1 || numberOfBytes > maxDataKeySize {
			return 0, errs.E(errs.KindInvalidParameter, "The NumberOfBytes must be between 1 and 1024.")
		}
		return numberOfBytes, nil
	}
	switch keySpec {
	case "", "AES_256":
		return 32, nil
	case "AES_128":
		return 16, nil
	}
	return 0, errs.E(errs.KindInvalidParameter, "The KeySpec must be AES_256 or AES_128.")
}

// GenerateDataKey returns a random data key in plaintext and encrypted
// under the CMK. The caller should zero plaintext after use.
func (s *Service) GenerateDataKey(ctx context.Context, account, keyID, keySpec string, numberOfBytes int, encryptionContext map[string]string) (plaintext, blob []byte, outKeyID, keyVersionID string, err error) {
	n, err := DataKeySize(keySpec, numberOfBytes)
	if err != nil {
		return nil, nil, "", "", err
	}
	e, err := s.usable(ctx, account, keyID)
	if err != nil {
		return nil, nil, "", "", err
	}
	dk := make([]byte, n)
	if _, err := rand.Read(dk); err != nil {
		return nil, nil, "", "", errs.Wrap(errs.KindInternal, err, "generating a data key failed")
	}
	blob, err = s.encryptDirect(e, dk, encryptionContext)
	if err != nil {
		clear(dk)
		return nil, nil, "", "", err
	}
	return dk, blob, e.rec.KeyID, e.rec.PrimaryVersion, nil
}

// GenerateDataKeyWithoutPlaintext is GenerateDataKey returning only the
// encrypted data key.
func (s *Service) GenerateDataKeyWithoutPlaintext(ctx context.Context, account, keyID, keySpec string, numberOfBytes int, encryptionContext map[string]string) (blob []byte, outKeyID, keyVersionID string, err error) {
	dk, blob, outKeyID, keyVersionID, err := s.GenerateDataKey(ctx, account, keyID, keySpec, numberOfBytes, encryptionContext)
	clear(dk)
	return blob, outKeyID, keyVersionID, err
}

// --- envelope encryption of secret values ----------------------------------------------

// ResolveKey validates a secret's EncryptionKeyId (id, ARN or alias) and
// returns the canonical key id; "" returns the account's default service
// key, created on first use. The key's state is checked by SealValue.
func (s *Service) ResolveKey(ctx context.Context, account, keyIDOrAlias string) (string, error) {
	if keyIDOrAlias == "" {
		return s.defaultKey(ctx, account)
	}
	r, err := s.view(ctx, account, keyIDOrAlias)
	if err != nil {
		return "", err
	}
	return r.KeyID, nil
}

// defaultKey returns the account's service key, creating it atomically on
// first use. The service key is hidden from ListKeys and cannot be
// disabled, deleted, aliased or tagged: secrets without an EncryptionKeyId
// must stay readable. Encrypt with it is harmless, and Decrypt never opens
// SealValue blobs (another blob kind), so knowing its id reveals nothing.
func (s *Service) defaultKey(ctx context.Context, account string) (string, error) {
	if id, ok := s.defaultIDs.Load(account); ok {
		return id.(string), nil
	}
	var id string
	err := s.st.View(ctx, func(tx store.Tx) error {
		raw, err := tx.Get(tableDefaults, store.Key(account, "default"))
		if err == nil {
			id = string(raw)
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return "", storeErr(err)
	}
	if id == "" {
		r, err := s.newKeyRecord(account, "Default service key for secrets", ServiceKeyCreator, false, 0, true)
		if err != nil {
			return "", err
		}
		raw, err := json.Marshal(r)
		if err != nil {
			return "", errs.Wrap(errs.KindInternal, err, "encoding the key record failed")
		}
		err = s.st.Update(ctx, func(tx store.Tx) error {
			id = ""
			cur, err := tx.Get(tableDefaults, store.Key(account, "default"))
			if err == nil {
				id = string(cur) // another caller or replica won
				return nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := tx.Insert(tableKeys, store.Key(account, r.KeyID), raw); err != nil {
				return err
			}
			id = r.KeyID
			tx.Notify(topicKeys)
			return tx.Insert(tableDefaults, store.Key(account, "default"), []byte(r.KeyID))
		})
		if err != nil {
			return "", storeErr(err)
		}
	}
	s.defaultIDs.Store(account, id)
	return id, nil
}

func valueAAD(domain, account string, header, aad []byte) []byte {
	out := make([]byte, 0, len(domain)+len(account)+1+len(header)+len(aad))
	out = append(out, domain...)
	out = append(out, account...)
	out = append(out, 0)
	out = append(out, header...)
	return append(out, aad...)
}

// wrappedKeyLen is the size of a sealGCM'd 32-byte data key.
const wrappedKeyLen = 1 + gcmNonceLen + dataKeySize + 16

// SealValue encrypts plaintext with a fresh AES-256-GCM data key, wraps the
// data key with the CMK's primary version, and returns one opaque blob:
// header | wrapped data key | sealed value. Both layers authenticate the
// header and aad, so the blob only opens for the same aad.
func (s *Service) SealValue(ctx context.Context, account, keyID string, aad, plaintext []byte) ([]byte, error) {
	if keyID == "" {
		var err error
		if keyID, err = s.defaultKey(ctx, account); err != nil {
			return nil, err
		}
	}
	e, err := s.usable(ctx, account, keyID)
	if err != nil {
		return nil, err
	}
	vid := e.rec.PrimaryVersion
	kek := e.aeads[vid]
	if kek == nil {
		return nil, errs.E(errs.KindInternal, "The primary version of key %s is missing.", e.rec.KeyID)
	}
	dk := make([]byte, dataKeySize)
	defer clear(dk)
	if _, err := rand.Read(dk); err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "generating a data key failed")
	}
	h := blobHeader(kindValue, e.rec.KeyID, vid)
	wrapped, err := sealGCM(kek, 1, valueAAD("keyhold/value-dk/v1\x00", account, h, aad), dk)
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "wrapping the data key failed")
	}
	dkAEAD, err := newGCM(dk)
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "encryption failed")
	}
	sealed, err := sealGCM(dkAEAD, 1, valueAAD("keyhold/value/v1\x00", account, h, aad), plaintext)
	if err != nil {
		return nil, errs.Wrap(errs.KindInternal, err, "encryption failed")
	}
	out := make([]byte, 0, len(h)+len(wrapped)+len(sealed))
	return append(append(append(out, h...), wrapped...), sealed...), nil
}

// OpenValue reverses SealValue. It fails with errs.KindDisabled when the
// CMK is disabled or pending deletion, and with errs.KindDecryptFailed when
// aad does not match or the blob was altered.
func (s *Service) OpenValue(ctx context.Context, account string, sealed, aad []byte) ([]byte, error) {
	kind, keyID, vid, h, rest, ok := parseHeader(sealed)
	if !ok || kind != kindValue || len(rest) < wrappedKeyLen {
		return nil, errs.E(errs.KindDecryptFailed, "The stored value is malformed.")
	}
	e, err := s.entry(ctx, account, keyID)
	if err != nil {
		return nil, err
	}
	if e.rec.State != StateEnabled {
		return nil, errDisabled(&e.rec)
	}
	kek := e.aeads[vid]
	if kek == nil {
		return nil, errDecrypt()
	}
	dk, err := openGCM(kek, 1, valueAAD("keyhold/value-dk/v1\x00", account, h, aad), rest[:wrappedKeyLen])
	if err != nil {
		return nil, errDecrypt()
	}
	dkAEAD, err := newGCM(dk)
	clear(dk)
	if err != nil {
		return nil, errDecrypt()
	}
	pt, err := openGCM(dkAEAD, 1, valueAAD("keyhold/value/v1\x00", account, h, aad), rest[wrappedKeyLen:])
	if err != nil {
		return nil, errDecrypt()
	}
	return pt, nil
}

// ValueKeyID returns the CMK id recorded in a SealValue blob (for
// re-encryption jobs and diagnostics).
func ValueKeyID(sealed []byte) (keyID, keyVersionID string, ok bool) {
	kind, keyID, vid, _, _, ok := parseHeader(sealed)
	if !ok || kind != kindValue {
		return "", "", false
	}
	return keyID, vid, true
}
