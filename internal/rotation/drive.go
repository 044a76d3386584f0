package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/secrets"
)

// storingGrace is how old a "storing" record must be before a resumed
// driver treats it as interrupted (its starter died between recording the
// rotation and storing the value) rather than as one being started now on
// another replica.
const storingGrace = time.Minute

// maxCleanupFailures is how many explicit cleanup failures end the
// rotation anyway: the new credential is current and works, and the old
// public key left behind is reported in the rotation's error.
const maxCleanupFailures = 3

// maxErrorChars bounds an agent's error text kept in a rotation.
const maxErrorChars = 500

// drive runs one rotation until it is terminal or the engine closes. Each
// pass reads the record, takes one step and waits for a result
// notification, a deadline or a back-off. Every decision is taken from the
// stored record, so a driver that restarts anywhere converges.
func (e *Engine) drive(account, id string) {
	ctx := e.bg
	var notify <-chan struct{}
	failures := 0
	for ctx.Err() == nil {
		r, err := e.Get(ctx, account, id)
		if errs.Is(err, errs.KindNotFound) {
			return
		}
		if err != nil {
			failures++
			e.sleep(ctx, nil, e.backoff(failures))
			continue
		}
		if Terminal(r.State) {
			// OnFinish ran in the transition that ended it, here or on
			// another replica.
			e.scheduledEnded(r)
			return
		}
		if notify == nil {
			// Subscribe before reading results, so that a result that lands
			// between the read and the wait still wakes us.
			ch, cancel := e.st.Subscribe(e.fleet.ResultsTopic(account, r.HostID))
			defer cancel()
			notify = ch
			continue
		}
		wait, err := e.step(ctx, r)
		switch {
		case errors.Is(err, errStale):
			continue
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			failures++
			e.log.Warn("rotation: step failed, retrying", "rotation", id, "state", r.State, "err", err)
			wait = e.backoff(failures)
		default:
			failures = 0
		}
		if wait > 0 {
			e.sleep(ctx, notify, wait)
		}
	}
}

func (e *Engine) sleep(ctx context.Context, notify <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-notify:
	case <-t.C:
	}
}

// backoff is RetryMin doubled per attempt, capped at RetryMax.
func (e *Engine) backoff(n int) time.Duration {
	d := e.cfg.RetryMin
	for i := 1; i < n && d < e.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, e.cfg.RetryMax)
}

// step takes the next step of r and returns how long to wait before the
// next pass (0: at once).
func (e *Engine) step(ctx context.Context, r *Rotation) (time.Duration, error) {
	switch r.State {
	case StateStoring:
		return e.stepStoring(ctx, r)
	case StateApplying:
		return e.stepApplying(ctx, r)
	case StatePromoting:
		return e.stepPromoting(ctx, r)
	case StateCleaningUp:
		return e.stepCleanup(ctx, r)
	case StateRollingBack:
		return e.stepRollback(ctx, r)
	}
	return 0, fmt.Errorf("rotation %s: unknown state %q", r.ID, r.State)
}

// stepStoring finishes a rotation whose starter stopped between recording
// it and storing the value. Nothing was sent in that state, so whether the
// value made it decides: stored → go on, not stored → failed (the value is
// gone with the starter; the record never had it).
func (e *Engine) stepStoring(ctx context.Context, r *Rotation) (time.Duration, error) {
	if age := e.now().Sub(r.Updated); age < storingGrace {
		return storingGrace - age, nil
	}
	_, v, err := e.sec.ReadVersion(ctx, r.Account, r.SecretName, r.VersionID, "")
	if err == nil && v.HasStage(secrets.StagePending) {
		_, err = e.transition(ctx, r, func(r *Rotation, now time.Time) {
			r.step(StepStore, StepOK, now, "")
			r.State = StateApplying
		})
		return 0, err
	}
	if err != nil && !errs.Is(err, errs.KindSecretNotFound) {
		return 0, err
	}
	_, err = e.finish(ctx, r, StateFailed, StepStore, "interrupted before the new value was stored; nothing was sent to the host")
	return 0, err
}

// hostGone reports a host that cannot take commands any more.
func (e *Engine) hostGone(ctx context.Context, hostID string, r *Rotation) (bool, error) {
	h, err := e.fleet.Host(ctx, r.Account, hostID)
	if errs.Is(err, errs.KindNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return h == nil || h.Removed, nil
}

func (e *Engine) stepApplying(ctx context.Context, r *Rotation) (time.Duration, error) {
	if r.ApplySent.IsZero() {
		// Nothing was sent yet: a host that cannot take the command now
		// fails the rotation cleanly, ACSCurrent untouched.
		h, err := e.fleet.Host(ctx, r.Account, r.HostID)
		if err != nil && !errs.Is(err, errs.KindNotFound) {
			return 0, err
		}
		msg := ""
		switch {
		case err != nil || h == nil || h.Removed:
			msg = "the host is no longer enrolled; nothing was sent"
		case !h.Online:
			msg = "the host's agent is offline; nothing was sent"
		}
		if msg != "" {
			if err := e.discard(ctx, r); err != nil {
				return 0, err
			}
			_, err := e.finish(ctx, r, StateFailed, StepApply, msg)
			return 0, err
		}
		// Record that apply may be on its way before it is: from here on a
		// missing result means "unknown", never "not sent".
		_, err = e.transition(ctx, r, func(r *Rotation, now time.Time) {
			r.ApplySent = now
			r.step(StepApply, StepRunning, now, "")
		})
		return 0, err
	}
	if !e.wasSent(r.ID) {
		// First pass of this process: (re-)enqueue. The id is the same
		// every time, so the fleet and the agent's journal make it once.
		cmd, err := e.applyCommand(ctx, r)
		if err != nil {
			return 0, err
		}
		if err := e.fleet.Enqueue(ctx, r.Account, r.HostID, cmd); err != nil {
			return 0, err
		}
		e.markSent(r.ID)
	}
	res, err := e.fleet.Result(ctx, r.Account, r.HostID, applyID(r))
	if err != nil {
		return 0, err
	}
	if res == nil {
		left := r.ApplySent.Add(e.cfg.ApplyTimeout).Sub(e.now())
		if left > 0 {
			return left, nil
		}
		// Outcome unknown: the agent may have applied or not. Keep the
		// pending value (it may be what the host has now) and roll back.
		_, err := e.transition(ctx, r, func(r *Rotation, now time.Time) {
			r.step(StepApply, StepFailed, now, fmt.Sprintf("no result from the agent within %s: outcome unknown", e.cfg.ApplyTimeout))
			r.step(StepRestore, StepRunning, now, "")
			r.State = StateRollingBack
		})
		return 0, err
	}
	if res.Status == StatusOK {
		_, err := e.transition(ctx, r, func(r *Rotation, now time.Time) {
			r.step(StepApply, StepOK, resultTime(res, now), "")
			r.step(StepVerify, StepOK, resultTime(res, now), "")
			r.Check = res.Check
			r.step(StepPromote, StepRunning, now, "")
			r.State = StatePromoting
		})
		return 0, err
	}
	// The agent reports a failure; it says it restored what it had saved.
	// Its own restore may have failed too, and only a confirmed restore
	// proves which credential the host has, so the pending value stays
	// until a restore command is confirmed (at once, normally: restoring an
	// already restored account is a no-op). The rotation then ends failed.
	msg := "the agent could not apply the new value: " + clip(res.Error)
	_, err = e.transition(ctx, r, func(r *Rotation, now time.Time) {
		r.step(StepApply, StepFailed, resultTime(res, now), clip(res.Error))
		r.step(StepRestore, StepRunning, now, "")
		r.Check = res.Check
		r.ApplyFailed = true
		r.Error = msg
		r.State = StateRollingBack
	})
	return 0, err
}

func resultTime(res *Result, now time.Time) time.Time {
	if res.Time.IsZero() {
		return now
	}
	return res.Time.UTC()
}

func clip(s string) string {
	if len(s) > maxErrorChars {
		return s[:maxErrorChars]
	}
	if s == "" {
		return "no reason given"
	}
	return s
}

func (e *Engine) wasSent(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sent[id]
}

func (e *Engine) markSent(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent[id] = true
}

// discard drops the ACSPending label of the rotation's version; a secret
// deleted meanwhile has nothing to drop.
func (e *Engine) discard(ctx context.Context, r *Rotation) error {
	err := e.sec.DiscardPending(ctx, r.Account, r.SecretName, r.VersionID)
	if errs.Is(err, errs.KindSecretNotFound) {
		return nil
	}
	return err
}

// applyCommand builds the apply command from the pending version. The value
// is read from the sealed version each time, never kept.
func (e *Engine) applyCommand(ctx context.Context, r *Rotation) (Command, error) {
	plain, _, err := e.sec.ReadVersion(ctx, r.Account, r.SecretName, r.VersionID, "")
	if err != nil {
		return Command{}, err
	}
	var v ecsValue
	if err := json.Unmarshal(plain, &v); err != nil {
		return Command{}, errs.Wrap(errs.KindInternal, errors.New("pending value is not an ECS value"), "decoding the pending value")
	}
	cmd := Command{ID: applyID(r), RotationID: r.ID, User: r.User}
	if r.SubType == SubTypeSSHKey {
		cmd.Op, cmd.PublicKey, cmd.PrivateKey = OpSSHKeyApply, v.PublicKey, v.PrivateKey
	} else {
		cmd.Op, cmd.Password = OpPasswordApply, v.Password
	}
	return cmd, nil
}

func (e *Engine) stepPromoting(ctx context.Context, r *Rotation) (time.Duration, error) {
	// PromoteVersion is idempotent, so a crash after it and before the
	// transition repeats it harmlessly.
	err := e.sec.PromoteVersion(ctx, r.Account, r.SecretName, r.VersionID)
	if errs.Is(err, errs.KindSecretNotFound) {
		_, err = e.finish(ctx, r, StateFailed, StepPromote, "the secret was deleted during the rotation")
		return 0, err
	}
	if err != nil {
		return 0, err
	}
	_, err = e.transition(ctx, r, func(r *Rotation, now time.Time) {
		r.step(StepPromote, StepOK, now, "")
		if r.SubType == SubTypeSSHKey && r.OldPublicKey != "" {
			r.step(StepCleanup, StepRunning, now, "")
			r.State = StateCleaningUp
			r.Attempts, r.LastAttempt = 0, time.Time{}
			return
		}
		r.State = StateSucceeded
	})
	return 0, err
}

// attemptResults looks at the results of the rotation's numbered commands
// of one kind: whether any succeeded, how many failed, and the last error.
func (e *Engine) attemptResults(ctx context.Context, r *Rotation, kind string) (ok bool, failed int, lastErr string, err error) {
	for n := r.Attempts; n >= 1; n-- {
		res, err := e.fleet.Result(ctx, r.Account, r.HostID, attemptID(r, kind, n))
		if err != nil {
			return false, 0, "", err
		}
		switch {
		case res == nil:
		case res.Status == StatusOK:
			return true, failed, "", nil
		default:
			if lastErr == "" {
				lastErr = clip(res.Error)
			}
			failed++
		}
	}
	return false, failed, lastErr, nil
}

// resend records one more attempt of a numbered command and enqueues it,
// when the back-off since the last one has passed; it returns the wait.
// The attempt is recorded before it is enqueued so that its id, and so its
// result, is never lost to a crash.
func (e *Engine) resend(ctx context.Context, r *Rotation, kind string, build func(id string) Command) (time.Duration, error) {
	if r.Attempts > 0 {
		if left := r.LastAttempt.Add(e.backoff(r.Attempts)).Sub(e.now()); left > 0 {
			if !e.wasSent(r.ID + kind) {
				// Restarted: enqueue the recorded attempt again (same id,
				// a no-op if the fleet has it).
				if err := e.fleet.Enqueue(ctx, r.Account, r.HostID, build(attemptID(r, kind, r.Attempts))); err != nil {
					return 0, err
				}
				e.markSent(r.ID + kind)
			}
			return left, nil
		}
	}
	r2, err := e.transition(ctx, r, func(r *Rotation, now time.Time) {
		r.Attempts++
		r.LastAttempt = now
	})
	if err != nil {
		return 0, err
	}
	if err := e.fleet.Enqueue(ctx, r2.Account, r2.HostID, build(attemptID(r2, kind, r2.Attempts))); err != nil {
		return 0, err
	}
	e.markSent(r.ID + kind)
	return e.backoff(r2.Attempts), nil
}

func (e *Engine) stepCleanup(ctx context.Context, r *Rotation) (time.Duration, error) {
	ok, failed, lastErr, err := e.attemptResults(ctx, r, "cleanup")
	if err != nil {
		return 0, err
	}
	switch {
	case ok:
		_, err := e.finish(ctx, r, StateSucceeded, StepCleanup, "")
		return 0, err
	case failed >= maxCleanupFailures:
		_, err := e.finish(ctx, r, StateSucceeded, StepCleanup, "the old public key could not be removed: "+lastErr)
		return 0, err
	}
	if gone, err := e.hostGone(ctx, r.HostID, r); err != nil || gone {
		if err != nil {
			return 0, err
		}
		_, err := e.finish(ctx, r, StateSucceeded, StepCleanup, "the host was removed before the old public key was")
		return 0, err
	}
	return e.resend(ctx, r, "cleanup", func(id string) Command {
		return Command{ID: id, RotationID: r.ID, Op: OpSSHKeyCleanup, User: r.User, PublicKey: r.OldPublicKey}
	})
}

// stepRollback re-sends restore until the agent confirms one, then drops
// the pending value. A late "applied" result of the apply command is
// ignored here on purpose: the agent runs a host's commands in order, so a
// restore queued behind that apply will put the old credential back after
// it. Promoting the new value on the late report would make ACSCurrent a
// credential the host is about to forget — a lockout. Once rolling back,
// the only way out is the restore's confirmation, which is certain to
// describe the host's final state.
func (e *Engine) stepRollback(ctx context.Context, r *Rotation) (time.Duration, error) {
	ok, _, lastErr, err := e.attemptResults(ctx, r, "restore")
	if err != nil {
		return 0, err
	}
	if ok {
		if err := e.discard(ctx, r); err != nil {
			return 0, err
		}
		if err := e.deferSlot(ctx, r); err != nil {
			return 0, err
		}
		_, err := e.transition(ctx, r, func(r *Rotation, now time.Time) {
			r.step(StepRestore, StepOK, now, "")
			if r.ApplyFailed {
				r.State = StateFailed // Error already says why
				return
			}
			r.State = StateRolledBack
			r.Error = "the outcome of apply was unknown; the host's previous credential was restored"
		})
		return 0, err
	}
	if gone, err := e.hostGone(ctx, r.HostID, r); err != nil || gone {
		if err != nil {
			return 0, err
		}
		// Nobody can confirm a restore any more. Keep ACSPending, which may
		// be what the host has, beside ACSCurrent for the operator.
		_, err := e.finish(ctx, r, StateAbandoned, StepRestore, "the host was removed before it confirmed the restore; ACSPending is kept")
		return 0, err
	}
	if lastErr != "" && r.stepError(StepRestore) != lastErr {
		if r, err = e.transition(ctx, r, func(r *Rotation, now time.Time) {
			r.step(StepRestore, StepRunning, now, lastErr)
		}); err != nil {
			return 0, err
		}
	}
	op := OpPasswordRestore
	if r.SubType == SubTypeSSHKey {
		op = OpSSHKeyRestore
	}
	return e.resend(ctx, r, "restore", func(id string) Command {
		return Command{ID: id, RotationID: r.ID, Op: op, User: r.User}
	})
}
