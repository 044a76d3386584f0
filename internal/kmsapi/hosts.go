package kmsapi

import (
	"context"
	"time"

	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/fleet"
)

// HostService is the fleet domain as the host actions use it.
type HostService interface {
	CreateEnrollmentToken(ctx context.Context, account string, ttl time.Duration, uses int) (fleet.EnrollmentToken, error)
	ListHosts(ctx context.Context, account, after string, limit int) ([]fleet.Host, string, error)
	Host(ctx context.Context, account, hostID string) (*fleet.Host, error)
	RemoveHost(ctx context.Context, account, hostID string) error
}

// Host actions' paging.
const (
	hostListDefault = 50
	hostListMax     = 100
)

// HostRoutes returns the Keyhold host actions, each authorized as
// keyhold:<Action> on acs:keyhold:{region}:{uid}:host/{instance-id}
// (host/* for token creation and listing).
func HostRoutes(svc HostService) []Route {
	h := hostHandlers{svc: svc}
	hostARN := func(r *Request, id string) string {
		return "acs:keyhold:" + r.Region + ":" + r.Principal.Account + ":host/" + id
	}
	all := func(r *Request) string { return hostARN(r, "*") }
	one := func(r *Request) string {
		id := r.Params.String("InstanceId")
		if id == "" {
			id = "*"
		}
		return hostARN(r, id)
	}
	return []Route{
		{Version: VersionKeyhold, Action: "CreateEnrollmentToken", Handler: h.createToken, Resource: all},
		{Version: VersionKeyhold, Action: "ListHosts", Handler: h.list, Resource: all},
		{Version: VersionKeyhold, Action: "DescribeHost", Handler: h.describe, Resource: one},
		{Version: VersionKeyhold, Action: "RemoveHost", Handler: h.remove, Resource: one},
	}
}

type hostHandlers struct{ svc HostService }

func (h hostHandlers) createToken(ctx context.Context, r *Request) (any, error) {
	var ttl time.Duration
	if v := r.Params.String("Ttl"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, errs.E(errs.KindInvalidParameter, "The parameter Ttl must be a duration such as 30m or 1h.")
		}
		ttl = d
	}
	uses, err := r.Params.Int("Uses", 0)
	if err != nil {
		return nil, err
	}
	if r.Params.Has("Uses") && uses == 0 {
		return nil, errs.E(errs.KindInvalidParameter, "The parameter Uses must be between 1 and %d.", fleet.MaxTokenUses)
	}
	tok, err := h.svc.CreateEnrollmentToken(ctx, r.Principal.Account, ttl, uses)
	if err != nil {
		return nil, err
	}
	return struct {
		Token      string
		ExpireTime string
		Uses       int
	}{tok.Token, isoTime(tok.Expires), tok.Uses}, nil
}

type localUserOut struct {
	UserName      string
	Uid           int
	Allowed       bool
	PasswordLogin bool
	PubkeyLogin   bool
}

type driftOut struct {
	UserName string
	What     string
	Time     string
}

type hostOut struct {
	InstanceId   string
	HostName     string
	SshAddress   string
	AgentVersion string
	EnrollTime   string
	LastSeen     string
	Online       bool
	Removed      bool `json:",omitempty"`
	DriftCount   int
	SshHostKeys  struct{ SshHostKey []string }
	AllowUsers   struct{ UserName []string }
	LocalUsers   struct{ LocalUser []localUserOut }
	Drift        struct{ DriftEvent []driftOut }
}

func renderHost(h *fleet.Host, full bool) hostOut {
	out := hostOut{InstanceId: h.ID, HostName: h.HostName, SshAddress: h.SSHAddress, AgentVersion: h.AgentVersion,
		EnrollTime: isoTime(h.EnrolledAt), LastSeen: isoTime(h.LastSeen), Online: h.Online, Removed: h.Removed,
		DriftCount: len(h.Drift)}
	out.SshHostKeys.SshHostKey = []string{}
	out.AllowUsers.UserName = []string{}
	out.LocalUsers.LocalUser = []localUserOut{}
	out.Drift.DriftEvent = []driftOut{}
	if !full {
		return out
	}
	out.SshHostKeys.SshHostKey = append(out.SshHostKeys.SshHostKey, h.SSHHostKeys...)
	out.AllowUsers.UserName = append(out.AllowUsers.UserName, h.AllowUsers...)
	for _, u := range h.LocalUsers {
		out.LocalUsers.LocalUser = append(out.LocalUsers.LocalUser, localUserOut{UserName: u.Name, Uid: u.UID,
			Allowed: u.Allowed, PasswordLogin: u.PasswordLogin, PubkeyLogin: u.PubkeyLogin})
	}
	for _, d := range h.Drift {
		out.Drift.DriftEvent = append(out.Drift.DriftEvent, driftOut{UserName: d.User, What: d.What, Time: isoTime(d.Time)})
	}
	return out
}

func (h hostHandlers) list(ctx context.Context, r *Request) (any, error) {
	n, err := r.Params.Int("MaxResults", hostListDefault)
	if err != nil {
		return nil, err
	}
	if n < 1 || n > hostListMax {
		return nil, errs.E(errs.KindInvalidParameter, "The parameter MaxResults must be between 1 and %d.", hostListMax)
	}
	after := r.Params.String("NextToken")
	if after != "" && !fleet.ValidHostID(after) {
		return nil, errs.E(errs.KindInvalidParameter, "The parameter NextToken is not valid.")
	}
	hosts, next, err := h.svc.ListHosts(ctx, r.Principal.Account, after, n)
	if err != nil {
		return nil, err
	}
	var out struct {
		Hosts     struct{ Host []hostOut }
		NextToken string
	}
	out.Hosts.Host = []hostOut{}
	for i := range hosts {
		out.Hosts.Host = append(out.Hosts.Host, renderHost(&hosts[i], false))
	}
	out.NextToken = next
	return out, nil
}

func (h hostHandlers) describe(ctx context.Context, r *Request) (any, error) {
	id, err := r.Params.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	host, err := h.svc.Host(ctx, r.Principal.Account, id)
	if err != nil {
		return nil, err
	}
	if host.Removed {
		return nil, errs.E(errs.KindNotFound, "The host %q does not exist.", id)
	}
	return renderHost(host, true), nil
}

func (h hostHandlers) remove(ctx context.Context, r *Request) (any, error) {
	id, err := r.Params.Required("InstanceId")
	if err != nil {
		return nil, err
	}
	if err := h.svc.RemoveHost(ctx, r.Principal.Account, id); err != nil {
		return nil, err
	}
	return struct{ InstanceId string }{id}, nil
}
