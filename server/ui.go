package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/ui"
	"github.com/julienschmidt/httprouter"
)

// csrfHeader carries the page's token on every request that changes state.
const csrfHeader = "X-Daskgate-Csrf"

// recentlyFinished is how long a finished cluster stays on the page (with
// the reason it stopped).
const recentlyFinished = time.Hour

// uiRoutes registers the web page: the page itself behind the API's
// login, its static files, and a small JSON API of its own whose
// state-changing routes need the token the page was served with.
func (s *Server) uiRoutes(r *httprouter.Router) {
	// The prefix itself (a hub's service link, a sign-in's fallback) is
	// the page too.
	r.Handler(http.MethodGet, "/", http.RedirectHandler(s.cfg.Prefix+"/ui/", http.StatusFound))
	r.Handler(http.MethodGet, "/ui", http.RedirectHandler(s.cfg.Prefix+"/ui/", http.StatusFound))
	r.Handler(http.MethodGet, "/ui/", s.handle("ui", s.uiPage))
	r.Handler(http.MethodGet, "/ui/static/:file", ui.Static())
	r.Handler(http.MethodGet, "/ui/api/state", s.handle("ui_state", s.withUser(s.uiState)))
	r.Handler(http.MethodPost, "/ui/api/clusters", s.handle("ui_create", s.withUser(s.withCSRF(s.createCluster))))
	r.Handler(http.MethodPost, "/ui/api/clusters/:name/scale", s.handle("ui_scale", s.withUser(s.withCSRF(s.scaleCluster))))
	r.Handler(http.MethodPost, "/ui/api/clusters/:name/stop", s.handle("ui_stop", s.withUser(s.withCSRF(s.uiStop))))
}

// uiPage serves the page to a signed-in browser. Without a session it
// sends the browser to sign in at the hub when that is configured, else
// answers the API's challenge (Basic: the browser asks for a password;
// Negotiate: it uses its Kerberos ticket).
func (s *Server) uiPage(w http.ResponseWriter, r *http.Request) error {
	_, _, explicit := auth.SplitAuthorization(r)
	if !explicit && s.cfg.Login != nil && s.cfg.Sessions.Lookup(r) == nil {
		s.startLogin(w, r, s.cfg.Prefix+r.URL.RequestURI()) // the API sees the path without the prefix
		return nil
	}
	u, err := s.authenticate(w, r) // as the API does: explicit credentials, else the session
	if err != nil {
		return err
	}
	return ui.Page(w, ui.PageData{User: u.Name, Admin: u.Admin, CSRF: s.csrfToken(u), Scheme: s.cfg.Auth.Scheme(),
		Version: s.cfg.Version, Logout: s.cfg.Login != nil})
}

// csrfToken is the page's token for user u: an HMAC of the user's name
// under the server's key, so a page of another site (which cannot read
// the page) cannot produce it, and one user's token is worthless to
// another.
func (s *Server) csrfToken(u *cluster.User) string {
	m := hmac.New(sha256.New, s.dashKey)
	m.Write([]byte("ui-csrf\x00" + u.Name))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// withCSRF refuses a request without the page's token for its user.
func (s *Server) withCSRF(h userHandler) userHandler {
	return func(w http.ResponseWriter, r *http.Request, u *cluster.User) error {
		if !auth.TokenEqual(r.Header.Get(csrfHeader), s.csrfToken(u)) {
			return errorf(http.StatusForbidden, "Missing or wrong %s header: reload the page", csrfHeader)
		}
		return h(w, r, u)
	}
}

// uiStop stops a cluster the user may stop, recording who asked.
func (s *Server) uiStop(w http.ResponseWriter, r *http.Request, u *cluster.User) error {
	c, err := s.lookup(r, u, cluster.ActionStop)
	if err != nil {
		return err
	}
	return s.stop(w, r, c.Name, "stopped by "+u.Name+" from the web page")
}

// uiCluster is a cluster as the page shows it.
type uiCluster struct {
	Name      string          `json:"name"`
	Owner     string          `json:"owner"`
	Status    cluster.Status  `json:"status"`
	Workers   int             `json:"workers"`
	MaxWorker *int            `json:"max_workers"`
	Cores     float64         `json:"cores"`
	Memory    int64           `json:"memory"`
	StartTime int64           `json:"start_time"`
	StopTime  int64           `json:"stop_time,omitempty"`
	Options   json.RawMessage `json:"options"`
	Reason    string          `json:"reason,omitempty"`
	Dashboard string          `json:"dashboard,omitempty"`
	// Clients and the times below are what the last check saw
	// (lifecycle); nil/0 when unknown.
	Clients     *int  `json:"clients"`
	Busy        bool  `json:"busy"`
	IdleSince   int64 `json:"idle_since,omitempty"`
	LastClient  int64 `json:"last_client,omitempty"`
	StopsAfter  int64 `json:"last_client_timeout,omitempty"` // seconds
	IdleTimeout int64 `json:"idle_timeout,omitempty"`        // seconds
	CanScale    bool  `json:"can_scale"`
	CanStop     bool  `json:"can_stop"`
}

// QuotaReporter is implemented by authorizers that can say what a user's
// limits are (the Rego engine's optional authz.quota rule); the page
// shows them beside the usage.
type QuotaReporter interface {
	Quota(ctx context.Context, u *cluster.User, usage cluster.Usage) (map[string]any, error)
}

// uiState is everything the page shows, polled every few seconds.
type uiState struct {
	User  *cluster.User `json:"user"`
	Usage cluster.Usage `json:"usage"`
	// Quota is the policy's limits for the user; nil when it has none.
	Quota    map[string]any `json:"quota"`
	Clusters []uiCluster    `json:"clusters"`
	Now      int64          `json:"now"`
}

// uiState lists the clusters the user may view: active ones and those
// finished within the last hour.
func (s *Server) uiState(w http.ResponseWriter, r *http.Request, u *cluster.User) error {
	now := time.Now()
	since := now.Add(-recentlyFinished).UnixMilli()
	cs, err := s.cfg.Backend.List(r.Context(), func(c *cluster.Cluster) bool {
		return !c.Status.Finished() || c.StopTime >= since
	})
	if err != nil {
		return err
	}
	usage, err := s.usage(r.Context(), u.Name)
	if err != nil {
		return err
	}
	st := uiState{User: u, Usage: usage, Clusters: []uiCluster{}, Now: now.UnixMilli()}
	if q, ok := s.cfg.Authorizer.(QuotaReporter); ok {
		if st.Quota, err = q.Quota(r.Context(), u, usage); err != nil {
			s.log.WarnContext(r.Context(), "quota for the web page", "user", u.Name, "err", err) // the page shows usage alone
		}
	}
	for _, c := range cs {
		if s.authorize(r.Context(), u, cluster.ActionView, c, http.StatusForbidden) != nil {
			continue
		}
		st.Clusters = append(st.Clusters, s.uiClusterOf(r, u, c))
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (s *Server) uiClusterOf(r *http.Request, u *cluster.User, c *cluster.Cluster) uiCluster {
	cores, memory := footprint(c)
	out := uiCluster{Name: c.Name, Owner: c.Username, Status: c.Status, Workers: c.Workers, StartTime: c.StartTime,
		StopTime: c.StopTime, Options: c.Options, Reason: c.Reason, Cores: cores, Memory: memory,
		StopsAfter:  int64(time.Duration(c.Config.LastClientTimeout).Seconds()),
		IdleTimeout: int64(time.Duration(c.Config.IdleTimeout).Seconds())}
	if len(out.Options) == 0 {
		out.Options = json.RawMessage("{}")
	}
	if c.Status.Finished() {
		out.Workers, out.Cores, out.Memory = 0, 0, 0
		return out
	}
	if n, ok := c.Config.MaxWorkers(); ok {
		out.MaxWorker = &n
	}
	if c.Status == cluster.Running && c.DashboardAddress != "" {
		out.Dashboard = s.cfg.Prefix + "/clusters/" + c.Name + "/status"
	}
	if s.cfg.Activity != nil {
		if a, ok := s.cfg.Activity(c.Name); ok {
			if a.Clients >= 0 {
				out.Clients = &a.Clients
			}
			out.Busy, out.IdleSince, out.LastClient = a.Busy, unixMilli(a.IdleSince), unixMilli(a.LastClient)
		}
	}
	out.CanScale = s.authorize(r.Context(), u, cluster.ActionScale, c, http.StatusForbidden) == nil
	out.CanStop = s.authorize(r.Context(), u, cluster.ActionStop, c, http.StatusForbidden) == nil
	return out
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
