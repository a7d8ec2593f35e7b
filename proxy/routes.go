package proxy

import (
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
	t.update(func(m map[string]Route) {
		m[name] = Route{Scheduler: strings.TrimPrefix(scheduler, "tls://"), Dashboard: dashboard}
	})
}

// RemoveCluster drops a cluster's routes.
func (t *Table) RemoveCluster(name string) {
	t.update(func(m map[string]Route) { delete(m, name) })
}

func (t *Table) update(fn func(map[string]Route)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := maps.Clone(*t.routes.Load())
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
