package server

import (
	"context"
	"net/http"

	"github.com/keyhold/keyhold/internal/apicall"
	"github.com/keyhold/keyhold/internal/console"
	"github.com/keyhold/keyhold/internal/iam"
	"github.com/keyhold/keyhold/internal/kmsapi"
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
	})
	if err != nil {
		return err
	}
	mux.Handle("/console", con)
	mux.Handle(console.Prefix, con)
	return nil
}
