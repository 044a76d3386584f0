package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/audit"
	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
)

const acct = "1234567890123456"

func barrier(t testing.TB, b byte) *keys.Barrier {
	t.Helper()
	br, err := keys.NewBarrier(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return br
}

func openStore(t testing.TB) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func event(i int) audit.Event {
	return audit.Event{
		Time:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Second),
		Account: acct, PrincipalType: "user", PrincipalName: "alice", AccessKeyID: "LTAIalice",
		SourceIP: "192.0.2.7", APIVersion: "2016-01-20", Action: "kms:GetSecretValue",
		Resource: fmt.Sprintf("acs:kms:cn-hangzhou:%s:secret/app/s%d", acct, i), RequestID: fmt.Sprintf("REQ-%d", i),
		Result: "OK", HTTPStatus: 200, Params: map[string]string{"SecretName": fmt.Sprintf("app/s%d", i)},
	}
}

func appendN(t testing.TB, tr *audit.Trail, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := tr.Append(context.Background(), event(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func mustVerify(t *testing.T, tr *audit.Trail, cp *audit.Checkpoint) audit.Report {
	t.Helper()
	rep, err := tr.Verify(context.Background(), acct, cp)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// rewrite applies fn to the stored record seq, as someone with write access
// to the storage (but not the root key) could.
func rewrite(t *testing.T, st store.Store, seq uint64, fn func(r map[string]any)) {
	t.Helper()
	key := store.Key(acct, fmt.Sprintf("%020d", seq))
	err := st.Update(context.Background(), func(tx store.Tx) error {
		b, err := tx.Get(audit.TableRecords, key)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		fn(m)
		nb, _ := json.Marshal(m)
		return tx.Put(audit.TableRecords, key, nb)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func deleteRecords(t *testing.T, st store.Store, seqs ...uint64) {
	t.Helper()
	err := st.Update(context.Background(), func(tx store.Tx) error {
		for _, s := range seqs {
			if err := tx.Delete(audit.TableRecords, store.Key(acct, fmt.Sprintf("%020d", s))); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestAppendBuildsAVerifiableChain(t *testing.T) {
	st := openStore(t)
	tr := audit.New(st, barrier(t, 1))
	appendN(t, tr, 5)
	rep := mustVerify(t, tr, nil)
	if !rep.Valid || rep.RecordCount != 5 || rep.HeadSeq != 5 {
		t.Fatalf("report %+v", rep)
	}
	recs, next, err := tr.List(context.Background(), acct, audit.Query{})
	if err != nil || next != 0 || len(recs) != 5 {
		t.Fatalf("list: %d records, next %d, %v", len(recs), next, err)
	}
	r := recs[2]
	if r.Seq != 3 || r.PrincipalArn != "acs:ram::"+acct+":user/alice" || r.Stage != audit.StageOutcome || r.Mac == "" || r.Params["SecretName"] != "app/s3" {
		t.Errorf("record %+v", r)
	}
	// Another account's chain is separate and empty.
	if rep, _ := tr.Verify(context.Background(), "999", nil); !rep.Valid || rep.RecordCount != 0 {
		t.Errorf("other account %+v", rep)
	}
}

func TestAnotherRootKeyCannotVerifyOrExtendTheChain(t *testing.T) {
	st := openStore(t)
	appendN(t, audit.New(st, barrier(t, 1)), 3)
	forger := audit.New(st, barrier(t, 2))
	if rep := mustVerify(t, forger, nil); rep.Valid || rep.FirstBadSeq != 1 {
		t.Errorf("chain verified under another key: %+v", rep)
	}
	// Records appended with the wrong key break the chain where they start.
	appendN(t, forger, 1)
	if rep := mustVerify(t, audit.New(st, barrier(t, 1)), nil); rep.Valid || rep.FirstBadSeq != 4 {
		t.Errorf("forged append not caught: %+v", rep)
	}
}

func TestConcurrentAppendsFromTwoReplicasShareOneChain(t *testing.T) {
	st := openStore(t)
	// Two Trails over one store stand for two replicas: the head row, not
	// a process-local lock, orders them.
	replicas := []*audit.Trail{audit.New(st, barrier(t, 1)), audit.New(st, barrier(t, 1))}
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for g := range 32 {
		wg.Go(func() {
			for i := range 4 {
				if _, err := replicas[g%2].Append(context.Background(), event(g*10+i)); err != nil {
					errc <- err
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	rep := mustVerify(t, replicas[0], nil)
	if !rep.Valid || rep.RecordCount != 128 || rep.HeadSeq != 128 {
		t.Fatalf("report %+v", rep)
	}
}

func TestVerifyReportsTheFirstAlteredRecord(t *testing.T) {
	cases := []struct {
		name string
		edit func(m map[string]any)
	}{
		{"result flipped", func(m map[string]any) { m["Result"] = "Forbidden.NoPermission" }},
		{"principal changed", func(m map[string]any) { m["PrincipalName"] = "bob" }},
		{"param added", func(m map[string]any) { m["Params"] = map[string]any{"SecretName": "app/s4", "X": "1"} }},
		{"mac replaced by next", func(m map[string]any) { m["Mac"] = strings.Repeat("ab", 32) }},
		{"seq renumbered", func(m map[string]any) { m["Seq"] = 5 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t)
			tr := audit.New(st, barrier(t, 1))
			appendN(t, tr, 6)
			rewrite(t, st, 4, tc.edit)
			rep := mustVerify(t, tr, nil)
			if rep.Valid || rep.FirstBadSeq != 4 || rep.RecordCount != 3 {
				t.Errorf("report %+v", rep)
			}
		})
	}
}

func TestVerifyReportsGarbledAndMisplacedRecords(t *testing.T) {
	st := openStore(t)
	tr := audit.New(st, barrier(t, 1))
	appendN(t, tr, 4)
	_ = st.Update(context.Background(), func(tx store.Tx) error {
		return tx.Put(audit.TableRecords, store.Key(acct, fmt.Sprintf("%020d", 2)), []byte("{not json"))
	})
	if rep := mustVerify(t, tr, nil); rep.Valid || rep.FirstBadSeq != 2 || !strings.Contains(rep.Problem, "unreadable") {
		t.Errorf("garbled: %+v", rep)
	}

	// A valid record of another account copied into this chain.
	st2 := openStore(t)
	tr2 := audit.New(st2, barrier(t, 1))
	appendN(t, tr2, 2)
	other := event(9)
	other.Account = "777"
	r, err := tr2.Append(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(r)
	_ = st2.Update(context.Background(), func(tx store.Tx) error {
		return tx.Put(audit.TableRecords, store.Key(acct, fmt.Sprintf("%020d", 1)), b)
	})
	if rep := mustVerify(t, tr2, nil); rep.Valid || rep.FirstBadSeq != 1 || !strings.Contains(rep.Problem, "out of place") {
		t.Errorf("misplaced: %+v", rep)
	}
}

func TestVerifyReportsAMissingMiddleRecord(t *testing.T) {
	st := openStore(t)
	tr := audit.New(st, barrier(t, 1))
	appendN(t, tr, 6)
	deleteRecords(t, st, 3)
	rep := mustVerify(t, tr, nil)
	if rep.Valid || rep.FirstBadSeq != 3 || !strings.Contains(rep.Problem, "missing") {
		t.Errorf("report %+v", rep)
	}
}

func TestTruncatedTailIsCaughtByTheHeadOrByACheckpoint(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	tr := audit.New(st, barrier(t, 1))
	appendN(t, tr, 8)
	cp, err := tr.Checkpoint(ctx, acct)
	if err != nil || cp.Seq != 8 {
		t.Fatalf("checkpoint %+v %v", cp, err)
	}
	if rep := mustVerify(t, tr, &cp); !rep.Valid || rep.CheckpointSeq != 8 {
		t.Fatalf("intact chain with checkpoint: %+v", rep)
	}

	// Cutting the tail alone leaves the head pointing past the end.
	deleteRecords(t, st, 7, 8)
	if rep := mustVerify(t, tr, nil); rep.Valid || rep.FirstBadSeq != 7 {
		t.Errorf("tail cut, head intact: %+v", rep)
	}

	// Rewriting the head to the new last record (its MAC is readable in
	// storage) hides the cut from a plain walk; only the checkpoint shows it.
	recs, _, _ := tr.List(ctx, acct, audit.Query{})
	last := recs[len(recs)-1]
	hb, _ := json.Marshal(map[string]any{"Seq": last.Seq, "Mac": last.Mac})
	if err := st.Update(ctx, func(tx store.Tx) error { return tx.Put(audit.TableHead, acct, hb) }); err != nil {
		t.Fatal(err)
	}
	if rep := mustVerify(t, tr, nil); !rep.Valid || rep.HeadSeq != 6 {
		t.Errorf("truncation with a rewritten head should pass a plain walk (that is why checkpoints exist): %+v", rep)
	}
	rep := mustVerify(t, tr, &cp)
	if rep.Valid || rep.FirstBadSeq != 7 || !strings.Contains(rep.Problem, "checkpoint") {
		t.Errorf("truncation not caught with the checkpoint: %+v", rep)
	}
}

func TestVerifyReportsAHeadThatDoesNotMatch(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	tr := audit.New(st, barrier(t, 1))
	appendN(t, tr, 3)
	hb, _ := json.Marshal(map[string]any{"Seq": 3, "Mac": strings.Repeat("00", 32)})
	_ = st.Update(ctx, func(tx store.Tx) error { return tx.Put(audit.TableHead, acct, hb) })
	if rep := mustVerify(t, tr, nil); rep.Valid || rep.FirstBadSeq != 3 || !strings.Contains(rep.Problem, "head") {
		t.Errorf("head mismatch: %+v", rep)
	}
	_ = st.Update(ctx, func(tx store.Tx) error { return tx.Delete(audit.TableHead, acct) })
	if rep := mustVerify(t, tr, nil); rep.Valid || !strings.Contains(rep.Problem, "head is missing") {
		t.Errorf("head deleted: %+v", rep)
	}
}

func TestCheckpointMustBeThisDeploymentsAndThisAccounts(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	tr := audit.New(st, barrier(t, 1))
	appendN(t, tr, 2)
	cp, _ := tr.Checkpoint(ctx, acct)

	foreign, _ := audit.New(openStore(t), barrier(t, 2)).Checkpoint(ctx, acct)
	other, _ := tr.Checkpoint(ctx, "777")
	forged := cp
	forged.Seq = 1
	badSig := cp
	badSig.Signature = "!!"
	for name, c := range map[string]audit.Checkpoint{"other deployment": foreign, "other account": other, "altered": forged, "garbage signature": badSig} {
		_, err := tr.Verify(ctx, acct, &c)
		if !errs.Is(err, errs.KindInvalidParameter) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	// A genuine checkpoint whose record was later replaced.
	rewrite(t, st, 2, func(m map[string]any) { m["Result"] = "X" })
	if rep := mustVerify(t, tr, &cp); rep.Valid || rep.FirstBadSeq != 2 {
		t.Errorf("report %+v", rep)
	}

	if _, err := audit.ParseCheckpoint(`{"Account":1}`); !errs.Is(err, errs.KindInvalidParameter) {
		t.Errorf("malformed checkpoint: %v", err)
	}
	b, _ := json.Marshal(cp)
	if got, err := audit.ParseCheckpoint(string(b)); err != nil || *got != cp {
		t.Errorf("round trip: %+v %v", got, err)
	}
}

func TestFaultFailsTheAppendAndWritesNothing(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	var fail error
	tr := audit.New(st, barrier(t, 1), audit.WithFault(func() error { return fail }))
	appendN(t, tr, 1)
	fail = errors.New("disk full")
	if _, err := tr.Append(ctx, event(2)); !errs.Is(err, errs.KindUnavailable) {
		t.Fatalf("err %v", err)
	}
	fail = nil
	if rep := mustVerify(t, tr, nil); !rep.Valid || rep.HeadSeq != 1 {
		t.Errorf("report %+v", rep)
	}
}

func TestUnattributedEventsGoToTheDefaultAccount(t *testing.T) {
	ctx := context.Background()
	tr := audit.New(openStore(t), barrier(t, 1), audit.WithDefaultAccount(acct))
	e := audit.Event{AccessKeyID: "LTAIunknown", Action: "kms:GetSecretValue", Result: "InvalidAccessKeyId.NotFound", HTTPStatus: 404}
	r, err := tr.Append(ctx, e)
	if err != nil || r.Account != acct || r.PrincipalArn != "" || r.Time == "" {
		t.Fatalf("%+v %v", r, err)
	}
}

func TestListFilters(t *testing.T) {
	ctx := context.Background()
	tr := audit.New(openStore(t), barrier(t, 1))
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	add := func(i int, name, action, res, result string) {
		e := event(i)
		e.PrincipalName, e.AccessKeyID, e.Action, e.Resource, e.Result = name, "AK"+name, action, res, result
		if _, err := tr.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	add(1, "alice", "kms:GetSecretValue", "acs:kms:r:1:secret/app/a", "OK")
	add(2, "bob", "kms:GetSecretValue", "acs:kms:r:1:secret/db/b", "Forbidden.NoPermission")
	add(3, "alice", "kms:PutSecretValue", "acs:kms:r:1:secret/app/c", "OK")
	add(4, "bob", "keyhold:ListAuditEvents", "acs:keyhold:r:1:audit", "OK")

	seqs := func(q audit.Query) string {
		recs, _, err := tr.List(ctx, acct, q)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, r := range recs {
			s = append(s, fmt.Sprint(r.Seq))
		}
		return strings.Join(s, ",")
	}
	for _, tc := range []struct {
		q    audit.Query
		want string
	}{
		{audit.Query{}, "1,2,3,4"},
		{audit.Query{Principal: "alice"}, "1,3"},
		{audit.Query{Principal: "AKbob"}, "2,4"},
		{audit.Query{Principal: "acs:ram::" + acct + ":user/bob"}, "2,4"},
		{audit.Query{Action: "GetSecretValue"}, "1,2"},
		{audit.Query{Action: "kms:PutSecretValue"}, "3"},
		{audit.Query{Action: "kms:ListAuditEvents"}, ""},
		{audit.Query{Resource: "acs:kms:r:1:secret/app/*"}, "1,3"},
		{audit.Query{Resource: "acs:kms:r:1:secret/app"}, ""},
		{audit.Query{Result: "Forbidden.NoPermission"}, "2"},
		{audit.Query{Since: base.Add(2 * time.Second)}, "2,3,4"},
		{audit.Query{Until: base.Add(2 * time.Second)}, "1"},
		{audit.Query{Since: base.Add(2 * time.Second), Until: base.Add(4 * time.Second), Principal: "alice"}, "3"},
		{audit.Query{After: 2}, "3,4"},
	} {
		if got := seqs(tc.q); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.q, got, tc.want)
		}
	}
	recs, next, _ := tr.List(ctx, acct, audit.Query{Limit: 3})
	if len(recs) != 3 || next != 3 {
		t.Errorf("page: %d records, next %d", len(recs), next)
	}
}

func TestFileSinkForwardsLinesWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	sink, err := audit.OpenFileSink(path)
	if err != nil {
		t.Fatal(err)
	}
	tr := audit.New(openStore(t), barrier(t, 1), audit.WithForwarder(sink, func(err error) { t.Error(err) }))
	appendN(t, tr, 3)
	sink.Close()
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	var r audit.Record
	if err := json.Unmarshal([]byte(lines[2]), &r); err != nil || r.Seq != 3 || r.Mac == "" {
		t.Errorf("line %q: %v", lines[2], err)
	}
	if _, err := audit.OpenFileSink(filepath.Join(t.TempDir(), "no", "such", "dir", "f")); err == nil {
		t.Error("sink in a missing directory opened")
	}
}
