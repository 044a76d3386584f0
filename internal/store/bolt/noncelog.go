package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The nonce log: nonces are appended to a small dedicated log next to the
// database instead of being committed to bbolt. A group of concurrent
// PutNonce calls costs one write and one fdatasync, where a bbolt commit
// writes the dirtied pages, syncs, writes the meta page and syncs again.
//
// Layout: DATA_DIR/<db file>.nonces/<seq, 16 hex digits>.log, each a
// segment of segmentSize bytes, zero-filled and synced when created, so an
// append only overwrites allocated blocks and fdatasync has no file size or
// extent change to commit. A segment is an 8-byte magic followed by
// fixed-size records:
//
//	expiry (8, unix ns, big endian) ‖ nonceID (16) ‖ CRC-32C of the 24 (4)
//
// Open replays every segment into the in-memory index, stopping in each at
// the first all-zero or corrupt record (the torn tail of a crash: nothing
// after it was acknowledged, because a group is acknowledged only after its
// fdatasync and groups are written in order), and then starts a new
// segment, so a torn tail is never appended to. A segment whose last
// expiry has passed is deleted; nothing is ever rewritten.

const (
	nonceLogMagic  = "KHNONCE1"
	nonceRecSize   = 8 + 16 + 4
	segmentSize    = 1 << 20 // 37,448 records
	nonceLogSuffix = ".nonces"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type segment struct {
	seq    uint64
	maxExp int64 // latest expiry recorded in it: deletable after that
}

// nonceLog is owned by its writer goroutine after Open.
type nonceLog struct {
	dir     string
	reqs    chan *nonceCall
	stopped chan struct{}

	cur      *os.File
	cur_     segment
	off      int64
	old      []segment // full segments, oldest first
	broken   bool      // the current segment saw a write or sync error
	buf      []byte
	lastPurg time.Time
}

type nonceCall struct {
	id   nonceID
	exp  int64
	err  error
	done chan struct{}
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x.log", seq) }

// openNonceLog replays the log at dir into x and opens a fresh segment.
func openNonceLog(dir string, x *nonceIndex, now int64, maxBatch int) (*nonceLog, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("bolt: create nonce log: %w", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bolt: read nonce log: %w", err)
	}
	l := &nonceLog{dir: dir, reqs: make(chan *nonceCall, 4*maxBatch), stopped: make(chan struct{})}
	var next uint64 = 1
	for _, e := range entries {
		name := e.Name()
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, ".log"), 16, 64)
		if !strings.HasSuffix(name, ".log") || err != nil {
			continue // e.g. a segment being created when we crashed: .tmp
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("bolt: read nonce log: %w", err)
		}
		seg := segment{seq: seq}
		replaySegment(data, func(id nonceID, exp int64) {
			seg.maxExp = max(seg.maxExp, exp)
			x.load(id, exp, now)
		})
		l.old = append(l.old, seg)
		next = max(next, seq+1)
	}
	slices.SortFunc(l.old, func(a, b segment) int { return cmpU64(a.seq, b.seq) })
	if err := l.rotate(next); err != nil {
		return nil, err
	}
	return l, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// replaySegment calls fn for each intact record, up to the first that is
// not (zero fill or a torn write).
func replaySegment(data []byte, fn func(nonceID, int64)) {
	if len(data) < len(nonceLogMagic) || string(data[:len(nonceLogMagic)]) != nonceLogMagic {
		return
	}
	for rec := data[len(nonceLogMagic):]; len(rec) >= nonceRecSize; rec = rec[nonceRecSize:] {
		body := rec[:24]
		if binary.BigEndian.Uint32(rec[24:28]) != crc32.Checksum(body, castagnoli) {
			return
		}
		fn(nonceID(body[8:24]), int64(binary.BigEndian.Uint64(body[:8])))
	}
}

// rotate retires the current segment (already synced) and creates segment
// seq: written in full under a temporary name, synced, renamed and the
// directory synced, so the name is durable before any nonce in it is
// acknowledged.
func (l *nonceLog) rotate(seq uint64) error {
	if l.cur != nil {
		if l.off > int64(len(nonceLogMagic)) {
			l.old = append(l.old, l.cur_)
		} else {
			os.Remove(filepath.Join(l.dir, segmentName(l.cur_.seq)))
		}
		l.cur.Close()
		l.cur = nil
	}
	name := filepath.Join(l.dir, segmentName(seq))
	tmp := name + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("bolt: create nonce log segment: %w", err)
	}
	init := make([]byte, segmentSize)
	copy(init, nonceLogMagic)
	if _, err = f.WriteAt(init, 0); err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err == nil {
		err = syncDir(l.dir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("bolt: create nonce log segment: %w", err)
	}
	l.cur, l.cur_, l.off, l.broken = f, segment{seq: seq}, int64(len(nonceLogMagic)), false
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// run is the writer: like the committer, it takes the first queued call,
// yields and drains while the queue grows, then writes the group with one
// write and one fdatasync and answers everyone.
func (l *nonceLog) run(maxBatch int, now func() time.Time, purgeEvery time.Duration, x *nonceIndex) {
	defer close(l.stopped)
	defer func() {
		if l.cur != nil {
			l.cur.Close()
		}
	}()
	batch := make([]*nonceCall, 0, maxBatch)
	for first := range l.reqs {
		batch = append(batch[:0], first)
		for range 8 {
			runtime.Gosched()
			if !l.drain(&batch, maxBatch) {
				break
			}
		}
		// Purge before writing, so that a caller who sees its nonce
		// acknowledged also sees the purge that group triggered.
		if t := now(); t.Sub(l.lastPurg) >= purgeEvery {
			l.lastPurg = t
			x.purge(t.UnixNano())
			l.dropExpired(t.UnixNano())
		}
		err := l.write(batch)
		for _, c := range batch {
			c.err = err
			close(c.done)
		}
	}
}

func (l *nonceLog) drain(batch *[]*nonceCall, maxBatch int) bool {
	found := false
	for len(*batch) < maxBatch {
		select {
		case c, ok := <-l.reqs:
			if !ok {
				return false
			}
			*batch = append(*batch, c)
			found = true
		default:
			return found
		}
	}
	return false
}

var errNonceLog = errors.New("bolt: nonce log unavailable")

func (l *nonceLog) write(batch []*nonceCall) error {
	n := int64(len(batch) * nonceRecSize)
	// After a failed write or sync the page cache may have dropped the
	// data while a later fdatasync succeeds; never append there again.
	if l.broken || l.cur == nil || l.off+n > segmentSize {
		if err := l.rotate(l.cur_.seq + 1); err != nil {
			return errors.Join(errNonceLog, err)
		}
	}
	l.buf = l.buf[:0]
	for _, c := range batch {
		var rec [nonceRecSize]byte
		binary.BigEndian.PutUint64(rec[:8], uint64(c.exp))
		copy(rec[8:24], c.id[:])
		binary.BigEndian.PutUint32(rec[24:], crc32.Checksum(rec[:24], castagnoli))
		l.buf = append(l.buf, rec[:]...)
		l.cur_.maxExp = max(l.cur_.maxExp, c.exp)
	}
	_, err := l.cur.WriteAt(l.buf, l.off)
	if err == nil {
		err = fdatasync(l.cur)
	}
	if err != nil {
		l.broken = true
		return fmt.Errorf("bolt: write nonce log: %w", err)
	}
	l.off += n
	return nil
}

// dropExpired deletes full segments whose every nonce has expired.
func (l *nonceLog) dropExpired(now int64) {
	keep := l.old[:0]
	for _, seg := range l.old {
		if seg.maxExp <= now {
			if err := os.Remove(filepath.Join(l.dir, segmentName(seg.seq))); err == nil || errors.Is(err, os.ErrNotExist) {
				continue
			}
		}
		keep = append(keep, seg)
	}
	l.old = keep
}
