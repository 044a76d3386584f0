package secrets

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/internal/store"
)

// referenceList is ListSecrets as it was before paging moved into the
// store: decode every secret, filter, slice. The paged implementation must
// return exactly what this returns.
func referenceList(t *testing.T, f *fixture, filters []Filter, number, size int) ([]*Secret, int) {
	t.Helper()
	all, err := f.svc.AllSecrets(ctx, acct)
	if err != nil {
		t.Fatal(err)
	}
	var hits []*Secret
	for _, sec := range all {
		if matches(sec, filters) {
			hits = append(hits, sec)
		}
	}
	return page(hits, number, size), len(hits)
}

func names(list []*Secret) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = s.Name
	}
	return out
}

// checkList compares ListSecrets with the reference on one page.
func checkList(t *testing.T, f *fixture, filters []Filter, number, size int) ([]*Secret, int) {
	t.Helper()
	got, total, err := f.svc.ListSecrets(ctx, acct, filters, number, size)
	if err != nil {
		t.Fatalf("ListSecrets(page %d, size %d): %v", number, size, err)
	}
	want, wantTotal := referenceList(t, f, filters, number, size)
	if total != wantTotal {
		t.Errorf("ListSecrets(%v, page %d, size %d): TotalCount %d, want %d", filters, number, size, total, wantTotal)
	}
	if got == nil {
		t.Errorf("ListSecrets(page %d, size %d) = nil, want an empty list", number, size)
	}
	if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
		t.Errorf("ListSecrets(%v, page %d, size %d) = %q, want %q", filters, number, size, names(got), names(want))
	}
	return got, total
}

// seedList creates n secrets named "s-000" … in the test account, in an
// order that is not their name order, plus secrets in an account whose id
// extends this one's (its keys sort right after this account's prefix and
// must not be counted or listed).
func seedList(t *testing.T, f *fixture, n int) []string {
	t.Helper()
	var want []string
	for i := range n {
		j := (i * 7) % n // 7 and n coprime below: every index once, shuffled
		name := fmt.Sprintf("s-%03d", j)
		in := CreateInput{Name: name, VersionID: "v1", Data: "x", Description: fmt.Sprintf("d%d", j%3)}
		if j%4 == 0 {
			in.Tags = []Tag{{"team", fmt.Sprintf("t%d", j%8)}}
		}
		if _, err := f.svc.CreateSecret(ctx, acct, in); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		want = append(want, fmt.Sprintf("s-%03d", i))
	}
	for _, other := range []string{acct + "0", "0" + acct} {
		for _, name := range []string{"a", "s-000", "zz"} {
			if _, err := f.svc.CreateSecret(ctx, other, CreateInput{Name: name, VersionID: "v1", Data: "x"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return want
}

func TestListSecretsPageBoundaries(t *testing.T) {
	f := newFixture(t)
	const n = 205 // two full pages of 100 and a last page of 5
	all := seedList(t, f, n)

	for _, size := range []int{1, 7, 100} {
		pages := (n + size - 1) / size
		var walked []string
		for number := 1; number <= pages+1; number++ {
			got, total := checkList(t, f, nil, number, size)
			if total != n {
				t.Fatalf("size %d page %d: TotalCount %d, want %d", size, number, total, n)
			}
			walked = append(walked, names(got)...)
		}
		if !reflect.DeepEqual(walked, all) {
			t.Errorf("size %d: pages walk %d names, want all %d in name order", size, len(walked), n)
		}
	}
	// The last partial page, the first page past the end, far past the end,
	// and a PageNumber whose offset would overflow an int.
	for _, tc := range []struct{ number, size, want int }{
		{3, 100, 5}, {4, 100, 0}, {1000, 100, 0}, {math.MaxInt, 100, 0}, {math.MaxInt / 100, 100, 0},
		{205, 1, 1}, {206, 1, 0}, {math.MaxInt, 1, 0},
	} {
		got, total := checkList(t, f, nil, tc.number, tc.size)
		if len(got) != tc.want || total != n {
			t.Errorf("page %d size %d: %d items, total %d; want %d, %d", tc.number, tc.size, len(got), total, tc.want, n)
		}
	}
	if got, _ := checkList(t, f, nil, 3, 100); len(got) == 5 && got[4].Name != "s-204" {
		t.Errorf("last item = %s, want s-204", got[4].Name)
	}

	// Filters keep their meaning and page over the hits only.
	for _, js := range []string{
		`[{"Key":"SecretName","Values":["s-1"]}]`,                                 // 100 hits: s-100 … s-199
		`[{"Key":"SecretName","Values":["0"]}]`,                                   // substring anywhere
		`[{"Key":"Description","Values":["d1"]}]`,                                 // decoded field
		`[{"Key":"TagKey","Values":["team"]},{"Key":"TagValue","Values":["t4"]}]`, // ANDed
		`[{"Key":"SecretName","Values":["s-0","s-2"]},{"Key":"TagKey","Values":["team"]}]`,
		`[{"Key":"SecretName","Values":["nothing"]}]`,
	} {
		fs, err := ParseFilters(js)
		if err != nil {
			t.Fatal(err)
		}
		for _, size := range []int{1, 7, 100} {
			_, total := checkList(t, f, fs, 1, size)
			for number := 2; number <= (total+size-1)/size+1; number++ {
				checkList(t, f, fs, number, size)
			}
			checkList(t, f, fs, math.MaxInt, size)
		}
	}
}

// A filtered listing walks the store in chunks: hits on both sides of a
// chunk boundary must be counted once and paged in order.
func TestListSecretsFilterAcrossChunks(t *testing.T) {
	f := newFixture(t)
	const n = listChunk + 37
	// Written straight to the store: 1,061 CreateSecret calls would each be
	// a durable commit, and the listing reads only the secrets table.
	err := f.st.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			sec := &Secret{Name: fmt.Sprintf("c-%05d", i), Type: TypeGeneric, CreateTime: f.clock.Now(), UpdateTime: f.clock.Now()}
			if i%10 == 3 {
				sec.Description = "hit"
			}
			if err := putSecret(tx, acct, sec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fs, _ := ParseFilters(`[{"Key":"Description","Values":["hit"]}]`)
	hits := 0
	for i := range n {
		if i%10 == 3 {
			hits++
		}
	}
	var walked []string
	for number := 1; ; number++ {
		got, total := checkList(t, f, fs, number, 9)
		if total != hits {
			t.Fatalf("total = %d, want %d", total, hits)
		}
		if len(got) == 0 {
			break
		}
		walked = append(walked, names(got)...)
	}
	if len(walked) != hits || walked[len(walked)-1] != fmt.Sprintf("c-%05d", n-8) {
		t.Errorf("walked %d hits ending %v", len(walked), walked[len(walked)-3:])
	}
	got, total := checkList(t, f, nil, (listChunk/100)+1, 100)
	if total != n || len(got) != n-listChunk/100*100 {
		t.Errorf("unfiltered last page: %d items of %d", len(got), total)
	}
}

// TotalCount and the listing follow every change of the set of secrets:
// a scheduled deletion stays listed (with its PlannedDeleteTime) until it
// is purged; a restore clears the time; a forced delete and a purge remove
// it.
func TestListSecretsCountFollowsLifecycle(t *testing.T) {
	f := newFixture(t)
	all := seedList(t, f, 12)
	list := func() ([]*Secret, int) {
		t.Helper()
		var out []*Secret
		total := 0
		for number := 1; ; number++ {
			got, n := checkList(t, f, nil, number, 5)
			total = n
			if len(got) == 0 {
				return out, total
			}
			out = append(out, got...)
		}
	}
	find := func(list []*Secret, name string) *Secret {
		for _, s := range list {
			if s.Name == name {
				return s
			}
		}
		return nil
	}
	if got, total := list(); total != 12 || !reflect.DeepEqual(names(got), all) {
		t.Fatalf("after create: %d %q", total, names(got))
	}

	if _, err := f.svc.DeleteSecret(ctx, acct, "s-003", 7, false); err != nil {
		t.Fatal(err)
	}
	got, total := list()
	if s := find(got, "s-003"); total != 12 || s == nil || s.PlannedDeleteTime.IsZero() {
		t.Fatalf("after scheduled delete: total %d, s-003 = %+v; want 12 and listed with a planned time", total, s)
	}

	if _, err := f.svc.RestoreSecret(ctx, acct, "s-003"); err != nil {
		t.Fatal(err)
	}
	got, total = list()
	if s := find(got, "s-003"); total != 12 || s == nil || !s.PlannedDeleteTime.IsZero() {
		t.Fatalf("after restore: total %d, s-003 = %+v", total, s)
	}

	if _, err := f.svc.DeleteSecret(ctx, acct, "s-000", 0, true); err != nil {
		t.Fatal(err)
	}
	got, total = list()
	if total != 11 || find(got, "s-000") != nil || got[0].Name != "s-001" {
		t.Fatalf("after forced delete: total %d, %q", total, names(got))
	}

	if _, err := f.svc.DeleteSecret(ctx, acct, "s-011", 7, false); err != nil {
		t.Fatal(err)
	}
	if n, err := f.svc.PurgeDue(ctx, f.clock.Now().Add(8*24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("PurgeDue = %d, %v", n, err)
	}
	got, total = list()
	if total != 10 || find(got, "s-011") != nil || got[len(got)-1].Name != "s-010" {
		t.Fatalf("after purge: total %d, %q", total, names(got))
	}

	f.create(t, "s-000", "again")
	f.create(t, "a-first", "x")
	got, total = list()
	if total != 12 || got[0].Name != "a-first" || got[1].Name != "s-000" {
		t.Fatalf("after re-create: total %d, %q", total, names(got))
	}
	// The other accounts were never touched.
	for _, other := range []string{acct + "0", "0" + acct} {
		list, total, err := f.svc.ListSecrets(ctx, other, nil, 1, 100)
		if err != nil || total != 3 || strings.Join(names(list), ",") != "a,s-000,zz" {
			t.Errorf("account %s: %q, %d, %v", other, names(list), total, err)
		}
	}
}

// PurgeDue finds due secrets across chunk boundaries of its walk and
// deletes more than one transaction's batch, leaving the rest (not due,
// live, other accounts) alone; the count follows.
func TestPurgeDueAcrossChunksAndBatches(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	const n = listChunk + 176
	wantLeft := map[string]bool{}
	due := 0
	err := f.st.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			account := acct
			if i%50 == 0 {
				account = acct + "0"
			}
			sec := &Secret{Name: fmt.Sprintf("p-%05d", i), Type: TypeGeneric, CreateTime: now, UpdateTime: now}
			switch i % 4 {
			case 1, 2: // due: at or before now
				sec.PlannedDeleteTime = now.Add(-time.Duration(i%2) * time.Hour)
				due++
			case 3: // scheduled, not yet due
				sec.PlannedDeleteTime = now.Add(time.Second)
				wantLeft[account+"/"+sec.Name] = true
			default:
				wantLeft[account+"/"+sec.Name] = true
			}
			if err := putSecret(tx, account, sec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if due <= purgeBatch {
		t.Fatalf("only %d due: the test needs more than one batch", due)
	}
	got, err := f.svc.PurgeDue(ctx, now)
	if err != nil || got != due {
		t.Fatalf("PurgeDue = %d, %v; want %d", got, err, due)
	}
	left := map[string]bool{}
	err = f.st.View(ctx, func(tx store.Tx) error {
		return walkSecrets(tx, "", func(kv store.KV) error { left[kv.Key] = true; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(left, wantLeft) {
		t.Fatalf("%d secrets left, want %d", len(left), len(wantLeft))
	}
	checkList(t, f, nil, 1, 100)
	if got, _ := f.svc.PurgeDue(ctx, now); got != 0 {
		t.Errorf("second purge = %d, want 0", got)
	}
}

// The walks skip decoding records without the byte patterns of a set
// deletion time or enabled rotation. That is only sound while
// encoding/json writes exactly those bytes for a set field, omits the field
// when zero, and no field holds raw JSON (where the pattern could appear
// unescaped): this pins all three.
func TestWalkPatternsMatchEncoding(t *testing.T) {
	sec := &Secret{Name: "n", Type: TypeRds, PlannedDeleteTime: time.Now(), Rotation: RotationPolicy{Enabled: true, Interval: time.Hour}}
	b, _ := json.Marshal(sec)
	if !bytes.Contains(b, plannedDeleteField) || !bytes.Contains(b, rotationOnField) {
		t.Fatalf("set fields encode without the patterns: %s", b)
	}
	// Text that looks like the patterns, in every string a caller sets.
	text := `"planned_delete":"2020-01-01T00:00:00Z","enabled":true`
	zero := &Secret{Name: "n", Type: TypeRds, Description: text, ExtendedConfig: text, Policy: text, Tags: []Tag{{text, text}}}
	b, _ = json.Marshal(zero)
	if bytes.Contains(b, plannedDeleteField) || bytes.Contains(b, rotationOnField) {
		t.Fatalf("zero fields or escaped text match the patterns: %s", b)
	}
	raw := reflect.TypeFor[json.RawMessage]()
	var check func(reflect.Type)
	check = func(typ reflect.Type) {
		for i := range typ.NumField() {
			ft := typ.Field(i).Type
			if ft == raw || ft.Kind() == reflect.Interface {
				t.Errorf("field %s.%s may hold raw JSON", typ.Name(), typ.Field(i).Name)
			}
			if ft.Kind() == reflect.Struct && ft.PkgPath() == typ.PkgPath() {
				check(ft)
			}
		}
	}
	check(reflect.TypeFor[Secret]())

	// End to end: a due deletion and a due rotation are found, and look-alike
	// text does not confuse either walk.
	f := newFixture(t)
	now := f.clock.Now()
	err := f.st.Update(ctx, func(tx store.Tx) error {
		for _, s := range []*Secret{
			{Name: "lookalike", Type: TypeRds, Description: text, Rotation: RotationPolicy{Interval: time.Hour}},
			{Name: "due-delete", Type: TypeGeneric, PlannedDeleteTime: now},
			{Name: "due-rotation", Type: TypeRds, Rotation: RotationPolicy{Enabled: true, Interval: time.Hour, NextRotation: now}},
		} {
			if err := putSecret(tx, acct, s); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	due, err := f.svc.DueForRotation(ctx, now)
	if err != nil || len(due) != 1 || due[0].Secret.Name != "due-rotation" || due[0].Account != acct {
		t.Errorf("DueForRotation = %+v, %v; want due-rotation only", due, err)
	}
	if n, err := f.svc.PurgeDue(ctx, now); err != nil || n != 1 {
		t.Errorf("PurgeDue = %d, %v; want 1", n, err)
	}
	if _, err := f.svc.DescribeSecret(ctx, acct, "lookalike"); err != nil {
		t.Errorf("lookalike: %v", err)
	}
}
