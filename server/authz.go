package server

import (
	"context"
	"fmt"
	"net/http"

	"github.com/daskgate/daskgate/cluster"
)

// Authorizer answers authorization questions. A denial carries the reason
// shown to the user. Policies implement it.
type Authorizer interface {
	Authorize(ctx context.Context, req cluster.AuthzRequest) (allow bool, reason string, err error)
}

// OwnerOnly is upstream's rule: anyone may create and list (their own),
// only a cluster's owner may act on it, and dashboards are open (upstream
// never authenticates them; the unguessable name is the protection).
type OwnerOnly struct{}

// Authorize allows create, list and dashboard, and other per-cluster
// actions to the owner.
func (OwnerOnly) Authorize(_ context.Context, req cluster.AuthzRequest) (bool, string, error) {
	if req.Cluster == nil || req.Action == cluster.ActionDashboard || req.Cluster.Username == req.User.Name {
		return true, "", nil
	}
	verb := "view"
	if req.Action == cluster.ActionStop {
		verb = "stop"
	}
	return false, fmt.Sprintf("User %s lacks permissions to %s cluster %s", req.User.Name, verb, req.Cluster.Name), nil
}

// AuthorizeDashboard decides a dashboard request for the proxy: the user
// comes from the session cookie or Authorization header when present,
// else is anonymous. It returns the HTTP status and message of a denial.
func (s *Server) AuthorizeDashboard(r *http.Request, name string) (ok bool, code int, msg string) {
	u := s.cfg.Sessions.Lookup(r)
	if u == nil && r.Header.Get("Authorization") != "" {
		u, _ = s.cfg.Auth.Authenticate(r)
	}
	if u == nil {
		u = &cluster.User{Groups: []string{}}
	}
	c, err := s.cfg.Backend.Get(r.Context(), name)
	if err != nil {
		return false, http.StatusNotFound, "Cluster " + name + " not found"
	}
	allow, reason, err := s.cfg.Authorizer.Authorize(r.Context(), cluster.AuthzRequest{User: u, Action: cluster.ActionDashboard,
		Cluster: c, RemoteAddr: r.RemoteAddr})
	switch {
	case err != nil:
		s.log.ErrorContext(r.Context(), "dashboard authorization failed", "cluster", name, "err", err)
		return false, http.StatusInternalServerError, "Internal server error"
	case !allow:
		if reason == "" {
			reason = "Not allowed to open the dashboard of cluster " + name
		}
		return false, http.StatusForbidden, reason
	}
	return true, 0, ""
}
