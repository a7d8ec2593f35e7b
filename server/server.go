// Package server serves the Dask Gateway HTTP API (spec/api.md) to the
// unmodified Python dask-gateway client and to scheduler preloads. It owns
// the request flow — authenticate, authorize, validate options, run the
// option handler, build the ClusterConfig, call the backend — and defines
// the small interfaces the other rooms implement: Backend, OptionHandler,
// Authorizer (and auth.Authenticator).
//
// Typical use:
//
//	srv, err := server.New(server.Config{Backend: b, Auth: auth.NewSimple(""), ClusterConfig: cluster.DefaultConfig()})
//	http.ListenAndServe("127.0.0.1:8000", srv) // un-prefixed paths: /api/...
package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/cluster"
	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
)

// Backend runs clusters. backend/local implements it with processes.
type Backend interface {
	Create(ctx context.Context, req cluster.CreateRequest) (*cluster.Cluster, error)
	// Get and Wait return cluster.ErrNotFound for an unknown name.
	Get(ctx context.Context, name string) (*cluster.Cluster, error)
	List(ctx context.Context, keep func(*cluster.Cluster) bool) ([]*cluster.Cluster, error)
	// Stop moves a cluster towards STOPPED (or FAILED) and returns at once.
	Stop(ctx context.Context, name string, failed bool, reason string) error
	Heartbeat(ctx context.Context, name string, hb cluster.Heartbeat) error
	// Wait blocks until the cluster leaves PENDING or ctx ends.
	Wait(ctx context.Context, name string) (*cluster.Cluster, error)
	Counts() map[cluster.Status]int
}

// ConfigValidator is implemented by backends with rules of their own for
// a cluster's configuration (the Kubernetes backend builds its pods); a
// failure is a 422 at request time, naming the setting.
type ConfigValidator interface {
	ValidateConfig(cluster.Config) error
}

// Config configures the API server.
type Config struct {
	Backend Backend
	// Auth authenticates users; Sessions caches them in a cookie.
	Auth     auth.Authenticator
	Sessions *auth.Sessions
	// Login, if set, signs browsers in for dashboards (JupyterHub OAuth):
	// a dashboard request without a session is sent to LoginURL, and
	// <prefix>/oauth_callback finishes the sign-in.
	Login Login
	// DashboardOrigins, if set, serves dashboards on an origin of their
	// own (see DashboardGate and handOff); nil: the API's origin.
	DashboardOrigins *DashboardOrigins
	// Prefix is the public URL prefix ("" or "/x/y"), for the sign-in's
	// cookie path and the pages it returns to.
	Prefix string
	// Options gives each user's option fields and turns values into
	// ClusterConfig overrides; nil means no fields.
	Options OptionHandler
	// Authorizer decides who may act on which cluster; nil means owner only.
	Authorizer Authorizer
	// ClusterConfig is the admin's base configuration for every cluster.
	ClusterConfig cluster.Config
	// Version is reported by /api/version.
	Version string
	Logger  *slog.Logger
	// WaitTimeout bounds a ?wait long poll; zero means upstream's 20s.
	WaitTimeout time.Duration
	// BodyTimeout bounds reading a request body (a 408 after it); zero
	// means 30s.
	BodyTimeout time.Duration
	// Registry gets the server's metrics and is served at /metrics; nil
	// means a private registry.
	Registry *prometheus.Registry
	// Scheduler talks to schedulers' /api/comm; nil means defaults.
	Scheduler *SchedulerClient
	// UI serves the web page at /ui/ (see ui.go).
	UI bool
	// Activity reports what the lifecycle watcher last saw of a running
	// cluster, for the page; nil means nothing is watched.
	Activity func(name string) (cluster.Activity, bool)
	// Health reports a degraded dependency (a policy reload that failed
	// while the last good policy serves) in /api/health; nil means none.
	Health func() error
}

// Server is the API handler.
type Server struct {
	cfg       Config
	log       *slog.Logger
	router    *httprouter.Router
	metrics   *metrics
	encoded   encodedClusters
	userLocks userLocks
	dashKey   []byte // signs dashboard tickets and cookies
	// draining ends when shutdown begins: health answers 503 (load
	// balancers stop sending) and long polls return at once.
	draining    context.Context
	stopServing context.CancelFunc
}

// New checks cfg and builds the routes.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil || cfg.Auth == nil {
		return nil, errors.New("server: Backend and Auth are required")
	}
	if cfg.Sessions == nil {
		cfg.Sessions = auth.NewSessions(auth.SessionsConfig{})
	}
	if cfg.Options == nil {
		cfg.Options = StaticOptions{}
	}
	if cfg.Authorizer == nil {
		cfg.Authorizer = OwnerOnly{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.WaitTimeout <= 0 {
		cfg.WaitTimeout = 20 * time.Second
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = 30 * time.Second
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Scheduler == nil {
		cfg.Scheduler = &SchedulerClient{}
	}
	if err := cfg.ClusterConfig.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, dashKey: newDashKey()}
	s.draining, s.stopServing = context.WithCancel(context.Background())
	s.metrics = newMetrics(cfg.Registry, cfg.Backend)
	s.router = s.routes()
	return s, nil
}

// ServeHTTP serves the API on un-prefixed paths.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// Drain marks the start of a shutdown: /api/health answers 503
// "draining" so load balancers and readiness probes stop sending new
// requests, and long polls (?wait) answer now with the current state
// (the client polls again, reaching the next process).
func (s *Server) Drain() { s.stopServing() }

// ObserveClusterStart records the time from create to RUNNING.
func (s *Server) ObserveClusterStart(d time.Duration) { s.metrics.startLatency.Observe(d.Seconds()) }
