package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	if r := dc.Annotations[AnnotationStopReason]; r != "" && c.Reason == "" && (c.Status == cluster.Stopping || c.Status == cluster.Stopped) {
		c.Reason = r
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
