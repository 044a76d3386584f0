package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/keyhold/keyhold/internal/store"
)

// maxBatch bounds the records of one store transaction, so that a burst
// does not build one huge commit (PostgreSQL: one round trip per record).
const maxBatch = 256

// pending is one Append waiting for the batch that carries it.
type pending struct {
	ctx   context.Context
	rec   Record // Seq and Mac are set by the batch
	canon []byte // canonical(rec) with Seq 0, encoded by the caller
	out   Record
	err   error
	done  chan struct{}
}

// batcher queues concurrent appends of one Trail. At most one flusher
// goroutine runs; it takes everything queued, appends it in one store
// Update and releases each caller with its own result. While that Update
// runs the next batch gathers, so N concurrent appends cost one head read
// and one head write per account per batch instead of N conflicting ones.
// Ordering between replicas is still the storage's: the head is read and
// rewritten inside the transaction, as for a single append.
type batcher struct {
	mu      sync.Mutex
	queue   []*pending
	running bool
}

// submit queues p and starts the flusher if none runs.
func (t *Trail) submit(p *pending) {
	b := &t.batch
	b.mu.Lock()
	b.queue = append(b.queue, p)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	if start {
		go t.flush()
	}
}

// withdraw removes p from the queue if no batch has taken it yet: its
// caller gave up and nothing of it will be written.
func (t *Trail) withdraw(p *pending) bool {
	b := &t.batch
	b.mu.Lock()
	defer b.mu.Unlock()
	i := slices.Index(b.queue, p)
	if i < 0 {
		return false
	}
	b.queue = slices.Delete(b.queue, i, i+1)
	return true
}

// flush runs batches until the queue is empty, then exits: an idle trail
// holds no goroutine.
func (t *Trail) flush() {
	b := &t.batch
	for {
		b.mu.Lock()
		n := min(len(b.queue), maxBatch)
		if n == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		batch := slices.Clone(b.queue[:n])
		b.queue = slices.Delete(b.queue, 0, n)
		b.mu.Unlock()
		t.appendBatch(batch)
	}
}

// appendBatch writes batch in one store Update and answers every member:
// all succeed or all fail together.
func (t *Trail) appendBatch(batch []*pending) {
	live := batch[:0]
	for _, p := range batch {
		if err := p.ctx.Err(); err != nil {
			p.err = err // gave up while queued: nothing written
			close(p.done)
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	ctx, release := batchContext(live)
	seqs := make([]uint64, len(live))
	macs := make([]string, len(live))
	err := t.update(ctx, func(tx store.Tx) error {
		// fn may run more than once (group commit retries, serialization
		// retries): everything is recomputed from tx and the immutable
		// pendings, and seqs/macs are overwritten on every run.
		heads := make(map[string]head, 1)
		for i, p := range live {
			acct := p.rec.Account
			h, ok := heads[acct]
			if !ok {
				var err error
				if h, err = readHead(tx, acct); err != nil {
					return err
				}
			}
			seq := h.Seq + 1
			canon, err := withSeq(p.canon, seq)
			if err != nil {
				return err
			}
			mac, err := t.macOf(h.Mac, canon)
			if err != nil {
				return err
			}
			if err := tx.Insert(TableRecords, recordKey(acct, seq), withMac(canon, mac)); err != nil {
				return fmt.Errorf("audit: insert seq %d: %w", seq, err)
			}
			heads[acct] = head{Seq: seq, Mac: mac}
			seqs[i], macs[i] = seq, mac
		}
		// Fixed order, so that two replicas' batches over the same
		// accounts take their rows in the same order.
		for _, acct := range slices.Sorted(maps.Keys(heads)) {
			hb, _ := json.Marshal(heads[acct])
			if err := tx.Put(TableHead, acct, hb); err != nil {
				return err
			}
		}
		return nil
	})
	release()
	for i, p := range live {
		if err != nil {
			p.err = err
		} else {
			p.out = p.rec
			p.out.Seq, p.out.Mac = seqs[i], macs[i]
		}
		close(p.done)
	}
}

// update is st.Update on the flusher goroutine, where a panic would take
// the process down instead of one request: it becomes the batch's error.
func (t *Trail) update(ctx context.Context, fn func(store.Tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("audit: append panicked: %v", r)
		}
	}()
	return t.st.Update(ctx, fn)
}

// batchContext is cancelled once every member's context is: the batch is
// abandoned only when nobody waits for it any more (the wire layer passes
// contexts detached from the client's, which never end).
func batchContext(batch []*pending) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var left atomic.Int64
	left.Store(int64(len(batch)))
	stops := make([]func() bool, 0, len(batch))
	for _, p := range batch {
		if p.ctx.Done() == nil {
			continue // never cancelled: the batch lives until it ends
		}
		stops = append(stops, context.AfterFunc(p.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		}))
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// seqPrefix is how canonical JSON begins for a record with Seq 0: Seq is
// the first field of Record.
var seqPrefix = []byte(`{"Seq":0,`)

// canonicalTemplate encodes r (Seq 0, no Mac) outside the store
// transaction, so that the serialized part of an append (bolt's committer,
// a PostgreSQL transaction) only splices in the sequence number.
func canonicalTemplate(r Record) ([]byte, error) {
	r.Seq = 0
	c, err := canonical(r)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(c, seqPrefix) {
		return nil, fmt.Errorf("audit: unexpected record encoding")
	}
	return c, nil
}

// withSeq returns canonical(r) with Seq = seq from its Seq-0 template:
// byte for byte what canonical would produce, as the MAC requires.
func withSeq(tmpl []byte, seq uint64) ([]byte, error) {
	if !bytes.HasPrefix(tmpl, seqPrefix) {
		return nil, fmt.Errorf("audit: unexpected record encoding")
	}
	rest := tmpl[len(seqPrefix)-1:] // from the comma
	out := make([]byte, 0, len(tmpl)+20+len(`,"Mac":""`)+sha256.Size*2)
	out = append(out, `{"Seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	return append(out, rest...), nil
}

// withMac returns the stored form: canon with the Mac field appended, as
// json.Marshal writes it (Mac is the last field; hex needs no escaping).
func withMac(canon []byte, mac string) []byte {
	body := make([]byte, 0, len(canon)+len(`,"Mac":""`)+len(mac))
	body = append(body, canon[:len(canon)-1]...)
	body = append(body, `,"Mac":"`...)
	body = append(body, mac...)
	return append(body, `"}`...)
}

// macOf is the link over canonical bytes c after the link prevHex ("" for
// the first record).
func (t *Trail) macOf(prevHex string, c []byte) (string, error) {
	prev := make([]byte, sha256.Size)
	if prevHex != "" {
		b, err := hex.DecodeString(prevHex)
		if err != nil || len(b) != sha256.Size {
			return "", fmt.Errorf("audit: malformed MAC")
		}
		prev = b
	}
	m := hmac.New(sha256.New, t.macKey)
	m.Write(prev)
	m.Write(c)
	return hex.EncodeToString(m.Sum(nil)), nil
}
