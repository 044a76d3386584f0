package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/keyhold/keyhold/client"
	"github.com/keyhold/keyhold/internal/fleet"
	"github.com/keyhold/keyhold/internal/rotation"
	"github.com/keyhold/keyhold/internal/server"
)

// RotationConfig configures RunRotation.
type RotationConfig struct {
	// Agents is the number of simulated hosts; one ECS password secret is
	// rotated on each.
	Agents int
	// Concurrency bounds RotateSecret calls in flight (default 256).
	Concurrency int
	// Faults injects a fault per host (agent crashes at each point, cut
	// reports, silence beyond the apply timeout, failed verification, and
	// server restarts while hosts apply) and checks for lockouts.
	Faults bool
	// ApplyTimeout is the engine's apply timeout (default 60s; 3s with
	// Faults, so that the roll-back path runs within the bench).
	ApplyTimeout time.Duration
	Progress     io.Writer

	// faults replaces the fault list (tests: a lying agent must show up
	// as a lockout).
	faults []string
}

// RotationReport is what RunRotation measured.
type RotationReport struct {
	Mode           string         `json:"mode"`
	Agents         int            `json:"agents"`
	Machine        Machine        `json:"machine"`
	Setup          time.Duration  `json:"setup_ns"`
	Total          time.Duration  `json:"total_ns"`
	PerSecond      float64        `json:"rotations_per_second"`
	P50            time.Duration  `json:"p50_ns"`
	P99            time.Duration  `json:"p99_ns"`
	Max            time.Duration  `json:"max_ns"`
	States         map[string]int `json:"states"`
	Faults         map[string]int `json:"faults,omitempty"`
	ServerRestarts int            `json:"server_restarts"`
	Unfinished     int            `json:"unfinished"`
	Lockouts       int            `json:"lockouts"`
	LockoutDetails []string       `json:"lockout_details,omitempty"`
}

// RunRotation enrolls simulated agents into an in-process server, creates
// one ECS password secret per host, rotates them all and reports the time
// from the first RotateSecret to the last rotation's end, the rate, and
// per-rotation latency (RotateSecret call to terminal state). It then
// checks every host: the password it accepts must be ACSCurrent, with no
// ACSPending left (anything else is a lockout).
func RunRotation(ctx context.Context, cfg RotationConfig) (*RotationReport, error) {
	if cfg.Agents <= 0 {
		return nil, errors.New("bench: --agents must be positive")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 256
	}
	if cfg.ApplyTimeout <= 0 {
		cfg.ApplyTimeout = time.Minute
		if cfg.Faults {
			cfg.ApplyTimeout = 3 * time.Second
		}
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	rep := &RotationReport{Mode: "rotation", Agents: cfg.Agents, Machine: DescribeMachine(), States: map[string]int{}}
	if cfg.Faults {
		rep.Mode, rep.Faults = "rotation-faults", map[string]int{}
	}

	dir, err := os.MkdirTemp("", "keyhold-bench-rotation-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()

	var finished sync.Map // secret name -> finish
	var nFinished atomic.Int64
	scfg := server.Config{
		DataDir: dir, Listen: addr, Logger: slog.New(slog.DiscardHandler),
		Rotation: server.RotationConfig{ApplyTimeout: cfg.ApplyTimeout, RetryMin: 200 * time.Millisecond,
			RetryMax: 2 * time.Second, ScanInterval: 2 * time.Second,
			OnFinish: func(r *rotation.Rotation) {
				if _, loaded := finished.LoadOrStore(r.SecretName, finish{time.Now(), r.State}); !loaded {
					nFinished.Add(1)
				}
			}},
	}
	srv, err := server.Start(ctx, scfg)
	if err != nil {
		return nil, fmt.Errorf("bench: start server: %w", err)
	}
	var srvMu sync.Mutex
	defer func() {
		srvMu.Lock()
		if srv != nil {
			srv.Close()
		}
		srvMu.Unlock()
	}()
	ref := &handlerRef{}
	ref.set(srv.Handler())
	restart := func() {
		srvMu.Lock()
		defer srvMu.Unlock()
		if rep.ServerRestarts >= 3 || srv == nil {
			return
		}
		rep.ServerRestarts++
		fmt.Fprintf(progress, "rotation: restarting the server (%d)\n", rep.ServerRestarts)
		ref.set(nil)
		srv.Close()
		srv = nil
		for i := 0; i < 50; i++ {
			if srv, err = server.Start(ctx, scfg); err == nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if srv != nil {
			ref.set(srv.Handler())
		}
	}

	_, id, secret, err := readRootCredentials(dir)
	if err != nil {
		return nil, err
	}
	hc, err := httpClient(cfg.Concurrency, nil, false)
	if err != nil {
		return nil, err
	}
	c, err := newClient("http://"+addr, id, secret, hc)
	if err != nil {
		return nil, err
	}

	// Set-up: enroll the agents over the protocol, start them, create the
	// secrets through the API.
	setupStart := time.Now()
	agentHC := &http.Client{Transport: ref}
	agents := make([]*simAgent, cfg.Agents)
	faults := agentFaults
	if cfg.faults != nil {
		faults = cfg.faults
	}
	for i := range agents {
		agents[i] = newSimAgent(fmt.Sprintf("u%d", i), randValue(24), agentHC)
		if cfg.Faults {
			agents[i].fault = faults[i%len(faults)]
			agents[i].silence = cfg.ApplyTimeout * 5 / 2
			agents[i].serverRestart = restart
			rep.Faults[orNone(agents[i].fault)]++
		}
	}
	var tokens []string
	for n := cfg.Agents; n > 0; n -= fleet.MaxTokenUses {
		tok, err := srv.Fleet().CreateEnrollmentToken(ctx, srv.Account, 2*time.Hour, min(n, fleet.MaxTokenUses))
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, tok.Token)
	}
	if err := parallel(ctx, 64, cfg.Agents, func(i int) error {
		return agents[i].enroll(ctx, tokens[i/fleet.MaxTokenUses])
	}); err != nil {
		return nil, fmt.Errorf("bench: enroll: %w", err)
	}
	fmt.Fprintf(progress, "rotation: %d agents enrolled in %s\n", cfg.Agents, time.Since(setupStart).Round(time.Millisecond))
	actx, stopAgents := context.WithCancel(ctx)
	var agentsWG sync.WaitGroup
	defer func() { stopAgents(); agentsWG.Wait() }()
	for _, a := range agents {
		agentsWG.Add(1)
		go func() { defer agentsWG.Done(); a.run(actx) }()
	}
	names := make([]string, cfg.Agents)
	if err := parallel(ctx, 64, cfg.Agents, func(i int) error {
		a := agents[i]
		names[i] = "acs/ecs/" + a.hostID + "/" + a.user
		data, _ := json.Marshal(map[string]string{"UserName": a.user, "Password": a.Password()})
		_, err := c.CreateSecret(ctx, &client.CreateSecretRequest{SecretName: names[i], SecretType: "ECS", VersionId: "v1",
			SecretData: string(data), ExtendedConfig: map[string]any{"SecretSubType": "Password", "RegionId": "cn-hangzhou", "InstanceId": a.hostID}})
		return err
	}); err != nil {
		return nil, fmt.Errorf("bench: create secrets: %w", err)
	}
	rep.Setup = time.Since(setupStart)
	fmt.Fprintf(progress, "rotation: set-up (enroll, %d long-polls, secrets) took %s\n", cfg.Agents, rep.Setup.Round(time.Millisecond))

	// Rotate every secret. A call refused because the server is restarting
	// is repeated with the same VersionId, which is idempotent.
	called := make([]time.Time, cfg.Agents)
	start := time.Now()
	if err := parallel(ctx, cfg.Concurrency, cfg.Agents, func(i int) error {
		called[i] = time.Now()
		deadline := time.Now().Add(time.Minute)
		for {
			_, err := c.RotateSecret(ctx, &client.RotateSecretRequest{SecretName: names[i], VersionId: "bench-v2"})
			if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
				return err
			}
			var ae *client.Error
			if errors.As(err, &ae) && ae.Code != "ServiceUnavailableTemporary" && ae.Code != "InternalFailure" {
				return err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}); err != nil {
		return nil, fmt.Errorf("bench: RotateSecret: %w", err)
	}
	fmt.Fprintf(progress, "rotation: %d RotateSecret calls answered in %s\n", cfg.Agents, time.Since(start).Round(time.Millisecond))
	wait := 2*time.Minute + 10*cfg.ApplyTimeout
	for deadline := time.Now().Add(wait); nFinished.Load() < int64(cfg.Agents) && time.Now().Before(deadline); {
		if sleepCtx(ctx, 50*time.Millisecond); ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}

	var lat []time.Duration
	var last time.Time
	for i, name := range names {
		v, ok := finished.Load(name)
		if !ok {
			rep.Unfinished++
			continue
		}
		f := v.(finish)
		rep.States[f.state]++
		lat = append(lat, f.at.Sub(called[i]))
		if f.at.After(last) {
			last = f.at
		}
	}
	if len(lat) > 0 {
		rep.Total = last.Sub(start)
		rep.PerSecond = float64(len(lat)) / rep.Total.Seconds()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		rep.P50, rep.P99, rep.Max = lat[len(lat)/2], lat[(len(lat)*99)/100], lat[len(lat)-1]
	}
	fmt.Fprintf(progress, "rotation: %d finished, checking every host\n", len(lat))

	// The lockout check: the password each host accepts now must be
	// ACSCurrent, and no ACSPending may be left.
	var lmu sync.Mutex
	parallel(ctx, 64, cfg.Agents, func(i int) error {
		a := agents[i]
		var why string
		cur, err := c.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: names[i]})
		var v struct{ Password string }
		switch {
		case err != nil:
			why = "ACSCurrent unreadable: " + err.Error()
		case json.Unmarshal([]byte(cur.SecretData), &v) != nil || v.Password != a.Password():
			why = "the host does not accept ACSCurrent"
		default:
			if _, err := c.GetSecretValue(ctx, &client.GetSecretValueRequest{SecretName: names[i], VersionStage: "ACSPending"}); err == nil {
				why = "ACSPending left behind"
			}
		}
		if why != "" {
			lmu.Lock()
			rep.Lockouts++
			if len(rep.LockoutDetails) < 20 {
				rep.LockoutDetails = append(rep.LockoutDetails, fmt.Sprintf("%s (fault %s): %s", a.hostID, orNone(a.fault), why))
			}
			lmu.Unlock()
		}
		return nil
	})
	return rep, nil
}

type finish struct {
	at    time.Time
	state string
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// parallel runs fn(0..n-1) on workers goroutines; the first error stops it.
func parallel(ctx context.Context, workers, n int, fn func(i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < min(workers, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n || first != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// WriteText prints the report as a table.
func (r *RotationReport) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "mode\t%s\n", r.Mode)
	fmt.Fprintf(tw, "machine\t%s, %d CPU, GOMAXPROCS %d, %s\n", r.Machine.CPU, r.Machine.NumCPU, r.Machine.GOMAXPROCS, r.Machine.GoVersion)
	fmt.Fprintf(tw, "agents (hosts, one secret each)\t%d\n", r.Agents)
	fmt.Fprintf(tw, "set-up (enroll, secrets)\t%s\n", r.Setup.Round(time.Millisecond))
	fmt.Fprintf(tw, "total (first RotateSecret to last end)\t%s\n", r.Total.Round(time.Millisecond))
	fmt.Fprintf(tw, "rotations/s\t%.0f\n", r.PerSecond)
	fmt.Fprintf(tw, "latency p50 / p99 / max\t%s / %s / %s\n", r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Max.Round(time.Millisecond))
	fmt.Fprintf(tw, "end states\t%s\n", mapString(r.States))
	if r.Faults != nil {
		fmt.Fprintf(tw, "faults injected\t%s\n", mapString(r.Faults))
		fmt.Fprintf(tw, "server restarts\t%d\n", r.ServerRestarts)
	}
	fmt.Fprintf(tw, "unfinished\t%d\n", r.Unfinished)
	fmt.Fprintf(tw, "lockouts\t%d\n", r.Lockouts)
	for _, d := range r.LockoutDetails {
		fmt.Fprintf(tw, "  lockout\t%s\n", d)
	}
	return tw.Flush()
}

// WriteJSON prints the report as JSON.
func (r *RotationReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func mapString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %d", k, m[k])
	}
	return s
}
