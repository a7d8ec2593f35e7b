package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/cluster"
)

type userKey struct{}

type remoteKey struct{}

// remoteAddr is the client address of the request in ctx.
func remoteAddr(ctx context.Context) string {
	s, _ := ctx.Value(remoteKey{}).(string)
	return s
}

// userHandler is a handler that needs an authenticated user.
type userHandler func(w http.ResponseWriter, r *http.Request, u *cluster.User) error

// withUser authenticates with the configured scheme when the request
// carries credentials (explicit credentials win), else with the session
// cookie (issuing a cookie on each full authentication). No credentials is a 401 with the
// scheme's challenge, which makes the client send them.
func (s *Server) withUser(h userHandler) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		u, err := s.authenticate(w, r)
		if err != nil {
			return err
		}
		return h(w, r.WithContext(context.WithValue(r.Context(), userKey{}, u)), u)
	}
}

func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*cluster.User, error) {
	if _, _, explicit := auth.SplitAuthorization(r); !explicit {
		if u := s.cfg.Sessions.Lookup(r); u != nil {
			return u, nil
		}
	}
	var u *cluster.User
	var err error
	if m, ok := s.cfg.Auth.(auth.Mutual); ok {
		var reply http.Header
		u, reply, err = m.AuthenticateMutual(r)
		for k, v := range reply {
			w.Header()[k] = v
		}
	} else {
		u, err = s.cfg.Auth.Authenticate(r)
	}
	if errors.Is(err, auth.ErrUnauthorized) {
		return nil, &httpError{Code: http.StatusUnauthorized, Msg: "Authentication required",
			Header: http.Header{"Www-Authenticate": {s.cfg.Auth.Scheme()}}}
	}
	var he *httpError
	if errors.As(err, &he) {
		return nil, he
	}
	var ae *auth.Error
	if errors.As(err, &ae) {
		return nil, &httpError{Code: ae.Code, Msg: ae.Msg, Err: ae.Err}
	}
	if err != nil {
		return nil, &httpError{Code: http.StatusBadGateway, Msg: "Failure verifying user credentials", Err: err}
	}
	s.cfg.Sessions.Issue(w, r, u)
	return u, nil
}

// clusterToken reports whether the request carries "Authorization: token
// <t>" matching the cluster's own token (compared in constant time).
func clusterToken(r *http.Request, c *cluster.Cluster) bool {
	kind, tok, ok := auth.SplitAuthorization(r)
	return ok && kind == "token" && c != nil && auth.TokenEqual(tok, string(c.Token))
}
