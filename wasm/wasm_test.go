package wasm

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/decision"
	"github.com/daskgate/daskgate/options"
)

var builtDir string

// TestMain builds the Go modules with the standard toolchain (no TinyGo,
// no prebuilt binaries).
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "daskgate-wasm")
	if err != nil {
		panic(err)
	}
	builtDir = dir
	for name, pkg := range map[string]string{"handler.wasm": "../examples/wasm/go", "misbehave.wasm": "./testdata/misbehave"} {
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(dir, name), pkg)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := cmd.CombinedOutput(); err != nil {
			panic("build " + pkg + ": " + err.Error() + "\n" + string(out))
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func load(t testing.TB, name string, mod func(*Config)) *Module {
	t.Helper()
	path := filepath.Join(builtDir, name)
	if !strings.HasSuffix(name, ".wasm") || name == "minimal.wasm" {
		path = filepath.Join("testdata", "minimal", "minimal.wasm")
	}
	cfg := Config{Path: path, CacheDir: filepath.Join(builtDir, "cache"),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if mod != nil {
		mod(&cfg)
	}
	m, err := Load(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

type fallback struct{}

func (fallback) Fields(context.Context, *cluster.User) (*options.Set, error) {
	return &options.Set{}, nil
}
func (fallback) Handle(_ context.Context, _ *cluster.User, _ options.Values, t map[string]any) (map[string]any, bool, error) {
	return t, false, nil
}
func (fallback) Authorize(context.Context, cluster.AuthzRequest) (bool, string, error) {
	return true, "fallback", nil
}

func engine(t testing.TB, name string) *Engine {
	m := load(t, name, nil)
	e := &Engine{cfg: m.cfg, log: m.cfg.Logger, next: fallback{}, nextAuthz: fallback{}}
	e.mod.Store(m)
	return e
}

var alice = &cluster.User{Name: "alice", Groups: []string{}}

func TestGoExampleDecisions(t *testing.T) {
	e := engine(t, "handler.wasm")
	ctx := context.Background()
	set, err := e.Fields(ctx, alice)
	if err != nil || set.Len() != 3 {
		t.Fatalf("fields = %v, %v", set, err)
	}
	vals, err := set.Parse(json.RawMessage(`{"worker_cores": 3, "worker_memory": 1.5, "image": "img:1"}`))
	if err != nil {
		t.Fatal(err)
	}
	ov, strict, err := e.Handle(ctx, alice, vals, set.Transform(vals))
	if err != nil || !strict {
		t.Fatalf("handle = %v %v %v", ov, strict, err)
	}
	got, _ := json.Marshal(ov)
	if string(got) != `{"image":"img:1","worker_cores":3,"worker_memory":1610612736}` {
		t.Fatalf("overrides %s", got)
	}
	vals["image"] = "untagged"
	_, _, err = e.Handle(ctx, alice, vals, set.Transform(vals))
	var d *decision.Denied
	if !errors.As(err, &d) || d.UserMessage() != "When specifying an image you must also provide a tag" {
		t.Fatalf("untagged image: %v", err)
	}
	// Not exported by the example: the next engine answers.
	if ok, reason, _ := e.Authorize(ctx, cluster.AuthzRequest{User: alice, Action: cluster.ActionList}); !ok || reason != "fallback" {
		t.Fatalf("authorize fell through to %v %q", ok, reason)
	}
}

func TestAuthorizeExport(t *testing.T) {
	e := engine(t, "misbehave.wasm")
	ok, _, err := e.Authorize(context.Background(), cluster.AuthzRequest{User: alice, Action: cluster.ActionCreate})
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	ok, reason, _ := e.Authorize(context.Background(), cluster.AuthzRequest{User: &cluster.User{Name: "bob"}, Action: cluster.ActionCreate})
	if ok || reason != "only alice, not bob" {
		t.Fatal(ok, reason)
	}
}

func handleMode(e *Engine, mode string) error {
	_, _, err := e.Handle(context.Background(), alice, nil, map[string]any{"mode": mode, "n": 2})
	return err
}

func TestInfiniteLoopTimesOut(t *testing.T) {
	e := engine(t, "misbehave.wasm")
	start := time.Now()
	err := handleMode(e, "loop")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "timed out after 100ms") {
		t.Fatalf("err = %v", err)
	}
	t.Logf("infinite loop stopped after %v (timeout 100ms)", took)
	if took > time.Second {
		t.Fatalf("took %v", took)
	}
	if err := handleMode(e, "ok"); err != nil {
		t.Fatalf("the next call must work: %v", err)
	}
}

func TestLoopDoesNotBlockOthers(t *testing.T) {
	e := engine(t, "misbehave.wasm")
	done := make(chan error)
	go func() { done <- handleMode(e, "loop") }()
	for range 20 {
		if err := handleMode(e, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-done; err == nil {
		t.Fatal("loop returned no error")
	}
}

func TestMemoryCap(t *testing.T) {
	e := engine(t, "misbehave.wasm")
	e.mod.Load().cfg.Timeout = 10 * time.Second // the cap must stop it, not the clock
	err := handleMode(e, "alloc")
	if err == nil {
		t.Fatal("unbounded allocation succeeded")
	}
	t.Logf("unbounded allocation: %v", err)
	if err := handleMode(e, "ok"); err != nil {
		t.Fatal(err)
	}
}

func TestTrapDiscardsInstance(t *testing.T) {
	e := engine(t, "misbehave.wasm")
	m := e.mod.Load()
	if err := handleMode(e, "ok"); err != nil {
		t.Fatal(err)
	}
	pooled := <-m.pool
	m.pool <- pooled
	if err := handleMode(e, "panic"); err == nil {
		t.Fatal("panic returned no error")
	}
	if len(m.pool) != 0 {
		t.Fatal("the trapped instance went back to the pool")
	}
	var d *decision.Denied
	if err := handleMode(e, "error"); !errors.As(err, &d) || d.UserMessage() != "mode error requested" {
		t.Fatalf("structured error = %v", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	e := engine(t, "misbehave.wasm")
	// Correctness under concurrency, not latency: 64 callers on 2 loaded
	// cores under -race can wait past the 100ms default for an instance.
	e.mod.Load().cfg.Timeout = 10 * time.Second
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			for j := range 5 {
				ov, _, err := e.Handle(context.Background(), alice, nil, map[string]any{"mode": "ok", "n": i*10 + j})
				if err != nil || ov["worker_cores"] != json.Number(jsonInt(i*10+j)) {
					t.Errorf("call %d/%d: %v %v", i, j, ov, err)
				}
			}
		})
	}
	wg.Wait()
}

func jsonInt(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestLoadChecks(t *testing.T) {
	if _, err := Load(context.Background(), Config{Path: "testdata/minimal/minimal.wasm", SHA256: "00"}); err == nil ||
		!strings.Contains(err.Error(), "does not match the pinned") {
		t.Fatalf("pin: %v", err)
	}
	m := load(t, "minimal.wasm", nil)
	if !m.Implements("options") || m.Implements("fields") {
		t.Fatal("exports")
	}
	out, err := m.Call(context.Background(), "options", []byte(`{}`))
	if err != nil || string(out) != `{"config":{"worker_cores":2}}` {
		t.Fatalf("minimal = %s %v", out, err)
	}
	if _, err := m.Call(context.Background(), "options", make([]byte, 2<<20)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized input: %v", err)
	}
}

func benchDecision(b *testing.B, name string) {
	m := load(b, name, nil)
	in := []byte(`{"user":{"name":"alice","groups":[]},"options":{"worker_cores":2,"worker_memory":2,"image":"a:b"},"values":{}}`)
	ctx := context.Background()
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := m.Call(ctx, "options", in); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slicesSort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkGoModule(b *testing.B)      { benchDecision(b, "handler.wasm") }
func BenchmarkMinimalModule(b *testing.B) { benchDecision(b, "minimal.wasm") }

func slicesSort(d []time.Duration) { slices.Sort(d) }

func TestEngineReloadsChangedModule(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.wasm")
	copyFile := func(src string) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("testdata/minimal/minimal.wasm")
	e, err := NewEngine(context.Background(), Config{Path: path, CacheDir: filepath.Join(builtDir, "cache")}, fallback{}, fallback{})
	if err != nil {
		t.Fatal(err)
	}
	if e.mod.Load().Implements("authorize") {
		t.Fatal("minimal module has no authorize")
	}
	time.Sleep(20 * time.Millisecond)
	copyFile(filepath.Join(builtDir, "misbehave.wasm"))
	e.reload(context.Background())
	if !e.mod.Load().Implements("authorize") || e.Err() != nil {
		t.Fatalf("not reloaded: %v", e.Err())
	}
	time.Sleep(20 * time.Millisecond)
	if err := os.WriteFile(path, []byte("not wasm"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.reload(context.Background())
	if e.Err() == nil || !e.mod.Load().Implements("authorize") {
		t.Fatal("a broken module must be reported and the old one kept")
	}
}

func TestRetireWaitsForCallsInFlight(t *testing.T) {
	m := load(t, "minimal.wasm", nil)
	if !m.acquire() {
		t.Fatal("fresh module refused")
	}
	m.Retire()
	if m.acquire() {
		t.Fatal("a retired module accepted a new call")
	}
	if _, err := m.Call(context.Background(), "options", []byte(`{}`)); err != nil {
		t.Fatalf("the call in flight must still work: %v", err)
	}
	m.release() // last call: closes the runtime
	if _, err := m.Call(context.Background(), "options", []byte(`{}`)); err == nil {
		t.Fatal("closed module still answers")
	}
}
