package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/internal/bench"
)

func newBenchCmd() *cobra.Command {
	var (
		cfg        bench.Config
		clients    string
		phases     string
		cpuProfile string
	)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure GetSecretValue and PutSecretValue throughput and latency",
		Long: `Measure the server, in one run on this machine:

  1. signed GetSecretValue through the whole path (signature, nonce, auth,
     decrypt, durable audit record) at each --clients count, over keep-alive
     loopback HTTP, as the account root;
  2. the same as a RAM user the run creates through the RAM API, holding one
     20-statement policy whose matching statement is the last (get-user),
     and its ratio to root;
  3. the same client and load against a bare net/http handler that returns
     the same response body (the baseline), and the ratio between the two;
  4. durable PutSecretValue, each a new version, one secret per client (so
     version pruning runs too).

Every request goes through the public Go client, so signing and decoding are
real. Each phase runs for --duration (after a short unrecorded warm-up) or
--max-requests, whichever comes first; every latency is recorded and the
percentiles are exact. A progress line per phase goes to stderr, the table
to stdout.

By default a server is started in-process in a temporary data directory,
plain HTTP on 127.0.0.1, so client and server share this machine's CPUs.
With --endpoint (and --access-key-id, --access-key-secret-file, or the
KEYHOLD_* variables) it measures a running server instead (the
credentials must be an account root's, to create the get-user user); the
secrets, user, access key and policy it creates there are deleted at the
end. The bare baseline always runs in-process.`,
		Example: `  # The figures in docs/BENCHMARKS.md
  keyhold bench

  # Root against a 20-statement RAM user (issue 4)
  keyhold bench --phases get,get-user --duration 5s

  # A quick run, JSON report, CPU profile of the GetSecretValue phases only
  keyhold bench --duration 2s --clients 32 --phases get --cpuprofile get.pprof --output json
  go tool pprof -top get.pprof`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if cfg.Clients, err = parseClients(clients); err != nil {
				return usageError{err}
			}
			if phases != "" {
				cfg.Phases = strings.Split(phases, ",")
			}
			output := flagValue(cmd, "output", "text")
			if output != "text" && output != "json" {
				return usagef("--output must be text or json, not %q", output)
			}
			if err := benchEndpoint(cmd, &cfg); err != nil {
				return err
			}
			cfg.Progress = cmd.ErrOrStderr()
			if cpuProfile != "" {
				f, err := os.Create(cpuProfile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile()
			}
			rep, err := bench.Run(cmd.Context(), cfg)
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
			if rep.Failed() {
				return errors.New("bench: some requests failed (see the report)")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&cfg.Duration, "duration", 5*time.Second, "measured time per phase")
	f.DurationVar(&cfg.Warmup, "warmup", 0, "unrecorded warm-up per phase (default duration/10, at most 1s)")
	f.StringVar(&clients, "clients", "1,32", "comma-separated concurrent client counts")
	f.IntVar(&cfg.ValueSize, "value-size", 1024, "secret value size in bytes (1..30720)")
	f.IntVar(&cfg.MaxRequests, "max-requests", 1_000_000, "cap on measured requests per phase")
	f.StringVar(&phases, "phases", "", "comma-separated subset of get,get-user,bare,put (default all)")
	f.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the run (client and in-process server) to FILE")
	cmd.AddCommand(newBenchSeedCmd())
	return cmd
}

func newBenchSeedCmd() *cobra.Command {
	var (
		cfg     bench.SeedConfig
		measure string
	)
	cmd := &cobra.Command{
		Use:   "seed",
		Short: "Load a running server with N secrets, then measure ListSecrets and GetSecretValue",
		Long: `Create --secrets secrets named PREFIX-0000000 … through the API (CreateSecret,
--clients at once), skipping names that exist, so an interrupted run resumes
where it stopped: it finds the highest loaded name with ~20 DescribeSecret
calls and re-checks only the 1,024 names below it. The secrets stay: they
are the load for later runs.

Then, at each --measure client count (none: load only), for --duration:
ListSecrets' first, middle and last page (100 per page; the last is the
deepest offset), and GetSecretValue of a secret chosen at random among the
seeded ones.

Needs --endpoint and an account root's credentials, as "keyhold bench
--endpoint" does.`,
		Example: `  keyhold bench seed --endpoint http://127.0.0.1:8080 --secrets 100000 --measure 1,32`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if measure != "" {
				var err error
				if cfg.Measure, err = parseClients(measure); err != nil {
					return usageError{err}
				}
			}
			var target bench.Config
			if err := benchEndpoint(cmd, &target); err != nil {
				return err
			}
			if target.Endpoint == "" {
				return usagef("bench seed needs --endpoint: it loads a running server")
			}
			cfg.Endpoint, cfg.AccessKeyID, cfg.AccessKeySecret = target.Endpoint, target.AccessKeyID, target.AccessKeySecret
			cfg.CACertPEM, cfg.Insecure = target.CACertPEM, target.Insecure
			cfg.Progress = cmd.ErrOrStderr()
			res, err := bench.Seed(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			if res.Report == nil {
				return nil
			}
			if flagValue(cmd, "output", "text") == "json" {
				err = res.Report.WriteJSON(cmd.OutOrStdout())
			} else {
				err = res.Report.WriteText(cmd.OutOrStdout())
			}
			if err == nil && res.Report.Failed() {
				err = errors.New("bench seed: some requests failed (see the report)")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Secrets, "secrets", 0, "how many secrets must exist (required)")
	f.StringVar(&cfg.Prefix, "prefix", "seed", "secret name prefix")
	f.IntVar(&cfg.Clients, "clients", 32, "concurrent CreateSecret calls while loading")
	f.IntVar(&cfg.ValueSize, "value-size", 256, "secret value size in bytes")
	f.StringVar(&measure, "measure", "1,32", `comma-separated client counts to measure at ("" to load only)`)
	f.BoolVar(&cfg.SkipList, "skip-list", false, "measure GetSecretValue only")
	f.DurationVar(&cfg.Duration, "duration", 5*time.Second, "measured time per phase")
	f.DurationVar(&cfg.Warmup, "warmup", 500*time.Millisecond, "unrecorded warm-up per phase")
	f.IntVar(&cfg.MaxRequests, "max-requests", 1_000_000, "cap on measured requests per phase")
	return cmd
}

func parseClients(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--clients must be positive integers separated by commas, not %q", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// flagValue reads a flag inherited from the root command (--output,
// --endpoint, …), or def when this command runs without that root.
func flagValue(cmd *cobra.Command, name, def string) string {
	if fl := cmd.Flags().Lookup(name); fl != nil {
		return fl.Value.String()
	}
	return def
}

// benchEndpoint fills the target from --endpoint and the credential flags or
// KEYHOLD_* variables; with no endpoint the run starts its own server.
func benchEndpoint(cmd *cobra.Command, cfg *bench.Config) error {
	cfg.Endpoint = flagValue(cmd, "endpoint", "")
	if cfg.Endpoint == "" {
		cfg.Endpoint = os.Getenv("KEYHOLD_ENDPOINT")
	}
	if cfg.Endpoint == "" {
		return nil
	}
	cfg.AccessKeyID = flagValue(cmd, "access-key-id", "")
	if cfg.AccessKeyID == "" {
		cfg.AccessKeyID = os.Getenv("KEYHOLD_ACCESS_KEY_ID")
	}
	if path := flagValue(cmd, "access-key-secret-file", ""); path != "" {
		var b []byte
		var err error
		if path == "-" {
			b, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
		} else {
			b, err = os.ReadFile(path)
		}
		if err != nil {
			return fmt.Errorf("--access-key-secret-file: %w", err)
		}
		cfg.AccessKeySecret = strings.TrimSpace(string(b))
	} else {
		cfg.AccessKeySecret = os.Getenv("KEYHOLD_ACCESS_KEY_SECRET")
	}
	if cfg.AccessKeyID == "" || cfg.AccessKeySecret == "" {
		return usagef("--endpoint needs --access-key-id and --access-key-secret-file (or KEYHOLD_ACCESS_KEY_ID and KEYHOLD_ACCESS_KEY_SECRET)")
	}
	if ca := flagValue(cmd, "ca-file", ""); ca != "" {
		b, err := os.ReadFile(ca)
		if err != nil {
			return fmt.Errorf("--ca-file: %w", err)
		}
		cfg.CACertPEM = b
	}
	cfg.Insecure = flagValue(cmd, "insecure", "false") == "true"
	return nil
}
