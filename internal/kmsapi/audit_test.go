package kmsapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// stageAudit records every event and fails the attempt or the outcome on
// demand, standing in for a trail whose storage fails.
type stageAudit struct {
	mu          sync.Mutex
	events      []Event
	failAttempt bool
	failOutcome bool
	ctxErrs     []error
}

func (a *stageAudit) Record(ctx context.Context, e Event) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ctxErrs = append(a.ctxErrs, ctx.Err())
	if e.Attempt && a.failAttempt || !e.Attempt && a.failOutcome {
		return errors.New("audit storage: disk full")
	}
	a.events = append(a.events, e)
	return nil
}

const auditSecretMarker = "MARKER-value-never-recorded"

type auditFixture struct {
	srv   *Server
	audit *stageAudit
	runs  int // Mutate handler runs
}

func newAuditSrv(t *testing.T) *auditFixture {
	t.Helper()
	f := &auditFixture{audit: &stageAudit{}}
	routes := []Route{
		{Version: VersionKMS, Action: "PutThing", Handler: func(context.Context, *Request) (any, error) {
			f.runs++
			return struct{}{}, nil
		}, Resource: func(r *Request) string {
			return "acs:kms:" + r.Region + ":" + r.Principal.Account + ":secret/" + r.Params.String("SecretName")
		}},
		{Version: VersionKMS, Action: "GetThing", Handler: func(context.Context, *Request) (any, error) {
			return map[string]string{"SecretData": auditSecretMarker}, nil
		}},
	}
	f.srv = New(Config{
		Region: "cn-hangzhou", Credentials: &srvCreds{}, Nonces: &srvNonces{}, Audit: f.audit,
		Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return srvNow },
	}, routes)
	return f
}

func (f *auditFixture) call(t *testing.T, action, nonce string, form string) srvResult {
	t.Helper()
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, acs3Request(action, rootID, rootSecret, nonce, nil, form))
	return decode(t, w)
}

func TestAuditChangingCallIsRecordedBeforeAndAfterItsHandler(t *testing.T) {
	f := newAuditSrv(t)
	res := f.call(t, "PutThing", "a1", "SecretName=app%2Fdb&SecretData="+auditSecretMarker)
	if res.status != 200 || f.runs != 1 {
		t.Fatalf("status %d, runs %d: %s", res.status, f.runs, res.raw)
	}
	ev := f.audit.events
	if len(ev) != 2 || !ev[0].Attempt || ev[1].Attempt {
		t.Fatalf("events %+v", ev)
	}
	for _, e := range ev {
		if e.RequestID != res.body["RequestId"] || e.Action != "kms:PutThing" || e.Resource != "acs:kms:cn-hangzhou:1234:secret/app/db" ||
			e.Account != "1234" || e.Principal.Kind != "root" {
			t.Errorf("event %+v", e)
		}
		for _, name := range signatureParams {
			if _, ok := e.Params[name]; ok {
				t.Errorf("event carries signature parameter %s", name)
			}
		}
	}
	if ev[1].Status != 200 || ev[1].Code != "" {
		t.Errorf("outcome %+v", ev[1])
	}
}

func TestAuditReadIsRecordedOnceBeforeTheResponse(t *testing.T) {
	f := newAuditSrv(t)
	res := f.call(t, "GetThing", "b1", "")
	if res.status != 200 || len(f.audit.events) != 1 || f.audit.events[0].Attempt || f.audit.events[0].Action != "kms:GetThing" {
		t.Fatalf("%d %+v", res.status, f.audit.events)
	}
}

func TestAuditFailureBeforeTheHandlerChangesNothing(t *testing.T) {
	f := newAuditSrv(t)
	f.audit.failAttempt = true
	res := f.call(t, "PutThing", "c1", "SecretName=x")
	if res.status != http.StatusServiceUnavailable || res.body["Code"] != "ServiceUnavailableTemporary" {
		t.Fatalf("got %d %s", res.status, res.raw)
	}
	if f.runs != 0 {
		t.Errorf("handler ran %d times without an audit record", f.runs)
	}
	// The outcome of the refused call is still offered to the trail.
	if len(f.audit.events) != 1 || f.audit.events[0].Code != "ServiceUnavailableTemporary" {
		t.Errorf("events %+v", f.audit.events)
	}
}

func TestAuditFailureAfterTheHandlerWithholdsTheResponse(t *testing.T) {
	f := newAuditSrv(t)
	f.audit.failOutcome = true
	res := f.call(t, "GetThing", "d1", "")
	if res.status != http.StatusServiceUnavailable || res.body["Code"] != "ServiceUnavailableTemporary" {
		t.Fatalf("got %d %s", res.status, res.raw)
	}
	if strings.Contains(res.raw, auditSecretMarker) {
		t.Error("a value left without an audit record")
	}
	// A changing call whose outcome cannot be written: it ran (the attempt
	// shows it), and the caller is told the call failed.
	res = f.call(t, "PutThing", "d2", "SecretName=x")
	if res.status != http.StatusServiceUnavailable || f.runs != 1 || len(f.audit.events) != 1 || !f.audit.events[0].Attempt {
		t.Errorf("got %d, runs %d, events %+v", res.status, f.runs, f.audit.events)
	}
}

func TestAuditRefusedCallIsRecordedOnceInTheClaimedKeysAccount(t *testing.T) {
	f := newAuditSrv(t)
	w := httptest.NewRecorder()
	f.srv.ServeHTTP(w, acs3Request("PutThing", rootID, "wrong-secret", "e1", nil, "SecretName=x"))
	res := decode(t, w)
	if res.status == 200 || f.runs != 0 {
		t.Fatalf("forged call: %d", res.status)
	}
	ev := f.audit.events
	if len(ev) != 1 || ev[0].Attempt || ev[0].Authorized || ev[0].Code != "SignatureDoesNotMatch" || ev[0].Account != "1234" ||
		ev[0].Principal.Kind != "" || ev[0].AccessKeyID != rootID {
		t.Errorf("events %+v", ev)
	}

	w = httptest.NewRecorder()
	f.srv.ServeHTTP(w, acs3Request("GetThing", "LTAInobody", "x", "e2", nil, ""))
	if last := f.audit.events[len(f.audit.events)-1]; last.Account != "" || last.Code != "InvalidAccessKeyId.NotFound" {
		t.Errorf("unknown key event %+v", last)
	}
}

func TestAuditRecordsSurviveAClientThatHasGone(t *testing.T) {
	f := newAuditSrv(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := acs3Request("PutThing", rootID, rootSecret, "f1", nil, "SecretName=x").WithContext(ctx)
	f.srv.ServeHTTP(httptest.NewRecorder(), r)
	for i, err := range f.audit.ctxErrs {
		if err != nil {
			t.Errorf("record %d got a cancelled context: it could be dropped", i)
		}
	}
	if len(f.audit.ctxErrs) == 0 {
		t.Error("nothing recorded")
	}
}

func TestReadOnlyActions(t *testing.T) {
	for action, want := range map[string]bool{
		"GetSecretValue": true, "ListSecrets": true, "DescribeKey": true, "Decrypt": true, "GenerateDataKey": true,
		"VerifyAuditTrail": true, "CreateAuditCheckpoint": true,
		"PutSecretValue": false, "CreateSecret": false, "DeleteSecret": false, "RotateSecret": false,
		"CreateAccessKey": false, "UpdateLoginProfile": false, "TagResource": false, "SetSecretPolicy": false,
	} {
		if readOnlyAction(action) != want {
			t.Errorf("%s: read-only = %v", action, !want)
		}
	}
}
