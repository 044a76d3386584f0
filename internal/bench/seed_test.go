package bench

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/client"
)

func TestSeedLoadsResumesAndMeasures(t *testing.T) {
	ctx := context.Background()
	srv, dir, err := startServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); os.RemoveAll(dir) })
	endpoint, id, secret, err := readRootCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := SeedConfig{Secrets: 25, Clients: 4, Endpoint: endpoint, AccessKeyID: id, AccessKeySecret: secret}
	res, err := Seed(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 25 || res.Existing != 0 || res.Report != nil {
		t.Fatalf("first run: created %d existing %d report %v", res.Created, res.Existing, res.Report != nil)
	}

	// A larger second run resumes: the 25 exist, only the rest is created.
	// It skips the names safely below the last loaded one without a call
	// each (a smaller margin than 1,024 so that 25 are enough to show it),
	// and re-creates a hole left within the margin.
	hc, _ := httpClient(1, nil, false)
	kc, _ := newClient(endpoint, id, secret, hc)
	if _, err := kc.DeleteSecret(ctx, &client.DeleteSecretRequest{SecretName: "seed-0000020", ForceDeleteWithoutRecovery: true}); err != nil {
		t.Fatal(err)
	}
	defer func(m int) { resumeMargin = m }(resumeMargin)
	resumeMargin = 8
	var progress strings.Builder
	cfg.Secrets, cfg.Measure, cfg.Duration, cfg.MaxRequests = 130, []int{2}, time.Second, 20
	cfg.Progress = &progress
	res, err = Seed(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 106 || res.Existing != 24 {
		t.Fatalf("second run: created %d existing %d, want 106 and 24", res.Created, res.Existing)
	}
	if !strings.Contains(progress.String(), "seed-0000000 … seed-0000016 exist, resuming from seed-0000017") {
		t.Errorf("second run did not skip the loaded names: %q", progress.String())
	}
	if _, err := kc.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: "seed-0000129"}); err != nil {
		t.Fatalf("last seeded secret: %v", err)
	}
	if res.Report == nil || len(res.Report.Results) != 4 {
		t.Fatalf("want 4 measured phases, got %+v", res.Report)
	}
	for _, r := range res.Report.Results {
		if r.Requests == 0 || r.Errors != 0 {
			t.Errorf("%s: %d requests, %d errors (%s)", r.Label, r.Requests, r.Errors, r.FirstError)
		}
	}
	for i, want := range []string{"ListSecrets page 1 of 2", "ListSecrets page 1 of 2", "ListSecrets page 2 of 2"} {
		if got := res.Report.Results[i].Label; got != want {
			t.Errorf("phase %d (%s) = %q, want %q (130 secrets, 100 a page)", i, res.Report.Results[i].Phase, got, want)
		}
	}

	// Nothing to create now; SkipList measures GetSecretValue alone.
	cfg.SkipList = true
	res, err = Seed(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created != 0 || res.Existing != 130 || len(res.Report.Results) != 1 || res.Report.Results[0].Phase != PhaseGetSeeded {
		t.Fatalf("third run: created %d existing %d, report %+v", res.Created, res.Existing, res.Report.Results)
	}
}

func TestSeedRefusesBadInput(t *testing.T) {
	ctx := context.Background()
	if _, err := Seed(ctx, SeedConfig{Secrets: 0, Endpoint: "http://127.0.0.1:1"}); err == nil || !strings.Contains(err.Error(), "at least 1") {
		t.Errorf("0 secrets: %v", err)
	}
	if _, err := Seed(ctx, SeedConfig{Secrets: 5}); err == nil || !strings.Contains(err.Error(), "endpoint") {
		t.Errorf("no endpoint: %v", err)
	}
	// A server that refuses the credentials stops the load with its error.
	srv, dir, err := startServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close(); os.RemoveAll(dir) })
	endpoint, id, _, err := readRootCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Seed(ctx, SeedConfig{Secrets: 5, Clients: 2, Endpoint: endpoint, AccessKeyID: id, AccessKeySecret: "wrong"})
	if err == nil || res.Created != 0 {
		t.Fatalf("wrong secret: created %d, err %v", res.Created, err)
	}
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Code == "" {
		t.Errorf("want the server's error code, got %v", err)
	}
}
