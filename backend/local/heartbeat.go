package local

import (
	"context"
	"slices"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

// Heartbeat applies a scheduler heartbeat: addresses (before RUNNING
// only), the wanted worker count (clamped to the cluster's WorkerLimit), and
// worker accounting. Heartbeats for unknown or stopping clusters are
// ignored.
func (b *Backend) Heartbeat(_ context.Context, name string, hb cluster.Heartbeat) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.clusters[name]
	if r == nil || r.Target != jobRunning || r.Status >= jobClosing {
		return nil
	}
	r.lastHeartbeat = time.Now()
	changed := false
	if r.Status < jobRunning && hb.SchedulerAddress != "" && r.SchedulerAddress == "" {
		r.SchedulerAddress, r.DashboardAddress, r.APIAddress = hb.SchedulerAddress, hb.DashboardAddress, hb.APIAddress
		changed = true
	}
	count := min(max(hb.Count, 0), r.Config.WorkerLimit())
	if count != r.Count {
		r.Count, changed = count, true
	}
	workersChanged, connected := classifyWorkers(r, hb)
	if connected {
		r.FailureCount = 0
	}
	if changed || workersChanged {
		b.persist(r)
		b.queue.add(name)
	}
	return nil
}

// classifyWorkers marks workers the scheduler reports as connected,
// closing or closed, and stops excess pending workers (CREATED first).
func classifyWorkers(r *record, hb cluster.Heartbeat) (changed, connected bool) {
	closing, active, closed := toSet(hb.ClosingWorkers), toSet(hb.ActiveWorkers), toSet(hb.ClosedWorkers)
	var pending []*worker
	for _, w := range r.Workers {
		if w.Status >= jobStopped || w.Target != jobRunning {
			continue
		}
		switch {
		case closing[w.Name] || active[w.Name]:
			if w.Status != jobRunning {
				w.Status, connected, changed = jobRunning, true, true
			}
			if closing[w.Name] && !w.CloseExpected {
				w.CloseExpected, changed = true, true
			}
		case closed[w.Name]:
			w.Target, changed = jobFailed, true
			if w.CloseExpected {
				w.Target = jobStopped
			}
		default:
			pending = append(pending, w)
		}
	}
	excess := len(hb.ActiveWorkers) + len(pending) - r.Count
	if excess > 0 {
		slices.SortFunc(pending, func(a, b *worker) int { return int(a.Status) - int(b.Status) })
		for _, w := range pending[:min(excess, len(pending))] {
			w.Target, changed = jobStopped, true
		}
	}
	return changed, connected
}

func toSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
