package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

const maxIDChars = 128

func validOp(op string) bool {
	switch op {
	case OpPasswordApply, OpPasswordRestore, OpSSHKeyApply, OpSSHKeyCleanup, OpSSHKeyRestore:
		return true
	}
	return false
}

func (c Command) validate() error {
	bad := func(format string, a ...any) error { return errs.E(errs.KindInvalidParameter, format, a...) }
	switch {
	case c.ID == "" || len(c.ID) > maxIDChars || strings.ContainsAny(c.ID, "/\n"):
		return bad("The command id is missing or malformed.")
	case c.RotationID == "" || len(c.RotationID) > maxIDChars:
		return bad("The command's rotation id is missing or too long.")
	case !validOp(c.Op):
		return bad("The command operation %q is not known.", c.Op)
	case c.User == "" || len(c.User) > maxNameChars:
		return bad("The command's user name is missing or too long.")
	case c.Op == OpPasswordApply && c.Password == "":
		return bad("A password.apply command needs the new password.")
	case c.Op == OpSSHKeyApply && (c.PublicKey == "" || c.PrivateKey == ""):
		return bad("An sshkey.apply command needs the new public and private key.")
	case c.Op == OpSSHKeyCleanup && c.PublicKey == "":
		return bad("An sshkey.cleanup command needs the old public key.")
	}
	return nil
}

// commandAAD binds a sealed command to its place in the queue.
func commandAAD(account, hostID, id string) []byte {
	return []byte("fleet-command\x00" + account + "\x00" + hostID + "\x00" + id)
}

func seqKey(seq uint64) string { return fmt.Sprintf("%020d", seq) }

// Enqueue queues cmd for the host, durably, and wakes the host's held
// long-poll. It is idempotent by cmd.ID: a command id already queued or
// already answered is not queued again. An unknown host is KindNotFound, a
// removed one KindInvalidState.
func (s *Service) Enqueue(ctx context.Context, account, hostID string, cmd Command) error {
	if err := cmd.validate(); err != nil {
		return err
	}
	if !ValidHostID(hostID) {
		return errHostNotFound(hostID)
	}
	plain, err := json.Marshal(cmd)
	if err != nil {
		return errs.Wrap(errs.KindInternal, err, "The command cannot be encoded.")
	}
	sealed, err := s.sealer.SealWithRoot(commandAAD(account, hostID, cmd.ID), plain)
	clear(plain)
	if err != nil {
		return errs.Wrap(errs.KindInternal, err, "The command cannot be sealed.")
	}
	stored, _ := json.Marshal(storedCommand{ID: cmd.ID, RotationID: cmd.RotationID, Op: cmd.Op, Sealed: sealed})
	err = s.st.Update(ctx, func(tx store.Tx) error {
		h, err := getHost(tx, account, hostID)
		if err != nil {
			return err
		}
		if h.Removed {
			return errs.E(errs.KindInvalidState, "The host %q was removed; it accepts no commands.", hostID)
		}
		idKey := store.Key(account, hostID, cmd.ID)
		if _, err := tx.Get(tableCommandIDs, idKey); err == nil {
			return nil // already queued or answered
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		h.NextSeq++
		seq := seqKey(h.NextSeq)
		if err := tx.Put(tableCommandIDs, idKey, []byte(seq)); err != nil {
			return err
		}
		if err := tx.Put(tableCommands, store.Key(account, hostID, seq), stored); err != nil {
			return err
		}
		tx.Notify(s.CommandsTopic(account, hostID))
		return putHost(tx, h)
	})
	return asDomain(err, "The command cannot be queued.")
}

// Pending returns the host's queued commands in order, opened. A command
// stays queued until its result is reported, so an agent that lost one
// gets it again on its next poll.
func (s *Service) Pending(ctx context.Context, account, hostID string, limit int) ([]Command, error) {
	var sealed []store.KV
	err := s.st.View(ctx, func(tx store.Tx) error {
		h, err := getHost(tx, account, hostID)
		if err != nil {
			return err
		}
		if h.Removed {
			return errs.E(errs.KindInvalidState, "The host %q was removed.", hostID)
		}
		sealed, err = tx.List(tableCommands, store.Key(account, hostID, ""), "", limit)
		return err
	})
	if err != nil {
		return nil, asDomain(err, "The host's commands cannot be read.")
	}
	out := make([]Command, 0, len(sealed))
	for _, kv := range sealed {
		var c Command
		if err := s.openCommand(ctx, account, hostID, kv, &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// storedCommand is a queued command: the fields that are not secret in
// clear (to rebuild the AAD and to attribute results), the whole command
// sealed.
type storedCommand struct {
	ID         string `json:"id"`
	RotationID string `json:"rotation_id"`
	Op         string `json:"op"`
	Sealed     []byte `json:"sealed"`
}

func (s *Service) openCommand(_ context.Context, account, hostID string, kv store.KV, c *Command) error {
	var sc storedCommand
	if err := json.Unmarshal(kv.Value, &sc); err != nil {
		return errs.Wrap(errs.KindInternal, err, "A queued command is corrupt.")
	}
	plain, err := s.sealer.OpenWithRoot(commandAAD(account, hostID, sc.ID), sc.Sealed)
	if err != nil {
		return errs.Wrap(errs.KindInternal, err, "A queued command cannot be opened.")
	}
	defer clear(plain)
	if err := json.Unmarshal(plain, c); err != nil {
		return errs.Wrap(errs.KindInternal, err, "A queued command is corrupt.")
	}
	return nil
}

// ReportResults records the agent's results. Only results for commands
// queued for this host count; the rotation id and operation come from the
// queued command, not from the agent. The command leaves the queue; a
// result already recorded is kept (the first report wins).
func (s *Service) ReportResults(ctx context.Context, account, hostID string, results []Result) error {
	if len(results) == 0 {
		return nil
	}
	now := s.now().UTC()
	err := s.st.Update(ctx, func(tx store.Tx) error {
		h, err := getHost(tx, account, hostID)
		if err != nil {
			return err
		}
		if h.Removed {
			return errs.E(errs.KindInvalidState, "The host %q was removed.", hostID)
		}
		changed := false
		for _, r := range results {
			if r.CommandID == "" || len(r.CommandID) > maxIDChars {
				continue
			}
			if r.Status != StatusOK && r.Status != StatusFailed {
				return errs.E(errs.KindInvalidParameter, "A result's status must be ok or failed.")
			}
			idKey := store.Key(account, hostID, r.CommandID)
			seq, err := tx.Get(tableCommandIDs, idKey)
			if errors.Is(err, store.ErrNotFound) {
				continue // not a command of this host
			} else if err != nil {
				return err
			}
			resKey := store.Key(account, hostID, r.CommandID)
			if _, err := tx.Get(tableResults, resKey); err == nil {
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			cmdKey := store.Key(account, hostID, string(seq))
			raw, err := tx.Get(tableCommands, cmdKey)
			if err != nil {
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				return err
			}
			var sc storedCommand
			if err := json.Unmarshal(raw, &sc); err != nil {
				return err
			}
			rec := Result{CommandID: r.CommandID, HostID: hostID, RotationID: sc.RotationID, Op: sc.Op,
				Status: r.Status, Check: r.Check, Error: truncate(r.Error, 1024), Time: r.Time.UTC()}
			if rec.Time.IsZero() || rec.Time.After(now.Add(time.Minute)) {
				rec.Time = now
			}
			if rec.Check != "" && rec.Check != CheckSSHLogin && rec.Check != CheckLocal {
				rec.Check = ""
			}
			b, _ := json.Marshal(rec)
			if err := tx.Put(tableResults, resKey, b); err != nil {
				return err
			}
			if err := tx.Delete(tableCommands, cmdKey); err != nil {
				return err
			}
			changed = true
		}
		if changed {
			tx.Notify(s.ResultsTopic(account, hostID))
		}
		h.LastSeen = now
		return putHost(tx, h)
	})
	return asDomain(err, "The results cannot be recorded.")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// Result returns the recorded result of a command, or nil, nil when the
// agent has not reported it yet.
func (s *Service) Result(ctx context.Context, account, hostID, commandID string) (*Result, error) {
	var out *Result
	err := s.st.View(ctx, func(tx store.Tx) error {
		out = nil
		b, err := tx.Get(tableResults, store.Key(account, hostID, commandID))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		var r Result
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		out = &r
		return nil
	})
	if err != nil {
		return nil, asDomain(err, "The result cannot be read.")
	}
	return out, nil
}

// QueueLength is the number of commands waiting for the host (tests,
// status).
func (s *Service) QueueLength(ctx context.Context, account, hostID string) (int, error) {
	var n int
	err := s.st.View(ctx, func(tx store.Tx) error {
		var err error
		n, err = tx.Count(tableCommands, store.Key(account, hostID, ""))
		return err
	})
	return n, err
}
