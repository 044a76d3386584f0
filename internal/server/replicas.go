package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold/internal/kmsapi"
	"github.com/keyhold/keyhold/internal/store"
	"github.com/keyhold/keyhold/internal/store/bolt"
	"github.com/keyhold/keyhold/internal/store/postgres"
)

// Version is the build's version, set with -ldflags "-X ...server.Version=…".
var Version = "dev"

// Storage kinds reported by DescribeDeployment.
const (
	StorageEmbedded = "embedded"
	StoragePostgres = "postgresql"
)

// IsPostgresURL reports whether a --storage value names PostgreSQL.
func IsPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// OpenStorage opens the storage cfg selects: PostgreSQL for a postgres://
// URL in cfg.Storage, else the embedded file DATA_DIR/keyhold.db. fresh
// reports storage that holds no deployment yet (only then may a missing
// root key file be created).
func OpenStorage(ctx context.Context, storage, dataDir string) (st store.Store, kind string, fresh bool, err error) {
	switch {
	case storage == "" || storage == StorageEmbedded:
		path := filepath.Join(dataDir, "keyhold.db")
		_, statErr := os.Stat(path)
		b, err := bolt.Open(path)
		if err != nil {
			return nil, "", false, fmt.Errorf("open storage: %w", err)
		}
		return b, StorageEmbedded, errors.Is(statErr, os.ErrNotExist), nil
	case IsPostgresURL(storage):
		p, err := postgres.Open(ctx, storage)
		if err != nil {
			return nil, "", false, fmt.Errorf("open storage: %w", err)
		}
		empty, err := IsEmpty(ctx, p)
		if err != nil {
			p.Close()
			return nil, "", false, fmt.Errorf("open storage: %w", err)
		}
		return p, StoragePostgres, empty, nil
	default:
		return nil, "", false, errors.New(`--storage must be "embedded" or a postgres:// URL`)
	}
}

// IsEmpty reports a store without any table record.
func IsEmpty(ctx context.Context, st store.Store) (bool, error) {
	empty := true
	err := st.View(ctx, func(tx store.Tx) error {
		tl, ok := tx.(store.TableLister)
		if !ok {
			return errors.New("storage cannot list its tables")
		}
		tables, err := tl.Tables()
		empty = len(tables) == 0
		return err
	})
	return empty, err
}

// --- replica registry and leader lease ---

const (
	tableReplicas = "replicas" // deployment-wide: replica id -> replicaRecord
	leaseLeader   = "leader"
	keyLeader     = "_leader" // in tableReplicas: who leads since when
	// replicaForget is how long a replica that stopped heartbeating stays
	// listed (as offline).
	replicaForget = 24 * time.Hour
)

type replicaRecord struct {
	ID       string    `json:"id"`
	Address  string    `json:"address"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	LastSeen time.Time `json:"last_seen"`
}

type leaderRecord struct {
	ID    string    `json:"id"`
	Token uint64    `json:"token"`
	Since time.Time `json:"since"`
}

// haState is a replica's view of itself and of the leader lease.
type haState struct {
	id      string
	kind    string
	started time.Time
	ttl     time.Duration
	token   atomic.Uint64 // fencing token while leading, 0 otherwise
	mu      sync.Mutex
	renewed time.Time // last successful renewal
}

func newReplicaID() string {
	h, _ := os.Hostname()
	b := make([]byte, 4)
	rand.Read(b)
	return h + "-" + hex.EncodeToString(b)
}

// ReplicaID is this replica's id in the registry and the lease.
func (s *Server) ReplicaID() string { return s.ha.id }

// Leading reports whether this replica holds the leader lease now.
func (s *Server) Leading() bool { return s.ha.token.Load() != 0 }

// replicaLoop heartbeats the registry record and takes or renews the
// leader lease every ttl/4, so a dead leader's lease lapses after ttl and
// another replica takes it within ttl + ttl/4 (6.25 s with the default 5 s
// lease: the failover goal is under 10 s even on a loaded machine).
func (s *Server) replicaLoop(ctx context.Context) {
	defer s.wg.Done()
	every := s.ha.ttl / 4
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.heartbeat(ctx)
		s.campaign(ctx)
		select {
		case <-ctx.Done():
			// Hand over at once rather than after the ttl.
			if tok := s.ha.token.Swap(0); tok != 0 {
				c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				s.store.ReleaseLease(c, leaseLeader, s.ha.id, tok)
				cancel()
			}
			return
		case <-t.C:
		}
	}
}

func (s *Server) heartbeat(ctx context.Context) {
	now := time.Now()
	rec, _ := json.Marshal(replicaRecord{ID: s.ha.id, Address: s.endpoint(), Version: Version, Started: s.ha.started, LastSeen: now})
	err := s.store.Update(ctx, func(tx store.Tx) error {
		return tx.Put(tableReplicas, s.ha.id, rec)
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("replica heartbeat failed", "err", err)
	}
}

func (s *Server) campaign(ctx context.Context) {
	l, err := s.store.AcquireLease(ctx, leaseLeader, s.ha.id, s.ha.ttl)
	switch {
	case err == nil:
		s.ha.mu.Lock()
		s.ha.renewed = time.Now()
		s.ha.mu.Unlock()
		if old := s.ha.token.Swap(l.Token); old != l.Token {
			s.log.Info("took the leader lease: running the deletion purger and key rotation here", "replica", s.ha.id, "token", l.Token)
			rec, _ := json.Marshal(leaderRecord{ID: s.ha.id, Token: l.Token, Since: time.Now()})
			err := s.store.Update(ctx, func(tx store.Tx) error {
				if err := tx.CheckFence(leaseLeader, l.Token); err != nil {
					return err
				}
				return tx.Put(tableReplicas, keyLeader, rec)
			})
			if err != nil && ctx.Err() == nil {
				s.log.Warn("record leader", "err", err)
			}
			// Run the singletons now rather than at the next tick: the
			// previous leader may have died with work due.
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
	case errors.Is(err, store.ErrLeaseHeld):
		if s.ha.token.Swap(0) != 0 {
			s.log.Warn("lost the leader lease", "replica", s.ha.id)
		}
	default:
		// Storage unreachable: stop acting as leader once the lease may
		// have lapsed, whatever the database says later.
		s.ha.mu.Lock()
		stale := time.Since(s.ha.renewed) >= s.ha.ttl
		s.ha.mu.Unlock()
		if stale && s.ha.token.Swap(0) != 0 {
			s.log.Warn("leader lease not renewed in time: stepping down", "err", err)
		}
	}
}

// leaderPurge runs the singleton jobs if this replica leads. Fencing: the
// lease is checked inside a write transaction right before the jobs run,
// so a leader paused past its lease (GC, SIGSTOP, a partition) finds its
// token stale and does nothing. What remains is a pause between that check
// and the jobs' own transactions; the jobs decide what is due inside their
// own transactions (a purged secret is gone, a rotated key's next rotation
// moved on), so a stale leader overlapping the new one cannot do a job
// twice.
func (s *Server) leaderPurge(ctx context.Context) {
	tok := s.ha.token.Load()
	if tok == 0 {
		return
	}
	err := s.store.Update(ctx, func(tx store.Tx) error { return tx.CheckFence(leaseLeader, tok) })
	if errors.Is(err, store.ErrFenced) {
		s.ha.token.CompareAndSwap(tok, 0)
		s.log.Warn("leader lease lost before the scheduled jobs: skipped", "replica", s.ha.id)
		return
	}
	if err != nil {
		s.log.Warn("leader fence check failed: scheduled jobs skipped", "err", err)
		return
	}
	s.PurgeDue(ctx)
}

// Describe implements kmsapi.Deployment.
func (s *Server) Describe(ctx context.Context) (kmsapi.DeploymentInfo, error) {
	info := kmsapi.DeploymentInfo{Storage: s.ha.kind, Version: Version, Replica: s.ha.id}
	var recs []store.KV
	var leader leaderRecord
	err := s.store.View(ctx, func(tx store.Tx) error {
		var err error
		recs, err = tx.List(tableReplicas, "", "", 0)
		return err
	})
	if err != nil {
		return info, err
	}
	now := time.Now()
	online := 3 * s.ha.ttl // missed a few heartbeats: offline
	for _, kv := range recs {
		if kv.Key == keyLeader {
			json.Unmarshal(kv.Value, &leader)
			continue
		}
		var r replicaRecord
		if json.Unmarshal(kv.Value, &r) != nil || now.Sub(r.LastSeen) > replicaForget {
			continue
		}
		info.Replicas = append(info.Replicas, kmsapi.ReplicaInfo{
			ID: r.ID, Address: r.Address, Version: r.Version,
			Started: r.Started, LastSeen: r.LastSeen, Online: now.Sub(r.LastSeen) <= online,
		})
	}
	l, err := s.store.GetLease(ctx, leaseLeader)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return info, err
	}
	if err == nil && l.Holder != "" && now.Before(l.Expires) {
		info.Leader = l.Holder
		info.LeaderToken = l.Token
		info.LeaseExpires = l.Expires
		if leader.ID == l.Holder && leader.Token == l.Token {
			info.LeaderSince = leader.Since
		}
	}
	for i := range info.Replicas {
		info.Replicas[i].Leader = info.Replicas[i].ID == info.Leader
	}
	return info, nil
}

func (s *Server) initHA(kind string) {
	s.ha.id = s.cfg.ReplicaID
	if s.ha.id == "" {
		s.ha.id = newReplicaID()
	}
	s.ha.ttl = s.cfg.LeaseTTL
	if s.ha.ttl <= 0 {
		s.ha.ttl = 5 * time.Second
	}
	s.ha.kind = kind
	s.ha.started = time.Now()
	s.kick = make(chan struct{}, 1)
}
