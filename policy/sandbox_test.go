package policy

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/decision"
)

// A policy cannot reach out: calls to the network or to the gateway's
// own environment (its secrets) are refused when the policy loads.
func TestPoliciesCannotReachOut(t *testing.T) {
	for builtin, src := range map[string]string{
		"http.send":          `allow if http.send({"method": "GET", "url": "http://127.0.0.1:1/"}).status_code == 200`,
		"net.lookup_ip_addr": `allow if count(net.lookup_ip_addr("example.org")) > 0`,
		"opa.runtime":        `allow if opa.runtime().env.JUPYTERHUB_API_TOKEN != ""`,
	} {
		dir := t.TempDir()
		writePolicy(t, dir, "a.rego", "package daskgate.authz\n"+src+"\n")
		_, err := New(context.Background(), Config{Paths: []string{dir}})
		if err == nil || !strings.Contains(err.Error(), builtin) {
			t.Errorf("%s: load error %v, want one naming it", builtin, err)
		}
		if _, err := New(context.Background(), Config{Paths: []string{dir}, AllowBuiltins: []string{builtin}}); err != nil {
			t.Errorf("%s allowed by config: %v", builtin, err)
		}
	}
}

// A policy that runs away is stopped at the deadline, for that request
// only; the next decision is answered.
func TestRunawayPolicyIsStoppedAtTheDeadline(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "a.rego", `package daskgate.authz
allow if input.action == "list"
allow if {
	input.action == "view"
	count([1 | some a in numbers.range(1, 3000); some b in numbers.range(1, 3000); some c in numbers.range(1, 3000); a == -1]) == 0
}
`)
	e, err := New(context.Background(), Config{Paths: []string{dir}, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, _, err = e.Authorize(context.Background(), cluster.AuthzRequest{User: alice, Action: cluster.ActionView, Cluster: &cluster.Cluster{Name: "c", Username: "bob"}})
	if !errors.As(err, new(*decision.Error)) || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("runaway policy: %v", err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("stopped after %v", d)
	}
	if ok, _, err := e.Authorize(context.Background(), cluster.AuthzRequest{User: alice, Action: cluster.ActionList}); !ok || err != nil {
		t.Fatalf("the next decision: %v %v", ok, err)
	}
}
