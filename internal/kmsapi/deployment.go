package kmsapi

import (
	"context"
	"io"
	"time"
)

// Deployment describes the running deployment (implemented by the server
// wiring, which knows the storage and the replicas).
type Deployment interface {
	Describe(ctx context.Context) (DeploymentInfo, error)
}

// DeploymentInfo is what DescribeDeployment reports.
type DeploymentInfo struct {
	Storage      string // "embedded" or "postgresql"
	Version      string // of the replica that answered
	Replica      string // id of the replica that answered
	Replicas     []ReplicaInfo
	Leader       string // replica id holding the leader lease; "" if none
	LeaderToken  uint64
	LeaderSince  time.Time // zero if unknown
	LeaseExpires time.Time
}

// ReplicaInfo is one replica in the registry.
type ReplicaInfo struct {
	ID, Address, Version string
	Started, LastSeen    time.Time
	Online, Leader       bool
}

// DeploymentRoutes serves Keyhold's DescribeDeployment.
func DeploymentRoutes(d Deployment) []Route {
	return []Route{{
		Version:  VersionKeyhold,
		Action:   "DescribeDeployment",
		Handler:  func(ctx context.Context, r *Request) (any, error) { return describeDeployment(ctx, d) },
		Resource: deploymentARN,
	}}
}

// BackupFunc writes a backup of the whole deployment's storage — every
// record as stored (ciphertext), from one read transaction — to w. The
// server wiring implements it with internal/migrate's backup format.
type BackupFunc func(ctx context.Context, w io.Writer) error

// BackupRoutes serves Keyhold's BackupDeployment: the backup file as the
// response body (application/octet-stream), so that a running server on
// the embedded storage, which holds the file's lock, can be backed up
// online. It is a deployment action (every account's data is in the
// file): internal/iam lets only the first account's root call it.
func BackupRoutes(backup BackupFunc) []Route {
	return []Route{{
		Version: VersionKeyhold,
		Action:  "BackupDeployment",
		Handler: func(ctx context.Context, r *Request) (any, error) {
			return &Stream{Write: func(ctx context.Context, w io.Writer) error { return backup(ctx, w) }}, nil
		},
		Resource: deploymentARN,
	}}
}

func deploymentARN(r *Request) string {
	return "acs:keyhold:" + r.Region + ":" + r.Principal.Account + ":deployment"
}

type replicaOut struct {
	ReplicaId string
	Address   string
	Version   string
	StartTime string
	LastSeen  string
	Online    bool
	Leader    bool
}

type deploymentOut struct {
	Storage      string
	Version      string
	ServedBy     string
	Leader       string `json:",omitempty"`
	LeaderSince  string `json:",omitempty"`
	LeaderToken  uint64 `json:",omitempty"`
	LeaseExpires string `json:",omitempty"`
	ReplicaCount int
	Replicas     struct{ Replica []replicaOut }
}

func describeDeployment(ctx context.Context, d Deployment) (any, error) {
	info, err := d.Describe(ctx)
	if err != nil {
		return nil, err
	}
	out := deploymentOut{Storage: info.Storage, Version: info.Version, ServedBy: info.Replica,
		Leader: info.Leader, LeaderToken: info.LeaderToken, ReplicaCount: len(info.Replicas)}
	out.LeaderSince = isoTime(info.LeaderSince)
	out.LeaseExpires = isoTime(info.LeaseExpires)
	out.Replicas.Replica = []replicaOut{}
	for _, r := range info.Replicas {
		out.Replicas.Replica = append(out.Replicas.Replica, replicaOut{
			ReplicaId: r.ID, Address: r.Address, Version: r.Version,
			StartTime: isoTime(r.Started), LastSeen: isoTime(r.LastSeen),
			Online: r.Online, Leader: r.Leader,
		})
	}
	return out, nil
}

func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
