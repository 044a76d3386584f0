// Package iam owns identities: accounts, access keys and (as access control
// grows) users, groups and policies. It answers two questions for the wire
// layer: "who signed this request, and with what secret?" (LookupAccessKey)
// and "may that principal do this?" (Authorize).
//
// Access key secrets are stored sealed under the root key, never in plain
// form; decrypted secrets live only in this process's memory cache. The
// package knows nothing of HTTP or signatures' wire format.
//
// Storage layout (deployment-wide tables, plain keys):
//
//	meta/default_account        -> account UID of the deployment
//	accounts/<uid>              -> Account (JSON)
//	access_keys/<AccessKeyId>   -> access key record (JSON, secret sealed)
//
// Access key ids are unique across the deployment, as on Alibaba Cloud,
// because a request names only its key id; the record names the account.
package iam

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyhold/keyhold/internal/apicall"
	"github.com/keyhold/keyhold/internal/errs"
	"github.com/keyhold/keyhold/internal/store"
)

// Sealer encrypts small records under the deployment root key. The keys
// package implements it; iam declares only what it needs.
type Sealer interface {
	SealWithRoot(aad, plaintext []byte) ([]byte, error)
	OpenWithRoot(aad, sealed []byte) ([]byte, error)
}

// Tables and keys used by this package.
const (
	TableMeta       = "meta"
	TableAccounts   = "accounts"
	TableAccessKeys = "access_keys"
	// MetaDefaultAccount (in TableMeta) holds the deployment's account UID.
	MetaDefaultAccount = "default_account"

	// topicAccessKeys is notified on every access key change so that every
	// replica drops its cached secrets.
	topicAccessKeys = "iam/access_keys"
	initLock        = "init"
)

// Principal kinds and the root principal's name.
const (
	KindRoot = "root"
	RootName = "root"
)

// Errors returned by LookupAccessKey. They are sentinels so the wire layer
// can tell them apart with errors.Is and answer InvalidAccessKeyId.NotFound
// and Forbidden.AccessKeyDisabled.
var (
	ErrAccessKeyNotFound = &errs.Error{Kind: errs.KindNotFound, Message: "Specified access key is not found."}
	ErrAccessKeyDisabled = &errs.Error{Kind: errs.KindForbidden, Message: "The access key is disabled."}
)

// Account is one tenant of the deployment.
type Account struct {
	UID         string    `json:"uid"`
	DisplayName string    `json:"display_name,omitempty"`
	CreateDate  time.Time `json:"create_date"`
}

// AccessKeyStatus is Active or Inactive, as in RAM.
type AccessKeyStatus string

const (
	StatusActive   AccessKeyStatus = "Active"
	StatusInactive AccessKeyStatus = "Inactive"
)

// AccessKey is an access key's metadata; it never carries the secret.
type AccessKey struct {
	AccessKeyID  string          `json:"access_key_id"`
	Account      string          `json:"account"`
	Kind         string          `json:"kind"`      // KindRoot, later "user"
	UserName     string          `json:"user_name"` // RootName for the account root
	Status       AccessKeyStatus `json:"status"`
	CreateDate   time.Time       `json:"create_date"`
	LastUsedDate time.Time       `json:"last_used_date,omitzero"`
}

// AccessKeyPair is an access key id with its plain secret, returned only
// when a key is created. Its String, GoString and LogValue hide the secret
// so that printing or logging one by mistake leaks nothing.
type AccessKeyPair struct {
	AccessKeyID     string `json:"access_key_id"`
	AccessKeySecret string `json:"access_key_secret"`
}

// Service manages accounts and access keys.
type Service struct {
	st     store.Store
	sealer Sealer

	// cache maps access key id -> *cachedKey. mu orders fills against
	// invalidations; gen counts invalidations so that a fill that read
	// storage before an invalidation does not store a stale entry.
	cache sync.Map
	mu    sync.Mutex
	gen   atomic.Uint64

	defaultUID atomic.Value // string: the deployment's first account
	authz      authzState

	touch  chan touchReq
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Service over st. It starts two goroutines (cache
// invalidation from other replicas, LastUsedDate writer); Close stops them.
func New(st store.Store, sealer Sealer) *Service {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		st:     st,
		sealer: sealer,
		touch:  make(chan touchReq, 256),
		ctx:    ctx,
		cancel: cancel,
	}
	changed, unsubscribe := st.Subscribe(topicAccessKeys)
	policies, unsubscribePolicies := st.Subscribe(topicPolicies)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		defer unsubscribe()
		defer unsubscribePolicies()
		for {
			select {
			case <-changed:
				s.invalidate("")
			case <-policies:
				s.invalidatePolicies()
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		s.lastUsedWriter()
	}()
	return s
}

// Close stops the background goroutines. Call it before closing the store.
func (s *Service) Close() error {
	s.cancel()
	s.wg.Wait()
	return nil
}

var _ apicall.Authorizer = (*Service)(nil)
