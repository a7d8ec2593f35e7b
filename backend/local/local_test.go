package local

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/store"
)

// TestMain lets the test binary act as a fake scheduler or worker: a
// scheduler posts one heartbeat (as the preload would) and then waits for
// SIGINT; a worker just waits.
func TestMain(m *testing.M) {
	role := os.Getenv("DASKGATE_TEST_ROLE")
	if role == "scheduler" && slices.Contains(os.Args, "--nthreads") {
		role = "worker" // helperConfig runs this binary for both; a worker waits
	}
	switch role {
	case "scheduler":
		heartbeat()
		if f := os.Getenv("DASKGATE_TEST_CHILD_PIDFILE"); f != "" {
			// A task's child process, left behind when the scheduler exits.
			child := exec.Command("sleep", "300")
			child.Start()
			os.WriteFile(f, []byte(strconv.Itoa(child.Process.Pid)), 0o644)
		}
		waitForSignal()
	case "worker":
		waitForSignal()
	default:
		os.Exit(m.Run())
	}
}

func heartbeat() {
	hb, _ := json.Marshal(cluster.Heartbeat{SchedulerAddress: "tls://127.0.0.1:1", DashboardAddress: "http://127.0.0.1:2",
		APIAddress: "http://127.0.0.1:3", Count: 2})
	req, _ := http.NewRequest("POST", os.Getenv("DASK_GATEWAY_API_URL")+"/v1/clusters/"+os.Getenv("DASK_GATEWAY_CLUSTER_NAME")+"/heartbeat", bytes.NewReader(hb))
	req.Header.Set("Authorization", "token "+os.Getenv("DASK_GATEWAY_API_TOKEN"))
	if _, err := http.DefaultClient.Do(req); err != nil {
		os.Exit(3)
	}
}

func waitForSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	<-ch
	os.Exit(0)
}

type routes struct {
	mu           sync.Mutex
	set, removed int
}

func (r *routes) SetCluster(string, string, string) { r.mu.Lock(); r.set++; r.mu.Unlock() }
func (r *routes) RemoveCluster(string)              { r.mu.Lock(); r.removed++; r.mu.Unlock() }
func (r *routes) counts() (int, int)                { r.mu.Lock(); defer r.mu.Unlock(); return r.set, r.removed }

func newBackend(t *testing.T, db *store.DB, dir string) (*Backend, *routes) {
	t.Helper()
	var b *Backend
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var hb cluster.Heartbeat
		_ = json.NewDecoder(r.Body).Decode(&hb)
		name := strings.Split(r.URL.Path, "/")[4]
		_ = b.Heartbeat(r.Context(), name, hb)
	}))
	t.Cleanup(api.Close)
	rt := &routes{}
	var err error
	b, err = New(Config{Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), Dir: dir, Store: db, APIURL: api.URL + "/api",
		Routes: rt, StopTimeouts: [3]time.Duration{2 * time.Second, time.Second, time.Second}, StatusPeriod: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	b.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b.Shutdown(ctx)
	})
	return b, rt
}

// testStore opens an encrypted store in dir, closed when the test ends.
func testStore(t *testing.T, dir string) *store.DB {
	t.Helper()
	kr, _ := store.ParseKeys(store.NewKey())
	db, err := store.Open(filepath.Join(dir, "db"), kr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func helperConfig() cluster.Config {
	cfg := cluster.DefaultConfig()
	cfg.SchedulerCmd = cluster.Command{os.Args[0]}
	cfg.WorkerCmd = cluster.Command{os.Args[0]}
	cfg.Environment = map[string]string{"DASKGATE_TEST_ROLE": "scheduler"}
	return cfg
}

func waitStatus(t *testing.T, b *Backend, name string, want cluster.Status) *cluster.Cluster {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := b.Get(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status == want {
			return c
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, _ := b.Get(context.Background(), name)
	t.Fatalf("cluster %s is %v, want %v (reason %q)", name, c.Status, want, c.Reason)
	return nil
}

func TestLifecycle(t *testing.T) {
	dir := t.TempDir()
	b, rt := newBackend(t, nil, dir)
	c, err := b.Create(context.Background(), cluster.CreateRequest{Username: "alice", Config: helperConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != cluster.Pending {
		t.Fatalf("new cluster is %v", c.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err = b.Wait(ctx, c.Name)
	if err != nil || c.Status != cluster.Running || c.SchedulerAddress != "tls://127.0.0.1:1" {
		t.Fatalf("wait = %+v, %v", c, err)
	}
	// The heartbeat asked for 2 workers: both are launched.
	deadline := time.Now().Add(5 * time.Second)
	for c.Workers != 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		c, _ = b.Get(ctx, c.Name)
	}
	if c.Workers != 2 {
		t.Fatalf("workers = %d", c.Workers)
	}
	for _, f := range []string{".certs/dask.crt", ".certs/dask.pem", "logs/scheduler.log"} {
		fi, err := os.Stat(filepath.Join(dir, c.Name, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi, err)
		}
	}
	if err := b.Stop(ctx, c.Name, false, "test"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, b, c.Name, cluster.Stopped)
	if _, err := os.Stat(filepath.Join(dir, c.Name)); !os.IsNotExist(err) {
		t.Errorf("workdir left behind: %v", err)
	}
	if set, removed := rt.counts(); set != 1 || removed != 1 {
		t.Errorf("routes set %d removed %d", set, removed)
	}
}

func TestSchedulerDeathFailsCluster(t *testing.T) {
	b, _ := newBackend(t, nil, t.TempDir())
	c, _ := b.Create(context.Background(), cluster.CreateRequest{Username: "alice", Config: helperConfig()})
	waitStatus(t, b, c.Name, cluster.Running)
	b.mu.RLock()
	pid := b.clusters[c.Name].PID
	b.mu.RUnlock()
	_ = syscall.Kill(pid, syscall.SIGKILL)
	c = waitStatus(t, b, c.Name, cluster.Failed)
	if !strings.Contains(c.Reason, "scheduler exited") || c.StopTime == 0 {
		t.Fatalf("reason %q stop %d", c.Reason, c.StopTime)
	}
}

func TestLaunchFailure(t *testing.T) {
	b, _ := newBackend(t, nil, t.TempDir())
	cfg := helperConfig()
	cfg.SchedulerCmd = cluster.Command{"/nonexistent/dask"}
	c, _ := b.Create(context.Background(), cluster.CreateRequest{Username: "alice", Config: cfg})
	c = waitStatus(t, b, c.Name, cluster.Failed)
	if !strings.Contains(c.Reason, "scheduler launch failed") {
		t.Fatalf("reason %q", c.Reason)
	}
}

func TestRestartAdoptsRunningCluster(t *testing.T) {
	dir := t.TempDir()
	db := testStore(t, dir)
	b1, _ := newBackend(t, db, dir)
	c, _ := b1.Create(context.Background(), cluster.CreateRequest{Username: "alice", Config: helperConfig()})
	waitStatus(t, b1, c.Name, cluster.Running)
	b1.Shutdown(context.Background()) // StopOnShutdown is false: processes stay
	b1.mu.RLock()
	pid := b1.clusters[c.Name].PID
	b1.mu.RUnlock()

	b2, rt := newBackend(t, db, dir)
	got := waitStatus(t, b2, c.Name, cluster.Running)
	if got.Token != c.Token || got.TLSCert != c.TLSCert {
		t.Fatal("secrets did not survive the restart")
	}
	deadline := time.Now().Add(5 * time.Second)
	for set, _ := rt.counts(); set == 0 && time.Now().Before(deadline); set, _ = rt.counts() {
		time.Sleep(20 * time.Millisecond)
	}
	if set, _ := rt.counts(); set != 1 {
		t.Fatal("routes not rebuilt after restart")
	}
	if !b2.procs.alive(pid, c.Name) || b2.procs.alive(pid, "other-cluster") {
		t.Fatal("adopted process identity check is wrong")
	}
	_ = b2.Stop(context.Background(), c.Name, false, "test")
	waitStatus(t, b2, c.Name, cluster.Stopped)
	if b2.procs.alive(pid, c.Name) {
		t.Fatal("adopted scheduler still running after stop")
	}
}

func TestClassifyWorkers(t *testing.T) {
	r := &record{Count: 1, Workers: map[string]*worker{
		"a": {Name: "a", Status: jobSubmitted, Target: jobRunning},
		"b": {Name: "b", Status: jobRunning, Target: jobRunning},
		"c": {Name: "c", Status: jobRunning, Target: jobRunning, CloseExpected: true},
		"d": {Name: "d", Status: jobRunning, Target: jobRunning},
		"e": {Name: "e", Status: jobCreated, Target: jobRunning},
		"f": {Name: "f", Status: jobSubmitted, Target: jobRunning},
	}}
	changed, connected := classifyWorkers(r, cluster.Heartbeat{Count: 1, ActiveWorkers: []string{"a"},
		ClosingWorkers: []string{"b"}, ClosedWorkers: []string{"c", "d"}})
	if !changed || !connected {
		t.Fatal("nothing changed")
	}
	want := map[string][2]jobStatus{
		"a": {jobRunning, jobRunning}, "b": {jobRunning, jobRunning}, "c": {jobRunning, jobStopped},
		"d": {jobRunning, jobFailed}, "e": {jobCreated, jobStopped}, "f": {jobSubmitted, jobStopped},
	}
	for n, w := range r.Workers {
		if got := [2]jobStatus{w.Status, w.Target}; got != want[n] {
			t.Errorf("worker %s = %v, want %v", n, got, want[n])
		}
	}
	if !r.Workers["b"].CloseExpected {
		t.Error("closing worker not marked close_expected")
	}
}

func TestTimeoutsAndPurge(t *testing.T) {
	b, err := New(Config{Dir: t.TempDir(), APIURL: "http://x/api"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old := now.Add(-2 * time.Minute).UnixMilli()
	b.clusters = map[string]*record{
		"never-started": {Name: "never-started", Status: jobSubmitted, Target: jobRunning, StartTime: old, Workers: map[string]*worker{}},
		"silent":        {Name: "silent", Status: jobRunning, Target: jobRunning, StartTime: old, lastHeartbeat: now.Add(-time.Minute), Workers: map[string]*worker{}},
		"slow-worker": {Name: "slow-worker", Status: jobRunning, Target: jobRunning, StartTime: old, lastHeartbeat: now, Workers: map[string]*worker{
			"w": {Name: "w", Status: jobSubmitted, Target: jobRunning, StartTime: old}}},
		"too-old": {Name: "too-old", Status: jobRunning, Target: jobRunning, StartTime: old, lastHeartbeat: now,
			Config: cluster.Config{MaxLifetime: cluster.Duration(time.Minute)}, Workers: map[string]*worker{}},
		"fresh":   {Name: "fresh", Status: jobSubmitted, Target: jobRunning, StartTime: now.UnixMilli(), Workers: map[string]*worker{}},
		"ancient": {Name: "ancient", Status: jobStopped, Target: jobStopped, StopTime: now.Add(-25 * time.Hour).UnixMilli()},
		"recent":  {Name: "recent", Status: jobStopped, Target: jobStopped, StopTime: now.Add(-time.Hour).UnixMilli()},
	}
	b.checkTimeouts(now)
	for name, want := range map[string]jobStatus{"never-started": jobFailed, "silent": jobFailed, "slow-worker": jobRunning,
		"fresh": jobRunning, "too-old": jobStopped} {
		if got := b.clusters[name].Target; got != want {
			t.Errorf("%s target = %d, want %d", name, got, want)
		}
	}
	if w := b.clusters["slow-worker"].Workers["w"]; w.Target != jobFailed {
		t.Errorf("slow worker target = %d", w.Target)
	}
	if b.clusters["slow-worker"].FailureCount != 0 {
		t.Error("a worker start timeout must not count as a failure")
	}
	b.purge(now)
	if _, ok := b.clusters["ancient"]; ok {
		t.Error("ancient cluster not purged")
	}
	if _, ok := b.clusters["recent"]; !ok {
		t.Error("recent cluster purged")
	}
}

// Stopping a cluster ends every process its code started, not only the
// scheduler and workers the backend launched.
func TestStopKillsTheProcessGroup(t *testing.T) {
	b, _ := newBackend(t, nil, t.TempDir())
	cfg := helperConfig()
	pidfile := filepath.Join(t.TempDir(), "child.pid")
	cfg.Environment["DASKGATE_TEST_CHILD_PIDFILE"] = pidfile
	c, _ := b.Create(context.Background(), cluster.CreateRequest{Username: "alice", Config: cfg})
	waitStatus(t, b, c.Name, cluster.Running)
	var child int
	for deadline := time.Now().Add(5 * time.Second); child == 0 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(pidfile)
		child, _ = strconv.Atoi(string(b))
	}
	if child == 0 {
		t.Fatal("the scheduler started no child")
	}
	if err := b.Stop(context.Background(), c.Name, false, "test"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, b, c.Name, cluster.Stopped)
	for deadline := time.Now().Add(5 * time.Second); running(child); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			syscall.Kill(child, syscall.SIGKILL)
			t.Fatalf("the scheduler's child %d survived the cluster", child)
		}
	}
}

// running reports a live process (zombies count as ended).
func running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}
