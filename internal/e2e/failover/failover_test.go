package failover

// TestLeaderKilledDuringScheduledRotation: three `keyhold server` replicas
// on one real PostgreSQL, a real sshd with a throw-away user, and a real
// `keyhold agent` enrolled with a token from `keyhold host token create`,
// reaching the replicas through a TCP balancer as docs/ha.md suggests. An
// ECS password secret rotates on a schedule (the hidden
// --dev-min-rotation-interval lets it fall due within seconds). The agent
// is stopped (SIGSTOP) just before the slot, so the leader starts the
// rotation and waits on the agent; the leader is then killed with kill -9
// and the agent resumed. Asserted: exactly one other replica takes the
// lease, the rotation ends once (one record, one end in the audit trail,
// one new version, one apply in the agent's journal), the password Keyhold
// calls current logs in to sshd and the old one does not, and the slot is
// not rotated a second time.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
	"github.com/keyhold/keyhold/internal/testutil/sshdtest"
)

// generous bounds every wait: a shared 2-core CI machine is slow, and
// speed is measured by scripts/failover.sh, not asserted here.
const generous = 60 * time.Second

// interval is the schedule: long enough that the slot after the one under
// test cannot fall due before the test has turned the schedule off.
const interval = 30 * time.Second

type deployment struct {
	ServedBy    string
	Leader      string
	LeaderToken uint64
	Replicas    struct {
		Replica []struct {
			ReplicaId string
			Online    bool
		}
	}
}

type auditRecord struct {
	Action string
	Result string
	Params map[string]string
}

// journalEntry is the part of the agent's journal entry
// (DIR/commands/<hash>) the test reads; entries hold no credential.
type journalEntry struct {
	ID         string `json:"id"`
	RotationID string `json:"rotation_id"`
	Op         string `json:"op"`
	State      string `json:"state"`
}

type ecsValue struct {
	UserName string
	Password string
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func describe(ctx context.Context, c *client.Client) (deployment, error) {
	var d deployment
	err := c.Call(ctx, client.VersionKeyhold, "DescribeDeployment", nil, &d)
	return d, err
}

func auditEnds(t *testing.T, c *client.Client) []auditRecord {
	t.Helper()
	params := map[string]string{"EventAction": "keyhold:RotationFinished", "MaxResults": "50"}
	var all []auditRecord
	for range 100 {
		var out struct {
			Events    struct{ Event []auditRecord }
			NextToken string
		}
		if err := c.Call(context.Background(), client.VersionKeyhold, "ListAuditEvents", params, &out); err != nil {
			t.Fatalf("ListAuditEvents: %v", err)
		}
		all = append(all, out.Events.Event...)
		if out.NextToken == "" {
			return all
		}
		params["NextToken"] = out.NextToken
	}
	t.Fatal("ListAuditEvents never ends")
	return nil
}

func journal(t *testing.T, dir string) []journalEntry {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "commands", "*"))
	if err != nil {
		t.Fatal(err)
	}
	var out []journalEntry
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var e journalEntry
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("journal entry %s: %v", f, err)
		}
		out = append(out, e)
	}
	return out
}

func TestLeaderKilledDuringScheduledRotation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs three replicas, an agent and sshd")
	}
	sshdtest.Require(t)
	ctx := context.Background()
	pg := pgtest.Start(t)
	storage := pg.DSN(t)
	bin := BuildBinary(t)
	work := t.TempDir()
	keyFile := filepath.Join(work, "root.key")

	// Three replicas, the first alone (it creates the root key and the
	// account), each with its own data directory and the same key file.
	flags := []string{"--storage", storage, "--root-key-file", keyFile,
		"--dev-min-rotation-interval", "10s", "--rotation-scan-interval", "1s"}
	servers := map[string]*Server{}
	var order []*Server
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("r%d", i)
		s := StartServer(t, bin, id, filepath.Join(work, id), flags...)
		servers[id] = s
		order = append(order, s)
	}
	var logs = func() string {
		var b strings.Builder
		for _, s := range order {
			fmt.Fprintf(&b, "--- %s ---\n%s", s.ID, s.Log.String())
		}
		return b.String()
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process logs:\n%s", logs())
		}
	})
	if !strings.Contains(order[0].Log.String(), "not for production") {
		t.Fatalf("r1 did not warn about the development minimum:\n%s", order[0].Log.String())
	}

	credsPath := filepath.Join(order[0].DataDir, "root-credentials.json")
	raw, err := os.ReadFile(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	var creds struct {
		ID     string `json:"access_key_id"`
		Secret string `json:"access_key_secret"`
	}
	if err := json.Unmarshal(raw, &creds); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(order[0].DataDir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	clients := map[string]*client.Client{}
	for _, s := range order {
		c, err := client.New(client.Config{Endpoint: s.HTTPSURL, AccessKeyID: creds.ID, AccessKeySecret: creds.Secret, CACertPEM: caPEM})
		if err != nil {
			t.Fatal(err)
		}
		clients[s.ID] = c
	}
	waitFor(t, "three online replicas and a leader", generous, func() bool {
		d, err := describe(ctx, clients["r3"])
		online := 0
		for _, r := range d.Replicas.Replica {
			if r.Online {
				online++
			}
		}
		return err == nil && online == 3 && servers[d.Leader] != nil
	})

	// The host: sshd, a user with a password, and the agent, enrolled with
	// a token made by the CLI, behind a balancer over the three replicas.
	sshd := sshdtest.Start(t, sshdtest.Options{})
	const oldPW = "Initial-Passw0rd-before-failover"
	user := sshdtest.NewUser(t, sshdtest.UserOptions{Password: oldPW})
	old := ecsValue{UserName: user.Name, Password: oldPW}
	if err := sshd.LoginPassword(user.Name, oldPW); err != nil {
		t.Fatalf("the initial password does not log in: %v", err)
	}
	lb := StartBalancer(t, func() []string {
		var addrs []string
		for _, s := range order {
			addrs = append(addrs, HostPort(s.HTTPSURL))
		}
		return addrs
	})
	home := t.TempDir()
	cliEnv := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "KEYHOLD_CONFIG=" + filepath.Join(home, "config.json")}
	runCLI := func(args ...string) string {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, generous)
		defer cancel()
		cmd := exec.CommandContext(cctx, bin, args...)
		cmd.Env = cliEnv
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("keyhold %s: %v\n%s", strings.Join(args, " "), err, ee.Stderr)
			}
			t.Fatalf("keyhold %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	runCLI("configure", "import", credsPath)
	var tok struct{ Token string }
	if err := json.Unmarshal([]byte(runCLI("host", "token", "create", "--ttl", "10m", "--output", "json")), &tok); err != nil || tok.Token == "" {
		t.Fatalf("host token create: %v", err)
	}
	agentDir := filepath.Join(work, "agent")
	agent := Start(t, "agent", bin, "agent", "--server", "https://"+lb.Addr, "--token", tok.Token,
		"--data-dir", agentDir, "--sshd-addr", sshd.Addr, "--sshd-config", sshd.ConfigPath,
		"--poll-timeout", "5s", "--drift-interval", "1h")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", agent.Log.String())
		}
	})
	var hostID string
	waitFor(t, "the agent to enroll", generous, func() bool {
		if agent.Exited() {
			t.Fatalf("the agent exited: %v\n%s", agent.Err, agent.Log.String())
		}
		var id struct {
			HostID string `json:"host_id"`
		}
		b, err := os.ReadFile(filepath.Join(agentDir, "identity.json"))
		if err == nil && json.Unmarshal(b, &id) == nil {
			hostID = id.HostID
		}
		return hostID != ""
	})
	kc := clients["r1"]
	waitFor(t, "the agent to report the user", generous, func() bool {
		h, err := kc.DescribeHost(ctx, hostID)
		if err != nil {
			return false
		}
		for _, u := range h.LocalUsers.LocalUser {
			if u.UserName == user.Name && u.Allowed {
				return true
			}
		}
		return false
	})

	name := "acs/ecs/" + hostID + "/" + user.Name
	value, _ := json.Marshal(old)
	req := &client.CreateSecretRequest{
		SecretName: name, SecretType: "ECS", VersionId: "v1", SecretData: string(value),
		ExtendedConfig:          map[string]any{"SecretSubType": "Password", "RegionId": "cn-hangzhou", "InstanceId": hostID},
		EnableAutomaticRotation: true, RotationInterval: "5s",
	}
	// Below the lowered minimum is still refused.
	if _, err := kc.CreateSecret(ctx, req); !client.IsCode(err, "InvalidParameter") {
		t.Fatalf("RotationInterval 5s under a 10s minimum: %v", err)
	}
	req.RotationInterval = fmt.Sprintf("%ds", int(interval/time.Second))
	created, err := kc.CreateSecret(ctx, req)
	if err != nil {
		t.Fatalf("create the ECS secret: %v", err)
	}
	due, err := time.Parse(time.RFC3339, created.NextRotationDate)
	if err != nil {
		t.Fatalf("NextRotationDate %q: %v", created.NextRotationDate, err)
	}

	// Stop the agent just before the slot (it stays "online" for 75 s
	// after its last poll), so that the leader starts the rotation and it
	// waits on the agent.
	time.Sleep(time.Until(due.Add(-3 * time.Second)))
	agent.Signal(t, syscall.SIGSTOP)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			agent.Cmd.Process.Signal(syscall.SIGCONT)
		}
	})
	if out, err := kc.ListRotations(ctx, &client.ListRotationsRequest{SecretName: name}); err != nil || out.TotalCount != 0 {
		t.Fatalf("a rotation before the slot: %+v %v", out, err)
	}
	var rot client.Rotation
	waitFor(t, "the scheduled rotation to send apply", generous, func() bool {
		out, err := kc.ListRotations(ctx, &client.ListRotationsRequest{SecretName: name})
		if err != nil || len(out.Rotations.Rotation) == 0 {
			return false
		}
		rot = out.Rotations.Rotation[0]
		if rot.State != "applying" {
			if rot.State != "storing" {
				t.Fatalf("the rotation is %s before the agent could answer: %+v", rot.State, rot)
			}
			return false
		}
		for _, s := range rot.Steps.Step {
			if s.Name == "apply" && s.State == "running" {
				return true
			}
		}
		return false
	})
	if rot.Trigger != "schedule" {
		t.Fatalf("trigger %q, want schedule", rot.Trigger)
	}

	// kill -9 the leader that started it.
	d, err := describe(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	leader := servers[d.Leader]
	if leader == nil {
		t.Fatalf("no leader while the rotation runs: %+v", d)
	}
	var survivors []*Server
	offsets := map[string]int{}
	for _, s := range order {
		if s != leader {
			survivors = append(survivors, s)
			offsets[s.ID] = s.Log.Len()
		}
	}
	leader.KillAndWait(t)
	t.Logf("killed the leader %s (token %d) with the rotation %s applying", leader.ID, d.LeaderToken, rot.RotationId)
	sc := clients[survivors[0].ID]
	var next deployment
	waitFor(t, "another replica to take the lease", generous, func() bool {
		next, err = describe(ctx, sc)
		return err == nil && next.Leader != "" && next.Leader != leader.ID
	})
	if servers[next.Leader] == nil || next.LeaderToken <= d.LeaderToken {
		t.Fatalf("new leader %q token %d after %q token %d", next.Leader, next.LeaderToken, leader.ID, d.LeaderToken)
	}
	agent.Signal(t, syscall.SIGCONT)
	stopped = false

	// One end, then the schedule off so that the next slot (interval after
	// the promotion) cannot confuse the count.
	var end *client.Rotation
	waitFor(t, "the rotation to end", 4*time.Minute, func() bool {
		r, err := sc.DescribeRotation(ctx, rot.RotationId)
		if err == nil && (r.State == "succeeded" || r.State == "rolled-back" || r.State == "failed" || r.State == "abandoned") {
			end = r
		}
		return end != nil
	})
	if _, err := sc.UpdateSecretRotationPolicy(ctx, &client.UpdateSecretRotationPolicyRequest{SecretName: name, EnableAutomaticRotation: false}); err != nil {
		t.Fatal(err)
	}
	if end.State != "succeeded" && end.State != "rolled-back" {
		t.Fatalf("the rotation ended %s: %+v", end.State, end)
	}
	t.Logf("rotation %s ended %s after the failover to %s", end.RotationId, end.State, next.Leader)

	// A second taker gets time to appear: two lease lifetimes and more,
	// seen from both survivors.
	for until := time.Now().Add(12 * time.Second); time.Now().Before(until); time.Sleep(500 * time.Millisecond) {
		for _, s := range survivors {
			d, err := describe(ctx, clients[s.ID])
			if err != nil {
				t.Fatalf("DescribeDeployment on %s: %v", s.ID, err)
			}
			if d.Leader != next.Leader || d.LeaderToken != next.LeaderToken {
				t.Fatalf("%s sees leader %q token %d; %q token %d took over", s.ID, d.Leader, d.LeaderToken, next.Leader, next.LeaderToken)
			}
		}
	}
	takers := 0
	for _, s := range survivors {
		takers += strings.Count(s.Log.Since(offsets[s.ID]), "took the leader lease")
	}
	if takers != 1 {
		t.Fatalf("%d lease takeovers logged after the kill, want 1", takers)
	}

	// Exactly one rotation, with one end in the audit trail.
	list, err := sc.ListRotations(ctx, &client.ListRotationsRequest{SecretName: name})
	if err != nil {
		t.Fatal(err)
	}
	if list.TotalCount != 1 || list.Rotations.Rotation[0].RotationId != rot.RotationId {
		t.Fatalf("%d rotations of the secret, want the one: %+v", list.TotalCount, list.Rotations.Rotation)
	}
	var ends []auditRecord
	waitFor(t, "the rotation's end in the audit trail", generous, func() bool {
		ends = nil
		for _, e := range auditEnds(t, sc) {
			if e.Params["RotationId"] == rot.RotationId {
				ends = append(ends, e)
			}
		}
		return len(ends) > 0
	})
	if len(ends) != 1 || ends[0].Params["State"] != end.State {
		t.Fatalf("audit: %d ends of %s, want one with state %s: %+v", len(ends), rot.RotationId, end.State, ends)
	}

	// The agent applied it once: one apply command in its journal, done.
	applies := 0
	for _, e := range journal(t, agentDir) {
		if e.Op == "password.apply" {
			applies++
			if e.RotationID != rot.RotationId || e.State != "done" {
				t.Fatalf("journal apply entry %+v", e)
			}
		}
	}
	if applies != 1 {
		t.Fatalf("%d password.apply commands in the agent's journal, want 1", applies)
	}

	// Versions and the real logins.
	vs, err := sc.ListSecretVersionIds(ctx, &client.ListSecretVersionIdsRequest{SecretName: name})
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]string{}
	for _, v := range vs.VersionIds.VersionId {
		stages[v.VersionId] = strings.Join(v.VersionStages.VersionStage, ",")
	}
	get := func(stage string) ecsValue {
		t.Helper()
		out, err := sc.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: name, VersionStage: stage})
		if err != nil {
			t.Fatalf("GetSecretValue %s: %v", stage, err)
		}
		var v ecsValue
		if err := json.Unmarshal([]byte(out.SecretData), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	cur := get("ACSCurrent")
	if err := sshd.LoginPassword(cur.UserName, cur.Password); err != nil {
		t.Fatalf("lockout: the ACSCurrent password does not log in after %s: %v", end.State, err)
	}
	switch end.State {
	case "succeeded":
		if len(stages) != 2 || stages["v1"] != "ACSPrevious" || stages[end.VersionId] != "ACSCurrent" {
			t.Fatalf("versions after success: %v (new %s)", stages, end.VersionId)
		}
		if cur == old || get("ACSPrevious") != old {
			t.Fatal("ACSCurrent is not the new password, or ACSPrevious not the old one")
		}
		if err := sshd.LoginPassword(old.UserName, old.Password); !errors.Is(err, sshdtest.ErrRefused) {
			t.Fatalf("the old password still logs in after the rotation: %v", err)
		}
	case "rolled-back":
		if stages["v1"] != "ACSCurrent" || cur != old {
			t.Fatalf("versions after roll-back: %v", stages)
		}
		for id, st := range stages {
			if id != "v1" && st != "" {
				t.Fatalf("version %s kept stages %q after the roll-back", id, st)
			}
		}
	}

	// Still one rotation: the new leader's scheduler saw the slot due
	// while the rotation was open and did not start another.
	if out, err := sc.ListRotations(ctx, &client.ListRotationsRequest{SecretName: name}); err != nil || out.TotalCount != 1 {
		t.Fatalf("rotations at the end: %+v %v", out, err)
	}
	// No credential reached any process's output.
	all := logs() + agent.Log.String()
	for _, pw := range []string{old.Password, cur.Password} {
		if strings.Contains(all, pw) {
			t.Fatal("a password appears in a process's log")
		}
	}
}
