package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// reconcile drives one cluster one step towards what its spec asks. It
// returns a delay after which to look again (start timeout), if any.
func (c *Controller) reconcile(ctx context.Context, key string) (time.Duration, error) {
	ns, hex, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	dc, err := c.getDC(ns, hex)
	if err != nil || dc == nil {
		return 0, err
	}
	st := dc.Status
	c.mu.Lock()
	if w, ok := c.written[key]; ok && (w.fromVersion == dc.ResourceVersion || w.status.Phase == PhaseStopped || w.status.Phase == PhaseFailed) {
		// Our own status write is not in the cache yet: it is the truth. A
		// finished status never goes back, whatever spec writes came
		// between (a finished cluster must never be restarted).
		st = w.status
	}
	c.mu.Unlock()
	switch st.phase() {
	case PhaseStopped, PhaseFailed:
		return 0, c.finish(ctx, dc, st)
	}
	sched, err := c.schedulerPod(ns, hex)
	if err != nil {
		return 0, err
	}
	// A running scheduler that exits 0 shut itself down (its idle timeout,
	// after telling the gateway), which may reach us before spec.active
	// does: that is a stop, not a failure.
	// (A deleted scheduler exits 0 on SIGTERM too: that is SchedulerDeleted.)
	cleanExit := sched != nil && sched.DeletionTimestamp == nil && sched.Status.Phase == corev1.PodSucceeded &&
		st.phase() == PhaseRunning
	if !dc.Spec.active() || cleanExit {
		st.Phase, st.CompletionTime, st.Unscheduled, st.Reason, st.Message = PhaseStopped, now(), 0, "", ""
		if err := c.writeStatus(ctx, dc, st); err != nil {
			return 0, err
		}
		return 0, c.finish(ctx, dc, st)
	}
	if sched == nil {
		if st.phase() == PhaseRunning {
			return 0, c.fail(ctx, dc, st, "SchedulerDeleted", "the scheduler pod was deleted")
		}
		err := c.createSecret(ctx, dc)
		if err == nil {
			err = c.createPod(ctx, dc, true)
		}
		if err != nil {
			return c.createFailed(ctx, dc, st, err)
		}
		return c.startTimeout(dc), nil
	}
	if sched.DeletionTimestamp != nil {
		return 0, nil // wait for it to go; its delete event brings us back
	}
	if reason, msg, failed := schedulerFailure(sched); failed {
		return 0, c.fail(ctx, dc, st, reason, msg)
	}
	if st.phase() == PhasePending {
		if !podReady(sched) {
			reason, msg := waitingReason(sched)
			return c.waitToStart(ctx, dc, st, reason, msg)
		}
		if err := c.ensureService(ctx, dc, sched); err != nil {
			return 0, err
		}
		st.Phase, st.Reason, st.Message = PhaseRunning, "", ""
		st.Credentials, st.SchedulerPod, st.Service = secretName(hex), schedulerName(hex), serviceName(hex)
	}
	unscheduled, recheck, err := c.scale(ctx, dc, sched)
	if err != nil {
		return 0, err
	}
	st.Unscheduled = int64(unscheduled)
	return recheck, c.writeStatus(ctx, dc, st)
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

// startTimeout is how long the cluster may still take to start.
func (c *Controller) startTimeout(dc *DaskCluster) time.Duration {
	return time.Until(dc.CreationTimestamp.Add(c.cfg.StartTimeout))
}

// configError is a cluster config no pod can be built from.
type configError struct{ error }

// createFailed handles a refused create of the Secret or the scheduler pod.
// A config no pod can be built from, or a pod the API server calls invalid
// (extra pod and container configs are passed through as upstream does, so
// only the API server validates their insides), fails the cluster at once.
// Anything else (a quota, an admission webhook, an unreachable API server)
// is recorded in status and retried with backoff until the start timeout,
// then fails the cluster. Either way the reason reaches the client.
func (c *Controller) createFailed(ctx context.Context, dc *DaskCluster, st Status, err error) (time.Duration, error) {
	const reason = "FailedCreate"
	msg := err.Error()
	if errors.As(err, new(configError)) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return 0, c.fail(ctx, dc, st, reason, msg)
	}
	left, werr := c.waitToStart(ctx, dc, st, reason, msg)
	if werr != nil || left == 0 {
		return 0, werr // failed at the start timeout (or could not say why it waits)
	}
	return left, err // retried with backoff, and at the start timeout
}

// waitToStart records why a pending cluster waits (one status write when
// the reason changes) and how long it may still wait; at the start timeout
// it fails the cluster with that reason.
func (c *Controller) waitToStart(ctx context.Context, dc *DaskCluster, st Status, reason, msg string) (time.Duration, error) {
	left := c.startTimeout(dc)
	if left <= 0 {
		if reason == "" {
			reason, msg = "StartTimeout", "the scheduler was not ready in time"
		}
		return 0, c.fail(ctx, dc, st, reason, fmt.Sprintf("%s (start timeout %s)", msg, c.cfg.StartTimeout))
	}
	if reason != st.Reason || msg != st.Message {
		st.Reason, st.Message = reason, msg
		return left, c.writeStatus(ctx, dc, st)
	}
	return left, nil
}

// fail marks the cluster Failed with a reason the API shows to the user,
// records an Event, then cleans up (finish). The status is written first:
// should a delete fail, the next pass finds the cluster finished and
// cleans up again, never restarting it.
func (c *Controller) fail(ctx context.Context, dc *DaskCluster, st Status, reason, msg string) error {
	c.log.Warn("cluster failed", "cluster", PublicName(dc.Namespace, dc.Name), "reason", reason, "message", msg)
	st.Phase, st.CompletionTime, st.Reason, st.Message, st.Unscheduled = PhaseFailed, now(), reason, msg, 0
	if err := c.writeStatus(ctx, dc, st); err != nil {
		return err
	}
	c.event(ctx, dc, corev1.EventTypeWarning, reason, msg)
	return c.finish(ctx, dc, st)
}

// finish cleans up after a finished cluster, once per controller: the
// Secret goes; the scheduler pod goes too (garbage collection takes the
// Service and the workers), except that a failed scheduler that ran is
// kept for its logs unless configured otherwise; a scheduler that never
// ran has no logs, and is deleted so it stops pulling images and holding
// a place in the scheduling queue. Worker pods are deleted on every pass
// (a kept scheduler pod would otherwise keep them alive as their owner).
func (c *Controller) finish(ctx context.Context, dc *DaskCluster, st Status) error {
	ns, hex := dc.Namespace, dc.Name
	key := ns + "/" + hex
	c.mu.Lock()
	done := c.cleaned[key]
	c.mu.Unlock()
	if !done {
		// (Deleted by name even when the cache has not seen it yet.)
		sched, _ := c.schedulerPod(ns, hex)
		keep := st.phase() == PhaseFailed && !c.cfg.DeleteFailedScheduler && sched != nil && everRan(sched)
		if !keep {
			if err := c.deletePod(ctx, ns, schedulerName(hex)); err != nil {
				return err
			}
		}
		if err := c.deleteSecret(ctx, ns, hex); err != nil {
			return err
		}
		c.mu.Lock()
		c.cleaned[key] = true
		c.mu.Unlock()
	}
	return c.finishWorkers(ctx, dc)
}

// finishWorkers deletes the worker pods of a finished cluster (a kept
// scheduler pod would otherwise keep them alive as their owner).
func (c *Controller) finishWorkers(ctx context.Context, dc *DaskCluster) error {
	workers, err := c.workers(dc.Namespace, dc.Name)
	if err != nil {
		return err
	}
	for _, p := range workers {
		if p.DeletionTimestamp == nil {
			if err := c.deletePod(ctx, dc.Namespace, p.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

const workersIndex = "daskgate-workers"

// workersOf indexes worker pods by their cluster's hex name.
func workersOf(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Labels[LabelComponent] != ComponentWorker || p.Labels[LabelCluster] == "" {
		return nil, nil
	}
	return []string{p.Labels[LabelCluster]}, nil
}

func (c *Controller) workers(ns, hex string) ([]*corev1.Pod, error) {
	objs, err := c.podIndex[c.nsIndex[ns]].ByIndex(workersIndex, hex)
	if err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// schedulerFailure reports a scheduler that ended or can never start.
func schedulerFailure(p *corev1.Pod) (reason, msg string, failed bool) {
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		reason, msg = string(p.Status.Phase), p.Status.Message
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil {
				reason, msg = t.Reason, fmt.Sprintf("scheduler exited with code %d", t.ExitCode)
			}
		}
		if reason == "" {
			reason = "SchedulerExited"
		}
		return reason, msg, true
	}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			return orDefault(t.Reason, "Error"), fmt.Sprintf("scheduler exited with code %d", t.ExitCode), true
		}
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError":
				return w.Reason, w.Message, true
			}
		}
	}
	return "", "", false
}

// everRan reports whether one of the pod's containers has started, so
// that it may have logs.
func everRan(p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil {
			return true
		}
	}
	return false
}

// waitingReason says why a scheduler pod is not ready yet, if it knows.
func waitingReason(p *corev1.Pod) (reason, msg string) {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			return w.Reason, w.Message
		}
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse {
			return orDefault(cond.Reason, "Unschedulable"), cond.Message
		}
	}
	return "", ""
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (c *Controller) clusterConfig(dc *DaskCluster) (cluster.Config, error) {
	cfg := cluster.DefaultConfig()
	b, err := json.Marshal(dc.Spec.Config)
	if err != nil {
		return cfg, err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("spec.config: %w", err)
	}
	return cfg, nil
}

func (c *Controller) owner(dc *DaskCluster) metav1.OwnerReference {
	return ownerRef(Group+"/"+Version, Kind, dc.Name, dc.UID)
}

func (c *Controller) createSecret(ctx context.Context, dc *DaskCluster) error {
	s, err := c.build.secret(dc.Namespace, dc.Name)
	if err != nil {
		return err
	}
	s.OwnerReferences = []metav1.OwnerReference{c.owner(dc)}
	_, err = c.cfg.Clients.Core.CoreV1().Secrets(dc.Namespace).Create(ctx, s, metav1.CreateOptions{FieldManager: "daskgate"})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// createPod creates the scheduler pod, or one worker pod owned by sched.
func (c *Controller) createPod(ctx context.Context, dc *DaskCluster, scheduler bool) error {
	p, err := c.podTemplate(dc, scheduler)
	if err != nil {
		return configError{err}
	}
	if scheduler {
		p.OwnerReferences = []metav1.OwnerReference{c.owner(dc)}
	}
	_, err = c.cfg.Clients.Core.CoreV1().Pods(dc.Namespace).Create(ctx, p, metav1.CreateOptions{FieldManager: "daskgate"})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (c *Controller) podTemplate(dc *DaskCluster, scheduler bool) (*corev1.Pod, error) {
	cfg, err := c.clusterConfig(dc)
	if err != nil {
		return nil, err
	}
	p, warnings, err := c.build.pod(dc.Namespace, dc.Name, cfg, scheduler)
	for _, w := range warnings {
		c.log.Warn("cluster config has fields Kubernetes will drop", "cluster", PublicName(dc.Namespace, dc.Name), "warning", w)
	}
	return p, err
}

// schedulerPod is the cluster's scheduler pod from the cache, or nil.
func (c *Controller) schedulerPod(ns, hex string) (*corev1.Pod, error) {
	p, err := c.pods[c.nsIndex[ns]].Pods(ns).Get(schedulerName(hex))
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return p, err
}

func (c *Controller) ensureService(ctx context.Context, dc *DaskCluster, sched *corev1.Pod) error {
	if _, err := c.services[c.nsIndex[dc.Namespace]].Services(dc.Namespace).Get(serviceName(dc.Name)); err == nil {
		return nil
	}
	s := c.build.service(dc.Namespace, dc.Name)
	s.OwnerReferences = []metav1.OwnerReference{podOwner(sched)}
	_, err := c.cfg.Clients.Core.CoreV1().Services(dc.Namespace).Create(ctx, s, metav1.CreateOptions{FieldManager: "daskgate"})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func podOwner(p *corev1.Pod) metav1.OwnerReference {
	return ownerRef("v1", "Pod", p.Name, p.UID)
}

func (c *Controller) deletePod(ctx context.Context, ns, name string) error {
	err := c.cfg.Clients.Core.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (c *Controller) deleteSecret(ctx context.Context, ns, hex string) error {
	err := c.cfg.Clients.Core.CoreV1().Secrets(ns).Delete(ctx, secretName(hex), metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// writeStatus replaces the whole status with one patch, only if it changed.
func (c *Controller) writeStatus(ctx context.Context, dc *DaskCluster, st Status) error {
	if st == dc.Status {
		return nil
	}
	key := dc.Namespace + "/" + dc.Name
	c.mu.Lock()
	last, ok := c.written[key]
	c.mu.Unlock()
	if ok && last.fromVersion == dc.ResourceVersion && last.status == st {
		return nil // already written from this very version; the watch will catch up
	}
	body, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status", "value": st}})
	if err != nil {
		return err
	}
	_, err = c.cfg.Clients.Dynamic.Resource(GVR).Namespace(dc.Namespace).Patch(ctx, dc.Name, types.JSONPatchType, body,
		metav1.PatchOptions{FieldManager: "daskgate"}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		c.mu.Lock()
		c.written[key] = writtenStatus{fromVersion: dc.ResourceVersion, status: st}
		c.mu.Unlock()
	}
	return err
}

// event records a Kubernetes Event on the DaskCluster; failures are logged only.
func (c *Controller) event(ctx context.Context, dc *DaskCluster, typ, reason, msg string) {
	t := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: dc.Name + ".", Namespace: dc.Namespace},
		InvolvedObject: corev1.ObjectReference{APIVersion: Group + "/" + Version, Kind: Kind, Name: dc.Name,
			Namespace: dc.Namespace, UID: dc.UID},
		Type: typ, Reason: reason, Message: msg, FirstTimestamp: t, LastTimestamp: t, Count: 1,
		Source: corev1.EventSource{Component: "daskgate-controller"},
	}
	if _, err := c.cfg.Clients.Core.CoreV1().Events(dc.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		c.log.Debug("recording event", "err", err)
	}
}

// expectationsLeft is how long earlier creates/deletes may still take to
// be observed before they expire; zero when all have been (or expired).
func (c *Controller) expectationsLeft(key string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.exp[key]
	if e == nil || (e.adds <= 0 && e.dels <= 0) {
		return 0
	}
	return max(c.cfg.ExpectationsTimeout-time.Since(e.at), 0)
}

func (c *Controller) expect(key string, adds, dels int) {
	c.mu.Lock()
	c.exp[key] = &expectation{adds: adds, dels: dels, at: time.Now()}
	c.mu.Unlock()
}

// scale makes the live workers match spec.replicas: it deletes finished
// worker pods (retired workers exit 0 and their pods succeed), creates
// missing ones in growing batches, and on scale-down deletes pending pods
// only (unscheduled first, then the newest), never running workers: the
// scheduler retires those itself. It returns the number of worker pods
// the scheduler found no node for (pods merely queued are not counted:
// that would cost status writes under every burst).
func (c *Controller) scale(ctx context.Context, dc *DaskCluster, sched *corev1.Pod) (unscheduled int, recheck time.Duration, err error) {
	key := dc.Namespace + "/" + dc.Name
	pods, err := c.workers(dc.Namespace, dc.Name)
	if err != nil {
		return 0, 0, err
	}
	var live, pending, finished []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		switch p.Status.Phase {
		case corev1.PodSucceeded, corev1.PodFailed:
			finished = append(finished, p)
		case corev1.PodRunning:
			live = append(live, p)
		default:
			live = append(live, p)
			pending = append(pending, p)
			if unschedulable(p) {
				unscheduled++
			}
		}
	}
	if left := c.expectationsLeft(key); left > 0 {
		// Their watch events bring the cluster back; so does this recheck,
		// should an event never come.
		return unscheduled, left + time.Second, nil
	}
	delta := int(dc.Spec.replicas()) - len(live)
	var doomed []*corev1.Pod
	doomed = append(doomed, finished...)
	if delta < 0 {
		sort.SliceStable(pending, func(i, j int) bool {
			si, sj := scheduled(pending[i]), scheduled(pending[j])
			if si != sj {
				return !si
			}
			return pending[j].CreationTimestamp.Before(&pending[i].CreationTimestamp)
		})
		doomed = append(doomed, pending[:min(-delta, len(pending))]...)
	}
	c.expect(key, max(delta, 0), len(doomed))
	for i, p := range doomed {
		if err := c.deletePod(ctx, dc.Namespace, p.Name); err != nil {
			c.mu.Lock()
			if e := c.exp[key]; e != nil {
				// These deletes, and the creates after them, were never issued.
				e.dels -= len(doomed) - i
				e.adds -= max(delta, 0)
			}
			c.mu.Unlock()
			return unscheduled, recheck, err
		}
	}
	if delta <= 0 {
		return unscheduled, recheck, nil
	}
	tmpl, err := c.podTemplate(dc, false)
	if err != nil {
		return unscheduled, recheck, err
	}
	tmpl.OwnerReferences = []metav1.OwnerReference{podOwner(sched)}
	submitted := 0
	for batch := 1; submitted < delta; batch *= 2 {
		n := min(batch, delta-submitted)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = c.cfg.Clients.Core.CoreV1().Pods(dc.Namespace).Create(ctx, tmpl.DeepCopy(), metav1.CreateOptions{FieldManager: "daskgate"})
			})
		}
		wg.Wait()
		failed := 0
		var first error
		for _, err := range errs {
			if err != nil {
				failed++
				first = cmpErr(first, err)
			}
		}
		submitted += n
		if failed > 0 {
			c.mu.Lock()
			if e := c.exp[key]; e != nil {
				e.adds -= failed + (delta - submitted)
			}
			c.mu.Unlock()
			return unscheduled, recheck, fmt.Errorf("creating worker pods: %d of %d failed: %w", failed, n, first)
		}
	}
	return unscheduled, recheck, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// unschedulable reports a pod the scheduler tried and could not place.
func unschedulable(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled {
			return cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable
		}
	}
	return false
}

func scheduled(p *corev1.Pod) bool {
	if p.Spec.NodeName != "" {
		return true
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// cleanupLoop deletes finished DaskClusters older than CompletedMaxAge;
// their Secret, pods and Service go with them (owner references).
func (c *Controller) cleanupLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.CleanupPeriod)
	defer t.Stop()
	for {
		c.cleanup(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Controller) cleanup(ctx context.Context) {
	cutoff := time.Now().Add(-c.cfg.CompletedMaxAge)
	for _, inf := range c.dcInformers {
		for _, obj := range inf.GetStore().List() {
			dc, err := fromUnstructured(obj)
			if err != nil || (dc.Status.phase() != PhaseStopped && dc.Status.phase() != PhaseFailed) {
				continue
			}
			done, err := time.Parse(time.RFC3339, dc.Status.CompletionTime)
			if err != nil { // upstream may leave it out: count from when we first saw it finished
				c.mu.Lock()
				if _, ok := c.finishedSeen[dc.UID]; !ok {
					c.finishedSeen[dc.UID] = time.Now()
				}
				done = c.finishedSeen[dc.UID]
				c.mu.Unlock()
			}
			if !done.After(cutoff) {
				policy := metav1.DeletePropagationBackground
				err := c.cfg.Clients.Dynamic.Resource(GVR).Namespace(dc.Namespace).Delete(ctx, dc.Name,
					metav1.DeleteOptions{PropagationPolicy: &policy})
				if err != nil && !apierrors.IsNotFound(err) {
					c.log.Warn("deleting finished cluster", "cluster", PublicName(dc.Namespace, dc.Name), "err", err)
				} else {
					c.log.Info("deleted finished cluster", "cluster", PublicName(dc.Namespace, dc.Name), "completed", dc.Status.CompletionTime)
				}
			}
		}
	}
}
