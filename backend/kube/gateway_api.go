package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/daskgate/daskgate/cluster"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The server.Backend methods of the Gateway: writes go to the API server,
// reads come from the informer cache.

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
	return g.patch(ctx, name, map[string]any{"spec": map[string]any{"active": false},
		"metadata": map[string]any{"annotations": map[string]string{AnnotationStopReason: reason}}})
}

// Heartbeat writes the requested worker count, clamped, to spec.replicas
// (only when it changed: most heartbeats cost no write).
func (g *Gateway) Heartbeat(ctx context.Context, name string, hb cluster.Heartbeat) error {
	e, err := g.lookup(ctx, name)
	if err != nil {
		return err
	}
	n := int64(min(max(hb.Count, 0), e.c.Config.WorkerLimit()))
	if n == e.replicas || e.c.Status.Finished() {
		return nil
	}
	err = g.patchSpec(ctx, name, map[string]any{"replicas": n})
	if errors.Is(err, cluster.ErrNotFound) {
		return nil
	}
	return err
}

func (g *Gateway) patchSpec(ctx context.Context, name string, spec map[string]any) error {
	return g.patch(ctx, name, map[string]any{"spec": spec})
}

// patch merge-patches the DaskCluster behind name.
func (g *Gateway) patch(ctx context.Context, name string, patch map[string]any) error {
	ns, hex, _ := SplitName(name)
	body, err := json.Marshal(patch)
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
