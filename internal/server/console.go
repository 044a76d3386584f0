package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/keyhold/keyhold/internal/apicall"
	"github.com/keyhold/keyhold/internal/console"
	"github.com/keyhold/keyhold/internal/iam"
	"github.com/keyhold/keyhold/internal/kmsapi"
	"github.com/keyhold/keyhold/internal/store"
)

// consoleIdentities adapts access control to the console's sign-in.
type consoleIdentities struct{ iam *iam.Service }

func (c consoleIdentities) VerifyLogin(ctx context.Context, login, password string) (apicall.Principal, error) {
	account, u, err := c.iam.VerifyLogin(ctx, login, password)
	if err != nil {
		return apicall.Principal{}, err
	}
	return apicall.Principal{Account: account, Kind: iam.KindUser, Name: u.UserName}, nil
}

func (c consoleIdentities) LookupAccessKey(ctx context.Context, id string) (apicall.Principal, string, error) {
	return c.iam.LookupAccessKey(ctx, id)
}

// consoleSessions keeps console sessions in the deployment's storage, so
// that every replica serves every signed-in browser. Records hold no secret
// (see console.SessionBackend); the key is a hash of the cookie.
type consoleSessions struct{ st store.Store }

const tableConsoleSessions = "console_sessions"

var _ console.SessionBackend = consoleSessions{}

func (c consoleSessions) LoadSession(ctx context.Context, key string) ([]byte, error) {
	var out []byte
	err := c.st.View(ctx, func(tx store.Tx) error {
		b, err := tx.Get(tableConsoleSessions, key)
		if errors.Is(err, store.ErrNotFound) {
			b, err = nil, nil
		}
		out = b
		return err
	})
	return out, err
}

func (c consoleSessions) SaveSession(ctx context.Context, key string, rec []byte) error {
	return c.st.Update(ctx, func(tx store.Tx) error { return tx.Put(tableConsoleSessions, key, rec) })
}

func (c consoleSessions) DeleteSession(ctx context.Context, key string) error {
	return c.st.Update(ctx, func(tx store.Tx) error { return tx.Delete(tableConsoleSessions, key) })
}

func (c consoleSessions) ListSessions(ctx context.Context, fn func(string, []byte)) error {
	var kvs []store.KV
	err := c.st.View(ctx, func(tx store.Tx) error {
		var err error
		kvs, err = tx.List(tableConsoleSessions, "", "", 0)
		return err
	})
	for _, kv := range kvs {
		fn(kv.Key, kv.Value)
	}
	return err
}

// mountConsole serves the web console under /console/: on the TLS
// listener always, on the plain one only while it is bound to loopback.
func (s *Server) mountConsole(mux *http.ServeMux, api *kmsapi.Server) error {
	con, err := console.New(console.Config{
		API:         api,
		Identities:  consoleIdentities{s.iam},
		AllowPlain:  s.cfg.Listen != "" && isLoopback(s.cfg.Listen),
		AgentServer: s.endpoint(),
		Logger:      s.log,
		Now:         s.cfg.Now,
		Sessions:    consoleSessions{s.store},
	})
	if err != nil {
		return err
	}
	mux.Handle("/console", con)
	mux.Handle(console.Prefix, con)
	return nil
}
