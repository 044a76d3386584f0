package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuditCommandsAgainstARealServer(t *testing.T) {
	startRealServer(t)
	if _, errOut, code := run(t, "MARKER-cli-value", "secret", "create", "cli/one", "--value-file", "-"); code != 0 {
		t.Fatalf("secret create: %s", errOut)
	}
	run(t, "", "secret", "get", "cli/nothing-here")

	out, errOut, code := run(t, "", "audit", "list", "--output", "json")
	if code != 0 {
		t.Fatalf("audit list: %d %s", code, errOut)
	}
	var listed struct{ Events []AuditEvent }
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var sawCreate, sawMissing bool
	for _, e := range listed.Events {
		sawCreate = sawCreate || e.Action == "kms:CreateSecret" && e.Result == "OK" && e.Params["SecretData"] == "***"
		sawMissing = sawMissing || e.Action == "kms:GetSecretValue" && e.Result == "Forbidden.ResourceNotFound"
	}
	if !sawCreate || !sawMissing {
		t.Errorf("list lacks the calls: %s", out)
	}
	if strings.Contains(out, "MARKER-cli-value") {
		t.Error("a value in the listing")
	}

	out, _, code = run(t, "", "audit", "list", "--action", "CreateSecret", "--result", "OK")
	if code != 0 || !strings.Contains(out, "kms:CreateSecret") || strings.Contains(out, "GetSecretValue") {
		t.Errorf("filtered text list (%d):\n%s", code, out)
	}

	cpFile := filepath.Join(t.TempDir(), "cp.json")
	out, errOut, code = run(t, "", "audit", "checkpoint")
	if code != 0 || !strings.Contains(out, `"Signature"`) {
		t.Fatalf("checkpoint (%d): %s %s", code, out, errOut)
	}
	os.WriteFile(cpFile, []byte(out), 0o600)
	out, errOut, code = run(t, "", "audit", "verify", "--checkpoint", cpFile)
	if code != 0 || !strings.Contains(out, "intact") || !strings.Contains(out, "CheckpointSeq") {
		t.Errorf("verify (%d): %s %s", code, out, errOut)
	}
	// A checkpoint someone edited is refused.
	edited := filepath.Join(t.TempDir(), "edited.json")
	cpOut, _, _ := run(t, "", "audit", "checkpoint")
	os.WriteFile(edited, []byte(strings.Replace(cpOut, `"Seq": `, `"Seq": 9`, 1)), 0o600)
	if _, errOut, code := run(t, "", "audit", "verify", "--checkpoint", edited); code != 1 || !strings.Contains(errOut, "InvalidParameter") {
		t.Errorf("edited checkpoint (%d): %s", code, errOut)
	}

	out, errOut, code = run(t, "", "audit", "export", "--format", "jsonl")
	if code != 0 {
		t.Fatalf("export: %s", errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < len(listed.Events) {
		t.Errorf("export: %d lines, list had %d records", len(lines), len(listed.Events))
	}
	for _, l := range lines {
		var e AuditEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.Mac == "" || e.Seq == 0 {
			t.Fatalf("export line %q: %v", l, err)
		}
	}

	for _, args := range [][]string{
		{"audit", "list", "--since", "yesterday"},
		{"audit", "export", "--format", "csv"},
		{"audit", "verify", "extra"},
	} {
		if _, _, code := run(t, "", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
