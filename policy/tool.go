package policy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/daskgate/daskgate/decision"
	"github.com/open-policy-agent/opa/v1/tester"
)

// RunTests runs the Rego tests (test_* rules) in the files under paths,
// with OPA's own test semantics, so `opa test` on the same files agrees.
// It prints one line per test and returns the counts.
func RunTests(ctx context.Context, w io.Writer, paths ...string) (passed, failed int, err error) {
	results, err := tester.Run(ctx, paths...)
	if err != nil {
		return 0, 0, err
	}
	for _, r := range results {
		status := "PASS"
		switch {
		case r.Skip:
			status = "SKIP"
		case !r.Pass():
			status = "FAIL"
			failed++
		default:
			passed++
		}
		fmt.Fprintf(w, "%s %s.%s (%v)", status, r.Package, r.Name, r.Duration.Round(time.Microsecond))
		if r.Error != nil {
			fmt.Fprintf(w, ": %v", r.Error)
		}
		fmt.Fprintln(w)
	}
	return passed, failed, nil
}

// Eval answers one decision ("fields", "options" or "authorize") for a raw
// JSON input, as the server would, and returns the outputs by rule.
func (e *Engine) Eval(ctx context.Context, name string, input map[string]any) (map[string]any, error) {
	rules := map[string][]string{
		"fields":    {"fields"},
		"options":   {"options.errors", "options.config"},
		"authorize": {"authz.allow", "authz.reason"},
	}[name]
	if rules == nil {
		return nil, fmt.Errorf("unknown decision %q (want fields, options or authorize)", name)
	}
	out := map[string]any{}
	for _, q := range rules {
		v, ok, err := e.eval(ctx, name, q, toValue(decision.Plain(input).(map[string]any)))
		if err != nil {
			return nil, err
		}
		if ok {
			out[q] = v
		}
	}
	return out, nil
}

// DecodeInput parses a JSON input document.
func DecodeInput(r io.Reader) (map[string]any, error) {
	var in map[string]any
	dec := json.NewDecoder(r)
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("input must be a JSON object: %w", err)
	}
	if in == nil {
		in = map[string]any{}
	}
	return in, nil
}
