package storetest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/store"
)

// CrashTarget tells RunCrash how to reach one store from two processes.
// The location travels to the child as a string (a file path, a database
// URL with its own schema…), so any backend fits.
type CrashTarget struct {
	// New prepares an empty store location and returns it. Parent only.
	New func(t *testing.T) (dsn string)
	// Open opens the store at dsn, in the child (to write) and in the
	// parent (to verify). The caller closes it.
	Open func(dsn string) (store.Store, error)
}

// Environment passed to the child: which test should act as the writer,
// and where the store is.
const (
	envCrashTest = "KEYHOLD_STORETEST_CRASH_TEST"
	envCrashDSN  = "KEYHOLD_STORETEST_CRASH_DSN"
)

const (
	crashWriters = 8   // concurrent writers in the child, so kills land inside group commits
	crashKeep    = 40  // records kept per writer; older ones are deleted, which exercises page reuse
	crashRounds  = 3   // kill, verify, restart on the same store
	crashAcks    = 250 // acknowledged writes to wait for before the kill (plus a random extra)
	tableA       = "crash_a"
	tableB       = "crash_b" // every transaction writes the same record to both
)

// RunCrash checks durability and atomicity across a process crash: a child
// process (this test binary, re-run on the calling test only) writes
// self-checking records from several goroutines and prints each key once
// its Update has returned; the parent SIGKILLs it mid-stream, reopens the
// store and checks that every acknowledged write is there, that no record
// is torn (checksums hold, both tables agree) and that each writer's
// history is an unbroken prefix. Three rounds run on the same store, so
// recovery of a crashed store is itself crashed.
//
// The calling test must call RunCrash unconditionally: in the child the
// same test runs again and RunCrash becomes the writer, never returning.
func RunCrash(t *testing.T, target CrashTarget) {
	if os.Getenv(envCrashTest) == t.Name() {
		crashChild(t, target, os.Getenv(envCrashDSN))
		return
	}
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dsn := target.New(t)
	acked := make(map[int]int) // writer -> highest acknowledged seq
	for round := range crashRounds {
		n := runCrashChild(t, dsn, crashAcks+randInt(crashAcks), acked)
		t.Logf("round %d: killed the writer after %d acknowledged writes", round+1, n)
		verifyCrash(t, target, dsn, acked)
	}
}

// runCrashChild starts the writer, collects acknowledgements until at least
// want arrived, kills it with SIGKILL and returns how many acks it saw.
func runCrashChild(t *testing.T, dsn string, want int, acked map[int]int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run="+runPattern(t.Name()), "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), envCrashTest+"="+t.Name(), envCrashDSN+"="+dsn)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	record := func(line string) bool {
		var g, seq int
		if _, err := fmt.Sscanf(line, "ack %d %d", &g, &seq); err != nil {
			return false // test framework output
		}
		if seq <= acked[g] {
			t.Errorf("writer %d acknowledged seq %d after %d", g, seq, acked[g])
		}
		acked[g] = seq
		return true
	}

	n := 0
	timeout := time.After(30 * time.Second)
	for n < want {
		select {
		case line, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("writer exited after %d acks; stderr:\n%s", n, stderr.String())
			}
			if record(line) {
				n++
			}
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("writer produced only %d acks in 30s; stderr:\n%s", n, stderr.String())
		}
	}
	// Kill while writes are in flight: the writers never pause.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Acks printed before the kill are still in the pipe: they count too.
	for line := range lines {
		if record(line) {
			n++
		}
	}
	cmd.Wait()
	return n
}

// runPattern anchors every element of a (sub)test name for -test.run.
func runPattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	return strings.Join(parts, "/")
}

func recKey(g, seq int) string { return fmt.Sprintf("rec/%d/%08d", g, seq) }
func lastKey(g int) string     { return fmt.Sprintf("last/%d", g) }

// record value: writer (4) | seq (8) | payload (random, 1-32 KiB) | sha256
// of everything before it. Large values span several pages, so a torn
// commit would show as a bad checksum or a disagreement between tables.
func makeRecord(g, seq int) []byte {
	n := 1024 + randInt(31*1024)
	v := make([]byte, 12+n, 12+n+sha256.Size)
	binary.BigEndian.PutUint32(v, uint32(g))
	binary.BigEndian.PutUint64(v[4:], uint64(seq))
	rand.Read(v[12:])
	sum := sha256.Sum256(v)
	return append(v, sum[:]...)
}

func checkRecord(v []byte, g, seq int) error {
	if len(v) < 12+sha256.Size {
		return fmt.Errorf("record of %d bytes is too short", len(v))
	}
	body, sum := v[:len(v)-sha256.Size], v[len(v)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return errors.New("checksum mismatch")
	}
	if int(binary.BigEndian.Uint32(body)) != g || int(binary.BigEndian.Uint64(body[4:])) != seq {
		return errors.New("record carries another key's identity")
	}
	return nil
}

func crashChild(t *testing.T, target CrashTarget, dsn string) {
	s, err := target.Open(dsn)
	if err != nil {
		t.Fatalf("child: open: %v", err)
	}
	ctx := context.Background()
	var stdout sync.Mutex
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := 0
			err := s.View(ctx, func(tx store.Tx) error {
				v, err := tx.Get(tableA, lastKey(g))
				if errors.Is(err, store.ErrNotFound) {
					return nil
				}
				if err == nil {
					seq, err = strconv.Atoi(string(v))
				}
				return err
			})
			if err != nil {
				fmt.Fprintf(os.Stderr, "child: read last: %v\n", err)
				os.Exit(2)
			}
			for {
				seq++
				v := makeRecord(g, seq)
				err := s.Update(ctx, func(tx store.Tx) error {
					for _, table := range []string{tableA, tableB} {
						if err := tx.Insert(table, recKey(g, seq), v); err != nil {
							return err
						}
						if err := tx.Put(table, lastKey(g), []byte(strconv.Itoa(seq))); err != nil {
							return err
						}
						if err := tx.Delete(table, recKey(g, seq-crashKeep)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					fmt.Fprintf(os.Stderr, "child: update: %v\n", err)
					os.Exit(2)
				}
				stdout.Lock()
				fmt.Fprintf(os.Stdout, "ack %d %d\n", g, seq)
				stdout.Unlock()
			}
		}()
	}
	wg.Wait() // never: the parent kills us
}

func verifyCrash(t *testing.T, target CrashTarget, dsn string, acked map[int]int) {
	t.Helper()
	s, err := target.Open(dsn)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	err = s.View(ctx, func(tx store.Tx) error {
		a, err := tx.List(tableA, "", "", 0)
		if err != nil {
			return err
		}
		b, err := tx.List(tableB, "", "", 0)
		if err != nil {
			return err
		}
		if len(a) != len(b) {
			return fmt.Errorf("tables disagree: %d and %d records", len(a), len(b))
		}
		last := map[int]int{}
		recs := map[int][]int{}
		for i := range a {
			if a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) {
				return fmt.Errorf("tables disagree at %q / %q", a[i].Key, b[i].Key)
			}
			var g, seq int
			switch {
			case strings.HasPrefix(a[i].Key, "last/"):
				fmt.Sscanf(a[i].Key, "last/%d", &g)
				last[g], _ = strconv.Atoi(string(a[i].Value))
			case strings.HasPrefix(a[i].Key, "rec/"):
				fmt.Sscanf(a[i].Key, "rec/%d/%d", &g, &seq)
				if err := checkRecord(a[i].Value, g, seq); err != nil {
					return fmt.Errorf("torn record %s: %v", a[i].Key, err)
				}
				recs[g] = append(recs[g], seq)
			default:
				return fmt.Errorf("unexpected key %q", a[i].Key)
			}
		}
		for g := range crashWriters {
			if last[g] < acked[g] {
				return fmt.Errorf("writer %d: acknowledged seq %d lost (store has %d)", g, acked[g], last[g])
			}
			// The records present are exactly the last crashKeep of an
			// unbroken history ending at last[g].
			first := max(1, last[g]-crashKeep+1)
			if len(recs[g]) != last[g]-first+1 {
				return fmt.Errorf("writer %d: %d records for seqs %d..%d", g, len(recs[g]), first, last[g])
			}
			for i, seq := range recs[g] {
				if seq != first+i {
					return fmt.Errorf("writer %d: seq %d where %d belongs", g, seq, first+i)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("after crash: %v", err)
	}
	// The recovered store must also accept writes.
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.Put("crash_probe", "k", []byte("v")) }); err != nil {
		t.Fatalf("write after crash recovery: %v", err)
	}
}

func randInt(n int) int {
	v, _ := rand.Int(rand.Reader, big.NewInt(int64(n)))
	return int(v.Int64())
}
