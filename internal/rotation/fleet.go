package rotation

import (
	"context"
	"time"
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

// Mirrors of internal/fleet's types.
type (
	Host struct {
		ID, Account, HostName, SSHAddress string
		SSHHostKeys                       []string
		LocalUsers                        []LocalUser
		AllowUsers                        []string
		AgentVersion                      string
		EnrolledAt, LastSeen              time.Time
		Online                            bool
		Removed                           bool
	}
	LocalUser struct {
		Name                       string
		UID                        int
		Allowed                    bool
		PasswordLogin, PubkeyLogin bool
	}
	Command struct {
		ID, RotationID, Op, User, Password, PublicKey, PrivateKey string
	}
	Result struct {
		CommandID, HostID, RotationID, Op, Status, Check, Error string
		Time                                                    time.Time
	}
)

// Agent operations.
const (
	OpPasswordApply   = "password.apply"
	OpPasswordRestore = "password.restore"
	OpSSHKeyApply     = "sshkey.apply"
	OpSSHKeyCleanup   = "sshkey.cleanup"
	OpSSHKeyRestore   = "sshkey.restore"
)

// Result statuses.
const (
	StatusOK     = "ok"
	StatusFailed = "failed"
)
