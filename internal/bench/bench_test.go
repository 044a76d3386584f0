package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyhold/keyhold/client"
)

func TestPercentileNearestRank(t *testing.T) {
	s := make([]time.Duration, 100)
	for i := range s {
		s[i] = time.Duration(i + 1)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {99, 99}, {100, 100}, {1, 1}, {0, 1}, {99.9, 100}} {
		if got := Percentile(s, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("one sample: %v", got)
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("no samples: %v", got)
	}
	// 3 samples: p50 is the 2nd (ceil 1.5), p99 the 3rd.
	three := []time.Duration{1, 2, 3}
	if Percentile(three, 50) != 2 || Percentile(three, 99) != 3 {
		t.Errorf("three samples: p50 %v p99 %v", Percentile(three, 50), Percentile(three, 99))
	}
}

func TestRunLoadStopsAtMaxRequestsAndCountsErrors(t *testing.T) {
	var calls atomic.Int64
	seen := make([]map[int]bool, 4)
	for i := range seen {
		seen[i] = map[int]bool{}
	}
	st := RunLoad(context.Background(), Load{Clients: 4, Duration: time.Minute, MaxRequests: 200}, func(_ context.Context, w, seq int) error {
		if seen[w][seq] {
			t.Errorf("worker %d seq %d twice", w, seq)
		}
		seen[w][seq] = true
		if calls.Add(1)%10 == 0 {
			return errors.New("boom")
		}
		return nil
	})
	if st.Requests+st.Errors != 200 {
		t.Fatalf("requests %d + errors %d, want 200 in all", st.Requests, st.Errors)
	}
	if st.Errors != 20 || st.FirstError != "boom" {
		t.Fatalf("errors %d (%q), want 20 boom", st.Errors, st.FirstError)
	}
	if st.P50 <= 0 || st.P99 < st.P50 || st.Max < st.P99 || st.PerSec <= 0 {
		t.Fatalf("stats not ordered: %+v", st)
	}
}

// TestRunTiny runs the whole bench against an in-process server with tiny
// phases and checks the report's shape, not its figures.
func TestRunTiny(t *testing.T) {
	var progress bytes.Buffer
	rep, err := Run(context.Background(), Config{
		Duration: 200 * time.Millisecond, Warmup: 20 * time.Millisecond,
		Clients: []int{1, 2}, ValueSize: 64, Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 8 {
		t.Fatalf("%d results, want 8 (get, get-user, bare at 1 and 2; put at 1 and 2)", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Requests == 0 || r.Errors != 0 || r.PerSec <= 0 || r.P50us <= 0 || r.P99us < r.P50us {
			t.Errorf("%s at %d: %+v", r.Phase, r.Clients, r)
		}
		if r.Phase == PhaseGet && r.VsBare <= 0 {
			t.Errorf("get at %d has no ratio to bare", r.Clients)
		}
		if (r.Phase == PhaseGetUser) != (r.VsRoot > 0) {
			t.Errorf("%s at %d: ratio to root %v", r.Phase, r.Clients, r.VsRoot)
		}
	}
	for _, n := range []int{1, 2} {
		if rep.find(PhaseGetUser, n) == nil {
			t.Errorf("no get-user result at %d clients", n)
		}
	}
	if rep.BodyBytes < 64 {
		t.Errorf("captured body of %d bytes for a 64-byte value", rep.BodyBytes)
	}
	if n := strings.Count(progress.String(), "\n"); n != 8 {
		t.Errorf("%d progress lines, want 8:\n%s", n, progress.String())
	}
	// Targets at 32 clients were not measured; the other two were.
	if len(rep.Targets) != 2 {
		t.Errorf("targets: %+v", rep.Targets)
	}

	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"GetSecretValue (signed, full path)", "bare net/http", "PutSecretValue (durable", "GetSecretValue as user, 20-stmt policy", "p99", "vs bare", "vs root"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Results []Result `json:"results"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Results) != 8 {
		t.Fatalf("json report: %v, %d results", err, len(back.Results))
	}
}

// TestRunUserOnly runs get-user alone: the user is created without the root
// phase, and without a root figure there is no ratio.
func TestRunUserOnly(t *testing.T) {
	rep, err := Run(context.Background(), Config{
		Duration: 100 * time.Millisecond, Warmup: 10 * time.Millisecond,
		Clients: []int{2}, ValueSize: 16, Phases: []string{PhaseGetUser},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != 1 || rep.Results[0].Phase != PhaseGetUser || rep.Results[0].Requests == 0 || rep.Results[0].Errors != 0 {
		t.Fatalf("results: %+v", rep.Results)
	}
	if rep.Results[0].VsRoot != 0 || len(rep.Targets) != 0 {
		t.Fatalf("ratio %v, targets %+v without a root phase", rep.Results[0].VsRoot, rep.Targets)
	}
}

// TestBenchUserIsConfinedByItsPolicy checks that the get-user phase really
// measures a policy-bound caller: 20 statements, only the last granting
// the bench secret, and the user refused any other secret.
func TestBenchUserIsConfinedByItsPolicy(t *testing.T) {
	var doc struct {
		Statement []struct {
			Action   any
			Resource string
		}
	}
	if err := json.Unmarshal([]byte(benchPolicy("s-get")), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Statement) != PolicyStatements {
		t.Fatalf("%d statements, want %d", len(doc.Statement), PolicyStatements)
	}
	for i, st := range doc.Statement {
		if last := i == len(doc.Statement)-1; last != strings.HasSuffix(st.Resource, ":secret/s-get") {
			t.Errorf("statement %d names %s", i, st.Resource)
		}
	}

	ctx := context.Background()
	srv, dir, err := startServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		os.RemoveAll(dir)
	})
	_, id, secret, err := readRootCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := httpClient(1, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	root, err := newClient(srv.HTTPURL, id, secret, hc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"s-get", "other"} {
		if _, err := root.CreateSecret(ctx, &client.CreateSecretRequest{SecretName: name, SecretData: "v-" + name, VersionId: "v0"}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := createUser(ctx, root, "t", "s-get")
	if err != nil {
		t.Fatal(err)
	}
	uc, err := newClient(srv.HTTPURL, u.keyID, u.keySecret, hc)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := uc.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: "s-get"}); err != nil || r.SecretData != "v-s-get" {
		t.Fatalf("user GetSecretValue(s-get) = %+v, %v", r, err)
	}
	if _, err := uc.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: "other"}); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Fatalf("user GetSecretValue(other) = %v, want Forbidden", err)
	}
	// A taken name is an error, never a silent reuse of another user.
	if _, err := createUser(ctx, root, "t", "s-get"); err == nil {
		t.Fatal("createUser with an existing user's name succeeded")
	}
	u.remove(root)
	if _, err := uc.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: "s-get"}); err == nil {
		t.Fatal("the removed user's key still works")
	}
}

func TestConfigRefusesBadInput(t *testing.T) {
	for _, c := range []Config{
		{Clients: []int{0}},
		{ValueSize: 30721},
		{Phases: []string{"delete"}},
		{Endpoint: "http://127.0.0.1:1"},
	} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

// fixture is an in-process server with one secret, and a bare handler
// returning that secret's GetSecretValue body, for the Go benchmarks.
type fixture struct {
	real, bare *client.Client
	name       string
	value      string
}

func newFixture(b *testing.B, clients int) *fixture {
	b.Helper()
	ctx := context.Background()
	srv, dir, err := startServer(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		srv.Close()
		os.RemoveAll(dir)
	})
	_, id, secret, err := readRootCredentials(dir)
	if err != nil {
		b.Fatal(err)
	}
	hc, err := httpClient(clients, nil, false)
	if err != nil {
		b.Fatal(err)
	}
	f := &fixture{name: "bench-secret", value: randValue(1024)}
	if f.real, err = newClient(srv.HTTPURL, id, secret, hc); err != nil {
		b.Fatal(err)
	}
	if _, err := f.real.CreateSecret(ctx, &client.CreateSecretRequest{SecretName: f.name, SecretData: f.value, VersionId: "v0"}); err != nil {
		b.Fatal(err)
	}
	body, hdr, err := captureGet(ctx, srv.HTTPURL, id, secret, hc, f.name)
	if err != nil {
		b.Fatal(err)
	}
	bare, url, err := startBare(body, hdr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { bare.Close() })
	if f.bare, err = newClient(url, id, secret, hc); err != nil {
		b.Fatal(err)
	}
	return f
}

func benchGet(b *testing.B, c *client.Client, name string, parallel bool) {
	req := &client.GetSecretValueRequest{SecretName: name}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for b.Loop() {
			if _, err := c.GetSecretValue(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.SetParallelism(16) // 16 × GOMAXPROCS(2) = 32 clients here
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.GetSecretValue(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetSecretValue is one signed GetSecretValue through the
// in-process server (go test -bench GetSecretValue -cpuprofile cpu.out).
func BenchmarkGetSecretValue(b *testing.B) {
	f := newFixture(b, 64)
	b.Run("serial", func(b *testing.B) { benchGet(b, f.real, f.name, false) })
	b.Run("parallel", func(b *testing.B) { benchGet(b, f.real, f.name, true) })
}

// BenchmarkBareHandler is the same client against the bare handler.
func BenchmarkBareHandler(b *testing.B) {
	f := newFixture(b, 64)
	b.Run("serial", func(b *testing.B) { benchGet(b, f.bare, f.name, false) })
	b.Run("parallel", func(b *testing.B) { benchGet(b, f.bare, f.name, true) })
}

// BenchmarkPutSecretValue is a durable PutSecretValue of a new version,
// one secret per goroutine.
func BenchmarkPutSecretValue(b *testing.B) {
	f := newFixture(b, 64)
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		name := "bench-put-" + itoa(int(next.Add(1)))
		if _, err := f.real.CreateSecret(ctx, &client.CreateSecretRequest{SecretName: name, SecretData: f.value, VersionId: "v0"}); err != nil {
			b.Error(err)
			return
		}
		for i := 1; pb.Next(); i++ {
			if _, err := f.real.PutSecretValue(ctx, &client.PutSecretValueRequest{SecretName: name, VersionId: "v" + itoa(i), SecretData: f.value}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
