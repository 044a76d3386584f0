package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/keyhold/keyhold/internal/agentapi/wire"
)

// journal is the agent's durable record, one small file per entry in the
// data directory, each written atomically with fsync:
//
//   - commands/<h(id)>: a command id's state ("started", then "done" with
//     its result), so that a command delivered twice is applied once and its
//     result re-reported;
//   - undo/<h(rotation id, user, kind)>: what an apply replaced (the old
//     shadow hash, the old authorized_keys), saved before the apply and
//     never overwritten by a repeat of it, so that a restore puts back the
//     state from before the rotation.
//
// No entry holds a password or a private key.
type journal struct {
	dir string
	mu  sync.Mutex
}

type journalEntry struct {
	ID         string       `json:"id"`
	RotationID string       `json:"rotation_id"`
	Op         string       `json:"op"`
	User       string       `json:"user"`
	State      string       `json:"state"` // "started" | "done"
	Started    time.Time    `json:"started"`
	Result     *wire.Result `json:"result,omitempty"`
}

// undoState is what an apply replaced.
type undoState struct {
	RotationID string `json:"rotation_id"`
	User       string `json:"user"`
	Kind       string `json:"kind"` // "password" | "sshkey"
	// Password: the old shadow hash field (a hash, not a password).
	ShadowHash string `json:"shadow_hash,omitempty"`
	// SSH key: the old authorized_keys (public keys only), whether it
	// existed, and its owner and mode.
	Path    string      `json:"path,omitempty"`
	Existed bool        `json:"existed,omitempty"`
	Content []byte      `json:"content,omitempty"`
	Mode    fs.FileMode `json:"mode,omitempty"`
	UID     int         `json:"uid,omitempty"`
	GID     int         `json:"gid,omitempty"`
	Saved   time.Time   `json:"saved"`
}

func openJournal(dataDir string) (*journal, error) {
	j := &journal{dir: dataDir}
	for _, sub := range []string{"commands", "undo"} {
		if err := os.MkdirAll(filepath.Join(dataDir, sub), 0o700); err != nil {
			return nil, err
		}
	}
	return j, nil
}

func hname(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (j *journal) readJSON(path string, v any) (bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, json.Unmarshal(b, v)
}

func (j *journal) writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o600, -1, -1)
}

func (j *journal) commandPath(id string) string {
	return filepath.Join(j.dir, "commands", hname(id))
}

// entry returns the journal entry for a command id (nil if none).
func (j *journal) entry(id string) (*journalEntry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var e journalEntry
	ok, err := j.readJSON(j.commandPath(id), &e)
	if !ok || err != nil {
		return nil, err
	}
	return &e, nil
}

func (j *journal) put(e *journalEntry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.writeJSON(j.commandPath(e.ID), e)
}

func (j *journal) undoPath(rotationID, user, kind string) string {
	return filepath.Join(j.dir, "undo", hname(rotationID, user, kind))
}

// saveUndo records u unless an undo state for the same rotation, user and
// kind is already saved (a repeated apply must not save its own result).
func (j *journal) saveUndo(u *undoState) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	p := j.undoPath(u.RotationID, u.User, u.Kind)
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return j.writeJSON(p, u)
}

func (j *journal) undo(rotationID, user, kind string) (*undoState, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	var u undoState
	ok, err := j.readJSON(j.undoPath(rotationID, user, kind), &u)
	if !ok || err != nil {
		return nil, err
	}
	return &u, nil
}

// prune removes entries older than maxAge (finished rotations).
func (j *journal) prune(maxAge time.Duration, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, sub := range []string{"commands", "undo"} {
		ents, _ := os.ReadDir(filepath.Join(j.dir, sub))
		for _, e := range ents {
			if info, err := e.Info(); err == nil && now.Sub(info.ModTime()) > maxAge {
				os.Remove(filepath.Join(j.dir, sub, e.Name()))
			}
		}
	}
}
