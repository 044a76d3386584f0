// Package agentha_test runs `keyhold agent` against two replicas of one
// deployment on a real PostgreSQL, given both URLs and no load balancer:
// the replica it talks to is stopped, and a rotation through the other
// completes with the real sshd check. It is its own package because it
// starts its own PostgreSQL.
package agentha_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	openapi "github.com/alibabacloud-go/darabonba-openapi/v2/client"
	kms "github.com/alibabacloud-go/kms-20160120/v3/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/agent"
	"github.com/keyhold/keyhold/internal/server"
	"github.com/keyhold/keyhold/internal/store/postgres/pgtest"
	"github.com/keyhold/keyhold/internal/testutil/logbuf"
	"github.com/keyhold/keyhold/internal/testutil/poll"
	"github.com/keyhold/keyhold/internal/testutil/rootcreds"
	"github.com/keyhold/keyhold/internal/testutil/sshdtest"
)

// syncBuffer collects a component's log for the test to read.
type syncBuffer = logbuf.Buffer

type replica struct {
	*server.Server
	dir  string
	logs *syncBuffer
}

// startReplica starts a replica on dsn; keyFile is the first replica's
// root key ("" for the first). The lease is short so that the surviving
// replica takes over within the test's waits.
func startReplica(t *testing.T, dsn, id, keyFile string) *replica {
	t.Helper()
	r := &replica{dir: t.TempDir(), logs: &syncBuffer{}}
	srv, err := server.Start(context.Background(), server.Config{
		DataDir: r.dir, Storage: dsn, RootKeyFile: keyFile, ReplicaID: id,
		Listen: "127.0.0.1:0", TLSListen: "127.0.0.1:0", LeaseTTL: 1500 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Rotation: server.RotationConfig{ApplyTimeout: time.Minute, RetryMin: 200 * time.Millisecond,
			RetryMax: time.Second, ScanInterval: 500 * time.Millisecond},
	})
	if err != nil {
		t.Fatalf("start replica %s: %v", id, err)
	}
	r.Server = srv
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("replica %s log:\n%s", id, r.logs)
		}
	})
	return r
}

func TestAgentFollowsReplicas(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.DSN(t)
	ra := startReplica(t, dsn, "a", "")
	rb := startReplica(t, dsn, "b", filepath.Join(ra.dir, "root.key"))
	creds := rootcreds.Read(t, ra.dir)
	// Clients of replica b only: it is the one that survives.
	sdk, err := kms.NewClient(&openapi.Config{
		AccessKeyId: tea.String(creds.ID), AccessKeySecret: tea.String(creds.Secret),
		Endpoint: tea.String(strings.TrimPrefix(rb.HTTPURL, "http://")), Protocol: tea.String("http"),
		RegionId: tea.String("cn-hangzhou"),
	})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := client.New(client.Config{Endpoint: rb.HTTPURL, AccessKeyID: creds.ID, AccessKeySecret: creds.Secret})
	if err != nil {
		t.Fatal(err)
	}

	sshd := sshdtest.Start(t, sshdtest.Options{})
	const oldPW = "Initial-Passw0rd-for-tests"
	u := sshdtest.NewUser(t, sshdtest.UserOptions{Password: oldPW})
	tok, err := ra.Fleet().CreateEnrollmentToken(context.Background(), ra.Account, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	alog := &syncBuffer{}
	ag, err := agent.New(context.Background(), agent.Config{
		Servers: []string{ra.HTTPSURL, rb.HTTPSURL}, Token: tok.Token, DataDir: t.TempDir(),
		SSHDAddr: sshd.Addr, SSHDConfig: sshd.ConfigPath, PollTimeout: 2 * time.Second, DriftInterval: time.Hour,
		Logger: slog.New(slog.NewTextHandler(alog, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ag.Run(ctx); close(done) }()
	defer func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("agent log:\n%s", alog)
		}
	}()
	hostID := ag.HostID()
	poll.Until(t, "the agent's inventory", func() bool {
		h, err := rb.Fleet().Host(context.Background(), rb.Account, hostID)
		if err != nil {
			return false
		}
		_, ok := h.User(u.Name)
		return ok
	})
	name := "acs/ecs/" + hostID + "/" + u.Name
	data, _ := json.Marshal(map[string]string{"UserName": u.Name, "Password": oldPW})
	if _, err := sdk.CreateSecret(&kms.CreateSecretRequest{
		SecretName: tea.String(name), SecretType: tea.String("ECS"), VersionId: tea.String("v1"), SecretData: tea.String(string(data)),
		ExtendedConfig: map[string]any{"SecretSubType": "Password", "RegionId": "cn-hangzhou", "InstanceId": hostID},
	}); err != nil {
		t.Fatalf("CreateSecret: %v", err)
	}
	if strings.Contains(alog.String(), "switching to server") {
		t.Fatalf("the agent left replica a before it was stopped:\n%s", alog)
	}

	// Replica a, the one the agent talks to (the first URL), goes away.
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.RotateSecret(&kms.RotateSecretRequest{SecretName: tea.String(name), VersionId: tea.String("v2")}); err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	var r *client.Rotation
	poll.Until(t, "the rotation to end", func() bool {
		out, err := kc.ListRotations(context.Background(), &client.ListRotationsRequest{SecretName: name})
		if err != nil || len(out.Rotations.Rotation) == 0 {
			return false
		}
		r = &out.Rotations.Rotation[0]
		return r.State == "succeeded" || r.State == "failed" || r.State == "rolled-back" || r.State == "abandoned"
	})
	if r.State != "succeeded" || r.Check != "ssh-login" {
		t.Fatalf("rotation ended %s (check %q): %+v", r.State, r.Check, r)
	}
	if !strings.Contains(alog.String(), "agent: switching to server "+rb.HTTPSURL) {
		t.Fatalf("no switch to replica b logged")
	}
	// The new password logs in over SSH, the old one no longer does.
	out, err := sdk.GetSecretValue(&kms.GetSecretValueRequest{SecretName: tea.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	var cur struct{ UserName, Password string }
	if err := json.Unmarshal([]byte(tea.StringValue(out.Body.SecretData)), &cur); err != nil {
		t.Fatal(err)
	}
	if cur.Password == "" || cur.Password == oldPW {
		t.Fatal("ACSCurrent is not a new password")
	}
	if err := sshd.LoginPassword(u.Name, cur.Password); err != nil {
		t.Fatalf("the new password does not log in: %v", err)
	}
	if err := sshd.LoginPassword(u.Name, oldPW); !errors.Is(err, sshdtest.ErrRefused) {
		t.Fatalf("the old password still logs in: %v", err)
	}
	if strings.Contains(alog.String(), cur.Password) || strings.Contains(rb.logs.String(), cur.Password) {
		t.Fatal("the password reached a log")
	}
}
