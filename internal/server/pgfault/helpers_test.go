package pgfault_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/testutil/logbuf"
	"github.com/keyhold/keyhold/internal/testutil/poll"
	"github.com/keyhold/keyhold/internal/testutil/rootcreds"
)

// replica is one Keyhold server on PostgreSQL, with the root access key
// it wrote at its first start.
type replica struct {
	*server.Server
	keyID, keySecret string
	logs             *syncBuffer
}

// syncBuffer collects a component's log for the test to read.
type syncBuffer = logbuf.Buffer

// startReplica starts the first (only) replica of a fresh deployment on
// the postgres URL dsn. The lease is short so that stepping down and
// taking it again happen within the test's generous waits.
func startReplica(t *testing.T, dsn string) *replica {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuffer{}
	srv, err := server.Start(context.Background(), server.Config{
		DataDir:   dir,
		Storage:   dsn,
		Listen:    "127.0.0.1:0",
		TLSListen: "127.0.0.1:0",
		Logger:    slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		LeaseTTL:  1500 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("start replica: %v", err)
	}
	t.Cleanup(func() {
		srv.Close()
		// PGFAULT_LOGS=1 shows it on success too (request durations).
		if t.Failed() || os.Getenv("PGFAULT_LOGS") != "" {
			t.Logf("server log:\n%s", logs)
		}
	})
	c := rootcreds.Read(t, dir)
	return &replica{Server: srv, keyID: c.ID, keySecret: c.Secret, logs: logs}
}

// sdk is the official KMS SDK pointed at r's plain HTTP listener (ACS3
// signatures). Its default runtime options do not retry, so a call's error
// is the server's answer to that one request.
func (r *replica) sdk(t *testing.T) *kms.Client {
	t.Helper()
	c, err := kms.NewClient(&openapi.Config{
		AccessKeyId:     tea.String(r.keyID),
		AccessKeySecret: tea.String(r.keySecret),
		Endpoint:        tea.String(strings.TrimPrefix(r.HTTPURL, "http://")),
		Protocol:        tea.String("http"),
		RegionId:        tea.String("cn-hangzhou"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// keyhold is Keyhold's own client, for the audit and deployment actions
// the KMS SDK does not have. Reads are not retried: every call counts.
func (r *replica) keyhold(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoint: r.HTTPURL, AccessKeyID: r.keyID, AccessKeySecret: r.keySecret, ReadRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newUser creates a RAM user without any policy and returns r as seen
// with the user's new access key.
func (r *replica) newUser(t *testing.T, name string) *replica {
	t.Helper()
	kh := r.keyhold(t)
	ctx := context.Background()
	if err := kh.Call(ctx, "2015-05-01", "CreateUser", map[string]string{"UserName": name}, nil); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	var ak struct {
		AccessKey struct{ AccessKeyId, AccessKeySecret string }
	}
	if err := kh.Call(ctx, "2015-05-01", "CreateAccessKey", map[string]string{"UserName": name}, &ak); err != nil {
		t.Fatalf("CreateAccessKey: %v", err)
	}
	return &replica{Server: r.Server, keyID: ak.AccessKey.AccessKeyId, keySecret: ak.AccessKey.AccessKeySecret, logs: r.logs}
}

// sdkError is what the SDK reports of a failed call.
type sdkError struct {
	Code      string
	Status    int
	RequestID string
}

func asSDKError(t *testing.T, err error) sdkError {
	t.Helper()
	var se *tea.SDKError
	if !errors.As(err, &se) {
		t.Fatalf("not an SDK error (the server did not answer with a KMS error): %v", err)
	}
	out := sdkError{Code: tea.StringValue(se.Code), Status: tea.IntValue(se.StatusCode)}
	var body struct{ RequestId string }
	if json.Unmarshal([]byte(tea.StringValue(se.Data)), &body) == nil {
		out.RequestID = body.RequestId
	}
	return out
}

// wantUnavailable checks err is the KMS answer for a temporary failure:
// ServiceUnavailableTemporary with HTTP 503 (Alibaba Cloud KMS common
// error codes), which clients may retry.
func wantUnavailable(t *testing.T, what string, err error) sdkError {
	t.Helper()
	if err == nil {
		t.Fatalf("%s succeeded while the database was unavailable", what)
	}
	e := asSDKError(t, err)
	if e.Code != "ServiceUnavailableTemporary" || e.Status != http.StatusServiceUnavailable {
		t.Fatalf("%s: %s (HTTP %d), want ServiceUnavailableTemporary (HTTP 503); %v", what, e.Code, e.Status, err)
	}
	return e
}

// must(call())(t) fails t on call's error and returns its value.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

type auditRecord = client.AuditEvent

// auditEvents lists the whole trail.
func auditEvents(t *testing.T, c *client.Client) []auditRecord {
	t.Helper()
	ev, err := c.ListAuditEvents(context.Background(), nil, 0)
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	return ev
}

// verifyAudit checks the account's hash chain end to end.
func verifyAudit(t *testing.T, c *client.Client) {
	t.Helper()
	rep, err := c.VerifyAuditTrail(context.Background(), "")
	if err != nil {
		t.Fatalf("VerifyAuditTrail: %v", err)
	}
	if !rep.Valid || rep.RecordCount == 0 {
		t.Fatalf("audit trail does not verify: %+v", rep)
	}
}

// readyz is the status of GET /readyz.
func readyz(t *testing.T, r *replica) int {
	t.Helper()
	res, err := http.Get(r.HTTPURL + "/readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	res.Body.Close()
	return res.StatusCode
}

// waitFor waits generously (see poll.Until).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, what, cond)
}
