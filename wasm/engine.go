package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/decision"
	"github.com/daskgate/daskgate/options"
)

// OptionHandler and Authorizer are the server's interfaces (declared here
// too, so this package does not import the server).
type OptionHandler interface {
	Fields(ctx context.Context, u *cluster.User) (*options.Set, error)
	Handle(ctx context.Context, u *cluster.User, values options.Values, transformed map[string]any) (map[string]any, bool, error)
}

// Authorizer answers authorization questions.
type Authorizer interface {
	Authorize(ctx context.Context, req cluster.AuthzRequest) (bool, string, error)
}

// Engine answers the decisions a module exports and hands the rest to the
// next engine (Rego, or the built-in defaults).
type Engine struct {
	cfg       Config
	log       *slog.Logger
	next      OptionHandler
	nextAuthz Authorizer
	mod       atomic.Pointer[Module]

	mu      sync.Mutex
	lastErr error
	modTime time.Time
}

// NewEngine loads the module in cfg in front of next and nextAuthz.
func NewEngine(ctx context.Context, cfg Config, next OptionHandler, nextAuthz Authorizer) (*Engine, error) {
	cfg.setDefaults()
	m, err := Load(ctx, cfg)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, next: next, nextAuthz: nextAuthz}
	e.mod.Store(m)
	if fi, err := os.Stat(cfg.Path); err == nil {
		e.modTime = fi.ModTime()
	}
	e.log.Info("wasm module loaded", "module", m.Name(), "sha256", m.Digest(), "exports", m.Exports())
	return e, nil
}

// Err is the last reload error, nil while the file on disk loads.
func (e *Engine) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.lastErr
}

// Watch reloads the module when its file changes, until ctx ends. A module
// that fails to load or to pass the pin is reported; the old one serves.
func (e *Engine) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.reload(ctx)
		}
	}
}

func (e *Engine) reload(ctx context.Context) {
	fi, err := os.Stat(e.cfg.Path)
	if err != nil || fi.ModTime().Equal(e.modTime) {
		return
	}
	e.modTime = fi.ModTime()
	m, err := Load(ctx, e.cfg)
	e.mu.Lock()
	e.lastErr = err
	e.mu.Unlock()
	if err != nil {
		e.log.Error("wasm module reload failed; keeping the loaded one", "module", e.cfg.Path, "err", err)
		return
	}
	old := e.mod.Swap(m)
	e.log.Info("wasm module reloaded", "module", m.Name(), "sha256", m.Digest())
	old.Retire() // closed when its last call in flight returns
}

// result is every decision's output object.
type result struct {
	Fields json.RawMessage `json:"fields"`
	Config json.RawMessage `json:"config"`
	Errors []string        `json:"errors"`
	Error  string          `json:"error"`
	Allow  bool            `json:"allow"`
	Reason string          `json:"reason"`
}

func (e *Engine) call(ctx context.Context, name string, in map[string]any) (*result, error) {
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	m := e.mod.Load()
	for !m.acquire() { // retired by a reload just now: use the new one
		m = e.mod.Load()
	}
	defer m.release()
	start := time.Now()
	out, err := m.Call(ctx, name, b)
	e.log.DebugContext(ctx, "wasm decision", "decision", name, "module", m.Name(), "latency", time.Since(start),
		"output_bytes", len(out), "err", err)
	if err != nil {
		return nil, &decision.Error{Decision: name, Err: err}
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return nil, &decision.Error{Decision: name, Err: fmt.Errorf("%w: output is not a JSON object: %v", decision.ErrShape, err)}
	}
	return &r, nil
}

// Fields answers from the module's fields export, else the next engine.
func (e *Engine) Fields(ctx context.Context, u *cluster.User) (*options.Set, error) {
	if !e.mod.Load().Implements("fields") {
		return e.next.Fields(ctx, u)
	}
	r, err := e.call(ctx, "fields", decision.FieldsInput(u))
	if err != nil {
		return nil, err
	}
	if r.Error != "" {
		return nil, &decision.Error{Decision: "fields", Err: errors.New(r.Error)}
	}
	var v any
	_ = json.Unmarshal(r.Fields, &v)
	return decision.FieldSet(v)
}

// Handle answers from the module's options export: errors (or error) are a
// 422 for the user, config is strict ClusterConfig overrides.
func (e *Engine) Handle(ctx context.Context, u *cluster.User, values options.Values, transformed map[string]any) (map[string]any, bool, error) {
	if !e.mod.Load().Implements("options") {
		return e.next.Handle(ctx, u, values, transformed)
	}
	r, err := e.call(ctx, "options", decision.OptionsInput(u, values, transformed))
	if err != nil {
		return nil, false, err
	}
	if r.Error != "" {
		r.Errors = append(r.Errors, r.Error)
	}
	if len(r.Errors) > 0 {
		return nil, false, &decision.Denied{Messages: r.Errors}
	}
	if len(r.Config) == 0 {
		return transformed, false, nil
	}
	var cfg any
	dec := json.NewDecoder(bytes.NewReader(r.Config))
	dec.UseNumber()
	if err := dec.Decode(&cfg); err != nil {
		return nil, false, &decision.Error{Decision: "options", Err: err}
	}
	c, err := decision.Config(cfg)
	return c, err == nil, err
}

// Authorize answers from the module's authorize export, else the next engine.
func (e *Engine) Authorize(ctx context.Context, req cluster.AuthzRequest) (bool, string, error) {
	if !e.mod.Load().Implements("authorize") {
		return e.nextAuthz.Authorize(ctx, req)
	}
	r, err := e.call(ctx, "authorize", decision.AuthorizeInput(req))
	if err != nil {
		return false, "", err
	}
	if r.Error != "" {
		return false, "", &decision.Error{Decision: "authorize", Err: errors.New(r.Error)}
	}
	return r.Allow, r.Reason, nil
}
