package kmsapi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/client"
)

// The stream path through a real HTTP server and the public client: what
// arrives, what the audit trail shows, and how failures reach the caller.

type streamFixture struct {
	audit *stageAudit
	c     *client.Client
	user  *client.Client
	body  []byte
	// fail, when set, is returned by the writer after failAt bytes.
	fail   error
	failAt int
}

func newStreamSrv(t *testing.T) *streamFixture {
	t.Helper()
	f := &streamFixture{audit: &stageAudit{}, failAt: -1}
	// Larger than the transport's buffers, so that bytes leave before the
	// writer finishes.
	f.body = bytes.Repeat([]byte("0123456789abcdef"), 64<<10)
	routes := []Route{{Version: VersionKeyhold, Action: "BackupThing", Handler: func(context.Context, *Request) (any, error) {
		return &Stream{Write: func(_ context.Context, w io.Writer) error {
			if f.failAt == 0 {
				return f.fail
			}
			b := f.body
			if f.failAt > 0 {
				b = b[:f.failAt]
			}
			for len(b) > 0 {
				n := min(len(b), 4096)
				if _, err := w.Write(b[:n]); err != nil {
					return err
				}
				b = b[n:]
			}
			if f.failAt > 0 {
				return f.fail
			}
			return nil
		}}, nil
	}}}
	srv := New(Config{
		Region: "cn-hangzhou", Credentials: &srvCreds{}, Nonces: &srvNonces{}, Audit: f.audit,
		Logger: slog.New(slog.DiscardHandler),
	}, routes)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	var err error
	if f.c, err = client.New(client.Config{Endpoint: hs.URL, AccessKeyID: rootID, AccessKeySecret: rootSecret}); err != nil {
		t.Fatal(err)
	}
	if f.user, err = client.New(client.Config{Endpoint: hs.URL, AccessKeyID: userID, AccessKeySecret: userSecret}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *streamFixture) get(c *client.Client) ([]byte, error) {
	var buf bytes.Buffer
	n, err := c.CallStream(context.Background(), VersionKeyhold, "BackupThing", nil, &buf)
	if n != int64(buf.Len()) {
		return nil, errors.New("CallStream miscounted")
	}
	return buf.Bytes(), err
}

func (f *streamFixture) outcomes() []Event {
	f.audit.mu.Lock()
	defer f.audit.mu.Unlock()
	var out []Event
	for _, e := range f.audit.events {
		if !e.Attempt {
			out = append(out, e)
		}
	}
	return out
}

func TestStreamArrivesWholeAndIsAuditedAroundIt(t *testing.T) {
	f := newStreamSrv(t)
	got, err := f.get(f.c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, f.body) {
		t.Fatalf("received %d bytes, want the %d written", len(got), len(f.body))
	}
	ev := f.audit.events
	if len(ev) != 2 || !ev[0].Attempt || ev[1].Attempt || ev[1].Status != 200 || ev[1].Code != "" || ev[1].Action != "keyhold:BackupThing" {
		t.Fatalf("audit events %+v", ev)
	}
}

func TestStreamErrorBeforeTheFirstByteIsAnErrorResponse(t *testing.T) {
	f := newStreamSrv(t)
	f.failAt, f.fail = 0, errors.New("storage gone")
	got, err := f.get(f.c)
	if !client.IsCode(err, "InternalFailure") || len(got) != 0 {
		t.Fatalf("got %d bytes, err %v; want InternalFailure and nothing written", len(got), err)
	}
	if strings.Contains(err.Error(), "storage gone") {
		t.Error("an internal error's text reached the caller")
	}
	if o := f.outcomes(); len(o) != 1 || o[0].Code != "InternalFailure" || o[0].Status != 500 {
		t.Errorf("outcome %+v", o)
	}
}

func TestStreamFailureAfterTheFirstByteCutsTheConnection(t *testing.T) {
	f := newStreamSrv(t)
	f.failAt, f.fail = 300_000, errors.New("storage gone mid-stream")
	got, err := f.get(f.c)
	if err == nil || !strings.Contains(err.Error(), "cut short") {
		t.Fatalf("err %v, want a cut-short download", err)
	}
	if len(got) == 0 || len(got) >= f.failAt || !bytes.Equal(got, f.body[:len(got)]) {
		t.Fatalf("received %d bytes (a prefix of the %d written before the failure expected)", len(got), f.failAt)
	}
	if o := f.outcomes(); len(o) != 1 || o[0].Code != "InternalFailure" {
		t.Errorf("outcome %+v", o)
	}
}

func TestStreamWhoseOutcomeCannotBeRecordedLosesItsTail(t *testing.T) {
	f := newStreamSrv(t)
	f.audit.failOutcome = true
	got, err := f.get(f.c)
	if err == nil {
		t.Fatal("a stream whose outcome was not recorded arrived complete")
	}
	if len(got) > len(f.body)-streamHoldBack || !bytes.Equal(got, f.body[:len(got)]) {
		t.Fatalf("received %d of %d bytes; the last %d must be held back", len(got), len(f.body), streamHoldBack)
	}
}

func TestStreamRefusedPrincipalGetsAnErrorAndNothingRuns(t *testing.T) {
	f := newStreamSrv(t)
	f.failAt, f.fail = 0, errors.New("the writer must not run") // would be InternalFailure
	got, err := f.get(f.user)
	if !client.IsCode(err, "Forbidden.NoPermission") || len(got) != 0 {
		t.Fatalf("got %d bytes, err %v", len(got), err)
	}
}

func TestStreamClientIdleTimeout(t *testing.T) {
	f := newStreamSrv(t)
	release := make(chan struct{})
	defer close(release)
	f.body = f.body[:1000]
	srvRoutes := []Route{{Version: VersionKeyhold, Action: "Slow", Handler: func(context.Context, *Request) (any, error) {
		return &Stream{Write: func(ctx context.Context, w io.Writer) error {
			if _, err := w.Write(f.body); err != nil {
				return err
			}
			select { // stalls until the client gives up or the test ends
			case <-ctx.Done():
			case <-release:
			}
			return errors.New("stalled")
		}}, nil
	}}}
	srv := New(Config{Region: "cn-hangzhou", Credentials: &srvCreds{}, Nonces: &srvNonces{}, Logger: slog.New(slog.DiscardHandler)}, srvRoutes)
	hs := httptest.NewServer(srv)
	defer hs.Close()
	c, err := client.New(client.Config{Endpoint: hs.URL, AccessKeyID: rootID, AccessKeySecret: rootSecret, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = c.CallStream(context.Background(), VersionKeyhold, "Slow", nil, &buf)
	if err == nil || !strings.Contains(err.Error(), "no data from the server") {
		t.Fatalf("err %v, want the idle timeout", err)
	}
	if buf.Len() > len(f.body)-streamHoldBack || !bytes.Equal(buf.Bytes(), f.body[:buf.Len()]) {
		t.Errorf("received %d bytes before the stall, a prefix of at most %d expected", buf.Len(), len(f.body)-streamHoldBack)
	}
}
