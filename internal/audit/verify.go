package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// verifyPage is how many records one read transaction walks, so that a
// long trail never pins a reader for the whole walk.
const verifyPage = 1000

// Report is the outcome of Verify.
type Report struct {
	Valid       bool   `json:"Valid"`
	RecordCount uint64 `json:"RecordCount"` // records walked and found sound
	HeadSeq     uint64 `json:"HeadSeq"`
	// FirstBadSeq is the first record that is missing, altered or out of
	// place (0 when Valid).
	FirstBadSeq uint64 `json:"FirstBadSeq,omitempty"`
	Problem     string `json:"Problem,omitempty"`
	// CheckpointSeq is the checkpoint's head, when one was checked.
	CheckpointSeq uint64 `json:"CheckpointSeq,omitempty"`
}

// Verify walks the account's chain from its first record to its head and
// reports the first record that is missing (a gap in the sequence), altered
// (its MAC does not match), or out of place, and whether the head matches
// the last record. With a checkpoint it also checks that the chain still
// holds the checkpoint's record with the same MAC, which catches a tail
// cut off together with a rewritten head.
func (t *Trail) Verify(ctx context.Context, account string, cp *Checkpoint) (Report, error) {
	if cp != nil {
		if err := t.checkSignature(account, cp); err != nil {
			return Report{}, err
		}
	}
	var h head
	var headFound bool
	if err := t.st.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(TableHead, account)
		if err == store.ErrNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		headFound = true
		return json.Unmarshal(b, &h)
	}); err != nil {
		return Report{}, fmt.Errorf("audit: read chain head: %w", err)
	}
	rep := Report{HeadSeq: h.Seq}
	if cp != nil {
		rep.CheckpointSeq = cp.Seq
	}
	bad := func(seq uint64, format string, a ...any) (Report, error) {
		rep.FirstBadSeq, rep.Problem = seq, fmt.Sprintf(format, a...)
		return rep, nil
	}

	prevMac, prevSeq := "", uint64(0)
	cpSeen := cp == nil || cp.Seq == 0
	prefix := account + "/"
	after := ""
walk:
	for {
		var page []store.KV
		if err := t.st.View(ctx, func(tx store.Tx) error {
			var err error
			page, err = tx.List(TableRecords, prefix, after, verifyPage)
			return err
		}); err != nil {
			return Report{}, fmt.Errorf("audit: read records: %w", err)
		}
		for _, kv := range page {
			after = kv.Key
			keySeq, err := strconv.ParseUint(strings.TrimPrefix(kv.Key, prefix), 10, 64)
			if err != nil {
				return bad(prevSeq+1, "a record is stored under a malformed key after seq %d", prevSeq)
			}
			if headFound && keySeq > h.Seq {
				// Appended after the head was read, or planted beyond
				// it: the head bounds the walk.
				break walk
			}
			if keySeq != prevSeq+1 {
				return bad(prevSeq+1, "record %d is missing", prevSeq+1)
			}
			var r Record
			if err := json.Unmarshal(kv.Value, &r); err != nil {
				return bad(keySeq, "record %d is unreadable", keySeq)
			}
			if r.Seq != keySeq || r.Account != account {
				return bad(keySeq, "record %d is out of place (it names seq %d of account %s)", keySeq, r.Seq, r.Account)
			}
			want, err := t.mac(prevMac, r)
			if err != nil || !equalHex(want, r.Mac) {
				return bad(keySeq, "record %d does not match its MAC (altered, or a record before it was replaced)", keySeq)
			}
			if cp != nil && r.Seq == cp.Seq {
				if !equalHex(r.Mac, cp.Mac) {
					return bad(keySeq, "record %d differs from the checkpoint's head", keySeq)
				}
				cpSeen = true
			}
			prevMac, prevSeq = r.Mac, r.Seq
			rep.RecordCount++
		}
		if len(page) < verifyPage {
			break
		}
	}
	switch {
	case !headFound && prevSeq > 0:
		return bad(prevSeq+1, "the chain head is missing")
	case prevSeq < h.Seq:
		return bad(prevSeq+1, "record %d is missing (the head is at %d)", prevSeq+1, h.Seq)
	case headFound && !equalHex(prevMac, h.Mac):
		return bad(h.Seq, "the chain head does not match record %d", h.Seq)
	case !cpSeen:
		return bad(prevSeq+1, "the trail ends at record %d but the checkpoint was taken at record %d: records were removed from the tail", prevSeq, cp.Seq)
	}
	rep.Valid = true
	return rep, nil
}

func equalHex(a, b string) bool { return a != "" && strings.EqualFold(a, b) }

// Checkpoint is a signed statement of an account's chain head. The operator
// keeps it outside the deployment; Verify with it later proves the chain
// still reaches at least that far, unchanged.
type Checkpoint struct {
	Account string `json:"Account"`
	Seq     uint64 `json:"Seq"`
	Mac     string `json:"Mac"`
	Time    string `json:"Time"`
	// PublicKey (base64 Ed25519) lets anyone check Signature offline; the
	// private key is derived from the root key.
	PublicKey string `json:"PublicKey"`
	Signature string `json:"Signature"`
}

func (c *Checkpoint) message() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "keyhold-audit-checkpoint/v1\n%s\n%d\n%s\n%s\n", c.Account, c.Seq, strings.ToLower(c.Mac), c.Time)
	return b.Bytes()
}

// Checkpoint returns the signed current head of the account's chain.
func (t *Trail) Checkpoint(ctx context.Context, account string) (Checkpoint, error) {
	var h head
	if err := t.st.View(ctx, func(tx store.Tx) error {
		var err error
		h, err = readHead(tx, account)
		return err
	}); err != nil {
		return Checkpoint{}, fmt.Errorf("audit: read chain head: %w", err)
	}
	cp := Checkpoint{
		Account:   account,
		Seq:       h.Seq,
		Mac:       h.Mac,
		Time:      t.now().UTC().Format(time.RFC3339),
		PublicKey: base64.StdEncoding.EncodeToString(t.cpKey.Public().(ed25519.PublicKey)),
	}
	cp.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(t.cpKey, cp.message()))
	return cp, nil
}

// ParseCheckpoint decodes a checkpoint as Checkpoint exported it.
func ParseCheckpoint(s string) (*Checkpoint, error) {
	var cp Checkpoint
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cp); err != nil {
		return nil, errs.E(errs.KindInvalidParameter, "The parameter Checkpoint is not a checkpoint (JSON as CreateAuditCheckpoint returns it).")
	}
	return &cp, nil
}

// checkSignature accepts only a checkpoint this deployment signed for
// this account.
func (t *Trail) checkSignature(account string, cp *Checkpoint) error {
	pub := t.cpKey.Public().(ed25519.PublicKey)
	sig, err := base64.StdEncoding.DecodeString(cp.Signature)
	if err != nil || cp.PublicKey != base64.StdEncoding.EncodeToString(pub) || !ed25519.Verify(pub, cp.message(), sig) {
		return errs.E(errs.KindInvalidParameter, "The checkpoint's signature is not valid for this deployment.")
	}
	if cp.Account != account {
		return errs.E(errs.KindInvalidParameter, "The checkpoint belongs to another account.")
	}
	return nil
}
