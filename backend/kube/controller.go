package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/time/rate"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/util/workqueue"
)

// ControllerConfig configures the controller. Zero values take the
// defaults in brackets (upstream's where it has one).
type ControllerConfig struct {
	Clients *Clients
	Logger  *slog.Logger
	// Instance is the gateway.dask.org/instance label shared with the gateway.
	Instance string
	// Namespaces to watch [the controller's own]; the lease lives in the first.
	Namespaces []string
	// APIURL is DASK_GATEWAY_API_URL for schedulers and workers (required).
	APIURL string
	// Labels and Annotations are put on every object.
	Labels      map[string]string
	Annotations map[string]string
	// Parallelism is the number of concurrent reconciles [20].
	Parallelism int
	// BackoffBase and BackoffMax bound per-cluster retry delays [0.1s, 300s].
	BackoffBase, BackoffMax time.Duration
	// StartTimeout fails a cluster whose scheduler is not ready in time,
	// with the reason it waited for [5m]. Upstream waits forever.
	StartTimeout time.Duration
	// DeleteFailedScheduler deletes a failed scheduler pod at once, as
	// upstream does; by default it is kept (its logs stay readable) until
	// the DaskCluster is cleaned up.
	DeleteFailedScheduler bool
	// CompletedMaxAge and CleanupPeriod purge finished DaskClusters [24h, 10m].
	CompletedMaxAge, CleanupPeriod time.Duration
	// Identity names this replica in the Lease [hostname + pid].
	Identity string
	// LeaseName [daskgate-controller-<instance>]; LeaseDuration, RenewDeadline
	// and RetryPeriod as in client-go [15s, 10s, 2s].
	LeaseName                                 string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// ExpectationsTimeout forgets unobserved pod creates/deletes [2m].
	ExpectationsTimeout time.Duration
}

func (c *ControllerConfig) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.BackoffBase, 100*time.Millisecond)
	def(&c.BackoffMax, 300*time.Second)
	def(&c.StartTimeout, 5*time.Minute)
	def(&c.CompletedMaxAge, 24*time.Hour)
	def(&c.CleanupPeriod, 10*time.Minute)
	def(&c.LeaseDuration, 15*time.Second)
	def(&c.RenewDeadline, 10*time.Second)
	def(&c.RetryPeriod, 2*time.Second)
	def(&c.ExpectationsTimeout, 2*time.Minute)
	if c.Parallelism <= 0 {
		c.Parallelism = 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.Namespaces) == 0 {
		c.Namespaces = []string{OwnNamespace()}
	}
	if c.Identity == "" {
		host, _ := os.Hostname()
		c.Identity = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.LeaseName == "" {
		c.LeaseName = "daskgate-controller-" + c.Instance
	}
}

// Controller reconciles DaskCluster objects into pods, a Service and a
// Secret, level-based: every pass reads the caches and does what is
// missing, so a restart (or a new leader) resumes where anything stopped.
type Controller struct {
	cfg   ControllerConfig
	log   *slog.Logger
	build builder
	queue workqueue.TypedRateLimitingInterface[string]

	dcInformers []cache.SharedIndexInformer
	pods        []corelisters.PodLister
	podIndex    []cache.Indexer // workersIndex: cluster hex -> its worker pods
	services    []corelisters.ServiceLister
	synced      []cache.InformerSynced
	starters    []func(<-chan struct{})
	shutdowns   []func() // wait for the started informers to stop
	nsIndex     map[string]int

	mu           sync.Mutex
	exp          map[string]*expectation
	finishedSeen map[types.UID]time.Time
	written      map[string]writtenStatus // last status written, per cluster key
	cleaned      map[string]bool          // finished clusters cleaned up by this controller
}

// writtenStatus remembers a status write so a stale cache read (the watch
// has not delivered our own write yet) does not repeat it.
type writtenStatus struct {
	fromVersion string
	status      Status
}

// expectation counts worker pod creates and deletes issued but not yet
// seen by the informer; scaling waits for them so it never doubles up.
type expectation struct {
	adds, dels int
	at         time.Time
}

// NewController checks cfg and wires the informers; call Run.
func NewController(cfg ControllerConfig) (*Controller, error) {
	if cfg.Clients == nil || cfg.Instance == "" || cfg.APIURL == "" {
		return nil, errors.New("kube controller: clients, instance and api_url are required")
	}
	cfg.setDefaults()
	limiter := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](cfg.BackoffBase, cfg.BackoffMax),
		&workqueue.TypedBucketRateLimiter[string]{Limiter: rate.NewLimiter(rate.Limit(50), 300)},
	)
	c := &Controller{cfg: cfg, log: cfg.Logger, exp: map[string]*expectation{}, nsIndex: map[string]int{},
		finishedSeen: map[types.UID]time.Time{}, written: map[string]writtenStatus{}, cleaned: map[string]bool{},
		build: builder{instance: cfg.Instance, apiURL: cfg.APIURL, labels: cfg.Labels, annotations: cfg.Annotations},
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[string]{Name: "daskclusters"})}
	selector := LabelInstance + "=" + cfg.Instance
	for i, ns := range cfg.Namespaces {
		c.nsIndex[ns] = i
		dyn := dynamicinformer.NewFilteredDynamicSharedInformerFactory(cfg.Clients.Dynamic, 0, ns,
			func(o *metav1.ListOptions) { o.LabelSelector = selector })
		dcInf := dyn.ForResource(GVR).Informer()
		core := informers.NewSharedInformerFactoryWithOptions(cfg.Clients.Core, 0, informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector + "," + LabelCluster }))
		podInf := core.Core().V1().Pods()
		svcInf := core.Core().V1().Services()
		// A cluster's workers by index, not by scanning every pod in the
		// namespace for each reconcile (that was 60% of the controller's
		// CPU at 1,000 clusters).
		if err := podInf.Informer().AddIndexers(cache.Indexers{workersIndex: workersOf}); err != nil {
			return nil, err
		}
		for _, inf := range []cache.SharedIndexInformer{dcInf, podInf.Informer(), svcInf.Informer()} {
			if err := inf.SetTransform(stripManagedFields); err != nil {
				return nil, err
			}
		}
		enqueueObj := func(obj any) {
			if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
				c.queue.Add(key)
			}
		}
		if _, err := dcInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: enqueueObj, UpdateFunc: func(_, o any) { enqueueObj(o) },
			DeleteFunc: func(obj any) {
				if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
					c.mu.Lock()
					delete(c.exp, key)
					delete(c.written, key)
					delete(c.cleaned, key)
					c.mu.Unlock()
				}
			},
		}); err != nil {
			return nil, err
		}
		if _, err := podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.podEvent(obj, +1) },
			UpdateFunc: func(_, obj any) { c.podEvent(obj, 0) },
			DeleteFunc: func(obj any) { c.podEvent(obj, -1) },
		}); err != nil {
			return nil, err
		}
		if _, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(obj any) { c.ownerEvent(obj) },
		}); err != nil {
			return nil, err
		}
		c.dcInformers = append(c.dcInformers, dcInf)
		c.pods = append(c.pods, podInf.Lister())
		c.podIndex = append(c.podIndex, podInf.Informer().GetIndexer())
		c.services = append(c.services, svcInf.Lister())
		c.synced = append(c.synced, dcInf.HasSynced, podInf.Informer().HasSynced, svcInf.Informer().HasSynced)
		c.starters = append(c.starters, dyn.Start, core.Start)
		c.shutdowns = append(c.shutdowns, dyn.Shutdown, core.Shutdown)
	}
	return c, nil
}

// stripManagedFields drops what no reconcile reads before an object is
// cached: managedFields are often the largest part of a pod.
func stripManagedFields(obj any) (any, error) {
	if m, err := metaOf(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// ownerEvent enqueues the cluster an object belongs to.
func (c *Controller) ownerEvent(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, err := metaOf(obj)
	if err != nil {
		return
	}
	if hex := m.GetLabels()[LabelCluster]; hex != "" {
		c.queue.Add(m.GetNamespace() + "/" + hex)
	}
}

func metaOf(obj any) (metav1.Object, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("unexpected %T", obj)
	}
	return m, nil
}

// podEvent settles worker expectations (+1 created, -1 deleted) and
// enqueues the pod's cluster.
func (c *Controller) podEvent(obj any, delta int) {
	m, err := metaOf(obj)
	if err != nil {
		return
	}
	hex := m.GetLabels()[LabelCluster]
	if hex == "" {
		return
	}
	key := m.GetNamespace() + "/" + hex
	if delta != 0 && m.GetLabels()[LabelComponent] == ComponentWorker {
		c.mu.Lock()
		if e := c.exp[key]; e != nil {
			if delta > 0 && e.adds > 0 {
				e.adds--
			} else if delta < 0 && e.dels > 0 {
				e.dels--
			}
		}
		c.mu.Unlock()
	}
	c.queue.Add(key)
}

// ErrLeaseLost is what Run returns when this replica stopped leading
// while its context was still live (the API server unreachable past the
// renew deadline, or another holder took the Lease).
var ErrLeaseLost = errors.New("kube controller: lease lost")

// Run starts the informers at once (a standby keeps warm caches for a
// fast fail-over) and reconciles while it holds the Lease. It returns nil
// when ctx ends, ErrLeaseLost when leadership is lost; its informers stop
// either way, and a Controller runs once.
func (c *Controller) Run(ctx context.Context) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		for _, shutdown := range c.shutdowns {
			shutdown()
		}
	}()
	for _, start := range c.starters {
		start(ctx.Done())
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: c.cfg.LeaseName, Namespace: c.cfg.Namespaces[0]},
		Client:     c.cfg.Clients.Core.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: c.cfg.Identity},
	}
	// client-go calls OnStartedLeading in a goroutine of its own, which
	// may begin only after le.Run has returned: once Run is done with
	// leading, a late callback must not lead.
	var mu sync.Mutex
	started, over := false, false
	leading := make(chan error, 1)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock: lock, ReleaseOnCancel: true, Name: c.cfg.LeaseName,
		LeaseDuration: c.cfg.LeaseDuration, RenewDeadline: c.cfg.RenewDeadline, RetryPeriod: c.cfg.RetryPeriod,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				mu.Lock()
				if over {
					mu.Unlock()
					return
				}
				started = true
				mu.Unlock()
				leading <- c.lead(ctx)
			},
			OnStoppedLeading: func() { c.log.Info("controller lease released or lost", "identity", c.cfg.Identity) },
			OnNewLeader: func(id string) {
				if id != c.cfg.Identity {
					c.log.Info("controller standing by", "leader", id)
				}
			},
		},
	})
	if err != nil {
		return err
	}
	le.Run(ctx)
	c.queue.ShutDown()
	mu.Lock()
	over = true
	led := started
	mu.Unlock()
	if led {
		err = <-leading // lead returns once its workers have stopped
	}
	switch {
	case parent.Err() != nil:
		return nil // shut down, whatever lead was doing
	case err != nil:
		return err
	}
	return ErrLeaseLost
}

// RunCampaigning runs c, and when it loses its Lease drops it and runs a
// fresh controller with the same configuration, until ctx ends. This is
// for the controller inside `daskgate serve`, whose process must keep
// serving the API; the standalone `daskgate controller` exits instead.
func RunCampaigning(ctx context.Context, c *Controller) error {
	for {
		err := c.Run(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("controller stopped leading; campaigning again", "identity", c.cfg.Identity, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.cfg.RetryPeriod):
		}
		if c, err = NewController(c.cfg); err != nil {
			return err
		}
	}
}

// lead runs the workers and the cleanup loop until ctx ends.
func (c *Controller) lead(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return errors.New("kube controller: caches did not sync")
	}
	c.log.Info("controller leading", "identity", c.cfg.Identity, "namespaces", c.cfg.Namespaces)
	for _, inf := range c.dcInformers { // everything once, in case we took over mid-way
		for _, key := range inf.GetStore().ListKeys() {
			c.queue.Add(key)
		}
	}
	var wg sync.WaitGroup
	for range c.cfg.Parallelism {
		wg.Go(func() {
			for c.next(ctx) {
			}
		})
	}
	wg.Go(func() { c.cleanupLoop(ctx) })
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

func (c *Controller) next(ctx context.Context) bool {
	key, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(key)
	after, err := c.reconcile(ctx, key)
	switch {
	case err != nil && ctx.Err() == nil:
		c.log.Warn("reconcile failed; retrying with backoff", "cluster", key, "err", err)
		c.queue.AddRateLimited(key)
		if after > 0 {
			c.queue.AddAfter(key, after) // a deadline the backoff must not overshoot
		}
	case err == nil:
		c.queue.Forget(key)
		if after > 0 {
			c.queue.AddAfter(key, after)
		}
	}
	return true
}

func (c *Controller) getDC(ns, name string) (*DaskCluster, error) {
	i, ok := c.nsIndex[ns]
	if !ok {
		return nil, nil
	}
	obj, exists, err := c.dcInformers[i].GetStore().GetByKey(ns + "/" + name)
	if err != nil || !exists {
		return nil, err
	}
	return fromUnstructured(obj)
}
