package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyhold/keyhold/client"
)

// Exit codes: scripts tell a refused request from a mistyped command.
const (
	exitOK    = 0
	exitError = 1 // API error or any failure at run time
	exitUsage = 2 // bad command line
)

// stdio is the process's streams, injectable for tests.
type stdio struct {
	in     io.Reader
	out    io.Writer
	err    io.Writer
	inTTY  bool // stdin is a terminal: never wait on it for a value
	outTTY bool // stdout is a terminal: end raw values with a newline
}

func newStdio() stdio {
	s := stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}
	if fi, err := os.Stdin.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		s.inTTY = true
	}
	if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		s.outTTY = true
	}
	return s
}

// app holds the global flags and streams shared by every client command.
type app struct {
	io stdio

	profile          string
	endpoint         string
	accessKeyID      string
	accessSecretFile string
	caFile           string
	insecure         bool
	regionID         string
	scheme           string
	output           string
	timeout          time.Duration

	stdinUsed string // which flag consumed stdin, so a second use is refused
}

// usageError marks a command-line mistake (exit code 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

const rootLong = `keyhold manages secrets and keys on a Keyhold server (an API compatible
with Alibaba Cloud KMS 2016-01-20), and runs the server itself ("keyhold server").

Credentials and endpoint are resolved in this order; the first source that
has an access key ID supplies the whole key pair:
  1. flags: --endpoint, --access-key-id, --access-key-secret-file FILE|-
     (the secret itself is never accepted as a flag value)
  2. environment: KEYHOLD_ENDPOINT, KEYHOLD_ACCESS_KEY_ID, KEYHOLD_ACCESS_KEY_SECRET
  3. environment: ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET
  4. the profile: --profile, else KEYHOLD_PROFILE, else the default profile
     of the config file ($KEYHOLD_CONFIG or ~/.config/keyhold/config.json)
The endpoint, CA file (--ca-file, KEYHOLD_CA_FILE) and region follow the same
order independently. If nothing resolves the command fails; it never falls
back to a server's root-credentials.json on its own.

Output is a human view by default; --output json prints the API response.
Errors go to stderr as "Error: <Code>: <Message> (RequestId: …)"; the exit
code is 1 for API and run-time errors and 2 for usage errors.`

// execute builds the command tree, runs args and maps the outcome to an exit
// code and an error line on stderr.
func execute(ctx context.Context, args []string, s stdio) int {
	root := newRootCmd(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var apiErr *client.Error
	var uerr usageError
	switch {
	case errors.As(err, &apiErr):
		fmt.Fprintf(s.err, "Error: %s\n", apiErr.Error())
		return exitError
	case errors.As(err, &uerr) || isCobraUsage(err):
		fmt.Fprintf(s.err, "Error: %v\nRun 'keyhold --help' or add --help to the command for usage.\n", err)
		return exitUsage
	}
	fmt.Fprintf(s.err, "Error: %v\n", err)
	if strings.Contains(err.Error(), "x509: ") {
		fmt.Fprintln(s.err, "Hint: trust the deployment CA with --ca-file (e.g. the server's DATA_DIR/ca.pem), or import it with 'keyhold configure import'.")
	}
	return exitError
}

// isCobraUsage recognises the errors cobra itself returns for unknown
// commands and flags, which carry no type of their own.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument", "accepts ", "requires at least", "required flag"} {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, " "+p) {
			return true
		}
	}
	return false
}

func newRootCmd(s stdio) *cobra.Command {
	a := &app{io: s}
	root := &cobra.Command{
		Use:           "keyhold",
		Short:         "Keyhold secrets manager: server and command-line client",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		Example: `  # Point the CLI at a fresh server, then use it
  keyhold configure import /var/lib/keyhold/root-credentials.json
  printf 's3cr3t' | keyhold secret create MyDbCreds --value-file -
  keyhold secret get MyDbCreds

  # One-off call with credentials from the environment
  KEYHOLD_ENDPOINT=https://127.0.0.1:8443 KEYHOLD_ACCESS_KEY_ID=… KEYHOLD_ACCESS_KEY_SECRET=… \
    keyhold secret list --output json`,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if a.output != "text" && a.output != "json" {
				return usagef("--output must be text or json, not %q", a.output)
			}
			return nil
		},
	}
	root.SetIn(s.in)
	root.SetOut(s.out)
	root.SetErr(s.err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringVar(&a.profile, "profile", "", "config profile (default $KEYHOLD_PROFILE, else the config's default profile)")
	pf.StringVar(&a.endpoint, "endpoint", "", `server URL, e.g. https://127.0.0.1:8443 (env KEYHOLD_ENDPOINT)`)
	pf.StringVar(&a.accessKeyID, "access-key-id", "", "access key ID (env KEYHOLD_ACCESS_KEY_ID)")
	pf.StringVar(&a.accessSecretFile, "access-key-secret-file", "", `file holding the access key secret, "-" for stdin`)
	pf.StringVar(&a.caFile, "ca-file", "", "PEM file of the deployment CA to trust (env KEYHOLD_CA_FILE)")
	pf.BoolVar(&a.insecure, "insecure", false, "skip TLS certificate verification (testing only)")
	pf.StringVar(&a.regionID, "region-id", "", "region id sent with requests (default cn-hangzhou)")
	pf.StringVar(&a.scheme, "signature-scheme", "", "request signature: ACS3 (default) or V1")
	pf.StringVarP(&a.output, "output", "o", "text", "output format: text or json")
	pf.DurationVar(&a.timeout, "timeout", 30*time.Second, "timeout of each request")

	root.AddCommand(newServerCmd(), newSecretCmd(a), newKeyCmd(a), newConfigureCmd(a))
	benchCmd := newBenchCmd()
	benchCmd.AddCommand(benchRotationCmds()...)
	root.AddCommand(benchCmd)
	root.AddCommand(opsCommands(a)...)
	root.AddCommand(newAuditCmd(a))
	root.AddCommand(newHostCmd(a), newAgentCmd())
	root.AddCommand(newRotationCmd(a))
	root.AddCommand(newUserCmd(a), newGroupCmd(a), newAccessKeyCmd(a), newPolicyCmd(a), newAccountCmd(a))
	root.AddCommand(newBastionCmd(a))
	return root
}

// groupCmd returns a command that only holds subcommands: bare, it shows
// its help; with an unknown subcommand it is a usage error.
func groupCmd(use, short, example string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
}

// nArgs is cobra.ExactArgs with a usage error and the argument names.
func nArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != len(names) {
			return usagef("%s takes %d argument(s): %s (got %d)", cmd.CommandPath(), len(names), strings.Join(names, " "), len(args))
		}
		for i, v := range args {
			if v == "" {
				return usagef("%s must not be empty", names[i])
			}
		}
		return nil
	}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("%s takes no arguments (got %q)", cmd.CommandPath(), args[0])
	}
	return nil
}

// client resolves credentials and builds an API client.
func (a *app) client() (*client.Client, error) {
	r, err := a.resolve()
	if err != nil {
		return nil, err
	}
	if r.Insecure {
		fmt.Fprintln(a.io.err, "Warning: TLS certificate verification is disabled (--insecure); do not use this outside tests.")
	}
	if u, err := url.Parse(r.Endpoint); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		fmt.Fprintf(a.io.err, "Warning: %s is plain HTTP; credentials' signatures and secret values travel unencrypted.\n", r.Endpoint)
	}
	return client.New(client.Config{
		Endpoint:           r.Endpoint,
		AccessKeyID:        r.AccessKeyID,
		AccessKeySecret:    r.AccessKeySecret,
		RegionId:           r.RegionID,
		CACertPEM:          r.CAPEM,
		InsecureSkipVerify: r.Insecure,
		SignatureScheme:    r.Scheme,
		Timeout:            a.timeout,
	})
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readInput reads a file, or stdin for "-". flag names the flag for error
// messages and for refusing a second reader of stdin. limit bounds the size.
func (a *app) readInput(flag, path string, limit int64) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		if a.stdinUsed != "" && a.stdinUsed != flag {
			return nil, usagef("%s and %s cannot both read stdin", a.stdinUsed, flag)
		}
		a.stdinUsed = flag
		r = a.io.in
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", flag, err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if int64(len(b)) > limit {
		return nil, usagef("%s: input larger than %d bytes", flag, limit)
	}
	return b, nil
}

// readValue reads a secret value from --value-file, or from stdin when no
// file is named and stdin is not a terminal. It never comes from argv, so
// that values stay out of shell history and process listings.
func (a *app) readValue(flag, path string, limit int64) ([]byte, error) {
	if path == "" {
		if a.io.inTTY {
			return nil, usagef("give the value with %s FILE, or pipe it on stdin (%s -)", flag, flag)
		}
		path = "-"
	}
	return a.readInput(flag, path, limit)
}
