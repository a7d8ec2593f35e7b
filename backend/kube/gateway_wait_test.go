package kube

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/daskgate/daskgate/cluster"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
)

// TestWaitWakesOnlyItsCluster: a ?wait on one cluster ends when that
// cluster changes, not when others do (1,000 waiting clients must not all
// wake on every watch event).
func TestWaitWakesOnlyItsCluster(t *testing.T) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: secretName("a")},
		Data: map[string][]byte{"api-token": []byte("tok"), "dask.crt": []byte("cert"), "dask.pem": []byte("key")}}
	g := &Gateway{log: slog.New(slog.DiscardHandler), clusters: map[string]*entry{}, waiters: map[string]chan struct{}{},
		cfg: GatewayConfig{Namespaces: []string{"ns"}, Clients: &Clients{Core: fake.NewClientset(secret)}}}
	dc := func(hex, phase string) *DaskCluster {
		return &DaskCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: hex, UID: types.UID("uid-" + hex)},
			Spec: Spec{Username: "alice"}, Status: Status{Phase: phase}}
	}
	g.store(dc("a", PhasePending))
	g.store(dc("b", PhasePending))

	got := make(chan *cluster.Cluster)
	go func() {
		c, err := g.Wait(context.Background(), "ns.a")
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	waitFor(t, func() bool { g.mu.RLock(); defer g.mu.RUnlock(); return g.waiters["ns.a"] != nil })
	g.store(dc("b", PhaseRunning))
	g.store(dc("b", PhaseStopped))
	select {
	case c := <-got:
		t.Fatalf("wait on ns.a returned %v after changes to ns.b only", c.Status)
	case <-time.After(100 * time.Millisecond):
	}
	g.mu.RLock()
	_, stillWaiting := g.waiters["ns.a"]
	g.mu.RUnlock()
	if !stillWaiting {
		t.Fatal("ns.a's waiter channel was closed by another cluster's change")
	}
	g.store(dc("a", PhaseRunning))
	select {
	case c := <-got:
		if c.Status != cluster.Running || c.Token != "tok" || c.TLSCert != "cert" {
			t.Fatalf("got status %v, token %q, cert %q; want RUNNING with the Secret's credentials", c.Status, c.Token, c.TLSCert)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait on ns.a did not end when ns.a became Running")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not reached")
}

// TestStoppingClusterKeepsItsToken: a replica that first sees a cluster
// after its stop was requested still reads the cluster's token, so the
// scheduler's last heartbeats are not refused; and the stop request shows
// as STOPPING, not as a step back to RUNNING from a stale event.
func TestStoppingClusterKeepsItsToken(t *testing.T) {
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: secretName("a")},
		Data: map[string][]byte{"api-token": []byte("tok")}}
	g := &Gateway{log: slog.New(slog.DiscardHandler), clusters: map[string]*entry{}, waiters: map[string]chan struct{}{},
		cfg: GatewayConfig{Namespaces: []string{"ns"}, Clients: &Clients{Core: fake.NewClientset(secret)}}}
	inactive := false
	stopping := &DaskCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", UID: "u"},
		Spec: Spec{Username: "alice", Active: &inactive}, Status: Status{Phase: PhaseRunning}}
	g.store(stopping)
	c, err := g.Get(context.Background(), "ns.a")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != cluster.Stopping || c.Token != "tok" {
		t.Fatalf("got %v with token %q, want STOPPING with the Secret's token", c.Status, c.Token)
	}
	stale := &DaskCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", UID: "u"},
		Spec: Spec{Username: "alice"}, Status: Status{Phase: PhaseRunning}}
	g.store(stale)
	if c, _ := g.Get(context.Background(), "ns.a"); c.Status != cluster.Stopping {
		t.Fatalf("a stale event turned a stopping cluster into %v", c.Status)
	}
}

// TestHeartbeatClampsReplicas: spec.replicas never exceeds the cluster's
// limit, nor 1,000 when it has none; an unchanged count costs no write.
func TestHeartbeatClampsReplicas(t *testing.T) {
	limited := &DaskCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", UID: "uid-a"},
		Spec: Spec{Username: "alice", Config: map[string]any{"cluster_max_workers": 3}}, Status: Status{Phase: PhaseRunning}}
	open := &DaskCluster{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b", UID: "uid-b"},
		Spec: Spec{Username: "alice"}, Status: Status{Phase: PhaseRunning}}
	var objs []runtime.Object
	for _, dc := range []*DaskCluster{limited, open} {
		u, err := toUnstructured(dc)
		if err != nil {
			t.Fatal(err)
		}
		u.SetAPIVersion(Group + "/" + Version)
		u.SetKind(Kind)
		objs = append(objs, u)
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{GVR: Kind + "List"}, objs...)
	g := &Gateway{log: slog.New(slog.DiscardHandler), clusters: map[string]*entry{}, waiters: map[string]chan struct{}{},
		cfg: GatewayConfig{Namespaces: []string{"ns"}, Clients: &Clients{Dynamic: dyn}}}
	g.store(limited)
	g.store(open)
	replicas := func(hex string) int64 {
		u, err := dyn.Resource(GVR).Namespace("ns").Get(context.Background(), hex, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
		return n
	}
	for _, tc := range []struct {
		name  string
		count int
		want  int64
	}{{"ns.a", 10, 3}, {"ns.a", 2, 2}, {"ns.b", 5000, 1000}, {"ns.b", -4, 0}} {
		if err := g.Heartbeat(context.Background(), tc.name, cluster.Heartbeat{Count: tc.count}); err != nil {
			t.Fatal(err)
		}
		if got := replicas(tc.name[3:]); got != tc.want {
			t.Errorf("heartbeat %d on %s: spec.replicas %d, want %d", tc.count, tc.name, got, tc.want)
		}
	}
	writes := len(dyn.Actions())
	if err := g.Heartbeat(context.Background(), "ns.a", cluster.Heartbeat{Count: 2}); err != nil {
		t.Fatal(err)
	}
	if len(dyn.Actions()) != writes {
		t.Errorf("an unchanged count was written again: %v", dyn.Actions()[writes:])
	}
}
