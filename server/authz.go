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
// When browsers sign in at the hub (req.DashboardSignIn), dashboards are
// the owner's and the admins' only.
type OwnerOnly struct{}

// Authorize allows create and list, other per-cluster actions to the
// owner, and dashboards to all or, with sign-in, to the owner and admins.
func (OwnerOnly) Authorize(_ context.Context, req cluster.AuthzRequest) (bool, string, error) {
	openDashboard := req.Action == cluster.ActionDashboard && (!req.DashboardSignIn || req.User.Admin)
	if req.Cluster == nil || openDashboard || req.Cluster.Username == req.User.Name {
		return true, "", nil
	}
	if req.Action == cluster.ActionDashboard {
		return false, fmt.Sprintf("User %s may not open the dashboard of cluster %s", req.User.Name, req.Cluster.Name), nil
	}
	verb := "view"
	if req.Action == cluster.ActionStop {
		verb = "stop"
	}
	return false, fmt.Sprintf("User %s lacks permissions to %s cluster %s", req.User.Name, verb, req.Cluster.Name), nil
}

// AuthorizeDashboard decides a dashboard request on the API's origin for
// the proxy and answers the ones it does not let through: a browser
// without a session is sent to sign in at the hub when browser sign-in is
// configured (GET only); one allowed while dashboards live on an origin
// of their own is handed over there (handOff); anything refused gets a
// JSON error. It reports whether the proxy may serve the dashboard.
func (s *Server) AuthorizeDashboard(w http.ResponseWriter, r *http.Request, name string) bool {
	u := s.cfg.Sessions.Lookup(r)
	if u == nil && r.Header.Get("Authorization") != "" {
		u, _ = s.cfg.Auth.Authenticate(r)
	}
	if u == nil && s.cfg.Login != nil && r.Method == http.MethodGet {
		s.startLogin(w, r, r.URL.RequestURI()) // the proxy's request: the public path
		return false
	}
	ok, code, msg := s.decideDashboard(r, u, name)
	switch {
	case !ok:
		writeJSON(w, code, map[string]string{"error": msg})
	case s.cfg.DashboardOrigins != nil:
		s.handOff(w, r, name, u)
		return false
	}
	return ok
}

// decideDashboard asks the authorizer about user u (nil: anonymous).
func (s *Server) decideDashboard(r *http.Request, u *cluster.User, name string) (ok bool, code int, msg string) {
	if u == nil {
		u = &cluster.User{Groups: []string{}}
	}
	c, err := s.cfg.Backend.Get(r.Context(), name)
	if err != nil {
		return false, http.StatusNotFound, "Cluster " + name + " not found"
	}
	allow, reason, err := s.cfg.Authorizer.Authorize(r.Context(), cluster.AuthzRequest{User: u, Action: cluster.ActionDashboard,
		Cluster: c, RemoteAddr: r.RemoteAddr, DashboardSignIn: s.cfg.Login != nil})
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
