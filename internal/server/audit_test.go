package server_test

// Audit trail tests: the official KMS SDK and the public Go client against a
// real server; tampering done with the bbolt API on the stopped server's
// file, as someone with access to the storage but not the root key could.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"
	bbolt "go.etcd.io/bbolt"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/server"
)

const keyholdVersion = "2026-11-01"

// auditRecord and verifyReport are the public client's types.
type (
	auditRecord  = client.AuditEvent
	verifyReport = client.AuditReport
)

func (ts *testServer) goClient(t *testing.T) *client.Client {
	t.Helper()
	return ts.goClientWith(t, ts.keyID, ts.keySecret)
}

func (ts *testServer) goClientWith(t *testing.T, id, secret string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Endpoint: ts.HTTPURL, AccessKeyID: id, AccessKeySecret: secret, ReadRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// auditEvents lists the whole trail through the client's ListAuditEvents.
func auditEvents(t *testing.T, c *client.Client, filters map[string]string) []auditRecord {
	t.Helper()
	f := map[string]string{"MaxResults": "7"} // small pages exercise paging
	maps.Copy(f, filters)
	ev, err := c.ListAuditEvents(context.Background(), f, 0)
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	return ev
}

func exportAudit(t *testing.T, c *client.Client) string {
	t.Helper()
	var b strings.Builder
	params := map[string]string{"MaxResults": "5"}
	for range 1000 {
		var out struct {
			Data      string
			Count     int
			NextToken string
		}
		if err := c.Call(context.Background(), keyholdVersion, "ExportAuditEvents", params, &out); err != nil {
			t.Fatalf("ExportAuditEvents: %v", err)
		}
		if strings.Count(out.Data, "\n") != out.Count {
			t.Fatalf("export page of %d records has %d lines", out.Count, strings.Count(out.Data, "\n"))
		}
		b.WriteString(out.Data)
		if out.NextToken == "" {
			return b.String()
		}
		params["NextToken"] = out.NextToken
	}
	t.Fatal("ExportAuditEvents never ends")
	return ""
}

func verifyAudit(t *testing.T, c *client.Client, checkpoint string) verifyReport {
	t.Helper()
	rep, err := c.VerifyAuditTrail(context.Background(), checkpoint)
	if err != nil {
		t.Fatalf("VerifyAuditTrail: %v", err)
	}
	return *rep
}

func checkpointAudit(t *testing.T, c *client.Client) string {
	t.Helper()
	var out struct{ Checkpoint json.RawMessage }
	if err := c.Call(context.Background(), keyholdVersion, "CreateAuditCheckpoint", nil, &out); err != nil {
		t.Fatalf("CreateAuditCheckpoint: %v", err)
	}
	return string(out.Checkpoint)
}

// createUserKey makes a RAM user with no policy and returns its key pair.
func createUserKey(t *testing.T, c *client.Client, name string) (string, string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Call(ctx, "2015-05-01", "CreateUser", map[string]string{"UserName": name}, nil); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	var out struct {
		AccessKey struct{ AccessKeyId, AccessKeySecret string }
	}
	if err := c.Call(ctx, "2015-05-01", "CreateAccessKey", map[string]string{"UserName": name}, &out); err != nil {
		t.Fatalf("CreateAccessKey: %v", err)
	}
	return out.AccessKey.AccessKeyId, out.AccessKey.AccessKeySecret
}

func find(recs []auditRecord, match func(r auditRecord) bool) []auditRecord {
	var out []auditRecord
	for _, r := range recs {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

func TestAuditTrailRecordsEveryCallWithoutValues(t *testing.T) {
	auditFile := ""
	ts := startServer(t, func(c *server.Config) { auditFile = filepath.Join(c.DataDir, "audit.jsonl"); c.AuditFile = auditFile })
	ctx := context.Background()
	sdk := ts.sdk(t, sdkModes[0])
	cl := ts.goClient(t)
	const (
		markerCreate = "MARKER-create-7d1c"
		markerPut    = "MARKER-put-91aa"
		markerPlain  = "MARKER-plaintext-3f0e"
	)

	// Allowed calls.
	must(sdk.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("app/audited"), SecretData: tea.String(markerCreate), VersionId: tea.String("v1")}))
	must(sdk.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("app/audited"), SecretData: tea.String(markerPut), VersionId: tea.String("v2")}))
	got := must(sdk.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("app/audited")}))
	if tea.StringValue(got.Body.SecretData) != markerPut {
		t.Fatalf("value %q", tea.StringValue(got.Body.SecretData))
	}
	key := must(sdk.CreateKey(&kms.CreateKeyRequest{Description: tea.String("audit test")}))
	enc := must(sdk.Encrypt(&kms.EncryptRequest{KeyId: key.Body.KeyMetadata.KeyId, Plaintext: tea.String(base64.StdEncoding.EncodeToString([]byte(markerPlain)))}))
	must(sdk.Decrypt(&kms.DecryptRequest{CiphertextBlob: enc.Body.CiphertextBlob}))

	// Unknown secret.
	_, err := sdk.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("app/none")})
	wantCode(t, err, "Forbidden.ResourceNotFound")

	// Denied: a user without any policy.
	userID, userSecret := createUserKey(t, cl, "auditee")
	_, err = ts.sdkWith(t, sdkModes[0], userID, userSecret).GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("app/audited")})
	wantCode(t, err, "Forbidden.NoPermission")

	// Refused at the signature: the root key id with a wrong secret, and an
	// unknown key id.
	_, err = ts.sdkWith(t, sdkModes[2], ts.keyID, "not-the-secret").GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("app/audited")})
	wantCode(t, err, "SignatureDoesNotMatch")
	_, err = ts.sdkWith(t, sdkModes[0], "LTAIunknownKey0000", "x").GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("app/audited")})
	wantCode(t, err, "InvalidAccessKeyId.NotFound")

	// On behalf of a bastion operator.
	var ob struct{ SecretData string }
	if err := cl.Call(client.WithOnBehalfOf(ctx, "operator1/session-42"), "2016-01-20", "GetSecretValue", map[string]string{"SecretName": "app/audited"}, &ob); err != nil || ob.SecretData != markerPut {
		t.Fatalf("on-behalf read: %v", err)
	}

	recs := auditEvents(t, cl, nil)
	secretARN := "acs:kms:cn-hangzhou:" + ts.Account + ":secret/app/audited"
	rootARN := "acs:ram::" + ts.Account + ":root"
	for _, tc := range []struct {
		name  string
		match func(r auditRecord) bool
		n     int
	}{
		{"CreateSecret attempt", func(r auditRecord) bool {
			return r.Action == "kms:CreateSecret" && r.Stage == "Attempt" && r.Result == "Pending" && r.Resource == secretARN
		}, 1},
		{"CreateSecret outcome", func(r auditRecord) bool {
			return r.Action == "kms:CreateSecret" && r.Stage == "Outcome" && r.Result == "OK" && r.HttpStatus == 200 &&
				r.PrincipalArn == rootARN && r.AccessKeyId == ts.keyID && r.SourceIp == "127.0.0.1" && r.ApiVersion == "2016-01-20" &&
				r.Params["SecretName"] == "app/audited" && r.Params["VersionId"] == "v1" && r.Params["SecretData"] == "***"
		}, 1},
		{"PutSecretValue outcome", func(r auditRecord) bool {
			return r.Action == "kms:PutSecretValue" && r.Stage == "Outcome" && r.Result == "OK" && r.Params["SecretData"] == "***"
		}, 1},
		{"GetSecretValue once, no attempt", func(r auditRecord) bool {
			return r.Action == "kms:GetSecretValue" && r.Result == "OK" && r.OnBehalfOf == "" && r.Stage == "Outcome"
		}, 1},
		{"no attempt record for reads", func(r auditRecord) bool { return r.Action == "kms:GetSecretValue" && r.Stage == "Attempt" }, 0},
		{"Encrypt with Plaintext redacted", func(r auditRecord) bool {
			return r.Action == "kms:Encrypt" && r.Result == "OK" && r.Params["Plaintext"] == "***" && r.Params["KeyId"] != ""
		}, 1},
		{"Decrypt with CiphertextBlob redacted", func(r auditRecord) bool {
			return r.Action == "kms:Decrypt" && r.Result == "OK" && r.Params["CiphertextBlob"] == "***"
		}, 1},
		{"unknown secret", func(r auditRecord) bool {
			return r.Action == "kms:GetSecretValue" && r.Result == "Forbidden.ResourceNotFound" && r.HttpStatus == 404 &&
				r.Resource == "acs:kms:cn-hangzhou:"+ts.Account+":secret/app/none"
		}, 1},
		{"denied user", func(r auditRecord) bool {
			return r.Action == "kms:GetSecretValue" && r.Result == "Forbidden.NoPermission" && r.HttpStatus == 403 &&
				r.PrincipalName == "auditee" && r.AccessKeyId == userID && r.PrincipalArn == "acs:ram::"+ts.Account+":user/auditee"
		}, 1},
		{"bad signature, in the claimed key's account", func(r auditRecord) bool {
			return r.Result == "SignatureDoesNotMatch" && r.AccessKeyId == ts.keyID && r.PrincipalType == "" && r.Account == ts.Account
		}, 1},
		{"unknown access key, in the default account", func(r auditRecord) bool {
			return r.Result == "InvalidAccessKeyId.NotFound" && r.AccessKeyId == "LTAIunknownKey0000"
		}, 1},
		{"on behalf of", func(r auditRecord) bool {
			return r.Action == "kms:GetSecretValue" && r.OnBehalfOf == "operator1/session-42" && r.PrincipalArn == rootARN
		}, 1},
		{"RAM CreateAccessKey", func(r auditRecord) bool {
			return r.Action == "ram:CreateAccessKey" && r.Stage == "Outcome" && r.Result == "OK" && r.Params["UserName"] == "auditee"
		}, 1},
	} {
		if got := find(recs, tc.match); len(got) != tc.n {
			t.Errorf("%s: %d records, want %d", tc.name, len(got), tc.n)
		}
	}
	for i, r := range recs {
		if r.Seq != uint64(i+1) || r.Mac == "" || r.RequestId == "" || r.Account != ts.Account {
			t.Errorf("record %d: seq %d, account %q, mac %q", i, r.Seq, r.Account, r.Mac)
		}
	}

	// Filters, server side.
	denied := auditEvents(t, cl, map[string]string{"Result": "Forbidden.NoPermission", "Principal": "auditee"})
	if len(denied) != 1 || denied[0].Action != "kms:GetSecretValue" {
		t.Errorf("filtered: %+v", denied)
	}
	if n := len(auditEvents(t, cl, map[string]string{"EventAction": "PutSecretValue", "Resource": "acs:kms:*"})); n != 2 {
		t.Errorf("PutSecretValue records on acs:kms:*: %d, want attempt and outcome", n)
	}
	var bad struct{}
	if err := cl.Call(ctx, keyholdVersion, "ListAuditEvents", map[string]string{"Since": "yesterday"}, &bad); !client.IsCode(err, "InvalidParameter") {
		t.Errorf("bad Since: %v", err)
	}
	if err := cl.Call(ctx, keyholdVersion, "ListAuditEvents", map[string]string{"MaxResults": "1000"}, &bad); !client.IsCode(err, "InvalidParameter") {
		t.Errorf("MaxResults above 100: %v", err)
	}

	// The user without keyhold:* cannot read the trail; the refusal is
	// itself recorded.
	err = ts.goClientWith(t, userID, userSecret).Call(ctx, keyholdVersion, "ListAuditEvents", nil, &bad)
	if !client.IsCode(err, "Forbidden.NoPermission") {
		t.Errorf("user reads the trail: %v", err)
	}

	if rep := verifyAudit(t, cl, ""); !rep.Valid || rep.RecordCount < uint64(len(recs)) {
		t.Errorf("verify %+v", rep)
	}

	// No value anywhere: not in the listing, the export, the forwarded
	// file, nor (after shutdown) anywhere in the storage file.
	export := exportAudit(t, cl)
	if n := strings.Count(export, "\n"); n < len(recs) {
		t.Errorf("export has %d lines, listing %d records", n, len(recs))
	}
	for line := range strings.SplitSeq(strings.TrimSpace(export), "\n") {
		var r auditRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Mac == "" {
			t.Fatalf("export line %q: %v", line, err)
		}
	}
	listed, _ := json.Marshal(recs)
	if err := ts.Close(); err != nil {
		t.Fatal(err)
	}
	fileCopy, err := os.ReadFile(auditFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(auditFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v", fi.Mode())
	}
	if n := bytes.Count(fileCopy, []byte("\n")); n < len(recs) {
		t.Errorf("audit file has %d lines, trail %d records", n, len(recs))
	}
	db, err := os.ReadFile(filepath.Join(ts.dir, "keyhold.db"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{markerCreate, markerPut, markerPlain, base64.StdEncoding.EncodeToString([]byte(markerPlain)), userSecret, ts.keySecret}
	for name, blob := range map[string][]byte{"listing": listed, "export": []byte(export), "audit file": fileCopy, "storage": db} {
		for _, s := range secrets {
			if bytes.Contains(blob, []byte(s)) {
				t.Errorf("%s contains a secret value (%.12s…)", name, s)
			}
		}
	}
}

// restart starts a server again on ts's data directory.
func restart(t *testing.T, ts *testServer) *testServer {
	t.Helper()
	srv, err := server.Start(context.Background(), server.Config{
		DataDir: ts.dir, Listen: "127.0.0.1:0", TLSListen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(ts.logs, nil)),
	})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return &testServer{Server: srv, dir: ts.dir, keyID: ts.keyID, keySecret: ts.keySecret, logs: ts.logs}
}

// tamper opens the stopped server's storage with bbolt and runs fn on the
// audit bucket with the account's record keys in order.
func tamper(t *testing.T, ts *testServer, fn func(records, head *bbolt.Bucket, keys [][]byte) error) {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(ts.dir, "keyhold.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bbolt.Tx) error {
		recs, head := tx.Bucket([]byte("t:audit")), tx.Bucket([]byte("t:audit_head"))
		if recs == nil || head == nil {
			return errors.New("no audit buckets")
		}
		var keys [][]byte
		prefix := []byte(ts.Account + "/")
		c := recs.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		return fn(recs, head, keys)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// auditedWork makes a few calls so the trail has records to tamper with.
func auditedWork(t *testing.T, ts *testServer, prefix string, n int) {
	t.Helper()
	sdk := ts.sdk(t, sdkModes[0])
	for i := range n {
		name := fmt.Sprintf("%s/s%d", prefix, i)
		must(sdk.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String(name), SecretData: tea.String("v"), VersionId: tea.String("v1")}))
		must(sdk.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)}))
	}
}

func TestAuditTamperingIsDetected(t *testing.T) {
	t.Run("a field flipped", func(t *testing.T) {
		ts := startServer(t)
		auditedWork(t, ts, "flip", 3)
		if rep := verifyAudit(t, ts.goClient(t), ""); !rep.Valid {
			t.Fatalf("fresh trail: %+v", rep)
		}
		ts.Close()
		tamper(t, ts, func(recs, _ *bbolt.Bucket, keys [][]byte) error {
			v := recs.Get(keys[3]) // seq 4
			nv := bytes.Replace(v, []byte(`"PrincipalName":"root"`), []byte(`"PrincipalName":"evil"`), 1)
			if bytes.Equal(v, nv) {
				return fmt.Errorf("record 4 is not the root's: %s", v)
			}
			return recs.Put(keys[3], nv)
		})
		rep := verifyAudit(t, restart(t, ts).goClient(t), "")
		if rep.Valid || rep.FirstBadSeq != 4 || !strings.Contains(rep.Problem, "MAC") {
			t.Errorf("flipped record: %+v", rep)
		}
	})

	t.Run("a middle record deleted", func(t *testing.T) {
		ts := startServer(t)
		auditedWork(t, ts, "del", 3)
		ts.Close()
		tamper(t, ts, func(recs, _ *bbolt.Bucket, keys [][]byte) error { return recs.Delete(keys[2]) })
		rep := verifyAudit(t, restart(t, ts).goClient(t), "")
		if rep.Valid || rep.FirstBadSeq != 3 || !strings.Contains(rep.Problem, "missing") {
			t.Errorf("deleted record: %+v", rep)
		}
	})

	t.Run("the tail cut off", func(t *testing.T) {
		ts := startServer(t)
		auditedWork(t, ts, "cut", 2)
		ts.Close()
		var n int
		tamper(t, ts, func(recs, _ *bbolt.Bucket, keys [][]byte) error {
			n = len(keys)
			return errors.Join(recs.Delete(keys[n-1]), recs.Delete(keys[n-2]))
		})
		rep := verifyAudit(t, restart(t, ts).goClient(t), "")
		if rep.Valid || rep.FirstBadSeq != uint64(n-1) {
			t.Errorf("cut tail with the head left behind: %+v", rep)
		}
	})

	t.Run("the tail cut off and the head rewritten: only a checkpoint tells", func(t *testing.T) {
		ts := startServer(t)
		auditedWork(t, ts, "trunc", 2)
		cl := ts.goClient(t)
		cp := checkpointAudit(t, cl)
		var cpHead struct{ Seq uint64 }
		if err := json.Unmarshal([]byte(cp), &cpHead); err != nil || cpHead.Seq == 0 {
			t.Fatalf("checkpoint %s: %v", cp, err)
		}
		if rep := verifyAudit(t, cl, cp); !rep.Valid || rep.CheckpointSeq != cpHead.Seq {
			t.Fatalf("intact trail against its checkpoint: %+v", rep)
		}
		ts.Close()
		keep := cpHead.Seq - 3
		tamper(t, ts, func(recs, head *bbolt.Bucket, keys [][]byte) error {
			var last struct {
				Seq uint64
				Mac string
			}
			if err := json.Unmarshal(recs.Get(keys[keep-1]), &last); err != nil {
				return err
			}
			for _, k := range keys[keep:] {
				if err := recs.Delete(k); err != nil {
					return err
				}
			}
			hb, _ := json.Marshal(last)
			return head.Put([]byte(ts.Account), hb)
		})
		cl = restart(t, ts).goClient(t)
		rep := verifyAudit(t, cl, cp)
		if rep.Valid || rep.FirstBadSeq != keep+1 || !strings.Contains(rep.Problem, "checkpoint") {
			t.Errorf("truncation against the checkpoint: %+v", rep)
		}
		if rep := verifyAudit(t, cl, ""); !rep.Valid {
			t.Errorf("without a checkpoint the rewritten head hides the cut, as documented; got %+v", rep)
		}
		// A checkpoint that was altered is refused, not trusted.
		forged := strings.Replace(cp, fmt.Sprintf(`"Seq":%d`, cpHead.Seq), `"Seq":1`, 1)
		var out verifyReport
		if err := cl.Call(context.Background(), keyholdVersion, "VerifyAuditTrail", map[string]string{"Checkpoint": forged}, &out); !client.IsCode(err, "InvalidParameter") {
			t.Errorf("forged checkpoint: %v", err)
		}
	})
}

func TestAuditFailureFailsCallsClosed(t *testing.T) {
	var fail atomic.Bool
	ts := startServer(t, func(c *server.Config) {
		c.AuditFault = func() error {
			if fail.Load() {
				return errors.New("injected: audit storage unavailable")
			}
			return nil
		}
	})
	sdk := ts.sdk(t, sdkModes[1])
	must(sdk.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("fc/db"), SecretData: tea.String("one"), VersionId: tea.String("v1")}))

	fail.Store(true)
	_, err := sdk.PutSecretValue(&kms.PutSecretValueRequest{SecretName: tea.String("fc/db"), SecretData: tea.String("two"), VersionId: tea.String("v2")})
	wantCode(t, err, "ServiceUnavailableTemporary")
	_, err = sdk.CreateSecret(&kms.CreateSecretRequest{SecretName: tea.String("fc/new"), SecretData: tea.String("x"), VersionId: tea.String("v1")})
	wantCode(t, err, "ServiceUnavailableTemporary")
	_, err = sdk.DeleteSecret(&kms.DeleteSecretRequest{SecretName: tea.String("fc/db"), ForceDeleteWithoutRecovery: tea.String("true")})
	wantCode(t, err, "ServiceUnavailableTemporary")
	_, err = sdk.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("fc/db")})
	wantCode(t, err, "ServiceUnavailableTemporary")
	// Refused calls fail closed as well (the refusal cannot be recorded).
	_, err = ts.sdkWith(t, sdkModes[1], ts.keyID, "wrong").GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("fc/db")})
	wantCode(t, err, "ServiceUnavailableTemporary")
	fail.Store(false)

	// Nothing changed.
	got := must(sdk.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String("fc/db")}))
	if tea.StringValue(got.Body.SecretData) != "one" || tea.StringValue(got.Body.VersionId) != "v1" {
		t.Errorf("value after failed calls: %q %q", tea.StringValue(got.Body.SecretData), tea.StringValue(got.Body.VersionId))
	}
	vers := must(sdk.ListSecretVersionIds(&kms.ListSecretVersionIdsRequest{SecretName: tea.String("fc/db")}))
	if n := len(vers.Body.VersionIds.VersionId); n != 1 {
		t.Errorf("versions after the refused put: %d", n)
	}
	_, err = sdk.DescribeSecret(&kms.DescribeSecretRequest{SecretName: tea.String("fc/new")})
	wantCode(t, err, "Forbidden.ResourceNotFound")

	// Nothing of the failed calls was kept (the trail has a gap in time,
	// not in its chain), and the chain still verifies.
	cl := ts.goClient(t)
	after := auditEvents(t, cl, nil)
	if n := len(find(after, func(r auditRecord) bool {
		return r.Action == "kms:PutSecretValue" || r.Action == "kms:DeleteSecret" || r.Action == "kms:CreateSecret" && r.Params["SecretName"] == "fc/new" ||
			r.Result == "ServiceUnavailableTemporary" || r.Result == "SignatureDoesNotMatch"
	})); n != 0 {
		t.Errorf("failed calls left %d records", n)
	}
	if rep := verifyAudit(t, cl, ""); !rep.Valid {
		t.Errorf("verify %+v", rep)
	}
	if !strings.Contains(ts.logs.String(), "audit: record cannot be written") {
		t.Error("the failure was not logged")
	}
}
