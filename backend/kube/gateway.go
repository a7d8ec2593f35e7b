package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/daskgate/daskgate/cluster"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// RouteSink receives the proxy routes of running clusters (proxy.Table).
type RouteSink interface {
	SetCluster(name, scheduler, dashboard string)
	RemoveCluster(name string)
}

// GatewayConfig configures the gateway side.
type GatewayConfig struct {
	Clients *Clients
	Logger  *slog.Logger
	// Instance is the gateway.dask.org/instance label shared with the controller.
	Instance string
	// Namespaces clusters may live in; the first is the default. Empty
	// means the gateway's own namespace. One informer runs per namespace.
	Namespaces []string
	// Labels and Annotations are put on every object (common_labels/annotations).
	Labels      map[string]string
	Annotations map[string]string
	// Routes gets proxy routes of running clusters; nil means none.
	Routes RouteSink
}

// Gateway is the Kubernetes backend of the API server: it writes
// DaskCluster objects and answers reads from an informer cache, falling
// back to the API server for names it has not seen yet, so a cluster
// created through one replica is visible through another at once.
type Gateway struct {
	cfg     GatewayConfig
	log     *slog.Logger
	build   builder
	synced  []cache.InformerSynced
	factory []dynamicinformer.DynamicSharedInformerFactory

	mu       sync.RWMutex
	clusters map[string]*entry
	waiters  map[string]chan struct{} // per cluster, closed on its next change
	// Running clusters whose credentials are still to be read, and the
	// queue of the workers that read them off the watch path.
	credsPending map[string]bool
	credsQueue   chan string
}

// credentialReaders read Secrets of newly running clusters in parallel.
const credentialReaders = 4

type entry struct {
	c        *cluster.Cluster
	replicas int64
	uid      types.UID
}

// NewGateway checks cfg and sets up the informers; call Run.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.Clients == nil || cfg.Instance == "" {
		return nil, errors.New("kube gateway: clients and instance are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Namespaces) == 0 {
		cfg.Namespaces = []string{OwnNamespace()}
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger, clusters: map[string]*entry{}, waiters: map[string]chan struct{}{},
		credsPending: map[string]bool{}, credsQueue: make(chan string, 1024),
		build: builder{instance: cfg.Instance, labels: cfg.Labels, annotations: cfg.Annotations}}
	for _, ns := range cfg.Namespaces {
		f := dynamicinformer.NewFilteredDynamicSharedInformerFactory(cfg.Clients.Dynamic, 0, ns,
			func(o *metav1.ListOptions) { o.LabelSelector = LabelInstance + "=" + cfg.Instance })
		inf := f.ForResource(GVR).Informer()
		if err := inf.SetTransform(stripManagedFields); err != nil {
			return nil, err
		}
		_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { g.observe(obj) },
			UpdateFunc: func(_, obj any) { g.observe(obj) },
			DeleteFunc: func(obj any) {
				if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = d.Obj
				}
				if dc, err := fromUnstructured(obj); err == nil {
					g.forget(PublicName(dc.Namespace, dc.Name))
				}
			},
		})
		if err != nil {
			return nil, err
		}
		g.factory = append(g.factory, f)
		g.synced = append(g.synced, inf.HasSynced)
	}
	return g, nil
}

// Run starts the informers, waits for their first list, and blocks until
// ctx ends.
func (g *Gateway) Run(ctx context.Context) error {
	for _, f := range g.factory {
		f.Start(ctx.Done())
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for range credentialReaders {
		wg.Go(func() { g.readCredentials(ctx) })
	}
	if !cache.WaitForCacheSync(ctx.Done(), g.synced...) {
		return errors.New("kube gateway: informer cache did not sync")
	}
	g.log.Info("kubernetes backend ready", "namespaces", g.cfg.Namespaces, "instance", g.cfg.Instance, "clusters", g.count())
	<-ctx.Done()
	for _, f := range g.factory {
		f.Shutdown()
	}
	return nil
}

// WaitSynced blocks until the first list is in the cache.
func (g *Gateway) WaitSynced(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), g.synced...)
}

func (g *Gateway) count() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.clusters)
}

func (g *Gateway) observe(obj any) {
	dc, err := fromUnstructured(obj)
	if err != nil {
		g.log.Warn("skipping DaskCluster", "err", err)
		return
	}
	g.store(dc)
}

// store turns an object into the cached record. Credentials already read
// from the cluster's Secret are carried over; a running cluster without
// them is queued for the credential readers (and Get reads them itself if
// asked first), so the watch is never held up by Secret reads.
func (g *Gateway) store(dc *DaskCluster) *cluster.Cluster {
	name := PublicName(dc.Namespace, dc.Name)
	c := g.toCluster(dc)
	g.mu.Lock()
	old := g.clusters[name]
	if old != nil && old.uid == dc.UID && olderThan(dc, old) {
		g.mu.Unlock()
		return old.c // a stale read-through lost the race with the watch
	}
	if old != nil && old.uid == dc.UID {
		c.TLSCert, c.TLSKey, c.Token = old.c.TLSCert, old.c.TLSKey, old.c.Token
	}
	g.clusters[name] = &entry{c: c, replicas: dc.Spec.replicas(), uid: dc.UID}
	g.wake(name)
	if c.Status == cluster.Running && c.Token == "" && !g.credsPending[name] {
		select {
		case g.credsQueue <- name:
			g.credsPending[name] = true
		default: // full: Get reads them on demand
		}
	}
	// Routes change under the same lock as the entry, so a watch event and a
	// read-through of one cluster cannot apply them in the wrong order.
	if g.cfg.Routes != nil {
		if c.Status == cluster.Running && c.SchedulerAddress != "" {
			g.cfg.Routes.SetCluster(name, c.SchedulerAddress, c.DashboardAddress)
		} else {
			g.cfg.Routes.RemoveCluster(name)
		}
	}
	g.mu.Unlock()
	return c
}

// olderThan is a best effort: a finished status never goes back, nor
// does a stop request (nothing sets spec.active to true again).
func olderThan(dc *DaskCluster, e *entry) bool {
	if e.c.Status == cluster.Stopping && dc.Spec.active() {
		return true
	}
	return e.c.Status.Finished() && !(dc.Status.phase() == PhaseStopped || dc.Status.phase() == PhaseFailed)
}

// readCredentials reads the Secrets of queued running clusters until ctx
// ends.
func (g *Gateway) readCredentials(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case name := <-g.credsQueue:
			g.mu.RLock()
			e := g.clusters[name]
			g.mu.RUnlock()
			if e != nil {
				g.withCredentials(ctx, e)
			}
			g.mu.Lock()
			delete(g.credsPending, name)
			g.mu.Unlock()
		}
	}
}

// wake ends the Waits on name; g.mu is held.
func (g *Gateway) wake(name string) {
	if ch, ok := g.waiters[name]; ok {
		close(ch)
		delete(g.waiters, name)
	}
}

func (g *Gateway) forget(name string) {
	g.mu.Lock()
	delete(g.clusters, name)
	g.wake(name)
	if g.cfg.Routes != nil {
		g.cfg.Routes.RemoveCluster(name)
	}
	g.mu.Unlock()
}

func (g *Gateway) loadCredentials(ctx context.Context, c *cluster.Cluster) {
	ns, hex, _ := SplitName(c.Name)
	s, err := g.cfg.Clients.Core.CoreV1().Secrets(ns).Get(ctx, secretName(hex), metav1.GetOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) {
			g.log.Warn("reading cluster credentials", "cluster", c.Name, "err", err)
		}
		return
	}
	c.TLSCert, c.TLSKey, c.Token = string(s.Data["dask.crt"]), cluster.Secret(s.Data["dask.pem"]), cluster.Secret(s.Data["api-token"])
}

var phaseStatus = map[string]cluster.Status{
	PhasePending: cluster.Pending, PhaseRunning: cluster.Running, PhaseStopped: cluster.Stopped, PhaseFailed: cluster.Failed,
}

func (g *Gateway) toCluster(dc *DaskCluster) *cluster.Cluster {
	c := &cluster.Cluster{Name: PublicName(dc.Namespace, dc.Name), Username: dc.Spec.Username,
		Status: phaseStatus[dc.Status.phase()], StartTime: dc.CreationTimestamp.UnixMilli(),
		Workers: int(dc.Spec.replicas()), Reason: dc.Status.Message}
	if c.Status == 0 {
		c.Status = cluster.Pending
	}
	if !dc.Spec.active() && !c.Status.Finished() {
		c.Status = cluster.Stopping // asked to stop: out of the default list at once, as upstream
	}
	if dc.Status.Reason != "" && dc.Status.Message == "" {
		c.Reason = dc.Status.Reason
	} else if dc.Status.Reason != "" {
		c.Reason = dc.Status.Reason + ": " + dc.Status.Message
	}
	if t, err := time.Parse(time.RFC3339, dc.Status.CompletionTime); err == nil {
		c.StopTime = t.UnixMilli()
	}
	c.Options, _ = json.Marshal(dc.Spec.Options)
	if dc.Spec.Options == nil {
		c.Options = json.RawMessage("{}")
	}
	c.Config = cluster.DefaultConfig()
	if b, err := json.Marshal(dc.Spec.Config); err == nil {
		if err := json.Unmarshal(b, &c.Config); err != nil {
			g.log.Warn("DaskCluster config not understood; using defaults", "cluster", c.Name, "err", err)
		}
	}
	if c.Status == cluster.Running && dc.Status.Service != "" {
		host := dc.Status.Service + "." + dc.Namespace
		c.SchedulerAddress = fmt.Sprintf("tls://%s:%d", host, PortScheduler)
		c.DashboardAddress = fmt.Sprintf("http://%s:%d", host, PortDashboard)
		c.APIAddress = fmt.Sprintf("http://%s:%d", host, PortAPI)
	}
	return c
}

// ValidateConfig checks the namespace and builds the pods in memory, so
// the controller can never be handed a cluster it cannot create.
func (g *Gateway) ValidateConfig(cfg cluster.Config) error {
	ns := g.namespace(cfg)
	if !slices.Contains(g.cfg.Namespaces, ns) {
		return fmt.Errorf("namespace %q is not one this gateway manages (%v)", ns, g.cfg.Namespaces)
	}
	warnings, err := g.build.validate(ns, cfg)
	for _, w := range warnings {
		g.log.Warn("cluster config has fields Kubernetes will drop", "warning", w)
	}
	return err
}

func (g *Gateway) namespace(cfg cluster.Config) string {
	if cfg.Namespace != "" {
		return cfg.Namespace
	}
	return g.cfg.Namespaces[0]
}

// Create writes a DaskCluster and returns without waiting for the controller.
func (g *Gateway) Create(ctx context.Context, req cluster.CreateRequest) (*cluster.Cluster, error) {
	ns := g.namespace(req.Config)
	cfg := req.Config
	cfg.Namespace = ns
	cfgMap, err := toMap(cfg)
	if err != nil {
		return nil, err
	}
	var opts map[string]any
	if len(req.Options) > 0 {
		if err := json.Unmarshal(req.Options, &opts); err != nil {
			return nil, err
		}
	}
	hex := cluster.NewName()
	meta := g.build.meta(ns, hex, "", nil, nil)
	meta.Name = hex
	dc := &DaskCluster{ObjectMeta: meta, Spec: Spec{Username: req.Username, Options: opts, Config: cfgMap}}
	u, err := toUnstructured(dc)
	if err != nil {
		return nil, err
	}
	created, err := g.cfg.Clients.Dynamic.Resource(GVR).Namespace(ns).Create(ctx, u, metav1.CreateOptions{FieldManager: "daskgate"})
	if err != nil {
		return nil, fmt.Errorf("create DaskCluster in namespace %s: %w", ns, err)
	}
	out, err := fromUnstructured(created)
	if err != nil {
		return nil, err
	}
	cp := *g.store(out)
	return &cp, nil
}

// Get answers from the cache, or reads through to the API server for a
// name the watch has not delivered yet. A scheduler heartbeat that comes
// before this replica saw RUNNING gets a 401 and retries, as upstream.
func (g *Gateway) Get(ctx context.Context, name string) (*cluster.Cluster, error) {
	e, err := g.lookup(ctx, name)
	if err != nil {
		return nil, err
	}
	return g.withCredentials(ctx, e), nil
}

// GetCached is Get from the informer cache only: for the scheduler's
// unauthenticated heartbeats, so that no request without the cluster's
// token can make the gateway call the API server.
func (g *Gateway) GetCached(ctx context.Context, name string) (*cluster.Cluster, error) {
	g.mu.RLock()
	e := g.clusters[name]
	g.mu.RUnlock()
	if e == nil {
		return nil, cluster.ErrNotFound
	}
	return g.withCredentials(ctx, e), nil
}

// withCredentials returns a copy of e's cluster, with its TLS credentials
// and token read from its Secret the first time a running (or stopping:
// its scheduler still heartbeats) cluster is asked for, then kept in the
// cache for as long as the object lives.
func (g *Gateway) withCredentials(ctx context.Context, e *entry) *cluster.Cluster {
	cp := *e.c
	if cp.Token != "" || (cp.Status != cluster.Running && cp.Status != cluster.Stopping) {
		return &cp
	}
	g.loadCredentials(ctx, &cp)
	if cp.Token == "" {
		return &cp
	}
	g.mu.Lock()
	if cur := g.clusters[cp.Name]; cur != nil && cur.uid == e.uid && cur.c.Token == "" {
		c := *cur.c
		c.TLSCert, c.TLSKey, c.Token = cp.TLSCert, cp.TLSKey, cp.Token
		g.clusters[cp.Name] = &entry{c: &c, replicas: cur.replicas, uid: cur.uid}
	}
	g.mu.Unlock()
	return &cp
}

func (g *Gateway) lookup(ctx context.Context, name string) (*entry, error) {
	g.mu.RLock()
	e := g.clusters[name]
	g.mu.RUnlock()
	if e != nil {
		return e, nil
	}
	ns, hex, ok := SplitName(name)
	if !ok || !slices.Contains(g.cfg.Namespaces, ns) {
		return nil, cluster.ErrNotFound
	}
	u, err := g.cfg.Clients.Dynamic.Resource(GVR).Namespace(ns).Get(ctx, hex, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, cluster.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if u.GetLabels()[LabelInstance] != g.cfg.Instance {
		return nil, cluster.ErrNotFound
	}
	dc, err := fromUnstructured(u)
	if err != nil {
		return nil, err
	}
	g.store(dc)
	g.mu.RLock()
	defer g.mu.RUnlock()
	if e := g.clusters[name]; e != nil {
		return e, nil
	}
	return nil, cluster.ErrNotFound
}

// List returns cached clusters accepted by keep, oldest first.
func (g *Gateway) List(_ context.Context, keep func(*cluster.Cluster) bool) ([]*cluster.Cluster, error) {
	g.mu.RLock()
	out := make([]*cluster.Cluster, 0, len(g.clusters))
	for _, e := range g.clusters {
		if keep(e.c) {
			cp := *e.c // credentials as read so far: a list never waits on Secrets
			out = append(out, &cp)
		}
	}
	g.mu.RUnlock()
	cluster.SortByStart(out)
	return out, nil
}

// Stop sets spec.active=false; the controller does the rest.
func (g *Gateway) Stop(ctx context.Context, name string, _ bool, reason string) error {
	e, err := g.lookup(ctx, name)
	if err != nil {
		return err
	}
	if e.c.Status.Finished() || e.c.Status == cluster.Stopping {
		return nil
	}
	g.log.Info("stopping cluster", "cluster", name, "reason", reason)
	return g.patchSpec(ctx, name, map[string]any{"active": false})
}

// Heartbeat writes the requested worker count, clamped, to spec.replicas
// (only when it changed: most heartbeats cost no write).
func (g *Gateway) Heartbeat(ctx context.Context, name string, hb cluster.Heartbeat) error {
	e, err := g.lookup(ctx, name)
	if err != nil {
		return err
	}
	limit := int64(defaultMaxWorkers)
	if m, ok := e.c.Config.MaxWorkers(); ok {
		limit = int64(m)
	}
	n := min(int64(max(hb.Count, 0)), limit)
	if n == e.replicas || e.c.Status.Finished() {
		return nil
	}
	err = g.patchSpec(ctx, name, map[string]any{"replicas": n})
	if errors.Is(err, cluster.ErrNotFound) {
		return nil
	}
	return err
}

// defaultMaxWorkers bounds spec.replicas when no cluster limit is set, so a
// scheduler's token alone cannot have the controller create pods without
// end; setting cluster_max_workers (or max_cores/max_memory) replaces it.
const defaultMaxWorkers = 1000

func (g *Gateway) patchSpec(ctx context.Context, name string, spec map[string]any) error {
	ns, hex, _ := SplitName(name)
	body, err := json.Marshal(map[string]any{"spec": spec})
	if err != nil {
		return err
	}
	u, err := g.cfg.Clients.Dynamic.Resource(GVR).Namespace(ns).Patch(ctx, hex, types.MergePatchType, body,
		metav1.PatchOptions{FieldManager: "daskgate"})
	if apierrors.IsNotFound(err) {
		return cluster.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("patch DaskCluster %s: %w", name, err)
	}
	if dc, err := fromUnstructured(u); err == nil {
		g.store(dc)
	}
	return nil
}

// Wait blocks until the cluster leaves PENDING, is deleted, or ctx ends.
func (g *Gateway) Wait(ctx context.Context, name string) (*cluster.Cluster, error) {
	if _, err := g.lookup(ctx, name); err != nil {
		return nil, err
	}
	for {
		g.mu.Lock()
		e, ch := g.clusters[name], g.waiters[name]
		pending := e != nil && e.c.Status == cluster.Pending
		if pending && ch == nil {
			ch = make(chan struct{})
			g.waiters[name] = ch
		}
		g.mu.Unlock()
		if !pending {
			return g.Get(context.WithoutCancel(ctx), name)
		}
		select {
		case <-ctx.Done():
			return g.Get(context.WithoutCancel(ctx), name)
		case <-ch:
		}
	}
}

// Counts counts cached clusters by status.
func (g *Gateway) Counts() map[cluster.Status]int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := map[cluster.Status]int{}
	for _, e := range g.clusters {
		out[e.c.Status]++
	}
	return out
}
