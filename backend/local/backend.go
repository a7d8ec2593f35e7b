// Package local runs each Dask cluster as local processes: a dask-scheduler
// with the dask_gateway.scheduler_preload preload and dask-workers, each in
// its own session, driven by a desired-versus-observed reconcile loop and
// persisted in the embedded store so a restarted gateway re-adopts them.
//
// Typical use:
//
//	b, err := local.New(local.Config{Dir: dir, APIURL: "http://127.0.0.1:8000/api", Store: db, Routes: table})
//	go b.Run(ctx)
//	c, err := b.Create(ctx, cluster.CreateRequest{Username: "alice", Config: cfg})
//	c, err = b.Wait(ctx, c.Name) // until RUNNING, stopping or finished
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/store"
)

// RouteSink receives the proxy routes of running clusters.
type RouteSink interface {
	// SetCluster routes SNI daskgateway-<name> to scheduler ("tls://h:p")
	// and /clusters/<name>/ to dashboard ("http://h:p", may be empty).
	SetCluster(name, scheduler, dashboard string)
	// RemoveCluster drops both routes.
	RemoveCluster(name string)
}

// Config configures the backend. Zero durations take upstream's defaults.
type Config struct {
	Logger *slog.Logger
	// Dir holds one working directory per cluster.
	Dir string
	// Store persists records; nil keeps them in memory only.
	Store *store.DB
	// APIURL is DASK_GATEWAY_API_URL for schedulers, ending in /api.
	APIURL string
	// InheritedEnv names the gateway variables copied into cluster processes.
	InheritedEnv []string
	// Wrap, if set, turns a cluster process's argv into the one started
	// (the sandbox launcher around it), given its cluster's workdir, and
	// gives the attributes to start it with (new namespaces); nil
	// attributes mean a new session only.
	Wrap func(workdir string, argv []string) ([]string, *syscall.SysProcAttr)
	// Accounts, if set, runs each user's cluster processes as that user's
	// OS account (isolation "user"; the gateway runs as root): the work
	// dir and its files are theirs, mode 0700.
	Accounts *Accounts
	// Routes gets proxy routes; nil means none.
	Routes RouteSink
	// OnRunning is called when a cluster first reaches RUNNING, with the
	// time since it was created.
	OnRunning func(latency time.Duration)

	ClusterStartTimeout time.Duration // default 60s
	WorkerStartTimeout  time.Duration // default 60s
	HeartbeatPeriod     time.Duration // default 15s; passed to the scheduler
	HeartbeatTimeout    time.Duration // default 2 × HeartbeatPeriod
	StatusPeriod        time.Duration // liveness poll of adopted processes, default 30s
	// WorkerStartFailureLimit fails a cluster after this many consecutive
	// worker launch failures; default 3.
	WorkerStartFailureLimit int
	// StopTimeouts wait after SIGINT, SIGTERM, SIGKILL; default 10s, 5s, 5s.
	StopTimeouts [3]time.Duration
	// StopOnShutdown fails every active cluster when the gateway stops.
	StopOnShutdown bool
	// ClusterMaxAge purges finished clusters after this long; default 24h.
	ClusterMaxAge time.Duration
	// CleanupPeriod is how often that purge runs; default 10m.
	CleanupPeriod time.Duration
	// Parallelism is the number of concurrent reconcilers; default 20.
	Parallelism int
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ClusterStartTimeout, 60*time.Second)
	def(&c.WorkerStartTimeout, 60*time.Second)
	def(&c.HeartbeatPeriod, 15*time.Second)
	def(&c.HeartbeatTimeout, 2*c.HeartbeatPeriod)
	def(&c.StatusPeriod, 30*time.Second)
	def(&c.StopTimeouts[0], 10*time.Second)
	def(&c.StopTimeouts[1], 5*time.Second)
	def(&c.StopTimeouts[2], 5*time.Second)
	def(&c.ClusterMaxAge, 24*time.Hour)
	def(&c.CleanupPeriod, 10*time.Minute)
	if c.WorkerStartFailureLimit <= 0 {
		c.WorkerStartFailureLimit = 3
	}
	if c.Parallelism <= 0 {
		c.Parallelism = 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.InheritedEnv == nil {
		c.InheritedEnv = []string{"PATH", "PYTHONPATH", "CONDA_ROOT", "CONDA_DEFAULT_ENV", "VIRTUAL_ENV", "LANG", "LC_ALL"}
	}
}

// Backend is the local-process backend.
type Backend struct {
	cfg   Config
	log   *slog.Logger
	procs *procs
	queue *queue

	mu       sync.RWMutex
	clusters map[string]*record
	changed  chan struct{} // closed and replaced whenever a status changes

	running    sync.WaitGroup
	stopChecks context.CancelFunc
}

// New checks cfg, loads persisted clusters and returns the backend; call
// Run to start reconciling.
func New(cfg Config) (*Backend, error) {
	cfg.setDefaults()
	if cfg.Dir == "" || cfg.APIURL == "" {
		return nil, errors.New("local backend: Dir and APIURL are required")
	}
	b := &Backend{cfg: cfg, log: cfg.Logger, procs: newProcs(), queue: newQueue(),
		clusters: map[string]*record{}, changed: make(chan struct{})}
	if err := b.load(); err != nil {
		return nil, err
	}
	return b, nil
}

const bucket = "clusters"

func (b *Backend) load() error {
	if b.cfg.Store == nil {
		return nil
	}
	now := time.Now()
	return b.cfg.Store.ForEach(bucket, func(name string, v []byte) error {
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode cluster %s: %w", name, err)
		}
		r.lastHeartbeat = now
		b.clusters[name] = &r
		if r.Status < jobStopped {
			b.queue.add(name)
		}
		return nil
	})
}

// persist writes r; the caller holds b.mu.
func (b *Backend) persist(r *record) {
	if b.cfg.Store == nil {
		return
	}
	v, err := json.Marshal(r)
	if err == nil {
		err = b.cfg.Store.Put(bucket, r.Name, v)
	}
	if err != nil {
		b.log.Error("persist cluster", "cluster", r.Name, "err", err)
	}
}

// notify wakes long-pollers; the caller holds b.mu.
func (b *Backend) notify() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// Create records a new cluster (PENDING) and queues its launch.
func (b *Backend) Create(ctx context.Context, req cluster.CreateRequest) (*cluster.Cluster, error) {
	name := cluster.NewName()
	cert, key, err := cluster.NewKeypair(name)
	if err != nil {
		return nil, err
	}
	r := &record{
		Name: name, Username: req.Username, Token: cluster.NewName(),
		TLSCert: string(cert), TLSKey: string(key),
		Status: jobCreated, Target: jobRunning,
		Options: req.Options, Config: req.Config,
		StartTime: time.Now().UnixMilli(), Workers: map[string]*worker{},
	}
	b.mu.Lock()
	b.clusters[name] = r
	b.persist(r)
	view := r.view()
	b.mu.Unlock()
	b.queue.add(name)
	b.log.InfoContext(ctx, "cluster created", "cluster", name, "user", req.Username)
	return view, nil
}

// Get returns one cluster.
func (b *Backend) Get(_ context.Context, name string) (*cluster.Cluster, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	r, ok := b.clusters[name]
	if !ok {
		return nil, cluster.ErrNotFound
	}
	return r.view(), nil
}

// List returns clusters accepted by keep, in creation order.
func (b *Backend) List(_ context.Context, keep func(*cluster.Cluster) bool) ([]*cluster.Cluster, error) {
	b.mu.RLock()
	out := make([]*cluster.Cluster, 0, len(b.clusters))
	for _, r := range b.clusters {
		if v := r.view(); keep(v) {
			out = append(out, v)
		}
	}
	b.mu.RUnlock()
	cluster.SortByStart(out)
	return out, nil
}

// Stop asks a cluster to stop (target STOPPED, or FAILED when failed is
// true, with reason) and returns at once. Stopping a finished or stopping
// cluster does nothing.
func (b *Backend) Stop(ctx context.Context, name string, failed bool, reason string) error {
	b.mu.Lock()
	r, ok := b.clusters[name]
	if !ok {
		b.mu.Unlock()
		return cluster.ErrNotFound
	}
	changed := b.setTarget(r, failed, reason)
	b.mu.Unlock()
	if changed {
		b.log.InfoContext(ctx, "cluster stop requested", "cluster", name, "failed", failed, "reason", reason)
	}
	return nil
}

// setTarget moves an active cluster towards STOPPED or FAILED; the caller
// holds b.mu.
func (b *Backend) setTarget(r *record, failed bool, reason string) bool {
	if r.Target != jobRunning {
		return false
	}
	r.Target = jobStopped
	if failed {
		r.Target = jobFailed
	}
	r.Reason = reason
	b.persist(r)
	b.notify()
	b.queue.add(r.Name)
	return true
}

// Wait blocks until the cluster is RUNNING, stopping or finished, or ctx
// ends, and returns it as it is then.
func (b *Backend) Wait(ctx context.Context, name string) (*cluster.Cluster, error) {
	for {
		b.mu.RLock()
		r, ok := b.clusters[name]
		if !ok {
			b.mu.RUnlock()
			return nil, cluster.ErrNotFound
		}
		v, ch := r.view(), b.changed
		b.mu.RUnlock()
		if v.Status != cluster.Pending {
			return v, nil
		}
		select {
		case <-ctx.Done():
			return v, nil
		case <-ch:
		}
	}
}

// Counts returns the number of clusters in each public status.
func (b *Backend) Counts() map[cluster.Status]int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := map[cluster.Status]int{}
	for _, r := range b.clusters {
		out[r.publicStatus()]++
	}
	return out
}

// Start launches the reconcilers and the periodic checks.
func (b *Backend) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	b.stopChecks = cancel
	for range b.cfg.Parallelism {
		b.running.Go(func() { b.worker(ctx) })
	}
	b.running.Go(func() { b.checkLoop(ctx) })
}

// Shutdown stops the backend. With StopOnShutdown it first fails every
// active cluster and waits, until ctx ends, for them to finish; otherwise
// the processes keep running and the next start re-adopts them.
func (b *Backend) Shutdown(ctx context.Context) {
	if b.cfg.StopOnShutdown {
		b.stopAll(ctx)
	}
	b.queue.close()
	if b.stopChecks != nil {
		b.stopChecks()
	}
	done := make(chan struct{})
	go func() { b.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (b *Backend) stopAll(ctx context.Context) {
	b.mu.Lock()
	for _, r := range b.clusters {
		b.setTarget(r, true, "gateway shut down")
	}
	b.mu.Unlock()
	for {
		b.mu.RLock()
		active := slices.ContainsFunc(mapValues(b.clusters), func(r *record) bool { return r.Status < jobStopped })
		ch := b.changed
		b.mu.RUnlock()
		if !active {
			return
		}
		select {
		case <-ctx.Done():
			b.log.Warn("shutdown timed out with clusters still stopping")
			return
		case <-ch:
		}
	}
}

func mapValues[K comparable, V any](m map[K]V) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func (b *Backend) worker(ctx context.Context) {
	for {
		name, ok := b.queue.get()
		if !ok {
			return
		}
		if err := b.reconcile(ctx, name); err != nil {
			d := b.queue.backoff(name, 100*time.Millisecond, 300*time.Second)
			b.log.Warn("reconcile failed", "cluster", name, "err", err, "retry_in", d)
			b.queue.addAfter(name, d)
		} else {
			b.queue.forget(name)
		}
		b.queue.done(name)
	}
}
