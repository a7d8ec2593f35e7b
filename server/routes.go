package server

import (
	"fmt"
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes registers every API route (spec/api.md §7). Paths are exact:
// list and create end in a slash, per-cluster routes do not.
func (s *Server) routes() *httprouter.Router {
	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.Handler(http.MethodGet, "/api/health", s.handle("health", s.health))
	r.Handler(http.MethodGet, "/api/version", s.handle("version", s.version))
	r.Handler(http.MethodGet, "/api/v1/options", s.handle("options", s.withUser(s.getOptions)))
	r.Handler(http.MethodGet, "/api/v1/clusters/", s.handle("list", s.withUser(s.listClusters)))
	r.Handler(http.MethodPost, "/api/v1/clusters/", s.handle("create", s.withUser(s.createCluster)))
	r.Handler(http.MethodGet, "/api/v1/clusters/:name", s.handle("get", s.withUser(s.getCluster)))
	r.Handler(http.MethodDelete, "/api/v1/clusters/:name", s.handle("delete", s.deleteCluster))
	r.Handler(http.MethodPost, "/api/v1/clusters/:name/scale", s.handle("scale", s.withUser(s.scaleCluster)))
	r.Handler(http.MethodPost, "/api/v1/clusters/:name/adapt", s.handle("adapt", s.withUser(s.adaptCluster)))
	r.Handler(http.MethodPost, "/api/v1/clusters/:name/heartbeat", s.handle("heartbeat", s.heartbeat))
	r.Handler(http.MethodGet, "/oauth_callback", s.handle("oauth_callback", s.oauthCallback))
	r.Handler(http.MethodGet, "/logout", s.handle("logout", s.logout))
	if s.cfg.UI {
		s.uiRoutes(r)
	}
	r.Handler(http.MethodGet, "/metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{}))
	r.NotFound = s.handle("not_found", func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusNotFound, "Not Found")
	})
	r.MethodNotAllowed = s.handle("method_not_allowed", func(http.ResponseWriter, *http.Request) error {
		return errorf(http.StatusMethodNotAllowed, "Method Not Allowed")
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		s.writeError(w, req, fmt.Errorf("panic: %v", v))
	}
	return r
}

// health answers "pass", or "warn" with the problem while the gateway
// still serves (a broken policy edit: the last good policy is in use).
func (s *Server) health(w http.ResponseWriter, _ *http.Request) error {
	if s.draining.Err() != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return nil
	}
	if s.cfg.Health != nil {
		if err := s.cfg.Health(); err != nil {
			writeJSON(w, http.StatusOK, map[string]string{"status": "warn", "policy": err.Error()})
			return nil
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "pass"})
	return nil
}

func (s *Server) version(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"version": s.cfg.Version})
	return nil
}
