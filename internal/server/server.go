// Package server wires Keyhold's server together: storage, the root key and
// the key barrier, identities, the deployment CA, the domain services and the
// wire layer, served on a plain HTTP and a TLS listener. It owns start-up
// (first-start bootstrap) and shutdown; it holds no business rules itself.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/keyhold/keyhold/internal/agentapi"
	"github.com/keyhold/keyhold/internal/agentapi/wire"
	"github.com/keyhold/keyhold/internal/audit"
	"github.com/keyhold/keyhold/internal/fleet"
	"github.com/keyhold/keyhold/internal/iam"
	"github.com/keyhold/keyhold/internal/keys"
	"github.com/keyhold/keyhold/internal/kmsapi"
	"github.com/keyhold/keyhold/internal/migrate"
	"github.com/keyhold/keyhold/internal/pki"
	"github.com/keyhold/keyhold/internal/rotation"
	"github.com/keyhold/keyhold/internal/secrets"
	"github.com/keyhold/keyhold/internal/store"
)

// Config is what `keyhold server` takes from its flags.
type Config struct {
	DataDir      string
	Storage      string // "" or "embedded": DataDir/keyhold.db; postgres://… for PostgreSQL
	Listen       string // plain HTTP, "" disables
	TLSListen    string // HTTPS, "" disables
	InsecureHTTP bool   // allow plain HTTP on a non-loopback address
	RootKeyFile  string // default DataDir/root.key
	TLSCert      string // user-supplied serving certificate (PEM)
	TLSKey       string
	Region       string
	Logger       *slog.Logger
	// PurgeInterval is how often due deletions are purged (default 1m).
	PurgeInterval time.Duration
	// Now overrides the clock (tests).
	Now func() time.Time
	// AuditFile, when set, receives a JSON-lines copy of every audit
	// record (mode 0600) for a SIEM agent to tail.
	AuditFile string
	// AuditFault, when it returns an error, makes every audit append fail
	// (tests of the fail-closed rule).
	AuditFault func() error
	// ReplicaID names this replica (default host name + random suffix);
	// LeaseTTL is the leader lease's lifetime (default 5s, renewed every
	// quarter of it). See replicas.go.
	ReplicaID string
	LeaseTTL  time.Duration
	// Rotation tunes the rotation engine (tests shorten its timeouts);
	// zero fields take the engine's defaults.
	Rotation RotationConfig
	// DevMinRotationInterval, when positive, lowers the minimum automatic
	// rotation interval of managed secrets (process-wide) so that tests and
	// demos see a scheduled rotation within seconds. Not for production:
	// the server warns at every start while it is set.
	DevMinRotationInterval time.Duration
}

// RotationConfig is the part of rotation.Config the server exposes.
type RotationConfig struct {
	ApplyTimeout, RetryMin, RetryMax, ScanInterval time.Duration
	Concurrency                                    int
	OnFinish                                       func(*rotation.Rotation) // benchmarks
}

// Server is a running Keyhold server.
type Server struct {
	cfg      Config
	log      *slog.Logger
	store    store.Store
	keys     *keys.Service
	secrets  *secrets.Service
	iam      *iam.Service
	ca       *pki.CA
	fleet    *fleet.Service
	agentAPI *agentapi.Handler
	rotation *rotation.Engine
	handler  http.Handler
	httpLn   net.Listener
	httpsLn  net.Listener
	httpSrv  *http.Server
	httpsSrv *http.Server

	// HTTPURL and HTTPSURL are the listeners' full URLs ("" when disabled).
	HTTPURL  string
	HTTPSURL string
	// Account is the default account's UID.
	Account string

	audit     *audit.Trail
	auditSink *audit.FileSink

	ha   haState
	kick chan struct{} // run the leader's jobs now

	stop     context.CancelFunc
	wg       sync.WaitGroup
	closeErr error
	once     sync.Once
}

// Start opens storage, bootstraps a first start, and starts the listeners.
// It returns once both listeners accept connections.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Region == "" {
		cfg.Region = "cn-hangzhou"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PurgeInterval == 0 {
		cfg.PurgeInterval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if err := checkPlainListen(cfg.Listen, cfg.InsecureHTTP); err != nil {
		return nil, err
	}
	if d := cfg.DevMinRotationInterval; d != 0 {
		if d < time.Second || d >= time.Hour {
			return nil, fmt.Errorf("the development minimum rotation interval must be from 1s to under 1h, not %s", d)
		}
		log.Warn("development setting: automatic rotation intervals down to this minimum are accepted; not for production", "min_rotation_interval", d)
		secrets.SetDevMinRotationInterval(d)
	}
	if cfg.Listen != "" && cfg.InsecureHTTP && !isLoopback(cfg.Listen) {
		log.Warn("plain HTTP is served on a non-loopback address: requests and secret values travel unencrypted", "listen", cfg.Listen)
	}
	if err := EnsureDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.RootKeyFile == "" {
		cfg.RootKeyFile = filepath.Join(cfg.DataDir, "root.key")
	}

	// Bind the listeners before touching storage: a taken port fails fast,
	// and the endpoint written into root-credentials.json is known before
	// the root key pair exists, so the file is written right after it.
	s := &Server{cfg: cfg, log: log}
	if err := s.bind(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.closeListeners()
			if s.rotation != nil {
				s.rotation.Close()
			}
			if s.auditSink != nil {
				s.auditSink.Close()
			}
			if s.iam != nil {
				s.iam.Close()
			}
			if s.store != nil {
				s.store.Close()
			}
		}
	}()

	st, kind, fresh, err := OpenStorage(ctx, cfg.Storage, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	s.store = st
	s.initHA(kind)

	// A root key file is created only with fresh storage; a missing file
	// beside existing data is an operator error, not a reason for a new key.
	s.keys, err = keys.Open(ctx, st, keys.FileSource{Path: cfg.RootKeyFile, Create: fresh}, cfg.Region)
	if err != nil {
		return nil, err
	}
	s.iam = iam.New(st, s.keys)
	acct, created, err := s.iam.EnsureRootAccount(ctx)
	if err != nil {
		return nil, fmt.Errorf("bootstrap account: %w", err)
	}
	s.Account = acct.UID
	if err := s.openAudit(); err != nil {
		return nil, err
	}
	if created != nil {
		path, err := WriteRootCredentials(cfg.DataDir, *created, s.endpoint())
		if err != nil {
			return nil, fmt.Errorf("write root credentials: %w", err)
		}
		log.Info("first start: the account's root access key was written; import it into a CLI profile (keyhold configure import) and delete the file", "path", path, "account", acct.UID)
	}
	s.ca, err = pki.LoadOrCreateCA(ctx, st, s.keys)
	if err != nil {
		return nil, fmt.Errorf("deployment CA: %w", err)
	}
	if err := s.ca.WriteCertFile(filepath.Join(cfg.DataDir, "ca.pem")); err != nil {
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	s.secrets = secrets.New(st, s.keys, secrets.WithRegion(cfg.Region), secrets.WithClock(cfg.Now))
	// Access control reads secrets' tags, type, policy and key for its
	// conditions, secret policies and the kms:Decrypt rule.
	s.iam.UseResources(s.secrets, s.keys)

	// Enrollment tokens pin the deployment CA, so agents trust it alone.
	s.fleet = fleet.New(st, s.keys, fleet.WithCAPin(wire.CAPin(s.ca.Certificate().Raw)),
		fleet.WithClock(cfg.Now), fleet.WithDriftHook(s.auditDrift))
	s.agentAPI = agentapi.New(s.fleet, agentapi.Options{Logger: log})

	// Rotation of ECS secrets through the agents. Any replica drives the
	// rotations it starts; resuming others' and the scheduler run on the
	// leader only, fenced by its lease.
	rc := cfg.Rotation
	s.rotation = rotation.New(rotation.Config{
		Store: st, Secrets: s.secrets, Fleet: s.fleet, Log: log, Now: cfg.Now,
		ApplyTimeout: rc.ApplyTimeout, RetryMin: rc.RetryMin, RetryMax: rc.RetryMax,
		ScanInterval: rc.ScanInterval, Concurrency: rc.Concurrency,
		OnFinish: func(r *rotation.Rotation) {
			s.auditRotation(r)
			if rc.OnFinish != nil {
				rc.OnFinish(r)
			}
		},
		Leader: func() (uint64, bool) {
			tok := s.ha.token.Load()
			return tok, tok != 0
		},
		FenceLease: leaseLeader,
	})
	ecs := rotation.NewECS(s.rotation)
	s.secrets.SetRotator(secrets.TypeECS, ecs)
	s.secrets.SetValidator(secrets.TypeECS, ecs)

	api := kmsapi.New(kmsapi.Config{
		Region:      cfg.Region,
		Credentials: s.iam,
		Nonces:      st,
		Authorizer:  s.iam,
		Audit:       kmsapi.TrailAuditor(s.audit),
		Logger:      log,
		Now:         cfg.Now,
		Ready:       s.ready,
	},
		kmsapi.SecretRoutes(s.secrets, s.keys),
		kmsapi.KeyRoutes(s.keys),
		kmsapi.RAMRoutes(s.iam),
		kmsapi.AccountRoutes(s.iam),
		kmsapi.AuditRoutes(s.audit),
		kmsapi.DeploymentRoutes(s),
		kmsapi.BackupRoutes(func(ctx context.Context, w io.Writer) error { _, err := migrate.Backup(ctx, st, w); return err }),
		kmsapi.HostRoutes(s.fleet),
		kmsapi.RotationRoutes(s.rotation),
	)
	// The agent protocol has its own authentication (the agent's key) and
	// lives beside the RPC API on the same listeners.
	mux := http.NewServeMux()
	mux.Handle(wire.Prefix, s.agentAPI)
	mux.Handle("/", api)
	if err := s.mountConsole(mux, api); err != nil {
		return nil, err
	}
	s.handler = mux
	if err := s.serveAll(); err != nil {
		return nil, err
	}
	if path, ok := RootCredentialsExist(cfg.DataDir); ok {
		log.Warn("root credentials file exists: it holds the account's root access key in plain form; import it (keyhold configure import) and delete it", "path", path)
	}

	bg, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(2)
	go s.purgeLoop(bg)
	go s.replicaLoop(bg)
	s.rotation.Run()
	return s, nil
}

// openAudit sets up the audit trail: calls no account can be attributed
// to go to the default account's chain; --audit-file adds a forwarded copy.
func (s *Server) openAudit() error {
	opts := []audit.Option{audit.WithDefaultAccount(s.Account), audit.WithClock(s.cfg.Now)}
	if s.cfg.AuditFile != "" {
		sink, err := audit.OpenFileSink(s.cfg.AuditFile)
		if err != nil {
			return err
		}
		s.auditSink = sink
		opts = append(opts, audit.WithForwarder(sink, func(err error) {
			s.log.Error("audit file: a record was not forwarded (the trail in storage has it)", "err", err)
		}))
	}
	if s.cfg.AuditFault != nil {
		opts = append(opts, audit.WithFault(s.cfg.AuditFault))
	}
	s.audit = audit.New(s.store, s.keys, opts...)
	return nil
}

func (s *Server) ready() error {
	return s.store.View(context.Background(), func(tx store.Tx) error { return nil })
}

// Rotation is the rotation engine (tests, benchmarks).
func (s *Server) Rotation() *rotation.Engine { return s.rotation }

// Fleet is the hosts domain (enrolled agents and their command queues).
func (s *Server) Fleet() *fleet.Service { return s.fleet }

// auditDrift records a change an agent saw on a managed account that
// Keyhold did not make.
func (s *Server) auditDrift(ctx context.Context, account, hostID string, ev fleet.DriftEvent) {
	_, err := s.audit.Append(context.WithoutCancel(ctx), audit.Event{
		Time: s.cfg.Now(), Account: account, PrincipalType: "agent", PrincipalName: hostID,
		APIVersion: kmsapi.VersionKeyhold, Action: "keyhold:HostDrift",
		Resource:  "acs:keyhold:" + s.cfg.Region + ":" + account + ":host/" + hostID,
		RequestID: wire.NewNonce(), Stage: audit.StageOutcome, Result: "OK",
		Params: map[string]string{"UserName": ev.User, "What": ev.What},
	})
	if err != nil {
		s.log.Error("audit: a host drift event was not recorded", "host", hostID, "err", err)
	}
}

// auditRotation records how a rotation ended (its state, never a value),
// so that failures and roll-backs are in the trail beside the RotateSecret
// call that started them.
func (s *Server) auditRotation(r *rotation.Rotation) {
	result := "OK"
	if r.State != rotation.StateSucceeded {
		result = "Rotation." + r.State
	}
	_, err := s.audit.Append(context.Background(), audit.Event{
		Time: s.cfg.Now(), Account: r.Account, PrincipalType: "service", PrincipalName: "rotation",
		APIVersion: kmsapi.VersionKeyhold, Action: "keyhold:RotationFinished",
		Resource:  rotation.ARN(s.cfg.Region, r.Account, r.ID),
		RequestID: wire.NewNonce(), Stage: audit.StageOutcome, Result: result,
		Params: map[string]string{"SecretName": r.SecretName, "VersionId": r.VersionID, "InstanceId": r.HostID,
			"RotationId": r.ID, "State": r.State},
	})
	if err != nil {
		s.log.Error("audit: a rotation's end was not recorded", "rotation", r.ID, "err", err)
	}
}

// Handler is the API handler (for in-process tests and benchmarks).
func (s *Server) Handler() http.Handler { return s.handler }

// CACertPEM is the deployment CA certificate.
func (s *Server) CACertPEM() []byte { return s.ca.CertPEM() }

// bind opens the listening sockets; serveAll starts serving on them.
func (s *Server) bind() error {
	if s.cfg.Listen != "" {
		ln, err := net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
		}
		s.httpLn = ln
		s.HTTPURL = "http://" + ln.Addr().String()
	}
	if s.cfg.TLSListen != "" {
		ln, err := net.Listen("tcp", s.cfg.TLSListen)
		if err != nil {
			s.closeListeners()
			return fmt.Errorf("listen %s: %w", s.cfg.TLSListen, err)
		}
		s.httpsLn = ln
		s.HTTPSURL = "https://" + ln.Addr().String()
	}
	return nil
}

func (s *Server) closeListeners() {
	for _, ln := range []net.Listener{s.httpLn, s.httpsLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// endpoint is the URL clients should use: https when it is served.
func (s *Server) endpoint() string {
	if s.HTTPSURL != "" {
		return s.HTTPSURL
	}
	return s.HTTPURL
}

func (s *Server) serveAll() error {
	if s.httpsLn != nil {
		cert, err := s.serverCertificate()
		if err != nil {
			return err
		}
		s.httpsSrv = s.newHTTPServer()
		s.httpsSrv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		go s.serve(s.httpsSrv, tls.NewListener(s.httpsLn, s.httpsSrv.TLSConfig), s.HTTPSURL)
	}
	if s.httpLn != nil {
		s.httpSrv = s.newHTTPServer()
		go s.serve(s.httpSrv, s.httpLn, s.HTTPURL)
	}
	return nil
}

func (s *Server) serverCertificate() (tls.Certificate, error) {
	if s.cfg.TLSCert != "" || s.cfg.TLSKey != "" {
		if s.cfg.TLSCert == "" || s.cfg.TLSKey == "" {
			return tls.Certificate{}, errors.New("--tls-cert and --tls-key must be given together")
		}
		return pki.LoadKeyPair(s.cfg.TLSCert, s.cfg.TLSKey)
	}
	return pki.ServingCertificate(s.ca, s.cfg.DataDir, listenHosts(s.cfg.TLSListen))
}

func (s *Server) newHTTPServer() *http.Server {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	// Held agent long-polls answer at once on shutdown instead of holding it up.
	srv.RegisterOnShutdown(s.agentAPI.Close)
	return srv
}

func (s *Server) serve(srv *http.Server, ln net.Listener, url string) {
	s.log.Info("listening", "url", url)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Error("listener stopped", "url", url, "err", err)
	}
}

// purgeLoop removes secrets and keys whose deletion window has passed and
// creates new versions of keys whose automatic rotation is due.
func (s *Server) purgeLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PurgeInterval)
	defer t.Stop()
	for {
		s.leaderPurge(ctx) // only the replica holding the leader lease
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
		}
	}
}

// PurgeDue runs one purge pass now.
func (s *Server) PurgeDue(ctx context.Context) {
	now := s.cfg.Now()
	if n, err := s.secrets.PurgeDue(ctx, now); err != nil {
		s.log.Error("purge secrets", "err", err)
	} else if n > 0 {
		s.log.Info("purged deleted secrets", "count", n)
	}
	if n, err := s.keys.PurgeDue(ctx, now); err != nil {
		s.log.Error("purge keys", "err", err)
	} else if n > 0 {
		s.log.Info("purged deleted keys", "count", n)
	}
	if n, err := s.keys.RotateDue(ctx, now); err != nil {
		s.log.Error("rotate keys", "err", err)
	} else if n > 0 {
		s.log.Info("rotated keys (new key versions)", "count", n)
	}
}

func (s *Server) shutdownListeners(ctx context.Context) error {
	var errs []error
	for _, srv := range []*http.Server{s.httpSrv, s.httpsSrv} {
		if srv != nil {
			errs = append(errs, srv.Shutdown(ctx))
		}
	}
	return errors.Join(errs...)
}

// Shutdown stops accepting requests, waits for in-flight ones (bounded by
// ctx), stops background jobs and closes storage.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		err := s.shutdownListeners(ctx)
		if s.stop != nil {
			s.stop()
		}
		s.wg.Wait()
		s.rotation.Close() // rotations in flight resume at the next start
		s.closeErr = errors.Join(err, s.iam.Close(), s.keys.Close(), s.store.Close())
		if s.auditSink != nil {
			s.closeErr = errors.Join(s.closeErr, s.auditSink.Close())
		}
	})
	return s.closeErr
}

// Close shuts down with a short grace period.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// checkPlainListen refuses plain HTTP on a non-loopback address unless the
// operator opted in: secret values would cross the network in the clear.
func checkPlainListen(addr string, insecure bool) error {
	if addr == "" || insecure || isLoopback(addr) {
		return nil
	}
	return fmt.Errorf("refusing plain HTTP on non-loopback address %s: use --tls-listen, or pass --insecure-http to accept unencrypted traffic", addr)
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// listenHosts is the SAN list for the generated serving certificate: the
// loopback names, the host name, and the listen address when it is a
// specific IP.
func listenHosts(addr string) []string {
	hosts := []string{"127.0.0.1", "::1", "localhost"}
	if h, err := os.Hostname(); err == nil && h != "" {
		hosts = append(hosts, h)
	}
	if host, _, err := net.SplitHostPort(addr); err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
			hosts = append(hosts, host)
		} else if ip == nil && !strings.EqualFold(host, "localhost") {
			hosts = append(hosts, host)
		}
	}
	return hosts
}
