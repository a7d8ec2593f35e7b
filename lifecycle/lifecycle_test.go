package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

// fakeClusters is a backend's list and stop, recording stops.
type fakeClusters struct {
	mu    sync.Mutex
	cs    []*cluster.Cluster
	stops map[string]string
}

func (f *fakeClusters) List(_ context.Context, keep func(*cluster.Cluster) bool) ([]*cluster.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*cluster.Cluster
	for _, c := range f.cs {
		if keep(c) {
			cp := *c
			out = append(out, &cp)
		}
	}
	return out, nil
}

func (f *fakeClusters) Stop(_ context.Context, name string, failed bool, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if failed {
		return errors.New("the watcher never fails a cluster")
	}
	if f.stops == nil {
		f.stops = map[string]string{}
	}
	f.stops[name] = reason
	for _, c := range f.cs {
		if c.Name == name {
			c.Status = cluster.Stopping
		}
	}
	return nil
}

func (f *fakeClusters) stopped() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for k, v := range f.stops {
		out[k] = v
	}
	return out
}

// dashboard serves counts.json with the given client count (the
// scheduler's own fire-and-forget client included, as distributed does).
func dashboard(t *testing.T, clients, processing *atomic.Int64) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/json/counts.json" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"clients": %d, "processing": %d, "waiting": 0, "tasks": 3}`, clients.Load(), processing.Load())
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newWatcher(t *testing.T, f *fakeClusters, hub Hub, c *clock) *Watcher {
	return New(Config{Clusters: f, Hub: hub, HubGrace: time.Minute, Now: c.now, ObserveAll: true,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
}

func running(name, user, dash string, lastClient time.Duration) *cluster.Cluster {
	c := &cluster.Cluster{Name: name, Username: user, Status: cluster.Running, DashboardAddress: dash}
	c.Config.LastClientTimeout = cluster.Duration(lastClient)
	return c
}

func TestLastClientRule(t *testing.T) {
	var clients, processing atomic.Int64
	clients.Store(2) // one client
	f := &fakeClusters{cs: []*cluster.Cluster{
		running("a", "alice", dashboard(t, &clients, &processing), 10*time.Minute),
		running("norule", "alice", dashboard(t, &clients, &processing), 0),
		running("unknown", "alice", "http://127.0.0.1:1", 10*time.Minute), // never answers
	}}
	c := &clock{t: time.Unix(1e9, 0)}
	w := newWatcher(t, f, nil, c)
	ctx := t.Context()

	w.Check(ctx)
	if a, _ := w.Activity("a"); a.Clients != 1 || !a.LastClient.Equal(c.t) {
		t.Fatalf("activity %+v, want 1 client seen now", a)
	}
	clients.Store(1) // the client left: only fire-and-forget remains
	c.t = c.t.Add(5 * time.Minute)
	w.Check(ctx)
	c.t = c.t.Add(5*time.Minute - time.Second)
	w.Check(ctx)
	if s := f.stopped(); len(s) != 0 {
		t.Fatalf("stopped %v before 10 minutes without a client", s)
	}
	c.t = c.t.Add(time.Second)
	w.Check(ctx)
	w.Check(ctx)
	s := f.stopped()
	if len(s) != 1 || !strings.Contains(s["a"], "no client connected for 10m0s") {
		t.Fatalf("stops %v, want only a, with the reason", s)
	}
	if a, ok := w.Activity("unknown"); !ok || a.Clients != -1 {
		t.Fatalf("unknown scheduler: %+v %v, want clients -1", a, ok)
	}
}

func TestIdleAndBusy(t *testing.T) {
	var clients, processing atomic.Int64
	clients.Store(1)
	f := &fakeClusters{cs: []*cluster.Cluster{running("a", "alice", dashboard(t, &clients, &processing), 0)}}
	c := &clock{t: time.Unix(1e9, 0)}
	w := newWatcher(t, f, nil, c)
	w.Check(t.Context())
	start := c.t
	processing.Store(4)
	c.t = c.t.Add(time.Minute)
	w.Check(t.Context())
	if a, _ := w.Activity("a"); !a.Busy || !a.IdleSince.IsZero() {
		t.Fatalf("busy cluster: %+v", a)
	}
	processing.Store(0)
	c.t = c.t.Add(time.Minute)
	w.Check(t.Context())
	if a, _ := w.Activity("a"); a.Busy || !a.IdleSince.Equal(start.Add(2*time.Minute)) {
		t.Fatalf("idle cluster: %+v", a)
	}
}

// fakeHub answers from a map; a user in errs makes it fail.
type fakeHub struct {
	mu      sync.Mutex
	servers map[string]bool
	errs    map[string]bool
	asked   []string
}

func (h *fakeHub) ServerRunning(_ context.Context, user string) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked = append(h.asked, user)
	if h.errs[user] {
		return false, errors.New("hub down")
	}
	return h.servers[user], nil
}

func (h *fakeHub) set(user string, up bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.servers[user] = up
}

func TestHubRule(t *testing.T) {
	hub := &fakeHub{servers: map[string]bool{"alice": true}, errs: map[string]bool{"carol": true}}
	f := &fakeClusters{cs: []*cluster.Cluster{
		running("a1", "alice", "", 0), {Name: "a2", Username: "alice", Status: cluster.Pending},
		running("b1", "bob", "", 0),          // bob never had a server
		running("c1", "carol", "", 0),        // the hub fails for carol
		running("s1", "service:cron", "", 0), // services have no servers
		{Name: "old", Username: "alice", Status: cluster.Stopped},
	}}
	c := &clock{t: time.Unix(1e9, 0)}
	w := newWatcher(t, f, hub, c)
	ctx := t.Context()
	w.Check(ctx)
	c.t = c.t.Add(time.Minute)
	w.Check(ctx)
	s := f.stopped()
	if len(s) != 1 || !strings.Contains(s["b1"], "JupyterHub server stopped") {
		t.Fatalf("stops %v, want bob's only", s)
	}
	hub.set("alice", false)
	c.t = c.t.Add(time.Minute)
	w.Check(ctx) // gone since now
	hub.set("alice", true)
	c.t = c.t.Add(2 * time.Minute)
	w.Check(ctx) // back within the grace: the clock starts over
	hub.set("alice", false)
	c.t = c.t.Add(time.Minute)
	w.Check(ctx)
	if s := f.stopped(); len(s) != 1 {
		t.Fatalf("alice's clusters stopped while her server came back: %v", s)
	}
	c.t = c.t.Add(time.Minute)
	w.Check(ctx)
	s = f.stopped()
	if len(s) != 3 || s["a1"] == "" || s["a2"] == "" || s["c1"] != "" || s["s1"] != "" {
		t.Fatalf("stops %v, want alice's two and bob's", s)
	}
	for _, u := range hub.asked {
		if u == "service:cron" {
			t.Fatal("the hub was asked about a service")
		}
	}
	// Finished clusters leave no state behind.
	f.mu.Lock()
	f.cs = f.cs[len(f.cs)-1:]
	f.mu.Unlock()
	w.Check(ctx)
	if len(w.seen)+len(w.hubGone)+len(w.asked) != 0 {
		t.Fatalf("state kept for finished clusters: %d %d %d", len(w.seen), len(w.hubGone), len(w.asked))
	}
}

func TestParseCounts(t *testing.T) {
	for _, tc := range []struct {
		in      string
		clients int
		busy    bool
		err     bool
	}{
		{`{"clients": 1, "processing": 0, "waiting": 0}`, 0, false, false},
		{`{"clients": 3, "processing": 2}`, 2, true, false},
		{`{"clients": 0, "waiting": 1}`, 0, true, false},
		{`{"clients": -4}`, 0, false, true},
		{`[1]`, 0, false, true},
		{`{"clients": "x"}`, 0, false, true},
		{strings.Repeat(" ", maxCounts+1), 0, false, true},
	} {
		c, err := parseCounts([]byte(tc.in))
		if (err != nil) != tc.err || (err == nil && (c.clients() != tc.clients || c.busy() != tc.busy)) {
			t.Errorf("parseCounts(%.40q) = %+v, %v", tc.in, c, err)
		}
	}
}

func FuzzParseCounts(f *testing.F) {
	f.Add([]byte(`{"clients": 2, "processing": 1, "waiting": 0}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseCounts(b)
		if err == nil && (c.clients() < 0 || c.Processing < 0 || c.Waiting < 0) {
			t.Fatalf("accepted negative counts: %+v", c)
		}
	})
}

// The scheduler's address and reply are the tenant's: the watcher never
// follows a redirect, and without the page it checks only clusters that
// have a last-client rule.
func TestWatcherAsksOnlyWhatItNeeds(t *testing.T) {
	var hits atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		fmt.Fprint(w, `{"clients": 1}`)
	}))
	t.Cleanup(target.Close)
	redirect := httptest.NewServer(http.RedirectHandler(target.URL+"/json/counts.json", http.StatusFound))
	t.Cleanup(redirect.Close)
	var clients, processing atomic.Int64
	clients.Store(1)
	f := &fakeClusters{cs: []*cluster.Cluster{
		running("redirects", "eve", redirect.URL, time.Minute),
		running("norule", "eve", dashboard(t, &clients, &processing), 0),
	}}
	w := New(Config{Clusters: f, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	w.Check(t.Context())
	if a, ok := w.Activity("redirects"); !ok || a.Clients != -1 || hits.Load() != 0 {
		t.Fatalf("redirect followed: %+v, %d hits", a, hits.Load())
	}
	if _, ok := w.Activity("norule"); ok {
		t.Fatal("checked a cluster without a rule while the page is off")
	}
}
