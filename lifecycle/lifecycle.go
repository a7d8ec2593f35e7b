// Package lifecycle stops clusters nobody uses any more, for reasons a
// scheduler cannot see by itself: the user's JupyterHub server has
// stopped (the notebook that made them was shut down or culled), or no
// client has been connected for the cluster's last_client_timeout. It
// keeps what it learns of each running cluster (clients connected, busy
// or idle since when) for the web page. Every stop it makes is logged
// with its reason, which the backend records on the cluster.
//
// Typical use:
//
//	w := lifecycle.New(lifecycle.Config{Clusters: backend, Hub: hub, HubGrace: 5 * time.Minute})
//	go w.Run(ctx)
//	a, ok := w.Activity(name)
package lifecycle

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

// Clusters is the part of a backend the watcher uses.
type Clusters interface {
	List(ctx context.Context, keep func(*cluster.Cluster) bool) ([]*cluster.Cluster, error)
	Stop(ctx context.Context, name string, failed bool, reason string) error
}

// Hub tells whether a user has a hub server running or starting
// (auth.JupyterHub implements it).
type Hub interface {
	ServerRunning(ctx context.Context, user string) (bool, error)
}

// Config configures a Watcher.
type Config struct {
	Clusters Clusters
	// Period is the time between checks; zero means 15 s.
	Period time.Duration
	// Dial reaches the schedulers' dashboards (json/counts.json), as the
	// proxy does; nil means a plain dialer. Requests have a 5 s timeout,
	// never use an HTTP proxy and never follow a redirect (the address and
	// the reply are the tenant's).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// ObserveAll checks every running cluster (the web page shows their
	// activity); false checks only those with a last_client_timeout.
	ObserveAll bool
	// Hub, if set, stops every active cluster of a user who has had no
	// running hub server for HubGrace (zero means 5 minutes).
	Hub      Hub
	HubGrace time.Duration
	// Parallel bounds concurrent calls to schedulers and the hub; zero
	// means 8.
	Parallel int
	Logger   *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Watcher checks active clusters every Period.
type Watcher struct {
	cfg    Config
	client *http.Client

	mu      sync.Mutex
	seen    map[string]*cluster.Activity // running clusters, by name
	hubGone map[string]time.Time         // users without a server, since
	asked   map[string]bool              // clusters this watcher stopped
}

// New applies defaults.
func New(cfg Config) *Watcher {
	if cfg.Period <= 0 {
		cfg.Period = 15 * time.Second
	}
	if cfg.HubGrace <= 0 {
		cfg.HubGrace = 5 * time.Minute
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client := &http.Client{Timeout: 5 * time.Second,
		Transport:     &http.Transport{Proxy: nil, DialContext: cfg.Dial, MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &Watcher{cfg: cfg, client: client, seen: map[string]*cluster.Activity{}, hubGone: map[string]time.Time{}, asked: map[string]bool{}}
}

// Run checks every Period until ctx ends.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Period)
	defer t.Stop()
	for {
		w.Check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Activity returns what the last check saw of a running cluster.
func (w *Watcher) Activity(name string) (cluster.Activity, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	a, ok := w.seen[name]
	if !ok {
		return cluster.Activity{}, false
	}
	return *a, true
}

// Check runs one round: observe every running cluster, then apply the
// last-client rule and the hub rule.
func (w *Watcher) Check(ctx context.Context) {
	active, err := w.cfg.Clusters.List(ctx, func(c *cluster.Cluster) bool {
		return c.Status == cluster.Pending || c.Status == cluster.Running
	})
	if err != nil {
		w.cfg.Logger.WarnContext(ctx, "lifecycle: list clusters", "err", err)
		return
	}
	w.observe(ctx, active)
	w.lastClientRule(ctx, active)
	if w.cfg.Hub != nil {
		w.hubRule(ctx, active)
	}
}

// observe fetches each running cluster's counts, and forgets clusters
// that are no longer active (the maps stay as large as the active set).
func (w *Watcher) observe(ctx context.Context, active []*cluster.Cluster) {
	now := w.cfg.Now()
	type result struct {
		name string
		c    counts
		err  error
	}
	var running []*cluster.Cluster
	for _, c := range active {
		if c.Status == cluster.Running && c.DashboardAddress != "" && (w.cfg.ObserveAll || c.Config.LastClientTimeout > 0) {
			running = append(running, c)
		}
	}
	results := make([]result, len(running))
	w.parallel(len(running), func(i int) {
		c := running[i]
		cs, err := fetchCounts(ctx, w.client, c.DashboardAddress)
		results[i] = result{c.Name, cs, err}
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	keep := map[string]bool{}
	for _, c := range active {
		keep[c.Name] = true
	}
	for name := range w.seen {
		if !keep[name] {
			delete(w.seen, name)
		}
	}
	for name := range w.asked {
		if !keep[name] {
			delete(w.asked, name)
		}
	}
	for _, r := range results {
		a := w.seen[r.name]
		if a == nil {
			a = &cluster.Activity{IdleSince: now, LastClient: now}
			w.seen[r.name] = a
		}
		if r.err != nil {
			a.Clients = -1
			w.cfg.Logger.DebugContext(ctx, "lifecycle: scheduler did not answer", "cluster", r.name, "err", r.err)
			continue
		}
		a.Checked, a.Clients, a.Busy = now, r.c.clients(), r.c.busy()
		if a.Clients > 0 {
			a.LastClient = now
		}
		switch {
		case a.Busy:
			a.IdleSince = time.Time{}
		case a.IdleSince.IsZero():
			a.IdleSince = now
		}
	}
}

// lastClientRule stops a running cluster whose last_client_timeout has
// passed since a client was last seen; only a scheduler that answered
// the last check (with no client) is stopped, never one unknown.
func (w *Watcher) lastClientRule(ctx context.Context, active []*cluster.Cluster) {
	now := w.cfg.Now()
	for _, c := range active {
		limit := time.Duration(c.Config.LastClientTimeout)
		if limit <= 0 || c.Status != cluster.Running {
			continue
		}
		a, ok := w.Activity(c.Name)
		if !ok || a.Clients != 0 || now.Sub(a.LastClient) < limit {
			continue
		}
		w.stop(ctx, c, fmt.Sprintf("no client connected for %s (last_client_timeout)", limit))
	}
}

// hubRule asks the hub about each user with active clusters and stops
// them all once the user has had no running server for the grace
// period. An error leaves the user's state as it was.
func (w *Watcher) hubRule(ctx context.Context, active []*cluster.Cluster) {
	byUser := map[string][]*cluster.Cluster{}
	var users []string
	for _, c := range active {
		if strings.Contains(c.Username, ":") { // services have no servers
			continue
		}
		if _, ok := byUser[c.Username]; !ok {
			users = append(users, c.Username)
		}
		byUser[c.Username] = append(byUser[c.Username], c)
	}
	running := make([]bool, len(users))
	errs := make([]error, len(users))
	w.parallel(len(users), func(i int) {
		running[i], errs[i] = w.cfg.Hub.ServerRunning(ctx, users[i])
	})
	now := w.cfg.Now()
	var stops []*cluster.Cluster
	w.mu.Lock()
	for user := range w.hubGone {
		if _, ok := byUser[user]; !ok {
			delete(w.hubGone, user)
		}
	}
	for i, user := range users {
		switch {
		case errs[i] != nil:
			w.cfg.Logger.WarnContext(ctx, "lifecycle: cannot ask the hub about a user's servers", "user", user, "err", errs[i])
		case running[i]:
			delete(w.hubGone, user)
		case w.hubGone[user].IsZero():
			w.hubGone[user] = now
		case now.Sub(w.hubGone[user]) >= w.cfg.HubGrace:
			stops = append(stops, byUser[user]...)
		}
	}
	w.mu.Unlock()
	for _, c := range stops {
		w.stop(ctx, c, fmt.Sprintf("the user's JupyterHub server stopped (no server for %s)", w.cfg.HubGrace))
	}
}

// stop asks the backend to stop c once, logging the reason.
func (w *Watcher) stop(ctx context.Context, c *cluster.Cluster, reason string) {
	w.mu.Lock()
	done := w.asked[c.Name]
	w.asked[c.Name] = true
	w.mu.Unlock()
	if done {
		return
	}
	w.cfg.Logger.InfoContext(ctx, "stopping cluster automatically", "cluster", c.Name, "user", c.Username, "reason", reason)
	if err := w.cfg.Clusters.Stop(ctx, c.Name, false, reason); err != nil {
		w.cfg.Logger.WarnContext(ctx, "lifecycle: stop cluster", "cluster", c.Name, "err", err)
		w.mu.Lock()
		delete(w.asked, c.Name) // try again next round
		w.mu.Unlock()
	}
}

// parallel runs f(0..n-1) with at most Parallel at once.
func (w *Watcher) parallel(n int, f func(i int)) {
	sem := make(chan struct{}, w.cfg.Parallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}
