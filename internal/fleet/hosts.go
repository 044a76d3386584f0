package fleet

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// Inventory is what an agent reports about its host.
type Inventory struct {
	HostName     string
	SSHAddress   string
	SSHHostKeys  []string
	LocalUsers   []LocalUser
	AllowUsers   []string
	AgentVersion string
}

// Report size limits: an agent cannot make its record unbounded.
const (
	maxHostKeys   = 16
	maxKeyChars   = 16384
	maxUsers      = 20000
	maxNameChars  = 255
	maxDriftKept  = 50
	maxAllowUsers = 1000
)

func (inv Inventory) validate() error {
	bad := func(what string) error {
		return errs.E(errs.KindInvalidParameter, "The agent's report is not valid: %s.", what)
	}
	if len(inv.HostName) > maxNameChars || len(inv.SSHAddress) > maxNameChars || len(inv.AgentVersion) > maxNameChars {
		return bad("a name is too long")
	}
	if len(inv.SSHHostKeys) > maxHostKeys {
		return bad("too many host keys")
	}
	for _, k := range inv.SSHHostKeys {
		if len(k) > maxKeyChars || strings.ContainsAny(k, "\n\r") {
			return bad("a host key is malformed")
		}
	}
	if len(inv.LocalUsers) > maxUsers || len(inv.AllowUsers) > maxAllowUsers {
		return bad("too many users")
	}
	for _, u := range inv.LocalUsers {
		if u.Name == "" || len(u.Name) > maxNameChars {
			return bad("a user name is malformed")
		}
	}
	return nil
}

// hostRecord is a host as stored: the public Host plus the agent's key and
// the queue's sequence counter.
type hostRecord struct {
	Host
	PublicKey []byte `json:"PublicKey"`
	NextSeq   uint64 `json:"NextSeq"`
}

func (h *hostRecord) applyInventory(inv Inventory) {
	h.HostName = inv.HostName
	h.SSHAddress = inv.SSHAddress
	h.SSHHostKeys = append([]string(nil), inv.SSHHostKeys...)
	h.LocalUsers = append([]LocalUser(nil), inv.LocalUsers...)
	sort.Slice(h.LocalUsers, func(i, j int) bool { return h.LocalUsers[i].Name < h.LocalUsers[j].Name })
	h.AllowUsers = append([]string(nil), inv.AllowUsers...)
	h.AgentVersion = inv.AgentVersion
}

func putHost(tx store.Tx, h *hostRecord) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	return tx.Put(tableHosts, store.Key(h.Account, h.ID), b)
}

func getHost(tx store.Tx, account, id string) (*hostRecord, error) {
	b, err := tx.Get(tableHosts, store.Key(account, id))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errHostNotFound(id)
	} else if err != nil {
		return nil, err
	}
	var h hostRecord
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

func errHostNotFound(id string) error {
	return errs.E(errs.KindNotFound, "The host %q does not exist.", id)
}

// decorate fills the computed fields.
func (s *Service) decorate(h *Host) {
	if h == nil {
		return
	}
	h.Online = !h.Removed && s.now().Sub(h.LastSeen) < s.online
}

// Host returns one host (also a removed one, with Removed set).
func (s *Service) Host(ctx context.Context, account, hostID string) (*Host, error) {
	if !ValidHostID(hostID) {
		return nil, errHostNotFound(hostID)
	}
	var out *Host
	err := s.st.View(ctx, func(tx store.Tx) error {
		h, err := getHost(tx, account, hostID)
		if err != nil {
			return err
		}
		out = &h.Host
		return nil
	})
	if err != nil {
		return nil, asDomain(err, "The host cannot be read.")
	}
	s.decorate(out)
	return out, nil
}

// ListHosts returns up to limit (0: all) enrolled, not removed hosts whose
// id sorts after `after`, in id order, and the id to continue after ("" at
// the end).
func (s *Service) ListHosts(ctx context.Context, account string, after string, limit int) ([]Host, string, error) {
	var out []Host
	var next string
	err := s.st.View(ctx, func(tx store.Tx) error {
		out, next = nil, ""
		prefix := store.Key(account, "")
		cursor := ""
		if after != "" {
			cursor = prefix + after
		}
		for {
			kvs, err := tx.List(tableHosts, prefix, cursor, 200)
			if err != nil {
				return err
			}
			for _, kv := range kvs {
				cursor = kv.Key
				var h hostRecord
				if err := json.Unmarshal(kv.Value, &h); err != nil {
					return err
				}
				if h.Removed {
					continue
				}
				if limit > 0 && len(out) == limit {
					next = out[len(out)-1].ID
					return nil
				}
				out = append(out, h.Host)
			}
			if len(kvs) < 200 {
				return nil
			}
		}
	})
	if err != nil {
		return nil, "", asDomain(err, "The hosts cannot be listed.")
	}
	for i := range out {
		s.decorate(&out[i])
	}
	return out, next, nil
}

// RemoveHost revokes the host's identity: its agent's requests are refused
// from now on, queued commands are dropped and no new ones are accepted.
// The record stays (Removed) so that the host's history remains visible.
func (s *Service) RemoveHost(ctx context.Context, account, hostID string) error {
	if !ValidHostID(hostID) {
		return errHostNotFound(hostID)
	}
	err := s.st.Update(ctx, func(tx store.Tx) error {
		h, err := getHost(tx, account, hostID)
		if err != nil {
			return err
		}
		if h.Removed {
			return errHostNotFound(hostID)
		}
		h.Removed = true
		kvs, err := tx.List(tableCommands, store.Key(account, hostID, ""), "", 0)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			if err := tx.Delete(tableCommands, kv.Key); err != nil {
				return err
			}
		}
		tx.Notify(s.CommandsTopic(account, hostID)) // wakes a held poll, which then sees the removal
		tx.Notify(s.HostsTopic(account))
		return putHost(tx, h)
	})
	return asDomain(err, "The host cannot be removed.")
}

// Identity is what the agent API needs to authenticate a host's agent.
type Identity struct {
	Account   string
	HostID    string
	PublicKey ed25519.PublicKey
	Removed   bool
}

// AgentIdentity looks a host up by the id an agent presents.
func (s *Service) AgentIdentity(ctx context.Context, hostID string) (*Identity, error) {
	if !ValidHostID(hostID) {
		return nil, errHostNotFound(hostID)
	}
	var id *Identity
	err := s.st.View(ctx, func(tx store.Tx) error {
		acct, err := tx.Get(tableHostIndex, hostID)
		if errors.Is(err, store.ErrNotFound) {
			return errHostNotFound(hostID)
		} else if err != nil {
			return err
		}
		h, err := getHost(tx, string(acct), hostID)
		if err != nil {
			return err
		}
		id = &Identity{Account: h.Account, HostID: h.ID, PublicKey: ed25519.PublicKey(h.PublicKey), Removed: h.Removed}
		return nil
	})
	if err != nil {
		return nil, asDomain(err, "The host cannot be read.")
	}
	return id, nil
}

// seenEvery is how often a poll writes LastSeen: often enough for the
// online window, rarely enough that idle agents do not load storage.
const seenEvery = 10 * time.Second

// Touch records that the host's agent was seen now.
func (s *Service) Touch(ctx context.Context, account, hostID string) error {
	now := s.now().UTC()
	var stale bool
	if err := s.st.View(ctx, func(tx store.Tx) error {
		h, err := getHost(tx, account, hostID)
		if err != nil {
			return err
		}
		stale = now.Sub(h.LastSeen) >= seenEvery
		return nil
	}); err != nil {
		return asDomain(err, "The host cannot be read.")
	}
	if !stale {
		return nil
	}
	return s.updateHost(ctx, account, hostID, func(h *hostRecord) { h.LastSeen = now })
}

// updateHost applies fn to a live host record.
func (s *Service) updateHost(ctx context.Context, account, hostID string, fn func(*hostRecord)) error {
	err := s.st.Update(ctx, func(tx store.Tx) error {
		h, err := getHost(tx, account, hostID)
		if err != nil {
			return err
		}
		if h.Removed {
			return errs.E(errs.KindInvalidState, "The host %q was removed.", hostID)
		}
		fn(h)
		tx.Notify(s.HostsTopic(account))
		return putHost(tx, h)
	})
	return asDomain(err, "The host cannot be updated.")
}

// UpdateInventory replaces the host's reported inventory.
func (s *Service) UpdateInventory(ctx context.Context, account, hostID string, inv Inventory) error {
	if err := inv.validate(); err != nil {
		return err
	}
	now := s.now().UTC()
	return s.updateHost(ctx, account, hostID, func(h *hostRecord) {
		h.applyInventory(inv)
		h.LastSeen = now
	})
}

// ReportDrift records drift events (the newest maxDriftKept are kept) and
// calls the drift hook for each.
func (s *Service) ReportDrift(ctx context.Context, account, hostID string, evs []DriftEvent) error {
	if len(evs) == 0 {
		return nil
	}
	if len(evs) > maxDriftKept {
		evs = evs[len(evs)-maxDriftKept:]
	}
	for i := range evs {
		if evs[i].User == "" || len(evs[i].User) > maxNameChars || (evs[i].What != DriftPassword && evs[i].What != DriftAuthorizedKeys) {
			return errs.E(errs.KindInvalidParameter, "The agent's drift report is not valid.")
		}
		evs[i].Time = evs[i].Time.UTC()
	}
	if err := s.updateHost(ctx, account, hostID, func(h *hostRecord) {
		h.Drift = append(h.Drift, evs...)
		if len(h.Drift) > maxDriftKept {
			h.Drift = h.Drift[len(h.Drift)-maxDriftKept:]
		}
	}); err != nil {
		return err
	}
	if s.onDrift != nil {
		for _, ev := range evs {
			s.onDrift(ctx, account, hostID, ev)
		}
	}
	return nil
}

// UserDrift returns the host's drift events for one user (for secrets
// that manage that user).
func (h *Host) UserDrift(user string) []DriftEvent {
	var out []DriftEvent
	for _, ev := range h.Drift {
		if ev.User == user {
			out = append(out, ev)
		}
	}
	return out
}

// User returns the host's local user by name.
func (h *Host) User(name string) (LocalUser, bool) {
	for _, u := range h.LocalUsers {
		if u.Name == name {
			return u, true
		}
	}
	return LocalUser{}, false
}
