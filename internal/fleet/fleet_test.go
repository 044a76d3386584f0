package fleet_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/fleet"
	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
)

const acct = "1234567890123456"

type env struct {
	st  store.Store
	svc *fleet.Service
	now time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k, err := keys.Open(context.Background(), st, keys.FileSource{Path: filepath.Join(dir, "root.key"), Create: true}, "cn-hangzhou")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	e := &env{st: st, now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	e.svc = fleet.New(st, k, fleet.WithCAPin(strings.Repeat("A", 43)), fleet.WithClock(func() time.Time { return e.now }))
	return e
}

func (e *env) enroll(t *testing.T) (*fleet.Host, ed25519.PrivateKey) {
	t.Helper()
	tok, err := e.svc.CreateEnrollmentToken(context.Background(), acct, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	h, err := e.svc.Enroll(context.Background(), tok.Token, pub, fleet.Inventory{HostName: "web1",
		LocalUsers: []fleet.LocalUser{{Name: "alice", UID: 1000, Allowed: true, PasswordLogin: true}}})
	if err != nil {
		t.Fatal(err)
	}
	return h, priv
}

func TestEnrollTokenRules(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pub, _, _ := ed25519.GenerateKey(rand.Reader)

	tok, err := e.svc.CreateEnrollmentToken(ctx, acct, time.Hour, 1)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Expires != e.now.Add(time.Hour) {
		t.Fatalf("expires %v", tok.Expires)
	}
	h, err := e.svc.Enroll(ctx, tok.Token, pub, fleet.Inventory{HostName: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if !fleet.ValidHostID(h.ID) || h.Account != acct {
		t.Fatalf("host %+v", h)
	}
	if _, err := e.svc.Enroll(ctx, tok.Token, pub, fleet.Inventory{}); !errs.Is(err, errs.KindForbidden) {
		t.Fatalf("reused token: %v", err)
	}

	tok2, _ := e.svc.CreateEnrollmentToken(ctx, acct, time.Minute, 2)
	e.now = e.now.Add(time.Minute)
	if _, err := e.svc.Enroll(ctx, tok2.Token, pub, fleet.Inventory{}); !errs.Is(err, errs.KindForbidden) {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := e.svc.Enroll(ctx, "kh1.garbage", pub, fleet.Inventory{}); !errs.Is(err, errs.KindForbidden) {
		t.Fatalf("malformed token: %v", err)
	}
	for _, c := range []struct {
		ttl  time.Duration
		uses int
	}{{time.Second, 1}, {31 * 24 * time.Hour, 1}, {time.Hour, -1}, {time.Hour, 10001}} {
		if _, err := e.svc.CreateEnrollmentToken(ctx, acct, c.ttl, c.uses); !errs.Is(err, errs.KindInvalidParameter) {
			t.Fatalf("ttl %v uses %d: %v", c.ttl, c.uses, err)
		}
	}
	tok3, _ := e.svc.CreateEnrollmentToken(ctx, acct, time.Hour, 2)
	for i := range 2 {
		if _, err := e.svc.Enroll(ctx, tok3.Token, pub, fleet.Inventory{}); err != nil {
			t.Fatalf("use %d: %v", i, err)
		}
	}
	if _, err := e.svc.Enroll(ctx, tok3.Token, pub, fleet.Inventory{}); !errs.Is(err, errs.KindForbidden) {
		t.Fatalf("third use: %v", err)
	}
}

func TestQueueIdempotentAndResults(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h, _ := e.enroll(t)
	ch, cancel := e.st.Subscribe(e.svc.CommandsTopic(acct, h.ID))
	defer cancel()
	cmd := fleet.Command{ID: "c1", RotationID: "r1", Op: fleet.OpPasswordApply, User: "alice", Password: "s3cret-Value"}
	for range 2 {
		if err := e.svc.Enqueue(ctx, acct, h.ID, cmd); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-ch:
	default:
		t.Fatal("enqueue did not notify")
	}
	got, err := e.svc.Pending(ctx, acct, h.ID, 0)
	if err != nil || len(got) != 1 || got[0] != cmd {
		t.Fatalf("pending %+v %v", got, err)
	}
	// Nothing of the password is stored in clear.
	e.st.View(ctx, func(tx store.Tx) error {
		kvs, _ := tx.List("fleet_commands", "", "", 0)
		for _, kv := range kvs {
			if strings.Contains(string(kv.Value), "s3cret") {
				t.Fatal("password stored in clear")
			}
		}
		return nil
	})
	if r, err := e.svc.Result(ctx, acct, h.ID, "c1"); r != nil || err != nil {
		t.Fatalf("result before report: %v %v", r, err)
	}
	// A result for a command of no queue is ignored; the real one lands.
	if err := e.svc.ReportResults(ctx, acct, h.ID, []fleet.Result{{CommandID: "other", Status: "ok"}, {CommandID: "c1", Status: "ok", Check: "ssh-login", RotationID: "forged"}}); err != nil {
		t.Fatal(err)
	}
	r, err := e.svc.Result(ctx, acct, h.ID, "c1")
	if err != nil || r == nil || r.Status != "ok" || r.RotationID != "r1" || r.Op != fleet.OpPasswordApply || r.Check != "ssh-login" {
		t.Fatalf("result %+v %v", r, err)
	}
	if r, _ := e.svc.Result(ctx, acct, h.ID, "other"); r != nil {
		t.Fatal("foreign result recorded")
	}
	if n, _ := e.svc.QueueLength(ctx, acct, h.ID); n != 0 {
		t.Fatalf("queue %d after result", n)
	}
	// Re-enqueueing an answered id does not queue it again.
	if err := e.svc.Enqueue(ctx, acct, h.ID, cmd); err != nil {
		t.Fatal(err)
	}
	if n, _ := e.svc.QueueLength(ctx, acct, h.ID); n != 0 {
		t.Fatalf("queue %d after re-enqueue", n)
	}
	// Bad commands.
	for _, c := range []fleet.Command{
		{ID: "x", RotationID: "r", Op: "rm -rf", User: "alice"},
		{ID: "x", RotationID: "r", Op: fleet.OpPasswordApply, User: "alice"},
		{ID: "", RotationID: "r", Op: fleet.OpPasswordRestore, User: "alice"},
		{ID: "x", RotationID: "r", Op: fleet.OpSSHKeyApply, User: "alice", PublicKey: "k"},
	} {
		if err := e.svc.Enqueue(ctx, acct, h.ID, c); !errs.Is(err, errs.KindInvalidParameter) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	restore := fleet.Command{ID: "c2", RotationID: "r1", Op: fleet.OpPasswordRestore, User: "alice"}
	if err := e.svc.Enqueue(ctx, acct, "i-00000000000000000000", restore); !errs.Is(err, errs.KindNotFound) {
		t.Fatalf("unknown host: %v", err)
	}
	if err := e.svc.Enqueue(ctx, "otheraccount", h.ID, restore); !errs.Is(err, errs.KindNotFound) {
		t.Fatalf("other account: %v", err)
	}
}

func TestRemoveHostAndOnline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h, _ := e.enroll(t)
	if !h.Online {
		t.Fatal("fresh host offline")
	}
	e.now = e.now.Add(2 * fleet.PollTimeout)
	if err := e.svc.Touch(ctx, acct, h.ID); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(2 * fleet.PollTimeout)
	got, _ := e.svc.Host(ctx, acct, h.ID)
	if !got.Online {
		t.Fatal("touched host offline")
	}
	e.now = e.now.Add(4 * fleet.PollTimeout)
	got, _ = e.svc.Host(ctx, acct, h.ID)
	if got.Online {
		t.Fatal("silent host online")
	}
	if err := e.svc.Enqueue(ctx, acct, h.ID, fleet.Command{ID: "c", RotationID: "r", Op: fleet.OpPasswordRestore, User: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.RemoveHost(ctx, acct, h.ID); err != nil {
		t.Fatal(err)
	}
	id, err := e.svc.AgentIdentity(ctx, h.ID)
	if err != nil || !id.Removed {
		t.Fatalf("identity %+v %v", id, err)
	}
	if err := e.svc.Enqueue(ctx, acct, h.ID, fleet.Command{ID: "d", RotationID: "r", Op: fleet.OpPasswordRestore, User: "alice"}); !errs.Is(err, errs.KindInvalidState) {
		t.Fatalf("enqueue on removed: %v", err)
	}
	if n, _ := e.svc.QueueLength(ctx, acct, h.ID); n != 0 {
		t.Fatal("queued commands survive removal")
	}
	if list, _, _ := e.svc.ListHosts(ctx, acct, "", 0); len(list) != 0 {
		t.Fatalf("removed host listed: %+v", list)
	}
	if err := e.svc.RemoveHost(ctx, acct, h.ID); !errs.Is(err, errs.KindNotFound) {
		t.Fatalf("second remove: %v", err)
	}
}

func TestDriftAndList(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var hooked []fleet.DriftEvent
	e.svc = fleet.New(e.st, nil, fleet.WithCAPin(strings.Repeat("A", 43)), fleet.WithClock(func() time.Time { return e.now }),
		fleet.WithDriftHook(func(_ context.Context, _, _ string, ev fleet.DriftEvent) { hooked = append(hooked, ev) }))
	a, _ := e.enroll(t)
	b, _ := e.enroll(t)
	if err := e.svc.ReportDrift(ctx, acct, a.ID, []fleet.DriftEvent{{User: "alice", What: fleet.DriftPassword, Time: e.now}}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.ReportDrift(ctx, acct, a.ID, []fleet.DriftEvent{{User: "alice", What: "bogus"}}); !errs.Is(err, errs.KindInvalidParameter) {
		t.Fatalf("bad drift: %v", err)
	}
	got, _ := e.svc.Host(ctx, acct, a.ID)
	if len(got.UserDrift("alice")) != 1 || len(hooked) != 1 {
		t.Fatalf("drift %+v hooked %d", got.Drift, len(hooked))
	}
	list, next, err := e.svc.ListHosts(ctx, acct, "", 1)
	if err != nil || len(list) != 1 || next == "" {
		t.Fatalf("page 1: %v %q %v", list, next, err)
	}
	list2, next2, _ := e.svc.ListHosts(ctx, acct, next, 1)
	if len(list2) != 1 || next2 != "" || list2[0].ID == list[0].ID {
		t.Fatalf("page 2: %v %q", list2, next2)
	}
	_ = b
}
