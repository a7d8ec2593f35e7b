package local

import (
	"context"
	"time"
)

// checkLoop runs the timeout rules, the liveness poll of processes and the
// purge of old finished clusters until ctx ends.
func (b *Backend) checkLoop(ctx context.Context) {
	period := min(20*time.Second, min(b.cfg.HeartbeatTimeout, b.cfg.ClusterStartTimeout, b.cfg.WorkerStartTimeout)/2)
	timeouts := time.NewTicker(period)
	status := time.NewTicker(b.cfg.StatusPeriod)
	cleanup := time.NewTicker(b.cfg.CleanupPeriod)
	defer timeouts.Stop()
	defer status.Stop()
	defer cleanup.Stop()
	b.purge(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-timeouts.C:
			b.checkTimeouts(now)
		case <-status.C:
			b.checkAlive()
		case now := <-cleanup.C:
			b.purge(now)
		}
	}
}

// checkTimeouts fails clusters that never started or stopped heartbeating,
// and workers that never connected (not counted as failures).
func (b *Backend) checkTimeouts(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.clusters {
		if r.Target != jobRunning {
			continue
		}
		age := now.Sub(time.UnixMilli(r.StartTime))
		switch limit := time.Duration(r.Config.MaxLifetime); {
		case limit > 0 && age > limit:
			b.setTarget(r, false, "max_lifetime of "+limit.String()+" reached")
		case r.Status <= jobSubmitted && age > b.cfg.ClusterStartTimeout:
			b.setTarget(r, true, "cluster did not start within "+b.cfg.ClusterStartTimeout.String())
		case r.Status == jobRunning && now.Sub(r.lastHeartbeat) > b.cfg.HeartbeatTimeout:
			b.setTarget(r, true, "no heartbeat from the scheduler for "+b.cfg.HeartbeatTimeout.String())
		case r.Status == jobRunning:
			b.failSlowWorkers(r, now)
		}
	}
}

func (b *Backend) failSlowWorkers(r *record, now time.Time) {
	changed := false
	for _, w := range r.Workers {
		if w.Status == jobSubmitted && w.Target == jobRunning && now.Sub(time.UnixMilli(w.StartTime)) > b.cfg.WorkerStartTimeout {
			w.Target, changed = jobFailed, true
		}
	}
	if changed {
		b.persist(r)
		b.queue.add(r.Name)
	}
}

// checkAlive polls the processes of active clusters. Children report
// their exit at once; this catches processes adopted after a restart.
func (b *Backend) checkAlive() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.clusters {
		if r.Target != jobRunning || r.Status < jobSubmitted {
			continue
		}
		if !b.procs.alive(r.PID, r.Name) {
			b.setTarget(r, true, "scheduler process is gone")
			continue
		}
		changed := false
		for _, w := range r.Workers {
			if w.Target != jobRunning || w.Status < jobSubmitted || b.procs.alive(w.PID, r.Name) {
				continue
			}
			w.Target, changed = jobFailed, true
			if w.CloseExpected {
				w.Target = jobStopped
			} else if w.Status == jobSubmitted {
				r.FailureCount++
			}
		}
		if changed {
			b.persist(r)
			b.queue.add(r.Name)
		}
	}
}

// purge deletes finished clusters older than ClusterMaxAge.
func (b *Backend) purge(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, r := range b.clusters {
		if r.Status >= jobStopped && r.StopTime > 0 && now.Sub(time.UnixMilli(r.StopTime)) > b.cfg.ClusterMaxAge {
			delete(b.clusters, name)
			if b.cfg.Store != nil {
				if err := b.cfg.Store.Delete(bucket, name); err != nil {
					b.log.Error("purge cluster", "cluster", name, "err", err)
				}
			}
		}
	}
}
