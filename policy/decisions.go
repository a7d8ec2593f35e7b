package policy

import (
	"context"
	"fmt"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/decision"
	"github.com/daskgate/daskgate/options"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// eval runs one prepared query. defined is false when the rule has no
// value for this input. Panics and Rego errors become *Error.
func (e *Engine) eval(ctx context.Context, name, query string, input ast.Value) (val any, defined bool, err error) {
	c := e.cur.Load()
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = &decision.Error{Decision: name, Err: fmt.Errorf("panic: %v", r)}
		}
		d := time.Since(start)
		e.m.latency.WithLabelValues(name).Observe(d.Seconds())
		if err != nil {
			e.m.errors.WithLabelValues(name).Inc()
		}
		e.log.DebugContext(ctx, "policy decision", "decision", name, "query", query, "revision", c.revision,
			"defined", defined, "err", err, "latency", d)
	}()
	pq := c.queries[query]
	if pq == nil { // a wasm bundle without that entrypoint
		return nil, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("stopped after its %v deadline (rego.timeout): %w", e.cfg.Timeout, err)
		}
		return nil, false, &decision.Error{Decision: name, Err: err}
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, false, nil
	}
	return rs[0].Expressions[0].Value, true, nil
}

// Fields returns the user's option fields: the policy's
// data.daskgate.options.fields when defined, else the static fields.
// Policy fields are validated exactly like configured ones.
func (e *Engine) Fields(ctx context.Context, u *cluster.User) (*options.Set, error) {
	v, ok, err := e.eval(ctx, "fields", "fields", toValue(decision.FieldsInput(u)))
	if err != nil || !ok {
		return e.cfg.Static, err
	}
	return decision.FieldSet(v)
}

// Handle runs the options decision: data.daskgate.options.errors (a set or
// list of messages: a 422 for the user) and data.daskgate.options.config
// (the ClusterConfig overrides, strictly checked). With no config rule the
// transformed options pass through, as without a policy.
func (e *Engine) Handle(ctx context.Context, u *cluster.User, values options.Values, transformed map[string]any) (map[string]any, bool, error) {
	in := toValue(decision.OptionsInput(u, values, transformed))
	v, ok, err := e.eval(ctx, "options", "options.errors", in)
	if err != nil {
		return nil, false, err
	}
	if ok {
		msgs, err := decision.Messages(v)
		if err != nil {
			return nil, false, err
		}
		if len(msgs) > 0 {
			return nil, false, &decision.Denied{Messages: msgs}
		}
	}
	v, ok, err = e.eval(ctx, "options", "options.config", in)
	if err != nil || !ok {
		return transformed, false, err
	}
	cfg, err := decision.Config(v)
	return cfg, err == nil, err
}

// Authorize runs data.daskgate.authz.allow (undefined means deny) and, on
// denial, data.daskgate.authz.reason.
func (e *Engine) Authorize(ctx context.Context, req cluster.AuthzRequest) (bool, string, error) {
	in := toValue(decision.AuthorizeInput(req))
	v, _, err := e.eval(ctx, "authorize", "authz.allow", in)
	if err != nil {
		return false, "", err
	}
	if allow, _ := v.(bool); allow {
		return true, "", nil
	}
	r, _, err := e.eval(ctx, "authorize", "authz.reason", in)
	reason, _ := r.(string)
	return false, reason, err
}

// Quota answers the optional rule data.daskgate.authz.quota for the web
// page: the user's limits as an object (clusters, workers, cores, memory,
// or any keys the policy likes), nil when the policy defines none. Its
// input is the authorize input with action "quota" and the user's usage.
func (e *Engine) Quota(ctx context.Context, u *cluster.User, usage cluster.Usage) (map[string]any, error) {
	in := toValue(decision.AuthorizeInput(cluster.AuthzRequest{User: u, Action: "quota", Usage: usage}))
	v, _, err := e.eval(ctx, "quota", "authz.quota", in)
	m, _ := v.(map[string]any)
	return m, err
}

// toValue converts the input once per decision, for every query it runs.
func toValue(in map[string]any) ast.Value {
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		return ast.NewObject() // unreachable: inputs are JSON-shaped
	}
	return v
}
