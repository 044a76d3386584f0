package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

// profile is one named set of connection settings. The access key secret
// is stored in the file in plain form, like ~/.aliyun/config.json: the file
// is the user's credential file and is kept at mode 0600.
type profile struct {
	Endpoint        string `json:"endpoint,omitempty"`
	AccessKeyID     string `json:"access_key_id,omitempty"`
	AccessKeySecret string `json:"access_key_secret,omitempty"`
	// CACert is the deployment CA's PEM, copied in so that the profile
	// keeps working when the file it came from moves or goes away.
	CACert          string `json:"ca_cert,omitempty"`
	Insecure        bool   `json:"insecure,omitempty"`
	RegionID        string `json:"region_id,omitempty"`
	SignatureScheme string `json:"signature_scheme,omitempty"`
}

type config struct {
	DefaultProfile string              `json:"default_profile,omitempty"`
	Profiles       map[string]*profile `json:"profiles"`
}

const defaultProfileName = "default"

// configPath is $KEYHOLD_CONFIG, else <user config dir>/keyhold/config.json.
func configPath() (string, error) {
	if p := os.Getenv("KEYHOLD_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot locate the config directory (set KEYHOLD_CONFIG): %w", err)
	}
	return filepath.Join(dir, "keyhold", "config.json"), nil
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig() (*config, string, error) {
	path, err := configPath()
	if err != nil {
		return nil, "", err
	}
	cfg := &config{Profiles: map[string]*profile{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, path, nil
	}
	if err != nil {
		return nil, path, err
	}
	if err := json.Unmarshal(b, cfg); err != nil {
		// The parser's message may quote file content; keep only where.
		return nil, path, fmt.Errorf("config file %s is not valid JSON", path)
	}
	if cfg.Profiles == nil {
		cfg.Profiles = map[string]*profile{}
	}
	return cfg, path, nil
}

// permWarning says so when a config file holding secrets is readable by
// others.
func permWarning(path string) string {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return ""
	}
	return fmt.Sprintf("Warning: %s holds access key secrets but has mode %04o; run: chmod 600 %s\n", path, fi.Mode().Perm(), path)
}

// saveConfig writes the config atomically (temp file + rename in the same
// directory) with mode 0600 in a 0700 directory, so that a crash never
// leaves a truncated file and the secret is never readable by others, even
// for an instant.
func saveConfig(path string, cfg *config) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".config-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the rename durable; not every filesystem supports it
		d.Close()
	}
	return nil
}

// profileName is --profile, else KEYHOLD_PROFILE, else the config's default,
// else "default". explicit reports whether the user named it.
func (a *app) profileName(cfg *config) (name string, explicit bool) {
	if a.profile != "" {
		return a.profile, true
	}
	if p := os.Getenv("KEYHOLD_PROFILE"); p != "" {
		return p, true
	}
	if cfg != nil && cfg.DefaultProfile != "" {
		return cfg.DefaultProfile, false
	}
	return defaultProfileName, false
}

// resolved is the outcome of credential resolution.
type resolved struct {
	Endpoint        string
	AccessKeyID     string
	AccessKeySecret string
	CAPEM           []byte
	Insecure        bool
	RegionID        string
	Scheme          string
	KeySource       string // where the key pair came from, for messages and tests
}

// resolve applies the documented order: flags, KEYHOLD_* env, ALIBABA_CLOUD_*
// env, profile. The key pair always comes whole from one source.
func (a *app) resolve() (*resolved, error) {
	cfg, path, err := loadConfig()
	if err != nil {
		return nil, err
	}
	name, explicit := a.profileName(cfg)
	prof := cfg.Profiles[name]
	if prof == nil {
		if explicit {
			return nil, usagef("profile %q not found in %s (see 'keyhold configure list')", name, path)
		}
		prof = &profile{}
	} else if w := permWarning(path); w != "" {
		fmt.Fprint(a.io.err, w)
	}
	r := &resolved{}

	switch {
	case a.accessKeyID != "" || a.accessSecretFile != "":
		if a.accessKeyID == "" || a.accessSecretFile == "" {
			return nil, usagef("--access-key-id and --access-key-secret-file go together")
		}
		sec, err := a.readInput("--access-key-secret-file", a.accessSecretFile, 4096)
		if err != nil {
			return nil, err
		}
		r.AccessKeyID, r.AccessKeySecret, r.KeySource = a.accessKeyID, strings.TrimSpace(string(sec)), "flags"
	case os.Getenv("KEYHOLD_ACCESS_KEY_ID") != "" || os.Getenv("KEYHOLD_ACCESS_KEY_SECRET") != "":
		r.AccessKeyID, r.AccessKeySecret, r.KeySource = os.Getenv("KEYHOLD_ACCESS_KEY_ID"), os.Getenv("KEYHOLD_ACCESS_KEY_SECRET"), "env KEYHOLD_*"
	case os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_ID") != "" || os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET") != "":
		r.AccessKeyID, r.AccessKeySecret, r.KeySource = os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_ID"), os.Getenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET"), "env ALIBABA_CLOUD_*"
	case prof.AccessKeyID != "":
		r.AccessKeyID, r.AccessKeySecret, r.KeySource = prof.AccessKeyID, prof.AccessKeySecret, "profile "+name
	default:
		return nil, fmt.Errorf("no credentials: use --access-key-id with --access-key-secret-file, set KEYHOLD_ACCESS_KEY_ID and KEYHOLD_ACCESS_KEY_SECRET, or create profile %q with 'keyhold configure set' or 'keyhold configure import FILE'", name)
	}
	if r.AccessKeyID == "" || r.AccessKeySecret == "" {
		return nil, fmt.Errorf("incomplete credentials from %s: both the access key ID and its secret are needed", r.KeySource)
	}

	r.Endpoint = first(a.endpoint, os.Getenv("KEYHOLD_ENDPOINT"), prof.Endpoint)
	if r.Endpoint == "" {
		return nil, fmt.Errorf("no endpoint: use --endpoint, set KEYHOLD_ENDPOINT, or set one in profile %q", name)
	}
	r.RegionID = first(a.regionID, os.Getenv("KEYHOLD_REGION_ID"), prof.RegionID)
	r.Scheme = first(a.scheme, os.Getenv("KEYHOLD_SIGNATURE_SCHEME"), prof.SignatureScheme)
	r.Insecure = a.insecure || prof.Insecure
	if caFile := first(a.caFile, os.Getenv("KEYHOLD_CA_FILE")); caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		r.CAPEM = pem
	} else if prof.CACert != "" {
		r.CAPEM = []byte(prof.CACert)
	}
	if r.Insecure {
		r.CAPEM = nil // verification is off; a CA would be ignored anyway
	}
	return r, nil
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

func newConfigureCmd(a *app) *cobra.Command {
	cmd := groupCmd("configure", "Manage CLI profiles (endpoint, access key, CA)",
		`  keyhold configure import /var/lib/keyhold/root-credentials.json
  keyhold configure set --profile ops --endpoint https://kms.example:8443 \
    --access-key-id LTAI… --access-key-secret-file ./ak-secret --ca-file ca.pem
  keyhold configure list`)
	cmd.Long = `Manage CLI profiles in $KEYHOLD_CONFIG or ~/.config/keyhold/config.json.

The file stores each profile's access key secret in plain form (as
~/.aliyun/config.json does): it is your credential file, written with mode
0600 in a 0700 directory. Keep it out of backups and shared home directories.`
	cmd.AddCommand(newConfigureSetCmd(a), newConfigureImportCmd(a), newConfigureListCmd(a),
		newConfigureGetCmd(a), newConfigureDeleteCmd(a))
	return cmd
}

// profileTarget is the profile that configure set/import/get write or
// read: --profile, KEYHOLD_PROFILE, else "default".
func (a *app) profileTarget(cfg *config) string {
	n, _ := a.profileName(cfg)
	return n
}

func newConfigureSetCmd(a *app) *cobra.Command {
	var makeDefault bool
	cmd := &cobra.Command{
		Use:   "set",
		Short: "Create or update a profile from flags",
		Long: `Create or update a profile. Only the flags given change the profile.
The access key secret is read from --access-key-secret-file (or stdin with
"-") and stored in the config file (mode 0600).`,
		Example: `  keyhold configure set --profile prod --endpoint https://10.0.0.5:8443 \
    --access-key-id LTAI5t… --access-key-secret-file - --ca-file ./ca.pem < ak-secret.txt
  keyhold configure set --profile prod --insecure=false`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			name := a.profileTarget(cfg)
			p := cfg.Profiles[name]
			if p == nil {
				p = &profile{}
			}
			f := cmd.Flags()
			if f.Changed("endpoint") {
				p.Endpoint = a.endpoint
			}
			if f.Changed("access-key-id") {
				p.AccessKeyID = a.accessKeyID
			}
			if f.Changed("access-key-secret-file") {
				sec, err := a.readInput("--access-key-secret-file", a.accessSecretFile, 4096)
				if err != nil {
					return err
				}
				p.AccessKeySecret = strings.TrimSpace(string(sec))
			}
			if f.Changed("ca-file") {
				if a.caFile == "" {
					p.CACert = ""
				} else {
					pem, err := readCA(a.caFile)
					if err != nil {
						return err
					}
					p.CACert = pem
				}
			}
			if f.Changed("insecure") {
				p.Insecure = a.insecure
			}
			if f.Changed("region-id") {
				p.RegionID = a.regionID
			}
			if f.Changed("signature-scheme") {
				p.SignatureScheme = a.scheme
			}
			if p.Endpoint == "" || p.AccessKeyID == "" || p.AccessKeySecret == "" {
				return usagef("profile %q needs --endpoint, --access-key-id and --access-key-secret-file", name)
			}
			return a.storeProfile(cfg, path, name, p, makeDefault)
		},
	}
	cmd.Flags().BoolVar(&makeDefault, "default", false, "make this the default profile")
	return cmd
}

func readCA(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--ca-file: %w", err)
	}
	if !strings.Contains(string(b), "-----BEGIN CERTIFICATE-----") {
		return "", fmt.Errorf("--ca-file %s holds no PEM certificate", path)
	}
	return string(b), nil
}

func (a *app) storeProfile(cfg *config, path, name string, p *profile, makeDefault bool) error {
	cfg.Profiles[name] = p
	if makeDefault || cfg.DefaultProfile == "" && len(cfg.Profiles) == 1 {
		cfg.DefaultProfile = name
	}
	if err := saveConfig(path, cfg); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return a.emit(map[string]any{"Profile": name, "ConfigFile": path, "Endpoint": p.Endpoint, "AccessKeyId": p.AccessKeyID},
		func(w *textOut) {
			w.kv("Profile", name)
			w.kv("Endpoint", p.Endpoint)
			w.kv("AccessKeyId", p.AccessKeyID)
			w.kv("ConfigFile", path)
		})
}

// rootCredentials is the bootstrap file a server writes on first start.
type rootCredentials struct {
	AccessKeyID     string `json:"access_key_id"`
	AccessKeySecret string `json:"access_key_secret"`
	Endpoint        string `json:"endpoint"`
	RegionID        string `json:"region_id"`
	CACert          string `json:"ca_cert"`
	CAFile          string `json:"ca_file"`
}

func newConfigureImportCmd(a *app) *cobra.Command {
	var makeDefault bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Create a profile from a server's root-credentials.json",
		Long: `Create (or replace) a profile from the root-credentials.json a server
writes on first start: {"access_key_id", "access_key_secret", "endpoint"}.
The deployment CA is taken, in this order, from --ca-file, the file's
"ca_cert" or "ca_file" field, or a ca.pem next to FILE; it is copied into the
profile. Delete FILE afterwards: the server warns while it exists.`,
		Example: `  keyhold configure import /var/lib/keyhold/root-credentials.json
  keyhold configure import ./demo-data/root-credentials.json --profile demo --default
  rm ./demo-data/root-credentials.json`,
		Args: nArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := a.readInput("FILE", args[0], 1<<20)
			if err != nil {
				return err
			}
			var rc rootCredentials
			if err := json.Unmarshal(b, &rc); err != nil {
				return fmt.Errorf("%s is not a root-credentials JSON file", args[0])
			}
			if rc.AccessKeyID == "" || rc.AccessKeySecret == "" {
				return fmt.Errorf("%s lacks access_key_id or access_key_secret", args[0])
			}
			endpoint := first(a.endpoint, rc.Endpoint)
			if endpoint == "" {
				return usagef("%s has no endpoint; give --endpoint", args[0])
			}
			p := &profile{Endpoint: endpoint, AccessKeyID: rc.AccessKeyID, AccessKeySecret: rc.AccessKeySecret,
				RegionID: first(a.regionID, rc.RegionID), Insecure: a.insecure, SignatureScheme: a.scheme}
			caFile := first(a.caFile, rc.CAFile)
			switch {
			case caFile != "":
				if !filepath.IsAbs(caFile) && a.caFile == "" {
					caFile = filepath.Join(filepath.Dir(args[0]), caFile)
				}
				if p.CACert, err = readCA(caFile); err != nil {
					return err
				}
			case rc.CACert != "":
				p.CACert = rc.CACert
			case args[0] != "-":
				if pem, err := readCA(filepath.Join(filepath.Dir(args[0]), "ca.pem")); err == nil {
					p.CACert = pem
				}
			}
			if strings.HasPrefix(endpoint, "https://") && p.CACert == "" && !p.Insecure {
				fmt.Fprintln(a.io.err, "Note: no deployment CA found; TLS will use the system roots (give --ca-file).")
			}
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			return a.storeProfile(cfg, path, a.profileTarget(cfg), p, makeDefault)
		},
	}
	cmd.Flags().BoolVar(&makeDefault, "default", false, "make this the default profile")
	return cmd
}

func newConfigureListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Short:   "List profiles (secrets are not shown)",
		Example: "  keyhold configure list\n  keyhold configure list --output json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			if w := permWarning(path); w != "" {
				fmt.Fprint(a.io.err, w)
			}
			names := make([]string, 0, len(cfg.Profiles))
			for n := range cfg.Profiles {
				names = append(names, n)
			}
			sort.Strings(names)
			type row struct {
				Profile, Endpoint, AccessKeyId string
				Default                        bool
			}
			rows := []row{}
			for _, n := range names {
				p := cfg.Profiles[n]
				rows = append(rows, row{n, p.Endpoint, p.AccessKeyID, n == cfg.DefaultProfile})
			}
			return a.emit(map[string]any{"ConfigFile": path, "Profiles": rows}, func(w *textOut) {
				var t [][]string
				for _, r := range rows {
					mark := ""
					if r.Default {
						mark = "*"
					}
					t = append(t, []string{r.Profile, r.Endpoint, r.AccessKeyId, mark})
				}
				w.table([]string{"PROFILE", "ENDPOINT", "ACCESS_KEY_ID", "DEFAULT"}, t)
			})
		},
	}
}

func newConfigureGetCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "get",
		Short: "Show a profile (the access key secret is masked)",
		Example: `  keyhold configure get
  keyhold configure get --profile prod --output json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			name := a.profileTarget(cfg)
			p := cfg.Profiles[name]
			if p == nil {
				return fmt.Errorf("profile %q not found in %s", name, path)
			}
			masked := ""
			if p.AccessKeySecret != "" {
				masked = "********"
			}
			view := map[string]any{
				"Profile": name, "Endpoint": p.Endpoint, "AccessKeyId": p.AccessKeyID, "AccessKeySecret": masked,
				"CACert": p.CACert != "", "Insecure": p.Insecure, "RegionId": p.RegionID,
				"SignatureScheme": p.SignatureScheme, "Default": name == cfg.DefaultProfile, "ConfigFile": path,
			}
			return a.emit(view, func(w *textOut) {
				w.kv("Profile", name)
				w.kv("Endpoint", p.Endpoint)
				w.kv("AccessKeyId", p.AccessKeyID)
				w.kv("AccessKeySecret", masked)
				w.kv("CACert", yesNo(p.CACert != ""))
				w.kv("Insecure", yesNo(p.Insecure))
				w.kv("RegionId", p.RegionID)
				w.kv("SignatureScheme", p.SignatureScheme)
				w.kv("Default", yesNo(name == cfg.DefaultProfile))
				w.kv("ConfigFile", path)
			})
		},
	}
}

func newConfigureDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Remove a profile",
		Example: "  keyhold configure delete old-lab",
		Args:    nArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			if cfg.Profiles[args[0]] == nil {
				return fmt.Errorf("profile %q not found in %s", args[0], path)
			}
			delete(cfg.Profiles, args[0])
			if cfg.DefaultProfile == args[0] {
				cfg.DefaultProfile = ""
			}
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			return a.emit(map[string]any{"Profile": args[0], "Deleted": true}, func(w *textOut) {
				w.line("Deleted profile " + args[0])
			})
		},
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
