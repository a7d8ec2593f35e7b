package policy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/decision"
	"github.com/daskgate/daskgate/options"
)

func writePolicy(t testing.TB, dir, name, src string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newEngine(t testing.TB, files map[string]string) (*Engine, string) {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		writePolicy(t, dir, name, src)
	}
	static, _ := options.New([]options.Field{{Field: "worker_cores", Type: options.Int, Default: json.RawMessage("1")}})
	e, err := New(context.Background(), Config{Paths: []string{dir}, Static: static, ReloadInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return e, dir
}

var alice = &cluster.User{Name: "alice", Groups: []string{"lab"}}
var bob = &cluster.User{Name: "bob"}

func TestDefaultsWithoutPolicies(t *testing.T) {
	e, _ := newEngine(t, nil)
	ctx := context.Background()
	set, err := e.Fields(ctx, alice)
	if err != nil || set.Len() != 1 {
		t.Fatalf("fields = %v, %v", set, err)
	}
	ov, strict, err := e.Handle(ctx, alice, options.Values{"worker_cores": int64(2)}, map[string]any{"worker_cores": int64(2)})
	if err != nil || strict || ov["worker_cores"] != int64(2) {
		t.Fatalf("handle = %v %v %v", ov, strict, err)
	}
	c := &cluster.Cluster{Name: "c1", Username: "alice"}
	for _, tt := range []struct {
		user   *cluster.User
		action cluster.Action
		c      *cluster.Cluster
		allow  bool
		reason string
	}{
		{alice, cluster.ActionCreate, nil, true, ""},
		{bob, cluster.ActionList, nil, true, ""},
		{alice, cluster.ActionStop, c, true, ""},
		{bob, cluster.ActionStop, c, false, "User bob lacks permissions to stop cluster c1"},
		{bob, cluster.ActionScale, c, false, "User bob lacks permissions to view cluster c1"},
		{&cluster.User{}, cluster.ActionDashboard, c, true, ""},
	} {
		ok, reason, err := e.Authorize(ctx, cluster.AuthzRequest{User: tt.user, Action: tt.action, Cluster: tt.c})
		if err != nil || ok != tt.allow || reason != tt.reason {
			t.Errorf("%s %s: %v %q %v", tt.user.Name, tt.action, ok, reason, err)
		}
	}
}

const optionsPolicy = `package daskgate.options

fields := [{"field": "mem_gib", "type": "float", "default": 1, "min": 0.5, "max": 8}] if "lab" in input.user.groups

errors contains "mem_gib above 4 needs the big group" if {
	input.options.mem_gib > 4
	not "big" in input.user.groups
}

config := {"worker_memory": round(input.options.mem_gib * 1073741824)}
`

func TestOptionsPolicy(t *testing.T) {
	e, _ := newEngine(t, map[string]string{"o.rego": optionsPolicy})
	ctx := context.Background()
	set, _ := e.Fields(ctx, alice)
	if fs := set.Fields(); len(fs) != 1 || fs[0].Field != "mem_gib" {
		t.Fatalf("alice's fields: %+v", fs)
	}
	if set, _ := e.Fields(ctx, bob); set.Fields()[0].Field != "worker_cores" {
		t.Fatal("bob should get the static fields")
	}
	ov, strict, err := e.Handle(ctx, alice, nil, map[string]any{"mem_gib": 1.5})
	if err != nil || !strict || ov["worker_memory"] != json.Number("1610612736") {
		t.Fatalf("handle = %v %v %v", ov, strict, err)
	}
	_, _, err = e.Handle(ctx, alice, nil, map[string]any{"mem_gib": 6.0})
	var d *decision.Denied
	if !errors.As(err, &d) || d.UserMessage() != "mem_gib above 4 needs the big group" {
		t.Fatalf("denied = %v", err)
	}
}

func TestPolicyFailuresAreContained(t *testing.T) {
	e, _ := newEngine(t, map[string]string{
		"o.rego": "package daskgate.options\nconfig := x if { x := 1 / input.options.zero }\nfields := 7\n",
	})
	ctx := context.Background()
	if _, err := e.Fields(ctx, alice); !errors.As(err, new(*decision.Error)) {
		t.Fatalf("bad fields shape: %v", err)
	}
	_, _, err := e.Handle(ctx, alice, nil, map[string]any{"zero": 0})
	if !errors.As(err, new(*decision.Error)) {
		t.Fatalf("division by zero: %v", err)
	}
	// The engine still answers other decisions.
	if ok, _, err := e.Authorize(ctx, cluster.AuthzRequest{User: alice, Action: cluster.ActionList}); !ok || err != nil {
		t.Fatalf("authorize after failures: %v %v", ok, err)
	}
}

func TestLoadErrorsNameFileLineCol(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "broken.rego", "package daskgate.options\n\nconfig := {\n")
	_, err := New(context.Background(), Config{Paths: []string{dir}})
	if err == nil || !strings.Contains(err.Error(), "broken.rego:") {
		t.Fatalf("err = %v", err)
	}
	writePolicy(t, dir, "broken.rego", "package daskgate.options\n\nconfig := undefined_thing\n")
	_, err = New(context.Background(), Config{Paths: []string{dir}})
	if err == nil || !strings.Contains(err.Error(), "broken.rego:3") {
		t.Fatalf("compile err = %v", err)
	}
}

func TestHotReloadKeepsLastGood(t *testing.T) {
	e, dir := newEngine(t, map[string]string{"a.rego": "package daskgate.authz\nallow := false\nreason := \"v1\"\n"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Watch(ctx)
	reason := func() string { return listReason(ctx, e) }
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for reason() != want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := reason(); got != want {
			t.Fatalf("reason = %q, want %q", got, want)
		}
	}
	rev := e.Revision()
	time.Sleep(20 * time.Millisecond) // distinct mtimes
	writePolicy(t, dir, "a.rego", "package daskgate.authz\nallow := false\nreason := \"v2\"\n")
	waitFor("v2")
	if e.Revision() == rev || e.Err() != nil {
		t.Fatalf("revision %s -> %s, err %v", rev, e.Revision(), e.Err())
	}
	writePolicy(t, dir, "a.rego", "package daskgate.authz\nallow := \n")
	deadline := time.Now().Add(5 * time.Second)
	for e.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if e.Err() == nil || reason() != "v2" {
		t.Fatalf("broken edit: err %v, reason %q", e.Err(), reason())
	}
}

// TestExamples runs every examples/rego directory's Rego tests.
func TestExamples(t *testing.T) {
	dirs, _ := filepath.Glob("../examples/rego/*")
	if len(dirs) < 7 {
		t.Fatalf("found %d example directories", len(dirs))
	}
	for _, d := range dirs {
		t.Run(filepath.Base(d), func(t *testing.T) {
			passed, failed, err := RunTests(context.Background(), io.Discard, d)
			if err != nil || failed > 0 || passed == 0 {
				t.Fatalf("%d passed, %d failed, %v", passed, failed, err)
			}
			if _, err := New(context.Background(), Config{Paths: []string{d}}); err != nil {
				t.Fatalf("the server cannot load it: %v", err)
			}
		})
	}
}

func BenchmarkOptionsDecision(b *testing.B) {
	e, _ := newEngine(b, map[string]string{"o.rego": optionsPolicy})
	ctx := context.Background()
	in := map[string]any{"mem_gib": 2.0}
	benchLatency(b, func() {
		if _, _, err := e.Handle(ctx, alice, nil, in); err != nil {
			b.Fatal(err)
		}
	})
}

func BenchmarkAuthorizeDecision(b *testing.B) {
	src, _ := os.ReadFile("../examples/rego/quota/policy.rego")
	e, _ := newEngine(b, map[string]string{"q.rego": string(src)})
	ctx := context.Background()
	req := cluster.AuthzRequest{User: alice, Action: cluster.ActionCreate, Usage: cluster.Usage{Clusters: 1, Cores: 3},
		Request: &cluster.CreateRequest{Config: cluster.DefaultConfig(), Options: json.RawMessage(`{}`)}}
	benchLatency(b, func() {
		if ok, _, err := e.Authorize(ctx, req); err != nil || !ok {
			b.Fatal(ok, err)
		}
	})
}

// benchLatency reports p50 and p99 per call besides ns/op.
func benchLatency(b *testing.B, fn func()) {
	defer debug.SetGCPercent(debug.SetGCPercent(400)) // as cmd/daskgate runs
	b.ReportAllocs()
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		fn()
		lat = append(lat, time.Since(start))
	}
	slicesSort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func slicesSort(d []time.Duration) { slices.Sort(d) }

// TestWASMBundlesAgreeWithRego compiles examples to OPA wasm bundles and
// checks each decision answers exactly as the Rego source does.
func TestWASMBundlesAgreeWithRego(t *testing.T) {
	ctx := context.Background()
	req := func(clusters int) cluster.AuthzRequest {
		return cluster.AuthzRequest{User: alice, Action: cluster.ActionCreate, Usage: cluster.Usage{Clusters: clusters, Cores: 2},
			Request: &cluster.CreateRequest{Config: cluster.DefaultConfig(), Options: json.RawMessage(`{}`)}}
	}
	cases := map[string]func(e *Engine) any{
		"worker_resources": func(e *Engine) any {
			set, _ := e.Fields(ctx, alice)
			ov, strict, err := e.Handle(ctx, alice, nil, map[string]any{"worker_cores": 3, "worker_memory": 1.5, "image": "a:b"})
			return []any{len(set.Fields()), ov, strict, err}
		},
		"image_tag": func(e *Engine) any {
			_, _, err := e.Handle(ctx, alice, nil, map[string]any{"image": "untagged"})
			return err.Error()
		},
		"quota": func(e *Engine) any {
			ok1, _, err1 := e.Authorize(ctx, req(1))
			ok2, reason, err2 := e.Authorize(ctx, req(2))
			return []any{ok1, err1, ok2, reason, err2}
		},
	}
	for name, decide := range cases {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join("..", "examples", "rego", name)
			bundle := filepath.Join(t.TempDir(), name+".tar.gz")
			f, _ := os.Create(bundle)
			if err := BuildWASMBundle(ctx, f, src); err != nil {
				t.Fatal(err)
			}
			f.Close()
			fromRego, err := New(ctx, Config{Paths: []string{src}})
			if err != nil {
				t.Fatal(err)
			}
			fromWASM, err := New(ctx, Config{Paths: []string{bundle}})
			if err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(decide(fromRego))
			got, _ := json.Marshal(decide(fromWASM))
			if string(got) != string(want) {
				t.Fatalf("wasm bundle answered %s, Rego %s", got, want)
			}
			t.Logf("both: %s", got)
		})
	}
}

// TestHotReloadOfMountedConfigMap uses the layout the kubelet gives a
// mounted ConfigMap: a.rego -> ..data/a.rego, ..data -> ..<timestamp>/,
// and an update swaps the ..data link to a new directory. Each policy is
// read once, through its link, and the swap reloads it.
func TestHotReloadOfMountedConfigMap(t *testing.T) {
	dir := t.TempDir()
	version := func(name, reason string) {
		t.Helper()
		ts := filepath.Join(dir, name)
		if err := os.Mkdir(ts, 0o755); err != nil {
			t.Fatal(err)
		}
		writePolicy(t, ts, "a.rego", "package daskgate.authz\nallow := false\nreason := \""+reason+"\"\n")
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(name, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..2026_12_07_10_00_00.1", "v1")
	if err := os.Symlink("..data/a.rego", filepath.Join(dir, "a.rego")); err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), Config{Paths: []string{dir}, ReloadInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("a mounted ConfigMap's layout: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.Watch(ctx)
	reason := func() string { return listReason(ctx, e) }
	if r := reason(); r != "v1" {
		t.Fatalf("reason %q, want v1", r)
	}
	time.Sleep(20 * time.Millisecond) // distinct mtimes
	version("..2026_12_07_10_05_00.2", "v2")
	deadline := time.Now().Add(5 * time.Second)
	for reason() != "v2" && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if r := reason(); r != "v2" || e.Err() != nil {
		t.Fatalf("after the ConfigMap update: reason %q, err %v", r, e.Err())
	}
}

func TestQuota(t *testing.T) {
	e, _ := newEngine(t, map[string]string{"q.rego": `package daskgate.authz

quota := {"clusters": 3, "cores": 8} if not input.user.admin

allow if input.action == "list"
`})
	q, err := e.Quota(t.Context(), &cluster.User{Name: "a"}, cluster.Usage{Clusters: 1})
	if err != nil || q["clusters"] == nil || len(q) != 2 {
		t.Fatalf("quota = %v, %v", q, err)
	}
	// Undefined (here: for admins) is no quota, not an error.
	if q, err := e.Quota(t.Context(), &cluster.User{Name: "root", Admin: true}, cluster.Usage{}); err != nil || q != nil {
		t.Fatalf("admin quota = %v, %v", q, err)
	}
}

// listReason is the reason the loaded policy gives alice for list (the
// hot-reload tests' probe of which revision serves).
func listReason(ctx context.Context, e *Engine) string {
	_, r, _ := e.Authorize(ctx, cluster.AuthzRequest{User: alice, Action: cluster.ActionList})
	return r
}
