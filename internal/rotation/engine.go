package rotation

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/secrets"
	"github.com/keyhold/keyhold/internal/store"
)

// Config configures an Engine. Zero durations take the defaults.
type Config struct {
	Store   store.Store
	Secrets Secrets
	Fleet   Fleet
	Log     *slog.Logger
	Now     func() time.Time

	// ApplyTimeout is how long a sent apply may go unanswered before its
	// outcome counts as unknown and the rotation rolls back (default 2m).
	ApplyTimeout time.Duration
	// RetryMin and RetryMax bound the back-off between re-sent restore and
	// cleanup commands (default 5s and 5m).
	RetryMin, RetryMax time.Duration
	// ScanInterval is how often the singleton work runs: resuming open
	// rotations that no local driver holds, and starting due scheduled
	// rotations (default 30s).
	ScanInterval time.Duration
	// Concurrency bounds scheduled rotations in flight (default 8).
	Concurrency int
	// Leader says whether this replica may run the singleton work, with the
	// fencing token of its lease; nil means always (one process). With
	// FenceLease set, the token is checked in a write transaction before
	// each pass so that a deposed leader does nothing.
	Leader     func() (token uint64, ok bool)
	FenceLease string
	// OnFinish, when set, is called once per rotation, deployment-wide, by
	// the process whose transition ended it (the server audits the end;
	// benchmarks count). Several drivers may drive one rotation (the
	// leader resumes one another replica is still driving), but only one
	// transition into a terminal state commits.
	OnFinish func(r *Rotation)
}

// Engine runs rotations. It is safe for concurrent use.
type Engine struct {
	cfg   Config
	st    store.Store
	sec   Secrets
	fleet Fleet
	log   *slog.Logger

	bg     context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	running   map[string]bool // rotation ids driven by this process
	sent      map[string]bool // apply commands enqueued by this process
	scheduled int             // scheduled rotations driven here now
	failedAt  map[string]time.Time
}

// New returns an Engine; call Run to start its background work.
func New(cfg Config) *Engine {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ApplyTimeout, 2*time.Minute)
	def(&cfg.RetryMin, 5*time.Second)
	def(&cfg.RetryMax, 5*time.Minute)
	def(&cfg.ScanInterval, 30*time.Second)
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	bg, cancel := context.WithCancel(context.Background())
	return &Engine{
		cfg: cfg, st: cfg.Store, sec: cfg.Secrets, fleet: cfg.Fleet, log: cfg.Log,
		bg: bg, cancel: cancel,
		running: map[string]bool{}, sent: map[string]bool{}, failedAt: map[string]time.Time{},
	}
}

// Close stops the background work and waits for the drivers; rotations in
// flight stay in storage and resume at the next start.
func (e *Engine) Close() {
	e.cancel()
	e.wg.Wait()
}

func (e *Engine) now() time.Time { return e.cfg.Now().UTC() }

// StartRequest is a rotation to begin. Value is the new credential as the
// secret stores it; it goes only into the ACSPending version.
type StartRequest struct {
	Account, SecretName, SecretType, SubType string
	HostID, User, VersionID                  string
	OldPublicKey                             string
	Value                                    []byte
	Supplied                                 bool
	Trigger                                  string
}

// Open returns the secret's non-terminal rotation, or nil.
func (e *Engine) Open(ctx context.Context, account, secretName string) (*Rotation, error) {
	var r *Rotation
	err := e.st.View(ctx, func(tx store.Tx) error {
		r = nil
		id, err := tx.Get(tableOpen, store.Key(account, secretName))
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return errs.Wrap(errs.KindInternal, err, "reading the open rotation")
		}
		r, err = getRotation(tx, account, string(id))
		return err
	})
	return r, err
}

// errBusy is what a second rotation of a secret gets.
func errBusy() error {
	return errs.E(errs.KindInUse, "The secret is being rotated. Try again later.")
}

// Start records a rotation, stores the new value as ACSPending (step 1,
// durable before anything is sent) and hands the rest to a background
// driver. A rotation with the same VersionId already open is an idempotent
// success; any other open rotation of the secret refuses with
// errs.KindInUse.
func (e *Engine) Start(ctx context.Context, req StartRequest) (*Rotation, error) {
	now := e.now()
	r := &Rotation{
		ID: newID(now), Account: req.Account, SecretName: req.SecretName, SecretType: req.SecretType,
		SubType: req.SubType, HostID: req.HostID, User: req.User, VersionID: req.VersionID,
		Supplied: req.Supplied, Trigger: req.Trigger, OldPublicKey: req.OldPublicKey,
		State: StateStoring, Created: now, Updated: now, Rev: 1,
	}
	if r.Trigger == "" {
		r.Trigger = "api"
	}
	r.step(StepStore, StepRunning, now, "")
	// Claim the id before the record exists so that a resume pass never
	// takes this "storing" rotation for an interrupted one.
	e.claim(r.ID)
	var existing *Rotation
	err := e.st.Update(ctx, func(tx store.Tx) error {
		existing = nil
		openKey := store.Key(req.Account, req.SecretName)
		id, err := tx.Get(tableOpen, openKey)
		if err == nil {
			if existing, err = getRotation(tx, req.Account, string(id)); err != nil {
				return err
			}
			if existing.VersionID == req.VersionID {
				return nil
			}
			return errBusy()
		}
		if !errors.Is(err, store.ErrNotFound) {
			return errs.Wrap(errs.KindInternal, err, "reading the open rotation")
		}
		if err := tx.Put(tableOpen, openKey, []byte(r.ID)); err != nil {
			return errs.Wrap(errs.KindInternal, err, "writing the open rotation")
		}
		return putRotation(tx, r)
	})
	if err != nil || existing != nil {
		e.release(r.ID)
		return existing, err
	}
	if _, err := e.sec.AddPendingVersion(ctx, req.Account, req.SecretName, req.VersionID, req.Value); err != nil {
		msg := "the new value could not be stored"
		var ee *errs.Error
		if errors.As(err, &ee) {
			msg = ee.Message
		}
		e.finish(context.WithoutCancel(ctx), r, StateFailed, StepStore, msg)
		e.release(r.ID)
		return nil, err
	}
	r, err = e.transition(context.WithoutCancel(ctx), r, func(r *Rotation, now time.Time) {
		r.step(StepStore, StepOK, now, "")
		r.State = StateApplying
	})
	if err != nil {
		// The driver of a later resume pass takes it from "storing".
		e.release(r.ID)
		return r, nil
	}
	slot, _ := ctx.Value(slotKey{}).(*schedSlot)
	if slot != nil {
		slot.taken.Store(true) // this driver frees it when it stops
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer e.release(r.ID)
		if slot != nil {
			defer e.freeSlot()
		}
		e.drive(r.Account, r.ID)
	}()
	return r, nil
}

func (e *Engine) claim(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.running[id] {
		return false
	}
	e.running[id] = true
	return true
}

func (e *Engine) release(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.running, id)
	for _, k := range []string{id, id + "cleanup", id + "restore"} {
		delete(e.sent, k)
	}
}

// transition applies fn to the stored record if nobody changed it since r
// was read (errStale otherwise), in one durable transaction; a terminal
// state also closes the secret's open-rotation slot.
func (e *Engine) transition(ctx context.Context, r *Rotation, fn func(r *Rotation, now time.Time)) (*Rotation, error) {
	var out *Rotation
	ended := false
	err := e.st.Update(ctx, func(tx store.Tx) error {
		out, ended = nil, false
		cur, err := getRotation(tx, r.Account, r.ID)
		if err != nil {
			return err
		}
		if cur.Rev != r.Rev {
			return errStale
		}
		was := cur.State
		now := e.now()
		fn(cur, now)
		ended = !Terminal(was) && Terminal(cur.State)
		cur.Rev++
		cur.Updated = now
		if Terminal(cur.State) {
			openKey := store.Key(cur.Account, cur.SecretName)
			if id, err := tx.Get(tableOpen, openKey); err == nil && string(id) == cur.ID {
				if err := tx.Delete(tableOpen, openKey); err != nil {
					return errs.Wrap(errs.KindInternal, err, "closing the rotation")
				}
			}
		}
		if err := putRotation(tx, cur); err != nil {
			return err
		}
		out = cur
		return nil
	})
	if err == nil && ended && e.cfg.OnFinish != nil {
		// The Rev check makes this commit the only one that ended it.
		e.cfg.OnFinish(out)
	}
	return out, err
}

// finish moves r to a terminal state with the step's error.
func (e *Engine) finish(ctx context.Context, r *Rotation, state, step, msg string) (*Rotation, error) {
	if state != StateSucceeded {
		if err := e.deferSlot(ctx, r); err != nil {
			return nil, err
		}
	}
	return e.transition(ctx, r, func(r *Rotation, now time.Time) {
		stepState := StepFailed
		if msg == "" {
			stepState = StepOK
		}
		r.step(step, stepState, now, msg)
		r.State = state
		if state != StateSucceeded || msg != "" {
			r.Error = msg
		}
	})
}

// deferSlot moves the secret's schedule RetryMax on before a rotation ends
// without success. It runs before the terminal transition closes the open
// slot, so a scheduler (on any replica) sees either the open rotation or a
// slot no longer due: never a due slot to start again at once.
func (e *Engine) deferSlot(ctx context.Context, r *Rotation) error {
	return e.sec.DeferRotation(ctx, r.Account, r.SecretName, e.now().Add(e.cfg.RetryMax))
}

// Resume starts a driver for every open rotation that this process does
// not drive yet (after a restart, or one another replica left behind).
func (e *Engine) Resume(ctx context.Context) (int, error) {
	var open []struct{ account, id string }
	err := e.st.View(ctx, func(tx store.Tx) error {
		open = open[:0]
		kvs, err := tx.List(tableOpen, "", "", 0)
		if err != nil {
			return errs.Wrap(errs.KindInternal, err, "listing open rotations")
		}
		for _, kv := range kvs {
			account, _, _ := cutAccount(kv.Key)
			open = append(open, struct{ account, id string }{account, string(kv.Value)})
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range open {
		if !e.claim(o.id) {
			continue
		}
		// Worth a line: after a takeover or a restart this is the new
		// driver of work another process started.
		e.log.Info("rotation: resuming an open rotation", "rotation", o.id)
		n++
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer e.release(o.id)
			e.drive(o.account, o.id)
		}()
	}
	return n, nil
}

func cutAccount(key string) (account, rest string, ok bool) {
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			return key[:i], key[i+1:], true
		}
	}
	return key, "", false
}

// Run does the singleton work until Close: at once, every ScanInterval,
// and as soon as this replica becomes the leader (checked every second),
// it resumes open rotations and starts due scheduled ones.
func (e *Engine) Run() {
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		scan := time.NewTicker(e.cfg.ScanInterval)
		defer scan.Stop()
		poll := time.NewTicker(time.Second)
		defer poll.Stop()
		led := e.leaderNow()
		e.Pass(e.bg)
		for {
			select {
			case <-e.bg.Done():
				return
			case <-scan.C:
				e.Pass(e.bg)
			case <-poll.C:
				now := e.leaderNow()
				if now && !led {
					e.Pass(e.bg)
				}
				led = now
			}
		}
	}()
}

func (e *Engine) leaderNow() bool {
	if e.cfg.Leader == nil {
		return true
	}
	_, ok := e.cfg.Leader()
	return ok
}

// Pass runs the singleton work once if this replica leads.
func (e *Engine) Pass(ctx context.Context) {
	if !e.leading(ctx) {
		return
	}
	if _, err := e.Resume(ctx); err != nil && ctx.Err() == nil {
		e.log.Warn("rotation: resume pass failed", "err", err)
	}
	if err := e.runDue(ctx); err != nil && ctx.Err() == nil {
		e.log.Warn("rotation: scheduled pass failed", "err", err)
	}
}

func (e *Engine) leading(ctx context.Context) bool {
	if e.cfg.Leader == nil {
		return true
	}
	tok, ok := e.cfg.Leader()
	if !ok {
		return false
	}
	if e.cfg.FenceLease == "" {
		return true
	}
	err := e.st.Update(ctx, func(tx store.Tx) error { return tx.CheckFence(e.cfg.FenceLease, tok) })
	return err == nil
}

// runDue starts the scheduled rotations that are due, at most Concurrency
// in flight at once. RotateSecret goes through the same path as the API,
// so the secret's rotator, the open-rotation slot and the VersionId
// idempotency apply unchanged.
func (e *Engine) runDue(ctx context.Context) error {
	now := e.now()
	due, err := e.sec.DueForRotation(ctx, now)
	if err != nil {
		return err
	}
	for _, d := range due {
		if d.Secret.Type != secrets.TypeECS {
			continue
		}
		key := d.Account + "/" + d.Secret.Name
		e.mu.Lock()
		busy := e.scheduled >= e.cfg.Concurrency
		recent := now.Sub(e.failedAt[key]) < e.cfg.RetryMax
		e.mu.Unlock()
		if busy {
			return nil
		}
		if recent {
			continue
		}
		if r, err := e.Open(ctx, d.Account, d.Secret.Name); err != nil || r != nil {
			continue
		}
		// The due list may predate a rotation of this slot that has ended
		// since (it closes the slot only after moving NextRotation on): with
		// no rotation open now, a fresh read says whether the slot is
		// still due. Otherwise the slot would be rotated twice.
		if !e.stillDue(ctx, d, now) {
			continue
		}
		vid := "auto-" + now.Format("20060102T150405Z")
		slot := &schedSlot{}
		e.mu.Lock()
		e.scheduled++
		e.mu.Unlock()
		sctx := context.WithValue(context.WithValue(ctx, triggerKey{}, "schedule"), slotKey{}, slot)
		_, err := e.sec.RotateSecret(sctx, d.Account, d.Secret.Name, vid)
		if !slot.taken.Load() {
			e.freeSlot() // no driver started here (refused, or already open)
		}
		if err != nil {
			e.mu.Lock()
			e.failedAt[key] = now
			e.mu.Unlock()
			e.log.Warn("rotation: scheduled rotation not started", "secret", d.Secret.Name, "err", err)
		}
	}
	return nil
}

// stillDue re-reads the secret's schedule.
func (e *Engine) stillDue(ctx context.Context, d secrets.Due, now time.Time) bool {
	s, err := e.sec.DescribeSecret(ctx, d.Account, d.Secret.Name)
	if err != nil {
		return false
	}
	r := s.Rotation
	return r.Enabled && !s.PendingDeletion() && !r.NextRotation.After(now)
}

// triggerKey marks a RotateSecret call made by the scheduler, so that the
// rotator records the trigger.
type triggerKey struct{}

// slotKey carries the scheduler slot of a RotateSecret call made by the
// scheduler: the driver Start launches takes it and frees it when it stops,
// whichever process ends the rotation.
type slotKey struct{}

type schedSlot struct{ taken atomic.Bool }

func (e *Engine) freeSlot() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.scheduled > 0 {
		e.scheduled--
	}
}

func triggerOf(ctx context.Context) string {
	if t, _ := ctx.Value(triggerKey{}).(string); t != "" {
		return t
	}
	return "api"
}

// scheduledEnded holds back the scheduler's retry of a scheduled rotation
// that did not succeed (its slot stays due) for RetryMax.
func (e *Engine) scheduledEnded(r *Rotation) {
	if r.Trigger != "schedule" || r.State == StateSucceeded {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.failedAt[r.Account+"/"+r.SecretName] = e.now()
}
