package bastion

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/keyhold/keyhold/client"
)

// Config configures a bastion.
type Config struct {
	Dir    *Dir
	Client *client.Client // holds the bastion's own access key
	Listen string         // e.g. 127.0.0.1:2222
	Logger *slog.Logger
	// WatchInterval is how often the data directory is checked for
	// revocations and kill requests (default 500ms).
	WatchInterval time.Duration
	// DialTimeout bounds connecting and logging in to a host (default 15s).
	DialTimeout time.Duration
}

// Server is a running bastion.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ln      net.Listener
	sshCfg  *ssh.ServerConfig
	slog    *sessionLog
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	live    map[string]*session
	stamp   string // state file identity at the last watch
	closeMu sync.Once
}

// Start listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if cfg.Dir == nil || cfg.Client == nil {
		return nil, errors.New("bastion: Dir and Client are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.WatchInterval <= 0 {
		cfg.WatchInterval = 500 * time.Millisecond
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 15 * time.Second
	}
	signer, err := loadOrCreateHostKey(cfg.Dir.file(hostKeyFile))
	if err != nil {
		return nil, fmt.Errorf("bastion host key: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, live: map[string]*session{}, slog: &sessionLog{path: cfg.Dir.file(sessionFile)}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.sshCfg = &ssh.ServerConfig{
		PublicKeyCallback: s.checkOperatorKey,
		// Reached only once every offered key was refused: the one place
		// where telling the operator why costs nothing (see docs/bastion.md).
		KeyboardInteractiveCallback: func(c ssh.ConnMetadata, _ ssh.KeyboardInteractiveChallenge) (*ssh.Permissions, error) {
			s.log.Warn("refused", "source", c.RemoteAddr().String(), "user", c.User(), "reason", "unknown operator key")
			s.slog.refused("", c.RemoteAddr().String(), c.User(), "unknown operator key")
			return nil, &ssh.BannerError{Err: errors.New("unknown operator key"),
				Message: "keyhold bastion: refused: none of the offered public keys belongs to an operator of this bastion\n"}
		},
		ServerVersion: "SSH-2.0-KeyholdBastion",
	}
	// The client's preference decides, and OpenSSH prefers ChaCha20, which
	// Go runs far slower than AES-GCM with AES-NI; every byte is decrypted
	// and encrypted again here, so offer only AES (GCM first).
	s.sshCfg.Ciphers = []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR}
	s.sshCfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	s.ln = ln
	s.stamp = s.stateStamp()
	s.wg.Add(2)
	go s.accept()
	go s.watch()
	s.log.Info("bastion listening", "addr", ln.Addr().String(), "host_key", ssh.FingerprintSHA256(signer.PublicKey()))
	return s, nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HostKey is the bastion's own SSH host key.
func (s *Server) HostKey() (ssh.PublicKey, error) {
	signer, err := loadOrCreateHostKey(s.cfg.Dir.file(hostKeyFile))
	if err != nil {
		return nil, err
	}
	return signer.PublicKey(), nil
}

// Close stops listening and ends every session.
func (s *Server) Close() error {
	s.closeMu.Do(func() {
		s.cancel()
		s.ln.Close()
		s.mu.Lock()
		for _, ss := range s.live {
			go ss.kill("the bastion is shutting down")
		}
		s.mu.Unlock()
	})
	s.wg.Wait()
	return nil
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Error("accept", "err", err)
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(nc)
		}()
	}
}

// checkOperatorKey authenticates the operator. It runs before the client
// proved it holds the key, so it only looks the key up.
func (s *Server) checkOperatorKey(c ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
	st, err := s.cfg.Dir.Load()
	if err != nil {
		s.log.Error("load state", "err", err)
		return nil, errors.New("state unavailable")
	}
	op := st.OperatorByKey(key)
	if op == nil {
		return nil, errors.New("unknown key")
	}
	return &ssh.Permissions{Extensions: map[string]string{"operator": op.Name, "key": KeyString(key)}}, nil
}

func newID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func loadOrCreateHostKey(path string) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		blk, err := ssh.MarshalPrivateKey(priv, "keyhold-bastion")
		if err != nil {
			return nil, err
		}
		b = pem.EncodeToMemory(blk)
		if err := writeAtomic(path, b); err != nil {
			return nil, err
		}
		pub, _ := ssh.NewPublicKey(priv.Public())
		if err := os.WriteFile(filepath.Join(filepath.Dir(path), hostKeyFile+".pub"), ssh.MarshalAuthorizedKey(pub), 0o644); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	return ssh.ParsePrivateKey(b)
}

// stateStamp identifies the state file's current version cheaply.
func (s *Server) stateStamp() string {
	fi, err := os.Stat(s.cfg.Dir.file(stateFile))
	if err != nil {
		return ""
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino // a rename replaces the inode even within one mtime tick
	}
	return fmt.Sprintf("%d/%d/%d", fi.ModTime().UnixNano(), fi.Size(), ino)
}

// watch ends sessions whose grant or operator went away and carries out
// kill requests that `keyhold bastion sessions kill` left in DIR/kill.
func (s *Server) watch() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if st := s.stateStamp(); st != s.stamp {
			s.stamp = st
			s.enforce()
		}
		s.kills()
	}
}

func (s *Server) enforce() {
	st, err := s.cfg.Dir.Load()
	if err != nil {
		s.log.Error("reload state", "err", err)
		return
	}
	s.mu.Lock()
	var ended []*session
	var why []string
	for _, ss := range s.live {
		if ss.hostID == "" {
			continue // still authorising, or refused
		}
		op := st.Operator(ss.operator)
		switch {
		case op == nil || !hasKey(op, ss.key):
			ended, why = append(ended, ss), append(why, "operator removed")
		case st.Grant(ss.operator, ss.hostID, ss.account) == nil:
			ended, why = append(ended, ss), append(why, "grant revoked")
		}
	}
	s.mu.Unlock()
	for i, ss := range ended {
		s.log.Info("ending session", "session", ss.id, "operator", ss.operator, "reason", why[i])
		ss.kill(why[i])
	}
}

func hasKey(op *Operator, key string) bool {
	for _, k := range op.PublicKeys {
		if strings.TrimSpace(k) == key {
			return true
		}
	}
	return false
}

func (s *Server) kills() {
	dir := s.cfg.Dir.file(killDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		id := e.Name()
		s.mu.Lock()
		ss := s.live[id]
		s.mu.Unlock()
		if ss != nil {
			s.log.Info("ending session", "session", id, "operator", ss.operator, "reason", "killed by an administrator")
			ss.kill("killed by an administrator")
		}
		os.Remove(filepath.Join(dir, id))
	}
}
