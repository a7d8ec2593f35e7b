// Package policy evaluates administrators' OPA Rego policies for the
// decisions upstream answers with Python in extraConfig: which option
// fields a user sees (fields), what ClusterConfig their options become
// (options), and who may do what (authorize). It is the only importer of
// OPA. Queries are prepared once per load; files are watched and a broken
// edit keeps the last good policy.
//
// Typical use:
//
//	e, err := policy.New(ctx, policy.Config{Paths: []string{"policies/"}, Static: staticFields})
//	set, err := e.Fields(ctx, user)                          // server.OptionHandler
//	ov, strict, err := e.Handle(ctx, user, values, transformed)
//	ok, reason, err := e.Authorize(ctx, req)                 // server.Authorizer
//	go e.Watch(ctx)                                          // hot reload
package policy

import (
	"context"
	_ "embed"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daskgate/daskgate/options"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed default_authz.rego
var defaultAuthz string

// Config configures an Engine.
type Config struct {
	// Paths are .rego files or directories (searched recursively;
	// *_test.rego files are skipped).
	Paths []string
	// Static are the fields from the config file, used when no policy
	// defines data.daskgate.options.fields.
	Static *options.Set
	// ReloadInterval is how often Watch checks the files; zero means 1s.
	ReloadInterval time.Duration
	Logger         *slog.Logger
	// Registry gets per-decision metrics; nil means a private registry.
	Registry prometheus.Registerer
	// Timeout bounds each decision; zero means 1s. A policy that runs
	// longer fails that request only.
	Timeout time.Duration
	// AllowBuiltins names denied built-ins (http.send, net.lookup_ip_addr,
	// opa.runtime) that policies may call after all.
	AllowBuiltins []string
}

// Engine holds the current compiled policy and evaluates decisions.
type Engine struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	cur atomic.Pointer[compiled]

	mu      sync.Mutex
	lastErr error
	lastSig string // files last compiled, good or bad (Watch's goroutine only)
}

// New loads and compiles the policies; a load error is fatal here (at
// startup) and names file:line:col.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Static == nil {
		cfg.Static = &options.Set{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Registry)}
	c, err := compile(ctx, cfg.Paths, cfg.AllowBuiltins)
	if err != nil {
		return nil, err
	}
	e.cur.Store(c)
	e.lastSig = c.signature
	e.m.revision(c.revision)
	e.log.Info("policies loaded", "files", len(c.files), "revision", c.revision)
	return e, nil
}

// Revision identifies the loaded policy (a hash of its sources).
func (e *Engine) Revision() string { return e.cur.Load().revision }

// Err is the last reload error, or nil while the files compile.
func (e *Engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastErr
}

// Watch reloads the policies when their files change, until ctx ends. A
// broken edit is logged, counted and reported by Err; the last good
// policy keeps serving.
func (e *Engine) Watch(ctx context.Context) {
	t := time.NewTicker(e.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.reloadIfChanged(ctx)
		}
	}
}

func (e *Engine) reloadIfChanged(ctx context.Context) {
	sig, err := signature(e.cfg.Paths)
	if err == nil && sig == e.lastSig {
		return
	}
	e.lastSig = sig
	cur := e.cur.Load()
	c, err := compile(ctx, e.cfg.Paths, e.cfg.AllowBuiltins)
	e.mu.Lock()
	e.lastErr = err
	e.mu.Unlock()
	if err != nil {
		e.m.reloads.WithLabelValues("error").Inc()
		e.m.healthy.Set(0)
		e.log.Error("policy reload failed; keeping the last good policy", "revision", cur.revision, "err", err)
		return
	}
	e.cur.Store(c)
	e.m.reloads.WithLabelValues("ok").Inc()
	e.m.healthy.Set(1)
	e.m.revision(c.revision)
	e.log.Info("policies reloaded", "files", len(c.files), "revision", c.revision)
}
