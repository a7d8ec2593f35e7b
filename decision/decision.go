// Package decision holds what the policy engines (Rego in policy/, WASM in
// wasm/) share: the JSON input documents of the three decisions and the
// interpretation of their outputs, so both engines answer identically.
//
// Typical use:
//
//	in := decision.OptionsInput(user, values, transformed) // JSON-shaped map
//	msgs, err := decision.Messages(out["errors"])
//	set, err := decision.FieldSet(out["fields"])
package decision

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/options"
)

// Error is a policy failure: a runtime error, a wrong output shape, a
// trap or a timeout. The server answers 500 for that request only.
type Error struct {
	Decision string
	Err      error
}

func (e *Error) Error() string { return fmt.Sprintf("policy decision %s: %v", e.Decision, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// Denied carries messages for the user (a 422 the client shows as
// ValueError).
type Denied struct{ Messages []string }

func (d *Denied) Error() string { return d.UserMessage() }

// UserMessage joins the messages with "; ".
func (d *Denied) UserMessage() string {
	if len(d.Messages) == 0 {
		return "options rejected by policy"
	}
	return strings.Join(d.Messages, "; ")
}

// ErrShape marks an output that does not have the documented shape.
var ErrShape = errors.New("unexpected output shape")

// User is the input's user object.
func User(u *cluster.User) map[string]any {
	groups := make([]any, len(u.Groups))
	for i, g := range u.Groups {
		groups[i] = g
	}
	return map[string]any{"name": u.Name, "groups": groups, "admin": u.Admin}
}

// FieldsInput is the fields decision's input.
func FieldsInput(u *cluster.User) map[string]any { return map[string]any{"user": User(u)} }

// OptionsInput is the options decision's input: options by target
// (transformed), values by field name.
func OptionsInput(u *cluster.User, values options.Values, transformed map[string]any) map[string]any {
	return map[string]any{"user": User(u), "options": Plain(transformed), "values": Plain(values)}
}

// AuthorizeInput is the authorize decision's input.
func AuthorizeInput(req cluster.AuthzRequest) map[string]any {
	in := map[string]any{
		"user": User(req.User), "action": string(req.Action), "remote_addr": req.RemoteAddr,
		"dashboard_sign_in": req.DashboardSignIn,
		"usage": map[string]any{"clusters": req.Usage.Clusters, "workers": req.Usage.Workers,
			"cores": req.Usage.Cores, "memory": req.Usage.Memory},
	}
	if c := req.Cluster; c != nil {
		var opts any
		_ = json.Unmarshal(c.Options, &opts)
		in["cluster"] = map[string]any{"name": c.Name, "owner": c.Username, "status": c.Status.String(),
			"options": opts, "config": Plain(c.Config), "workers": c.Workers}
	}
	if r := req.Request; r != nil {
		var opts any
		_ = json.Unmarshal(r.Options, &opts)
		in["request"] = map[string]any{"options": opts, "config": Plain(r.Config)}
	}
	return in
}

// FieldSet decodes a fields output and validates it like configured fields.
func FieldSet(v any) (*options.Set, error) {
	var fields []options.Field
	if err := RoundTrip(v, &fields); err != nil {
		return nil, &Error{Decision: "fields", Err: fmt.Errorf("%w: fields must be a list of field objects: %v", ErrShape, err)}
	}
	set, err := options.New(fields)
	if err != nil {
		return nil, &Error{Decision: "fields", Err: err}
	}
	return set, nil
}

// Messages decodes an errors output (a set or list of strings).
func Messages(v any) ([]string, error) {
	var msgs []string
	if err := RoundTrip(v, &msgs); err != nil {
		return nil, &Error{Decision: "options", Err: fmt.Errorf("%w: errors must be a list of strings", ErrShape)}
	}
	return msgs, nil
}

// Config checks a config output is an object.
func Config(v any) (map[string]any, error) {
	cfg, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Decision: "options", Err: fmt.Errorf("%w: config must be an object", ErrShape)}
	}
	return cfg, nil
}

// Plain converts a value to JSON-shaped Go values (maps, slices, numbers).
func Plain(v any) any {
	var out any
	_ = RoundTrip(v, &out)
	return out
}

// RoundTrip copies in to out through JSON.
func RoundTrip(in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
