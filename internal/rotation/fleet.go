package rotation

import (
	"context"

	"github.com/keyhold/keyhold/internal/fleet"
)

// Fleet is what the engine needs from the server side of the agents
// (internal/fleet): a durable, idempotent command queue per host, its
// results, and the hosts' enrollment records.
type Fleet interface {
	// Enqueue queues cmd for the host, durably; a repeated cmd.ID is a no-op.
	Enqueue(ctx context.Context, account, hostID string, cmd Command) error
	// Result is the agent's report on a command, or nil, nil while none came.
	Result(ctx context.Context, account, hostID, commandID string) (*Result, error)
	// ResultsTopic is the store topic notified when a result arrives.
	ResultsTopic(account, hostID string) string
	// Host returns the enrolled host (errs.KindNotFound if unknown).
	Host(ctx context.Context, account, hostID string) (*Host, error)
}

// The fleet's types, named here for brevity.
type (
	Host      = fleet.Host
	LocalUser = fleet.LocalUser
	Command   = fleet.Command
	Result    = fleet.Result
)

// Agent operations and result statuses.
const (
	OpPasswordApply   = fleet.OpPasswordApply
	OpPasswordRestore = fleet.OpPasswordRestore
	OpSSHKeyApply     = fleet.OpSSHKeyApply
	OpSSHKeyCleanup   = fleet.OpSSHKeyCleanup
	OpSSHKeyRestore   = fleet.OpSSHKeyRestore

	StatusOK     = fleet.StatusOK
	StatusFailed = fleet.StatusFailed
)

var _ Fleet = (*fleet.Service)(nil)
