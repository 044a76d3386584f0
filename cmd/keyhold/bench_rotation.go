package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/internal/bench"
)

// benchRotationCmds are `keyhold bench rotation` and `keyhold bench
// rotation-faults`: simulated agents, one ECS password secret each, all
// rotated through an in-process server.
func benchRotationCmds() []*cobra.Command {
	return []*cobra.Command{newBenchRotationCmd(false), newBenchRotationCmd(true)}
}

func newBenchRotationCmd(faults bool) *cobra.Command {
	var cfg bench.RotationConfig
	use, short, long, example := "rotation", "Rotate one ECS secret on each of N simulated hosts; total time, rotations/s, p99",
		`Start a server in-process (temporary data directory), enroll --agents
simulated agents over the agent protocol (enroll, signed long-poll, signed
report; their requests go to the server's handler in memory, and they act on
an in-memory host: no user of this machine is touched), create one ECS
password secret per host through the API, then RotateSecret all of them,
--concurrency calls at a time. Reported: the time from the first
RotateSecret to the end of the last rotation, rotations per second, and the
latency of each rotation from its RotateSecret call to its end state. Every
host is then checked: the password it accepts must be ACSCurrent.`,
		"  keyhold bench rotation --agents 10000\n  keyhold bench rotation --agents 1000 --output json"
	n := 10000
	if faults {
		use, short = "rotation-faults", "Run fault-injected rotations on simulated hosts and count lockouts (must be 0)"
		long = `Like "keyhold bench rotation", but each host gets one fault, in turn: the
agent killed after receiving, after applying or before reporting; its report
cut; the agent unreachable (before or after applying) for longer than the
apply timeout, so that the rotation rolls back; verification failing; and
the server restarted (up to 3 times) while a host applies. The apply timeout
is --apply-timeout (default 3s). At the end every host is checked: the
password it accepts must be ACSCurrent and no ACSPending may be left;
anything else is a lockout. The command fails when there is one.`
		example = "  keyhold bench rotation-faults --n 1000"
		n = 1000
	}
	cmd := &cobra.Command{
		Use: use, Short: short, Long: long, Example: example, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			output := flagValue(cmd, "output", "text")
			if output != "text" && output != "json" {
				return usagef("--output must be text or json, not %q", output)
			}
			cfg.Agents, cfg.Faults, cfg.Progress = n, faults, cmd.ErrOrStderr()
			rep, err := bench.RunRotation(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if output == "json" {
				err = rep.WriteJSON(cmd.OutOrStdout())
			} else {
				err = rep.WriteText(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if rep.Lockouts > 0 || rep.Unfinished > 0 {
				return errors.New("bench: lockouts or unfinished rotations (see the report)")
			}
			return nil
		},
	}
	f := cmd.Flags()
	if faults {
		f.IntVar(&n, "n", n, "number of fault-injected rotations (one simulated host each)")
	} else {
		f.IntVar(&n, "agents", n, "number of simulated hosts (one rotation each)")
	}
	f.IntVar(&cfg.Concurrency, "concurrency", 256, "RotateSecret calls in flight")
	f.DurationVar(&cfg.ApplyTimeout, "apply-timeout", 0, "the engine's apply timeout (default 60s; 3s for rotation-faults)")
	return cmd
}
