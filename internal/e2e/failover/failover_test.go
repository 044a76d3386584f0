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
// not rotated a second time. Then a rotation started through the API on
// the follower, which the new leader resumes while the follower drives it
// too, also ends exactly once. A second deployment keeps the agent stopped
// until the new leader gives up on the apply: the rotation rolls back
// once, the old password logs in and the one it was to get does not. A
// third pauses the leader (SIGSTOP) instead of killing it and resumes it
// after the takeover: it steps down, and its still-running driver and the
// new leader's end the rotation once between them.

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
	"github.com/keyhold/keyhold/internal/testutil/poll"
	"github.com/keyhold/keyhold/internal/testutil/rootcreds"
	"github.com/keyhold/keyhold/internal/testutil/sshdtest"
)

// generous bounds every wait: a shared 2-core CI machine is slow, and
// speed is measured by scripts/failover.sh, not asserted here.
const generous = 60 * time.Second

// interval is the schedule: long enough that the slot after the one under
// test cannot fall due before the test has turned the schedule off.
const interval = 15 * time.Second

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

type auditRecord = client.AuditEvent

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

func describe(ctx context.Context, c *client.Client) (deployment, error) {
	var d deployment
	err := c.Call(ctx, client.VersionKeyhold, "DescribeDeployment", nil, &d)
	return d, err
}

func auditEnds(t *testing.T, c *client.Client) []auditRecord {
	t.Helper()
	ev, err := c.ListAuditEvents(context.Background(), map[string]string{"EventAction": "keyhold:RotationFinished"}, 0)
	if err != nil {
		t.Fatalf("ListAuditEvents: %v", err)
	}
	return ev
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
	pg := pgtest.Start(t)
	bin := BuildBinary(t)

	// The development minimum is bounded, and a bad one refused before
	// anything is written.
	badDir := filepath.Join(t.TempDir(), "bad")
	out, err := exec.Command(bin, "server", "--data-dir", badDir, "--listen", "127.0.0.1:0", "--tls-listen", "",
		"--dev-min-rotation-interval", "2h").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "development minimum rotation interval") {
		t.Fatalf("--dev-min-rotation-interval 2h: %v\n%s", err, out)
	}
	if _, err := os.Stat(badDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused start wrote its data directory: %v", err)
	}

	// The agent answers once the new leader drives the rotation: it
	// completes. Then an API rotation on the follower, driven by two.
	t.Run("completes", func(t *testing.T) { scenario(t, bin, pg, modeComplete) })
	// The agent stays stopped until the new leader has given up on the
	// apply (a short apply timeout): the rotation rolls back, once.
	t.Run("rolls back", func(t *testing.T) { scenario(t, bin, pg, modeRollBack) })
	// The leader is paused (SIGSTOP) instead, and resumed once another
	// has the lease: a deposed leader that still drives the rotation.
	t.Run("leader paused", func(t *testing.T) { scenario(t, bin, pg, modePause) })
}

type mode int

const (
	modeComplete mode = iota // kill -9 the leader; the agent answers the new one
	modeRollBack             // kill -9; the agent answers only after the roll-back began
	modePause                // SIGSTOP the leader, SIGCONT it after the takeover
)

// scenario runs one deployment through the loss of its leader.
func scenario(t *testing.T, bin string, pg *pgtest.Server, m mode) {
	ctx := context.Background()
	rollBack, paused := m == modeRollBack, m == modePause
	storage := pg.DSN(t)
	work := t.TempDir()
	keyFile := filepath.Join(work, "root.key")

	// Three replicas, the first alone (it creates the root key and the
	// account), each with its own data directory and the same key file.
	flags := []string{"--storage", storage, "--root-key-file", keyFile,
		"--dev-min-rotation-interval", "10s", "--rotation-scan-interval", "1s"}
	if rollBack {
		flags = append(flags, "--rotation-apply-timeout", "10s")
	}
	servers := map[string]*Server{}
	var order []*Server
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("r%d", i)
		s := StartServer(t, bin, id, filepath.Join(work, id), flags...)
		servers[id] = s
		order = append(order, s)
	}
	logs := func() string {
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
	creds := rootcreds.Read(t, order[0].DataDir)
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
	poll.Within(t, "three online replicas and a leader", generous, func() bool {
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
	poll.Within(t, "the agent to enroll", generous, func() bool {
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
	poll.Within(t, "the agent to report the user", generous, func() bool {
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
	// Had the agent answered before it stopped, waitApplying would see the
	// rotation past "applying" and fail: the kill then comes mid-rotation.
	// waitApplying waits for the newest rotation of the secret, of the
	// version vid ("" any), to have sent apply to the stopped agent.
	waitApplying := func(c *client.Client, what, vid string) client.Rotation {
		t.Helper()
		var rot client.Rotation
		poll.Within(t, what, generous, func() bool {
			out, err := c.ListRotations(ctx, &client.ListRotationsRequest{SecretName: name})
			if err != nil || len(out.Rotations.Rotation) == 0 {
				return false
			}
			rot = out.Rotations.Rotation[0]
			if vid != "" && rot.VersionId != vid {
				return false
			}
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
		return rot
	}
	waitEnd := func(c *client.Client, id string) *client.Rotation {
		t.Helper()
		var end *client.Rotation
		// Beyond the engine's 2-minute apply timeout, should the result
		// be lost and the rotation roll back.
		poll.Within(t, "rotation "+id+" to end", 4*time.Minute, func() bool {
			r, err := c.DescribeRotation(ctx, id)
			if err == nil && terminal[r.State] {
				end = r
			}
			return end != nil
		})
		if end.State != "succeeded" && end.State != "rolled-back" {
			t.Fatalf("rotation %s ended %s: %+v", id, end.State, end)
		}
		return end
	}
	rot := waitApplying(kc, "the scheduled rotation to send apply", "")
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
		offsets[s.ID] = s.Log.Len()
		if s != leader {
			survivors = append(survivors, s)
		}
	}
	if paused {
		leader.Signal(t, syscall.SIGSTOP)
		t.Logf("paused the leader %s (token %d) with the rotation %s applying", leader.ID, d.LeaderToken, rot.RotationId)
	} else {
		leader.KillAndWait(t)
		t.Logf("killed the leader %s (token %d) with the rotation %s applying", leader.ID, d.LeaderToken, rot.RotationId)
	}
	lostAt := time.Now()
	sc := clients[survivors[0].ID]
	var next deployment
	poll.Within(t, "another replica to take the lease", generous, func() bool {
		next, err = describe(ctx, sc)
		return err == nil && next.Leader != "" && next.Leader != leader.ID
	})
	// Logged, not asserted: speed is scripts/failover.sh's business.
	t.Logf("%s leads (token %d) %.1f s later", next.Leader, next.LeaderToken, time.Since(lostAt).Seconds())
	newLeader := servers[next.Leader]
	if newLeader == nil || newLeader == leader || next.LeaderToken <= d.LeaderToken {
		t.Fatalf("new leader %q token %d after %q token %d", next.Leader, next.LeaderToken, leader.ID, d.LeaderToken)
	}
	var follower *Server
	for _, s := range survivors {
		if s != newLeader {
			follower = s
		}
	}
	alive := survivors
	if paused {
		// Back while the rotation is open: its driver there wakes up too,
		// and its scheduler and lease loop find another leader.
		leader.Signal(t, syscall.SIGCONT)
		poll.Within(t, "the deposed leader to see it lost the lease", generous, func() bool {
			return logLines(leader.Log.Since(offsets[leader.ID]), "lost the leader lease") > 0
		})
		alive = append(alive, leader)
		// And the new leader drives it as well before the agent answers:
		// two live drivers when the result lands.
		poll.Within(t, "the new leader to resume the rotation", generous, func() bool {
			return logLines(newLeader.Log.Since(offsets[newLeader.ID]), "resuming an open rotation", "rotation="+rot.RotationId) > 0
		})
	}
	var pending ecsValue // the value a rolled-back rotation was to set
	if rollBack {
		poll.Within(t, "the new leader to give up on the apply", generous, func() bool {
			r, err := sc.DescribeRotation(ctx, rot.RotationId)
			if err == nil && r.State != "applying" && r.State != "rolling-back" {
				t.Fatalf("the rotation went %s with the agent stopped", r.State)
			}
			return err == nil && r.State == "rolling-back"
		})
		// Kept while rolling back: the value the host may have now.
		out, err := sc.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: name, VersionStage: "ACSPending"})
		if err != nil {
			t.Fatalf("ACSPending while rolling back: %v", err)
		}
		if err := json.Unmarshal([]byte(out.SecretData), &pending); err != nil || pending.Password == "" || pending == old {
			t.Fatalf("ACSPending while rolling back is not a new value: %v", err)
		}
	}
	agent.Signal(t, syscall.SIGCONT)
	resumedAt := time.Now()
	stopped = false

	// One end, then the schedule off so that the next slot (interval after
	// the promotion) cannot confuse the count.
	end := waitEnd(sc, rot.RotationId)
	want := "succeeded"
	if rollBack {
		want = "rolled-back"
	}
	if end.State != want {
		t.Fatalf("rotation ended %s, want %s: %+v", end.State, want, end)
	}
	if _, err := sc.UpdateSecretRotationPolicy(ctx, &client.UpdateSecretRotationPolicyRequest{SecretName: name, EnableAutomaticRotation: false}); err != nil {
		t.Fatal(err)
	}
	t.Logf("rotation %s ended %s on %s's watch %.1f s after the agent resumed", end.RotationId, end.State, newLeader.ID, time.Since(resumedAt).Seconds())
	// The new leader resumed it; no other live replica did (a paused old
	// leader still has its own driver, which is the point of that run).
	if n := logLines(newLeader.Log.Since(offsets[newLeader.ID]), "resuming an open rotation", "rotation="+rot.RotationId); n != 1 {
		t.Fatalf("the new leader resumed %s %d times, want 1", rot.RotationId, n)
	}
	for _, s := range alive {
		if n := logLines(s.Log.Since(offsets[s.ID]), "resuming an open rotation"); s != newLeader && n != 0 {
			t.Fatalf("%s, not leading, resumed %d rotations", s.ID, n)
		}
	}

	// Exactly one rotation for the slot; versions and the real logins.
	list, err := sc.ListRotations(ctx, &client.ListRotationsRequest{SecretName: name})
	if err != nil {
		t.Fatal(err)
	}
	if list.TotalCount != 1 || list.Rotations.Rotation[0].RotationId != rot.RotationId {
		t.Fatalf("%d rotations of the secret, want the one: %+v", list.TotalCount, list.Rotations.Rotation)
	}
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
	// converged: ACSCurrent logs in to sshd, and after a success the value
	// it replaced is refused.
	converged := func(end *client.Rotation, before ecsValue) ecsValue {
		t.Helper()
		cur := get("ACSCurrent")
		if err := sshd.LoginPassword(cur.UserName, cur.Password); err != nil {
			t.Fatalf("lockout: the ACSCurrent password does not log in after %s: %v", end.State, err)
		}
		if end.State == "succeeded" {
			if cur == before || get("ACSPrevious") != before {
				t.Fatal("ACSCurrent is not the new password, or ACSPrevious not the one it replaced")
			}
			if err := sshd.LoginPassword(before.UserName, before.Password); !errors.Is(err, sshdtest.ErrRefused) {
				t.Fatalf("the replaced password still logs in after the rotation: %v", err)
			}
		} else {
			if cur != before {
				t.Fatal("rolled back, but ACSCurrent changed")
			}
			// The late apply was undone: the value it set is refused.
			if err := sshd.LoginPassword(pending.UserName, pending.Password); !errors.Is(err, sshdtest.ErrRefused) {
				t.Fatalf("the rolled-back password logs in: %v", err)
			}
		}
		return cur
	}
	cur := converged(end, old)
	switch end.State {
	case "succeeded":
		if len(stages) != 2 || stages["v1"] != "ACSPrevious" || stages[end.VersionId] != "ACSCurrent" {
			t.Fatalf("versions after success: %v (new %s)", stages, end.VersionId)
		}
	case "rolled-back":
		for id, st := range stages {
			if id == "v1" && st != "ACSCurrent" || id != "v1" && st != "" {
				t.Fatalf("versions after the roll-back: %v", stages)
			}
		}
	}

	// A rotation the API starts on the follower is driven there, and the
	// leader resumes it as well (it resumes every open rotation it does
	// not drive): two drivers, one end.
	ended := []*client.Rotation{end}
	rots := []string{rot.RotationId}
	final := cur
	if m == modeComplete {
		agent.Signal(t, syscall.SIGSTOP)
		stopped = true
		if _, err := clients[follower.ID].RotateSecret(ctx, &client.RotateSecretRequest{SecretName: name, VersionId: "manual-1"}); err != nil {
			t.Fatalf("RotateSecret on %s: %v", follower.ID, err)
		}
		rot2 := waitApplying(sc, "the API rotation to send apply", "manual-1")
		poll.Within(t, "the leader to resume the follower's rotation", generous, func() bool {
			return logLines(newLeader.Log.String(), "resuming an open rotation", "rotation="+rot2.RotationId) == 1
		})
		agent.Signal(t, syscall.SIGCONT)
		stopped = false
		end2 := waitEnd(sc, rot2.RotationId)
		final = converged(end2, cur)
		ended = append(ended, end2)
		rots = append(rots, rot2.RotationId)
	}

	// A second lease taker, or a second report of either end, gets time
	// to appear: over two lease lifetimes, seen from every live replica.
	for until := time.Now().Add(12 * time.Second); time.Now().Before(until); time.Sleep(500 * time.Millisecond) {
		for _, s := range alive {
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
	for _, s := range alive {
		takers += strings.Count(s.Log.Since(offsets[s.ID]), "took the leader lease")
	}
	if takers != 1 {
		t.Fatalf("%d lease takeovers logged after the leader was lost, want 1", takers)
	}

	// One end of each in the audit trail, with its state.
	for _, r := range ended {
		var ends []auditRecord
		poll.Within(t, "the end of "+r.RotationId+" in the audit trail", generous, func() bool {
			ends = nil
			for _, e := range auditEnds(t, sc) {
				if e.Params["RotationId"] == r.RotationId {
					ends = append(ends, e)
				}
			}
			return len(ends) > 0
		})
		if len(ends) != 1 || ends[0].Params["State"] != r.State {
			t.Fatalf("audit: %d ends of %s, want one with state %s: %+v", len(ends), r.RotationId, r.State, ends)
		}
	}

	// The agent applied each once: one apply command per rotation in its
	// journal, done (a rolled-back one too: it ran late, before the
	// restore queued behind it).
	applies, restores := map[string]int{}, 0
	for _, e := range journal(t, agentDir) {
		switch e.Op {
		case "password.apply":
			applies[e.RotationID]++
			if e.State != "done" {
				t.Fatalf("journal apply entry not done: %+v", e)
			}
		case "password.restore": // re-sent ones may still be queued or running
			restores++
		}
	}
	if len(applies) != len(rots) {
		t.Fatalf("password.apply commands in the agent's journal per rotation: %v, want one for each of %v", applies, rots)
	}
	for _, id := range rots {
		if applies[id] != 1 {
			t.Fatalf("password.apply commands in the agent's journal per rotation: %v, want one for each of %v", applies, rots)
		}
	}
	if rollBack != (restores > 0) {
		t.Fatalf("%d restore commands in the agent's journal (rolled back: %v)", restores, rollBack)
	}
	// The slot's rotation (and the API's); the new leader's scheduler saw
	// the slot still due while its rotation was open and started no other.
	if out, err := sc.ListRotations(ctx, &client.ListRotationsRequest{SecretName: name}); err != nil || out.TotalCount != len(rots) {
		t.Fatalf("rotations at the end: %+v %v, want %d", out, err, len(rots))
	}
	// No credential reached any process's output.
	all := logs() + agent.Log.String()
	for _, pw := range []string{old.Password, cur.Password, final.Password, pending.Password} {
		if pw != "" && strings.Contains(all, pw) {
			t.Fatal("a password appears in a process's log")
		}
	}
}

var terminal = map[string]bool{"succeeded": true, "failed": true, "rolled-back": true, "abandoned": true}

// logLines counts the lines of log that contain every one of subs.
func logLines(log string, subs ...string) int {
	n := 0
lines:
	for _, line := range strings.Split(log, "\n") {
		for _, s := range subs {
			if !strings.Contains(line, s) {
				continue lines
			}
		}
		n++
	}
	return n
}
