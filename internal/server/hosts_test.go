package server_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/agentapi/wire"
	"github.com/keyhold/keyhold/internal/fleet"
)

// rawAgent speaks the agent protocol by hand, so that tests can send what
// a real agent never would.
type rawAgent struct {
	t      *testing.T
	base   string
	http   *http.Client
	hostID string
	key    ed25519.PrivateKey
}

func (ts *testServer) rawAgent(t *testing.T) *rawAgent {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ts.CACertPEM())
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	return &rawAgent{t: t, base: ts.HTTPSURL, key: key,
		http: &http.Client{Timeout: 40 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

func (a *rawAgent) enroll(token string) (int, wire.EnrollResponse) {
	pub := a.key.Public().(ed25519.PublicKey)
	req := wire.EnrollRequest{Token: token, PublicKey: base64.StdEncoding.EncodeToString(pub),
		Inventory: wire.Inventory{HostName: "raw", AgentVersion: "t", LocalUsers: []wire.LocalUser{{Name: "alice", UID: 1000, Allowed: true}}},
		Proof:     base64.StdEncoding.EncodeToString(ed25519.Sign(a.key, []byte(wire.EnrollProof(token))))}
	var out wire.EnrollResponse
	st := a.post(wire.PathEnroll, req, &out, nil)
	if st == 200 {
		a.hostID = out.HostID
	}
	return st, out
}

type signOpts struct {
	key      ed25519.PrivateKey
	hostID   string
	ts       time.Time
	nonce    string
	bodyHash string
}

func (a *rawAgent) signed(path string, in, out any, o signOpts) int {
	if o.key == nil {
		o.key = a.key
	}
	if o.hostID == "" {
		o.hostID = a.hostID
	}
	if o.ts.IsZero() {
		o.ts = time.Now()
	}
	if o.nonce == "" {
		o.nonce = wire.NewNonce()
	}
	return a.post(path, in, out, func(r *http.Request, body []byte) {
		bh := wire.BodyHash(body)
		if o.bodyHash != "" {
			bh = o.bodyHash
		}
		ts := o.ts.UTC().Format(time.RFC3339)
		sig := ed25519.Sign(o.key, []byte(wire.StringToSign("POST", path, ts, o.nonce, bh, o.hostID)))
		r.Header.Set(wire.HeaderHostID, o.hostID)
		r.Header.Set(wire.HeaderTimestamp, ts)
		r.Header.Set(wire.HeaderNonce, o.nonce)
		r.Header.Set(wire.HeaderBodyHash, bh)
		r.Header.Set(wire.HeaderSignature, base64.StdEncoding.EncodeToString(sig))
	})
}

func (a *rawAgent) post(path string, in, out any, sign func(*http.Request, []byte)) int {
	a.t.Helper()
	body, _ := json.Marshal(in)
	r, _ := http.NewRequest("POST", a.base+path, bytes.NewReader(body))
	if sign != nil {
		sign(r, body)
	}
	resp, err := a.http.Do(r)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 && out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestHostActionsAndEnrollment(t *testing.T) {
	ts := startServer(t)
	c := ts.goClient(t)
	ctx := context.Background()

	tok, err := c.CreateEnrollmentToken(ctx, "30m", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok.Token, "kh1.") || tok.Uses != 1 || tok.ExpireTime == "" {
		t.Fatalf("token %+v", tok)
	}
	// The token pins this deployment's CA.
	block := ts.CACertPEM()
	if pin, _ := wire.ParseToken(tok.Token); pin != wire.CAPin(pemDER(t, block)) {
		t.Fatal("token does not pin the deployment CA")
	}
	for _, bad := range []map[string]string{{"Ttl": "forever"}, {"Ttl": "1s"}, {"Uses": "0"}, {"Uses": "-3"}, {"Uses": "x"}} {
		err := c.Call(ctx, client.VersionKeyhold, "CreateEnrollmentToken", bad, &struct{}{})
		wantClientCode(t, err, "InvalidParameter")
	}

	a := ts.rawAgent(t)
	if st, _ := a.enroll(tok.Token); st != 200 || !fleet.ValidHostID(a.hostID) {
		t.Fatalf("enroll: %d %q", st, a.hostID)
	}
	// Single use.
	if st, _ := ts.rawAgent(t).enroll(tok.Token); st != 403 {
		t.Fatalf("reused token: %d", st)
	}
	// A proof made with another key than the one registered is refused.
	tok2 := must(c.CreateEnrollmentToken(ctx, "", 0))
	b := ts.rawAgent(t)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	req := wire.EnrollRequest{Token: tok2.Token, PublicKey: base64.StdEncoding.EncodeToString(b.key.Public().(ed25519.PublicKey)),
		Proof: base64.StdEncoding.EncodeToString(ed25519.Sign(other, []byte(wire.EnrollProof(tok2.Token))))}
	if st := b.post(wire.PathEnroll, req, nil, nil); st != 403 {
		t.Fatalf("foreign proof: %d", st)
	}

	list := must(c.ListHosts(ctx, 0, ""))
	if len(list.Hosts.Host) != 1 || list.Hosts.Host[0].InstanceId != a.hostID || !list.Hosts.Host[0].Online {
		t.Fatalf("list %+v", list)
	}
	h := must(c.DescribeHost(ctx, a.hostID))
	if h.HostName != "raw" || len(h.LocalUsers.LocalUser) != 1 || h.LocalUsers.LocalUser[0].UserName != "alice" {
		t.Fatalf("describe %+v", h)
	}
	_, err = c.DescribeHost(ctx, "i-00000000000000000000")
	wantClientCode(t, err, "Forbidden.ResourceNotFound")
	_, err = c.DescribeHost(ctx, "not-an-id")
	wantClientCode(t, err, "Forbidden.ResourceNotFound")

	// Poll: signed by the host's key works and returns its queued command.
	if err := ts.Fleet().Enqueue(ctx, ts.Account, a.hostID, fleet.Command{ID: "c1", RotationID: "r", Op: fleet.OpPasswordApply, User: "alice", Password: "Pw-from-test-123"}); err != nil {
		t.Fatal(err)
	}
	var poll wire.PollResponse
	if st := a.signed(wire.PathPoll, wire.PollRequest{WaitSeconds: 1}, &poll, signOpts{}); st != 200 || len(poll.Commands) != 1 || poll.Commands[0].Password != "Pw-from-test-123" {
		t.Fatalf("poll: %d %+v", st, poll)
	}
	if strings.Contains(ts.logs.String(), "Pw-from-test-123") {
		t.Fatal("password in server logs")
	}

	// Another host's identity: a second host may not fetch the first's
	// commands, neither with its own key nor by naming the other id.
	tok3 := must(c.CreateEnrollmentToken(ctx, "", 0))
	intruder := ts.rawAgent(t)
	if st, _ := intruder.enroll(tok3.Token); st != 200 {
		t.Fatal(st)
	}
	if st := intruder.signed(wire.PathPoll, wire.PollRequest{WaitSeconds: 1}, &poll, signOpts{hostID: a.hostID}); st != 401 {
		t.Fatalf("other host's id with own key: %d", st)
	}
	if st := a.signed(wire.PathPoll, wire.PollRequest{WaitSeconds: 1}, &poll, signOpts{key: intruder.key}); st != 401 {
		t.Fatalf("foreign key: %d", st)
	}
	var ipoll wire.PollResponse
	if st := intruder.signed(wire.PathPoll, wire.PollRequest{WaitSeconds: 1}, &ipoll, signOpts{}); st != 200 || len(ipoll.Commands) != 0 {
		t.Fatalf("intruder saw commands: %d %+v", st, ipoll)
	}
	// A result reported by another host for this host's command is ignored.
	if st := intruder.signed(wire.PathReport, wire.ReportRequest{Results: []wire.Result{{CommandID: "c1", Status: "ok"}}}, nil, signOpts{}); st != 200 {
		t.Fatal(st)
	}
	if r, _ := ts.Fleet().Result(ctx, ts.Account, a.hostID, "c1"); r != nil {
		t.Fatalf("foreign result recorded: %+v", r)
	}

	// Replay, stale timestamp, body tampering, missing signature.
	nonce := wire.NewNonce()
	if st := a.signed(wire.PathReport, wire.ReportRequest{}, nil, signOpts{nonce: nonce}); st != 200 {
		t.Fatal(st)
	}
	if st := a.signed(wire.PathReport, wire.ReportRequest{}, nil, signOpts{nonce: nonce}); st != 401 {
		t.Fatalf("replayed nonce: %d", st)
	}
	if st := a.signed(wire.PathReport, wire.ReportRequest{}, nil, signOpts{ts: time.Now().Add(-6 * time.Minute)}); st != 401 {
		t.Fatalf("stale timestamp: %d", st)
	}
	if st := a.signed(wire.PathReport, wire.ReportRequest{}, nil, signOpts{bodyHash: wire.BodyHash([]byte("other"))}); st != 401 {
		t.Fatalf("body hash mismatch: %d", st)
	}
	if st := a.post(wire.PathPoll, wire.PollRequest{}, nil, nil); st != 401 {
		t.Fatalf("unsigned: %d", st)
	}

	// The result lands and is attributed to the queued command.
	if st := a.signed(wire.PathReport, wire.ReportRequest{Results: []wire.Result{{CommandID: "c1", Status: "ok", Check: "ssh-login"}},
		Drift: []wire.DriftEvent{{User: "alice", What: "password", Time: time.Now()}}}, nil, signOpts{}); st != 200 {
		t.Fatal(st)
	}
	r, _ := ts.Fleet().Result(ctx, ts.Account, a.hostID, "c1")
	if r == nil || r.Status != "ok" || r.RotationID != "r" {
		t.Fatalf("result %+v", r)
	}
	h = must(c.DescribeHost(ctx, a.hostID))
	if len(h.Drift.DriftEvent) != 1 || h.Drift.DriftEvent[0].UserName != "alice" || h.DriftCount != 1 {
		t.Fatalf("drift %+v", h.Drift)
	}
	// Drift is audited.
	var events struct {
		Events struct {
			Event []struct{ Action, Resource string }
		}
	}
	if err := c.Call(ctx, client.VersionKeyhold, "ListAuditEvents", map[string]string{"EventAction": "keyhold:HostDrift"}, &events); err != nil {
		t.Fatal(err)
	}
	if len(events.Events.Event) != 1 || !strings.HasSuffix(events.Events.Event[0].Resource, "host/"+a.hostID) {
		t.Fatalf("audit %+v", events)
	}

	// Removal revokes the identity.
	if err := c.RemoveHost(ctx, a.hostID); err != nil {
		t.Fatal(err)
	}
	if st := a.signed(wire.PathPoll, wire.PollRequest{WaitSeconds: 1}, &poll, signOpts{}); st != 403 {
		t.Fatalf("removed host: %d", st)
	}
	wantClientCode(t, c.RemoveHost(ctx, a.hostID), "Forbidden.ResourceNotFound")
	_, err = c.DescribeHost(ctx, a.hostID)
	wantClientCode(t, err, "Forbidden.ResourceNotFound")
	err = ts.Fleet().Enqueue(ctx, ts.Account, a.hostID, fleet.Command{ID: "c2", RotationID: "r", Op: fleet.OpPasswordRestore, User: "alice"})
	if err == nil {
		t.Fatal("enqueue on a removed host")
	}
	list = must(c.ListHosts(ctx, 0, ""))
	if len(list.Hosts.Host) != 1 || list.Hosts.Host[0].InstanceId != intruder.hostID {
		t.Fatalf("list after removal %+v", list)
	}
}

// A held poll returns as soon as a command is queued.
func TestAgentLongPollWakes(t *testing.T) {
	ts := startServer(t)
	c := ts.goClient(t)
	a := ts.rawAgent(t)
	if st, _ := a.enroll(must(c.CreateEnrollmentToken(context.Background(), "", 0)).Token); st != 200 {
		t.Fatal(st)
	}
	got := make(chan wire.PollResponse, 1)
	go func() {
		var p wire.PollResponse
		a.signed(wire.PathPoll, wire.PollRequest{}, &p, signOpts{})
		got <- p
	}()
	// Queue only once the poll is held: an empty poll would answer [] at
	// the 25 s limit, never with the command, so the result shows it woke.
	time.Sleep(200 * time.Millisecond)
	if err := ts.Fleet().Enqueue(context.Background(), ts.Account, a.hostID, fleet.Command{ID: "w1", RotationID: "r", Op: fleet.OpPasswordRestore, User: "alice"}); err != nil {
		t.Fatal(err)
	}
	p := <-got
	if len(p.Commands) != 1 || p.Commands[0].ID != "w1" {
		t.Fatalf("poll %+v", p)
	}
}

// A user without keyhold:* permissions is refused every host action.
func TestHostActionsNeedPermission(t *testing.T) {
	ts := startServer(t)
	rc := ts.ram(t, ts.keyID, ts.keySecret)
	rc.createUser(t, "bob")
	k := rc.createKey(t, "bob")
	bob := ts.apiClient(t, k.AccessKeyId, k.AccessKeySecret)
	ctx := context.Background()
	_, err := bob.CreateEnrollmentToken(ctx, "", 0)
	wantClientCode(t, err, "Forbidden.NoPermission")
	_, err = bob.ListHosts(ctx, 0, "")
	wantClientCode(t, err, "Forbidden.NoPermission")
	_, err = bob.DescribeHost(ctx, "i-00000000000000000000")
	wantClientCode(t, err, "Forbidden.NoPermission")
	rc.createPolicy(t, "hosts-read", fmt.Sprintf(`{"Version":"1","Statement":[{"Effect":"Allow","Action":["keyhold:ListHosts","keyhold:DescribeHost"],"Resource":"acs:keyhold:*:%s:host/*"}]}`, ts.Account))
	rc.attachUser(t, "Custom", "hosts-read", "bob")
	if _, err := bob.ListHosts(ctx, 0, ""); err != nil {
		t.Fatal(err)
	}
	_, err = bob.CreateEnrollmentToken(ctx, "", 0)
	wantClientCode(t, err, "Forbidden.NoPermission")
}

func pemDER(t *testing.T, p []byte) []byte {
	t.Helper()
	blk, _ := pem.Decode(p)
	if blk == nil {
		t.Fatal("no PEM certificate")
	}
	return blk.Bytes
}

func wantClientCode(t *testing.T, err error, code string) {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != code {
		t.Fatalf("error = %v, want code %s", err, code)
	}
}
