package proxy

import (
	"context"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
)

// Route is where one cluster's traffic goes.
type Route struct {
	// Scheduler is the TCP address for SNI passthrough ("host:port").
	Scheduler string
	// Dashboard is the dashboard base URL ("http://host:port"); empty
	// means the cluster has no dashboard.
	Dashboard string
}

// Table maps cluster names to routes. Readers never lock: every update
// copies the map and swaps it in atomically.
type Table struct {
	mu     sync.Mutex // serialises writers
	routes atomic.Pointer[map[string]Route]
}

// NewTable returns an empty table.
func NewTable() *Table {
	t := &Table{}
	t.routes.Store(&map[string]Route{})
	return t
}

// SetCluster adds or replaces a cluster's routes. scheduler may carry a
// tls:// prefix, which is dropped.
func (t *Table) SetCluster(name, scheduler, dashboard string) {
	r := Route{Scheduler: strings.TrimPrefix(scheduler, "tls://"), Dashboard: dashboard}
	t.update(name, func(old Route, ok bool) bool { return !ok || old != r },
		func(m map[string]Route) { m[name] = r })
}

// RemoveCluster drops a cluster's routes.
func (t *Table) RemoveCluster(name string) {
	t.update(name, func(_ Route, ok bool) bool { return ok },
		func(m map[string]Route) { delete(m, name) })
}

// update applies fn to a copy of the table, unless changes says that
// name's current route needs none (most watch events change no route, and
// a copy costs the whole table).
func (t *Table) update(name string, changes func(Route, bool) bool, fn func(map[string]Route)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := *t.routes.Load()
	if old, ok := cur[name]; !changes(old, ok) {
		return
	}
	m := maps.Clone(cur)
	fn(m)
	t.routes.Store(&m)
}

// Lookup returns a cluster's route.
func (t *Table) Lookup(name string) (Route, bool) {
	r, ok := (*t.routes.Load())[name]
	return r, ok
}

// Len is the number of routed clusters.
func (t *Table) Len() int { return len(*t.routes.Load()) }

// Replace swaps in a whole new set of routes at once (a full fetch, as a
// watch-based source does after a resync).
func (t *Table) Replace(routes map[string]Route) {
	m := make(map[string]Route, len(routes))
	for name, r := range routes {
		r.Scheduler = strings.TrimPrefix(r.Scheduler, "tls://")
		m[name] = r
	}
	t.mu.Lock()
	t.routes.Store(&m)
	t.mu.Unlock()
}

// RouteSource feeds a Table from somewhere else than the local backend,
// which calls SetCluster/RemoveCluster itself: for example a Kubernetes
// watch of DaskCluster objects. Run does a full fetch (Replace), then
// applies changes until ctx ends.
type RouteSource interface {
	Run(ctx context.Context, t *Table) error
}
