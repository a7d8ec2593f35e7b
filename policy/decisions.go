package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/options"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// eval runs one prepared query. defined is false when the rule has no
// value for this input. Panics and Rego errors become *Error.
func (e *Engine) eval(ctx context.Context, decision, query string, input ast.Value) (val any, defined bool, err error) {
	c := e.cur.Load()
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = &Error{Decision: decision, Err: fmt.Errorf("panic: %v", r)}
		}
		d := time.Since(start)
		e.m.latency.WithLabelValues(decision).Observe(d.Seconds())
		if err != nil {
			e.m.errors.WithLabelValues(decision).Inc()
		}
		e.log.DebugContext(ctx, "policy decision", "decision", decision, "query", query, "revision", c.revision,
			"defined", defined, "result", val, "err", err, "latency", d)
	}()
	rs, err := c.queries[query].Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return nil, false, &Error{Decision: decision, Err: err}
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, false, nil
	}
	return rs[0].Expressions[0].Value, true, nil
}

func userInput(u *cluster.User) map[string]any {
	groups := make([]any, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = g
	}
	return map[string]any{"name": u.Name, "groups": groups, "admin": u.Admin}
}

// Fields returns the user's option fields: the policy's
// data.daskgate.options.fields when defined, else the static fields.
// Policy fields are validated exactly like configured ones.
func (e *Engine) Fields(ctx context.Context, u *cluster.User) (*options.Set, error) {
	v, ok, err := e.eval(ctx, "fields", "fields", toValue(map[string]any{"user": userInput(u)}))
	if err != nil || !ok {
		return e.cfg.Static, err
	}
	var fields []options.Field
	if err := roundTrip(v, &fields); err != nil {
		return nil, &Error{Decision: "fields", Err: fmt.Errorf("%w: fields must be a list of field objects: %v", errShape, err)}
	}
	set, err := options.New(fields)
	if err != nil {
		return nil, &Error{Decision: "fields", Err: err}
	}
	return set, nil
}

// Handle runs the options decision: data.daskgate.options.errors (a set or
// list of messages: a 422 for the user) and data.daskgate.options.config
// (the ClusterConfig overrides, strictly checked). With no config rule the
// transformed options pass through, as without a policy.
func (e *Engine) Handle(ctx context.Context, u *cluster.User, values options.Values, transformed map[string]any) (map[string]any, bool, error) {
	in := toValue(map[string]any{"user": userInput(u), "options": plain(transformed), "values": plain(values)})
	v, ok, err := e.eval(ctx, "options", "options.errors", in)
	if err != nil {
		return nil, false, err
	}
	if ok {
		var msgs []string
		if err := roundTrip(v, &msgs); err != nil {
			return nil, false, &Error{Decision: "options", Err: fmt.Errorf("%w: errors must be a set of strings", errShape)}
		}
		if len(msgs) > 0 {
			return nil, false, &Denied{Messages: msgs}
		}
	}
	v, ok, err = e.eval(ctx, "options", "options.config", in)
	if err != nil || !ok {
		return transformed, false, err
	}
	cfg, isObj := v.(map[string]any)
	if !isObj {
		return nil, false, &Error{Decision: "options", Err: fmt.Errorf("%w: config must be an object", errShape)}
	}
	return cfg, true, nil
}

// Authorize runs data.daskgate.authz.allow (undefined means deny) and, on
// denial, data.daskgate.authz.reason.
func (e *Engine) Authorize(ctx context.Context, req cluster.AuthzRequest) (bool, string, error) {
	in := toValue(authzInput(req))
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

func authzInput(req cluster.AuthzRequest) map[string]any {
	in := map[string]any{
		"user": userInput(req.User), "action": string(req.Action), "remote_addr": req.RemoteAddr,
		"usage": map[string]any{"clusters": req.Usage.Clusters, "workers": req.Usage.Workers,
			"cores": req.Usage.Cores, "memory": req.Usage.Memory},
	}
	if c := req.Cluster; c != nil {
		var opts any
		_ = json.Unmarshal(c.Options, &opts)
		in["cluster"] = map[string]any{"name": c.Name, "owner": c.Username, "status": c.Status.String(),
			"options": opts, "config": plain(c.Config), "workers": c.Workers}
	}
	if r := req.Request; r != nil {
		var opts any
		_ = json.Unmarshal(r.Options, &opts)
		in["request"] = map[string]any{"options": opts, "config": plain(r.Config)}
	}
	return in
}

// toValue converts the input once per decision, for every query it runs.
func toValue(in map[string]any) ast.Value {
	v, err := ast.InterfaceToValue(in)
	if err != nil {
		return ast.NewObject() // unreachable: inputs are JSON-shaped
	}
	return v
}

// plain converts a value to JSON-shaped Go values (maps, slices, numbers)
// for Rego input.
func plain(v any) any {
	var out any
	_ = roundTrip(v, &out)
	return out
}

func roundTrip(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
