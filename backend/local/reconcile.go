package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

// step is one action of a reconcile pass, run without the lock.
type step func(ctx context.Context) error

func again(context.Context) error { return nil }

// reconcile moves a cluster step by step from its status towards its
// target until nothing is left to do. A failing step is retried by the
// caller with backoff.
func (b *Backend) reconcile(ctx context.Context, name string) error {
	for {
		s := b.nextStep(name)
		if s == nil {
			return nil
		}
		if err := s(ctx); err != nil {
			return err
		}
	}
}

// nextStep decides what to do next under the lock; it returns nil when the
// cluster is where it should be.
func (b *Backend) nextStep(name string) step {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.clusters[name]
	if r == nil || r.Status >= jobStopped {
		return nil
	}
	switch {
	case r.Target == jobRunning && r.Status == jobCreated:
		return b.launchScheduler(r)
	case r.Target == jobRunning && r.Status == jobSubmitted:
		if r.SchedulerAddress == "" {
			return nil // the first heartbeat will queue us again
		}
		r.Status = jobRunning
		b.persist(r)
		b.notify()
		if b.cfg.OnRunning != nil {
			b.cfg.OnRunning(time.Since(time.UnixMilli(r.StartTime)))
		}
		b.log.Info("cluster running", "cluster", r.Name, "scheduler", r.SchedulerAddress)
		return again
	case r.Target == jobRunning && r.Status == jobRunning:
		return b.runningStep(r)
	case r.Status < jobClosing:
		for _, w := range r.Workers {
			if w.Target == jobRunning {
				w.Target = jobStopped
			}
		}
		r.Status = jobClosing
		b.persist(r)
		b.notify()
		return again
	default: // closing
		return b.closeStep(r)
	}
}

// runningStep adds routes, enforces the failure limit, creates workers up
// to the wanted count and launches or stops workers as their targets say.
func (b *Backend) runningStep(r *record) step {
	if !r.routed && b.cfg.Routes != nil {
		b.cfg.Routes.SetCluster(r.Name, r.SchedulerAddress, r.DashboardAddress)
		r.routed = true
	}
	if r.FailureCount >= b.cfg.WorkerStartFailureLimit {
		b.setTarget(r, true, fmt.Sprintf("%d consecutive worker start failures", r.FailureCount))
		return again
	}
	for range r.Count - r.activeWorkers() {
		n := cluster.NewName()
		r.Workers[n] = &worker{Name: n, Status: jobCreated, Target: jobRunning, StartTime: time.Now().UnixMilli()}
	}
	var launch, stop []*worker
	for _, w := range r.Workers {
		switch {
		case w.Status == jobCreated && w.Target == jobRunning:
			launch = append(launch, w)
		case w.Target >= jobStopped && w.Status < jobStopped:
			stop = append(stop, w)
		}
	}
	if len(launch) == 0 && len(stop) == 0 {
		return nil
	}
	b.persist(r)
	spec := b.workerSpecs(r, launch)
	return func(ctx context.Context) error {
		b.launchWorkers(r.Name, spec)
		b.stopWorkers(ctx, r.Name, stop)
		return nil
	}
}

// closeStep stops every worker, then the scheduler, removes the workdir
// and routes, and finishes the cluster.
func (b *Backend) closeStep(r *record) step {
	var ws []*worker
	for _, w := range r.Workers {
		if w.Status < jobStopped {
			ws = append(ws, w)
		}
	}
	name, pid, workdir := r.Name, r.PID, r.Workdir
	return func(ctx context.Context) error {
		b.stopWorkers(ctx, name, ws)
		if pid > 0 {
			if err := b.procs.stop(ctx, pid, name, b.cfg.StopTimeouts); err != nil {
				b.log.Warn("stop scheduler", "cluster", name, "pid", pid, "err", err)
			}
		}
		if workdir != "" {
			if err := os.RemoveAll(workdir); err != nil {
				b.log.Warn("remove workdir", "cluster", name, "err", err)
			}
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.cfg.Routes != nil {
			b.cfg.Routes.RemoveCluster(name)
		}
		r.routed = false
		r.Status, r.StopTime = r.Target, time.Now().UnixMilli()
		clear(r.Workers)
		b.persist(r)
		b.notify()
		b.log.Info("cluster finished", "cluster", name, "status", r.publicStatus(), "reason", r.Reason)
		return nil
	}
}

// stopWorkers signals the given workers in parallel and records them as
// finished (dropping their records: nothing refers to them any more).
func (b *Backend) stopWorkers(ctx context.Context, name string, ws []*worker) {
	var wg sync.WaitGroup
	for _, w := range ws {
		b.mu.RLock()
		pid, launched := w.PID, w.Status > jobCreated
		b.mu.RUnlock()
		if launched && pid > 0 {
			wg.Go(func() {
				if err := b.procs.stop(ctx, pid, name, b.cfg.StopTimeouts); err != nil {
					b.log.Warn("stop worker", "cluster", name, "worker", w.Name, "err", err)
				}
			})
		}
	}
	wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.clusters[name]
	if r == nil {
		return
	}
	for _, w := range ws {
		delete(r.Workers, w.Name)
	}
	b.persist(r)
}

// launchScheduler writes the workdir and TLS files and starts the
// scheduler; the caller holds b.mu.
func (b *Backend) launchScheduler(r *record) step {
	workdir := filepath.Join(b.cfg.Dir, r.Name)
	r.Workdir = workdir
	b.persist(r)
	l := cluster.NewLaunch(r.Config, cluster.RoleScheduler, b.placement(r))
	spec := procSpec{env: environ(l.Env), dir: workdir, logFile: filepath.Join(workdir, "logs", "scheduler.log")}
	spec.argv, spec.attr = b.wrap(workdir, l.Argv)
	name, cert, key, username := r.Name, r.TLSCert, r.TLSKey, r.Username
	spec.onExit = func(pid int, err error) { b.onSchedulerExit(name, pid, err) }
	return func(ctx context.Context) error {
		err := writeWorkdir(workdir, cert, key)
		if err == nil {
			err = b.asAccount(&spec, username, workdir)
		}
		// Start under the lock so the exit callback sees the recorded pid.
		b.mu.Lock()
		defer b.mu.Unlock()
		pid := 0
		if err == nil {
			pid, err = b.procs.start(spec)
		}
		r.Status, r.PID = jobSubmitted, pid
		if err != nil {
			b.setTarget(r, true, "scheduler launch failed: "+err.Error())
			b.log.ErrorContext(ctx, "launch scheduler", "cluster", name, "err", err)
			return nil
		}
		b.persist(r)
		return nil
	}
}

func writeWorkdir(workdir, cert, key string) error {
	for _, d := range []string{workdir, filepath.Join(workdir, ".certs"), filepath.Join(workdir, "logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	for file, data := range map[string]string{"dask.crt": cert, "dask.pem": key} {
		f, err := openBeneath(workdir, filepath.Join(".certs", file), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue // a retried launch
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
		_, err = f.WriteString(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write %s: %w", file, err)
		}
	}
	return nil
}

type workerLaunch struct {
	w    *worker
	spec procSpec
}

// workerSpecs builds the argv and env of each worker; the caller holds b.mu.
func (b *Backend) workerSpecs(r *record, ws []*worker) []workerLaunch {
	out := make([]workerLaunch, 0, len(ws))
	p := b.placement(r)
	for _, w := range ws {
		p.WorkerName = w.Name
		l := cluster.NewLaunch(r.Config, cluster.RoleWorker, p)
		spec := procSpec{env: environ(l.Env), dir: r.Workdir, logFile: filepath.Join(r.Workdir, "logs", "worker-"+w.Name+".log")}
		spec.argv, spec.attr = b.wrap(r.Workdir, l.Argv)
		if err := b.asAccount(&spec, r.Username, ""); err != nil {
			b.log.Warn("worker account", "cluster", r.Name, "err", err)
			continue
		}
		out = append(out, workerLaunch{w: w, spec: spec})
	}
	return out
}

// launchWorkers starts workers under the lock, so their exit callbacks
// see the recorded pids.
func (b *Backend) launchWorkers(name string, ls []workerLaunch) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.clusters[name]
	if r == nil {
		return
	}
	for _, l := range ls {
		if l.w.Target != jobRunning {
			continue // stopped while we were getting here
		}
		l.spec.onExit = func(_ int, err error) { b.onWorkerExit(name, l.w.Name, err) }
		pid, err := b.procs.start(l.spec)
		l.w.Status, l.w.PID = jobSubmitted, pid
		if err != nil {
			l.w.Target = jobFailed
			r.FailureCount++
			b.log.Warn("launch worker", "cluster", name, "worker", l.w.Name, "err", err)
		}
	}
	b.persist(r)
}

// placement is where this backend runs r's processes: on loopback, any
// free ports, credentials in the work directory, the token itself in the
// environment, and the gateway's inherited variables plus USER.
func (b *Backend) placement(r *record) cluster.Placement {
	p := cluster.Placement{ClusterName: r.Name, APIURL: b.cfg.APIURL, Token: r.Token,
		CredentialsDir: filepath.Join(r.Workdir, ".certs") + "/", SchedulerHost: "127.0.0.1",
		DashboardAddress: "127.0.0.1:0", APIAddress: "127.0.0.1:0", HeartbeatPeriod: b.cfg.HeartbeatPeriod,
		SchedulerAddress: r.SchedulerAddress}
	for _, k := range b.cfg.InheritedEnv {
		if v, ok := os.LookupEnv(k); ok {
			p.Env = append(p.Env, cluster.EnvVar{Name: k, Value: v})
		}
	}
	p.Env = append(p.Env, cluster.EnvVar{Name: "USER", Value: r.Username},
		// Spill and temporary files stay in the cluster's own directory.
		cluster.EnvVar{Name: "TMPDIR", Value: r.Workdir}, cluster.EnvVar{Name: "DASK_TEMPORARY_DIRECTORY", Value: r.Workdir})
	return p
}

// asAccount makes spec run as user's OS account when Config.Accounts is
// set: its credential, HOME in the work dir, and (given workdir, at the
// scheduler's launch) the work dir handed over to it.
func (b *Backend) asAccount(spec *procSpec, username, workdir string) error {
	if b.cfg.Accounts == nil {
		return nil
	}
	uid, gid, err := b.cfg.Accounts.Lookup(username)
	if err != nil {
		return err
	}
	if workdir != "" {
		if err := chownTree(workdir, uid, gid); err != nil {
			return fmt.Errorf("hand the work dir to uid %d: %w", uid, err)
		}
	}
	if spec.attr == nil {
		spec.attr = &syscall.SysProcAttr{Setsid: true}
	}
	spec.attr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	spec.env = append(spec.env, "HOME="+spec.dir)
	spec.owner = &[2]int{uid, gid}
	return nil
}

// wrap applies Config.Wrap (the sandbox launcher), if any.
func (b *Backend) wrap(workdir string, argv []string) ([]string, *syscall.SysProcAttr) {
	if b.cfg.Wrap == nil {
		return argv, nil
	}
	return b.cfg.Wrap(workdir, argv)
}

// environ is a launch's environment as a process gets it.
func environ(env []cluster.EnvVar) []string {
	out := make([]string, len(env))
	for i, e := range env {
		out[i] = e.Name + "=" + e.Value
	}
	return out
}

// onSchedulerExit fails a cluster whose scheduler exits while it should run.
func (b *Backend) onSchedulerExit(name string, pid int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.clusters[name]
	if r == nil || r.PID != pid || r.Target != jobRunning {
		return
	}
	b.setTarget(r, true, fmt.Sprintf("scheduler exited unexpectedly (%v)", err))
}

// onWorkerExit handles a worker process that exited on its own: expected
// (retired) workers are done, others are failed and replaced; one that
// never connected counts towards the failure limit.
func (b *Backend) onWorkerExit(name, wname string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.clusters[name]
	if r == nil || r.Target != jobRunning {
		return
	}
	w := r.Workers[wname]
	if w == nil || w.Target != jobRunning {
		return
	}
	switch {
	case w.CloseExpected:
		w.Target = jobStopped
	case w.Status == jobSubmitted:
		w.Target = jobFailed
		r.FailureCount++
		b.log.Warn("worker exited before connecting", "cluster", name, "worker", wname, "err", err)
	default:
		w.Target = jobFailed
		b.log.Warn("worker exited unexpectedly", "cluster", name, "worker", wname, "err", err)
	}
	b.persist(r)
	b.queue.add(name)
}
