package kube_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	"github.com/daskgate/daskgate/cluster"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
)

func running(t *testing.T, h *harness, g *gatewayReplica) (name, ns, hex string) {
	t.Helper()
	name = h.create(g, "alice", nil)
	if st := h.status(g, "alice", name, true); st != "RUNNING" {
		t.Fatalf("after ?wait: %s", st)
	}
	ns, hex, _ = kube.SplitName(name)
	return name, ns, hex
}

func TestSchedulerPodDeletedFailsCluster(t *testing.T) {
	h := newHarness(t, nil)
	h.startController("c1")
	g := h.startGateway()
	name, ns, hex := running(t, h, g)
	if err := h.admin.Core.CoreV1().Pods(ns).Delete(context.Background(), "dask-scheduler-"+hex, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "FAILED", func() bool { return h.status(g, "alice", name, false) == "FAILED" })
	if dc := h.dc(name); dc.Status.Reason != "SchedulerDeleted" || dc.Status.CompletionTime == "" {
		t.Fatalf("status: %+v", dc.Status)
	}
}

func TestFailedWorkerIsReplaced(t *testing.T) {
	h := newHarness(t, nil)
	h.startController("c1")
	g := h.startGateway()
	name, ns, _ := running(t, h, g)
	h.heartbeat(g, name, 2)
	pods := h.waitWorkers(name, 2, 30*time.Second)
	// Evicted / node lost: the pod fails as a whole (a container that
	// merely exits non-zero is restarted in place by the kubelet).
	h.setPodStatus(ns, pods[0].Name, func(s *corev1.PodStatus) { s.Phase = corev1.PodFailed; s.Reason = "Evicted" })
	waitFor(t, 30*time.Second, "failed worker replaced", func() bool {
		now := h.workerPods(name)
		if len(now) != 2 {
			return false
		}
		for _, p := range now {
			if p.Name == pods[0].Name || p.Status.Phase != corev1.PodRunning {
				return false
			}
		}
		return true
	})
	// A worker pod deleted by someone else is recreated too.
	pods = h.workerPods(name)
	h.admin.Core.CoreV1().Pods(ns).Delete(context.Background(), pods[1].Name, metav1.DeleteOptions{})
	waitFor(t, 30*time.Second, "deleted worker recreated", func() bool {
		now := h.workerPods(name)
		return len(now) == 2 && now[0].Name != pods[1].Name && now[1].Name != pods[1].Name
	})
}

// TestPendingReasonsReachTheClient: an unschedulable scheduler shows
// Unschedulable while pending; once its image cannot be pulled, the
// cluster fails at the start timeout with ImagePullBackOff, which the API
// reports. (The pod is pinned to a node that does not exist so that kwok
// leaves its status to the test.)
func TestPendingReasonsReachTheClient(t *testing.T) {
	h := newHarness(t, func(c *kube.ControllerConfig) { c.StartTimeout = 15 * time.Second })
	h.clusterConfig = func(c *cluster.Config) { c.NodeSelector = map[string]string{"daskgate-test/none": "x"} }
	h.startController("c1")
	g := h.startGateway()
	name := h.create(g, "alice", nil)
	ns, hex, _ := kube.SplitName(name)
	waitFor(t, 10*time.Second, "Unschedulable in status", func() bool {
		dc := h.dc(name)
		return dc.Status.Reason == "Unschedulable" && dc.Status.Phase != "Failed"
	})
	if st := h.status(g, "alice", name, false); st != "PENDING" {
		t.Fatalf("while unschedulable: %s", st)
	}
	h.setPodStatus(ns, "dask-scheduler-"+hex, func(s *corev1.PodStatus) {
		s.ContainerStatuses = []corev1.ContainerStatus{{Name: "dask-scheduler", State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "nope:1"`}}}}
	})
	waitFor(t, 30*time.Second, "FAILED", func() bool { return h.status(g, "alice", name, false) == "FAILED" })
	dc := h.dc(name)
	if dc.Status.Reason != "ImagePullBackOff" || !strings.Contains(dc.Status.Message, "nope:1") {
		t.Fatalf("status: %+v", dc.Status)
	}
	// The client's start loop (GET ?wait) gets a 409 that names the reason,
	// which the Python client raises as GatewayClusterError(message).
	var apiErr struct{ Error string }
	if code := h.call(g, "alice", "GET", "/api/v1/clusters/"+name+"?wait", nil, &apiErr); code != 409 ||
		!strings.Contains(apiErr.Error, "failed to start: ImagePullBackOff") || !strings.Contains(apiErr.Error, "nope:1") {
		t.Fatalf("?wait on the failed cluster: %d %q", code, apiErr.Error)
	}
	// A scheduler that never ran has no logs: its pod is deleted rather than
	// left pulling images. An Event says why the cluster failed.
	waitFor(t, 10*time.Second, "never-run scheduler pod deleted", func() bool { return h.deleted(name, "scheduler") })
	evs, _ := h.admin.Core.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	found := false
	for _, e := range evs.Items {
		found = found || (e.InvolvedObject.Name == hex && e.Reason == "ImagePullBackOff")
	}
	if !found {
		t.Fatal("no ImagePullBackOff event on the DaskCluster")
	}
}

// TestControllerRestartAndLeaderHandover: two controllers share a Lease;
// killing the leader mid-way hands over to the other, which finishes the
// work without duplicating objects.
func TestControllerRestartAndLeaderHandover(t *testing.T) {
	h := newHarness(t, nil)
	stopA := h.startController("a")
	waitFor(t, 10*time.Second, "a leads", func() bool { return h.leader() == "a" })
	h.startController("b")
	g := h.startGateway()
	name, ns, hex := running(t, h, g)
	h.heartbeat(g, name, 3)
	stopA() // mid-reconcile: the scale-up may be half done
	waitFor(t, 20*time.Second, "b leads", func() bool { return h.leader() == "b" })
	h.waitWorkers(name, 3, 30*time.Second)
	time.Sleep(500 * time.Millisecond)
	if n := len(h.workerPods(name)); n != 3 {
		t.Fatalf("%d workers after handover, want 3", n)
	}
	// b alone runs a new cluster from start to finish.
	name2, _, _ := running(t, h, g)
	h.heartbeat(g, name2, 1)
	h.waitWorkers(name2, 1, 30*time.Second)
	sched, _ := h.admin.Core.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: kube.LabelCluster + "=" + hex + "," + kube.LabelComponent + "=dask-scheduler"})
	if len(sched.Items) != 1 {
		t.Fatalf("%d scheduler pods", len(sched.Items))
	}
}

func (h *harness) leader() string { return h.holder("daskgate-controller-" + h.instance) }

// TestGatewayReplicas: a cluster created through replica A is visible and
// stoppable through replica B right after the 201, and B keeps serving
// when A is killed.
func TestGatewayReplicas(t *testing.T) {
	h := newHarness(t, nil)
	h.startController("c1")
	a, b := h.startGateway(), h.startGateway()
	for range 5 {
		name := h.create(a, "alice", nil)
		if st := h.status(b, "alice", name, false); st != "PENDING" && st != "RUNNING" {
			t.Fatalf("replica B right after create: %s", st)
		}
		if code := h.call(b, "alice", "DELETE", "/api/v1/clusters/"+name, nil, nil); code != 204 {
			t.Fatalf("stop through B: %d", code)
		}
		if code := h.call(b, "bob", "GET", "/api/v1/clusters/"+name, nil, nil); code != 403 && code != 404 {
			t.Fatalf("bob sees alice's cluster: %d", code)
		}
		waitFor(t, 15*time.Second, "STOPPED via A", func() bool { return h.status(a, "alice", name, false) == "STOPPED" })
	}
	name := h.create(a, "alice", nil)
	a.stop()
	if st := h.status(b, "alice", name, true); st != "RUNNING" {
		t.Fatalf("B after A died: %s", st)
	}
	h.heartbeat(b, name, 1)
	h.waitWorkers(name, 1, 30*time.Second)
	var list map[string]any
	h.call(b, "alice", "GET", "/api/v1/clusters/", nil, &list)
	if _, ok := list[name]; !ok || len(list) != 1 {
		t.Fatalf("list through B: %v", list)
	}
}

// TestBadConfigIsA422: what Kubernetes would reject is refused when the
// cluster is requested, naming the setting, and no object is written.
func TestBadConfigIsA422(t *testing.T) {
	h := newHarness(t, nil)
	h.clusterConfig = func(c *cluster.Config) {
		c.Tolerations = []map[string]any{{"key": "x", "tolerationSeconds": "soon"}}
		c.NodeSelector = map[string]string{"bad key!": "x"}
	}
	g := h.startGateway()
	var out struct{ Error string }
	if code := h.call(g, "alice", "POST", "/api/v1/clusters/", map[string]any{"cluster_options": map[string]any{}}, &out); code != 422 ||
		!strings.Contains(out.Error, "node_selector") {
		t.Fatalf("%d %q", code, out.Error)
	}
	// A namespace outside backend.kubernetes.namespaces is refused too.
	h.clusterConfig = func(c *cluster.Config) { c.Namespace = "elsewhere" }
	g = h.startGateway()
	if code := h.call(g, "alice", "POST", "/api/v1/clusters/", map[string]any{"cluster_options": map[string]any{}}, &out); code != 422 ||
		!strings.Contains(out.Error, "namespace") || !strings.Contains(out.Error, "elsewhere") {
		t.Fatalf("%d %q", code, out.Error)
	}
	l, _ := h.admin.Dynamic.Resource(kube.GVR).Namespace(h.ns).List(context.Background(), metav1.ListOptions{})
	if len(l.Items) != 0 {
		t.Fatalf("%d objects written", len(l.Items))
	}
}

// TestAdoptsUpstreamObject: a DaskCluster as upstream's gateway and
// controller wrote it passes the CRD schema and is served as RUNNING,
// with proxy routes, without any Traefik object.
func TestAdoptsUpstreamObject(t *testing.T) {
	h := newHarness(t, nil)
	g := h.startGateway()
	hex := "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	obj := map[string]any{"apiVersion": "gateway.dask.org/v1alpha1", "kind": "DaskCluster",
		"metadata": map[string]any{"name": hex, "labels": map[string]any{kube.LabelInstance: h.instance, kube.LabelCluster: hex,
			"app.kubernetes.io/name": "dask-gateway", "app.kubernetes.io/version": "2026.3.0"}},
		"spec": map[string]any{"username": "alice", "options": map[string]any{"worker_cores": 2, "anything": []any{1, "x"}},
			"config": map[string]any{"scheduler_cmd": "dask-scheduler", "worker_memory": 4294967296, "adaptive_period": 3.0,
				"cluster_max_workers": nil, "namespace": h.ns, "image": "ghcr.io/dask/dask-gateway:2026.3.0", "image_pull_policy": nil,
				"worker_extra_pod_config": map[string]any{"tolerations": []any{map[string]any{"key": "a", "operator": "Exists"}}}},
			"replicas": 3}}
	u := &unstructured.Unstructured{Object: obj}
	ctx := context.Background()
	created, err := h.admin.Dynamic.Resource(kube.GVR).Namespace(h.ns).Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("CRD rejected an upstream object: %v", err)
	}
	created.Object["status"] = map[string]any{"phase": "Running", "credentials": "dask-credentials-" + hex,
		"schedulerPod": "dask-scheduler-" + hex, "service": "dask-" + hex, "ingressroute": "dask-" + hex, "ingressroutetcp": "dask-" + hex}
	if _, err := h.admin.Dynamic.Resource(kube.GVR).Namespace(h.ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status rejected: %v", err)
	}
	name := kube.PublicName(h.ns, hex)
	waitFor(t, 10*time.Second, "RUNNING", func() bool { return h.status(g, "alice", name, false) == "RUNNING" })
	if r, ok := g.routes.Lookup(name); !ok || r.Scheduler != "dask-"+hex+"."+h.ns+":8786" {
		t.Fatalf("route: %+v %v", r, ok)
	}
	var c struct {
		Options map[string]any
	}
	h.call(g, "alice", "GET", "/api/v1/clusters/"+name, nil, &c)
	if c.Options["worker_cores"] != float64(2) {
		t.Fatalf("options: %v", c.Options)
	}

	// The controller adopts it: upstream's scheduler pod is kept (not
	// recreated, not failed) and the missing workers are created under it.
	sched := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dask-scheduler-" + hex, Namespace: h.ns,
		Labels:          map[string]string{kube.LabelInstance: h.instance, kube.LabelCluster: hex, kube.LabelComponent: kube.ComponentScheduler},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "gateway.dask.org/v1alpha1", Kind: "DaskCluster", Name: hex, UID: created.GetUID()}}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "dask-scheduler", Image: "ghcr.io/dask/dask-gateway:2026.3.0"}}}}
	sched, err = h.admin.Core.CoreV1().Pods(h.ns).Create(ctx, sched, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "upstream's scheduler pod running", func() bool {
		p, err := h.admin.Core.CoreV1().Pods(h.ns).Get(ctx, sched.Name, metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning
	})
	h.startController("c1")
	workers := h.waitWorkers(name, 3, 30*time.Second)
	for _, w := range workers {
		if own := w.OwnerReferences; len(own) != 1 || own[0].UID != sched.UID {
			t.Fatalf("worker %s owned by %+v, not upstream's scheduler pod", w.Name, own)
		}
	}
	p, err := h.admin.Core.CoreV1().Pods(h.ns).Get(ctx, sched.Name, metav1.GetOptions{})
	if err != nil || p.UID != sched.UID {
		t.Fatalf("upstream's scheduler pod was replaced: %v", err)
	}
	if dc := h.dc(name); dc.Status.Phase != "Running" {
		t.Fatalf("adopted cluster: %+v", dc.Status)
	}
}

// TestUnscheduledWorkersAreCountedAndScaledDownFirst: workers no node can
// take show up in status after a while; scaling down deletes pending pods
// (exactly as many as asked), never the running scheduler or workers.
func TestUnscheduledWorkersAreCountedAndScaledDownFirst(t *testing.T) {
	h := newHarness(t, nil)
	h.clusterConfig = func(c *cluster.Config) {
		c.WorkerExtraPodConfig = map[string]any{"nodeSelector": map[string]any{"daskgate-test/none": "x"}}
	}
	h.startController("c1")
	g := h.startGateway()
	name, _, _ := running(t, h, g)
	h.heartbeat(g, name, 3)
	waitFor(t, 10*time.Second, "3 pending worker pods", func() bool { return len(h.workerPods(name)) == 3 })
	waitFor(t, 20*time.Second, "status.unscheduledWorkers 3", func() bool { return h.dc(name).Status.Unscheduled == 3 })
	h.heartbeat(g, name, 1)
	waitFor(t, 10*time.Second, "2 pending pods deleted", func() bool { return len(h.workerPods(name)) == 1 })
	time.Sleep(500 * time.Millisecond)
	if n := len(h.workerPods(name)); n != 1 {
		t.Fatalf("%d worker pods, want 1", n)
	}
}

// TestEmbeddedControllerCampaignsAgain: the controller inside `daskgate
// serve` loses its Lease to another holder (a partition, say); it must not
// stay idle until a restart but campaign again, take the Lease back once
// it expires, and reconcile. The standalone form reports ErrLeaseLost.
func TestEmbeddedControllerCampaignsAgain(t *testing.T) {
	h := newHarness(t, nil)
	cfg := h.ctlCfg
	cfg.Clients, cfg.Identity = as(t, h.ns, "daskgate-controller"), "embedded"
	ctl, err := kube.NewController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- kube.RunCampaigning(ctx, ctl) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 10*time.Second, "embedded leads", func() bool { return h.leader() == "embedded" })

	h.stealLease("daskgate-controller-"+h.instance, "ghost")
	waitFor(t, 10*time.Second, "ghost holds the lease", func() bool { return h.leader() == "ghost" })
	// The ghost never renews: once its lease expires the embedded
	// controller, campaigning again, takes it back and does its work.
	waitFor(t, 20*time.Second, "embedded leads again", func() bool { return h.leader() == "embedded" })
	g := h.startGateway()
	name, _, _ := running(t, h, g)
	h.heartbeat(g, name, 2)
	h.waitWorkers(name, 2, 30*time.Second)

	// Standalone: Run returns ErrLeaseLost when the lease goes elsewhere.
	cfg.Identity, cfg.LeaseName = "standalone", "daskgate-standalone-"+h.instance
	solo, err := kube.NewController(cfg)
	if err != nil {
		t.Fatal(err)
	}
	soloDone := make(chan error, 1)
	soloCtx, soloCancel := context.WithCancel(context.Background())
	defer soloCancel()
	go func() { soloDone <- solo.Run(soloCtx) }()
	waitFor(t, 10*time.Second, "standalone leads", func() bool { return h.holder(cfg.LeaseName) == "standalone" })
	h.stealLease(cfg.LeaseName, "ghost")
	select {
	case err := <-soloDone:
		if !errors.Is(err, kube.ErrLeaseLost) {
			t.Fatalf("standalone Run returned %v, want ErrLeaseLost", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("standalone controller kept running after losing its lease")
	}
}

func (h *harness) holder(lease string) string {
	l, err := h.admin.Core.CoordinationV1().Leases(h.ns).Get(context.Background(), lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// stealLease makes identity the holder with a fresh renew time, as a
// replica on the other side of a partition would.
func (h *harness) stealLease(lease, identity string) {
	h.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l, err := h.admin.Core.CoordinationV1().Leases(h.ns).Get(context.Background(), lease, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity, l.Spec.AcquireTime, l.Spec.RenewTime = &identity, &now, &now
		_, err = h.admin.Core.CoordinationV1().Leases(h.ns).Update(context.Background(), l, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// waitError is the status and error a GET ?wait gives, as the client sees it.
func (h *harness) waitError(g *gatewayReplica, user, name string) (int, string) {
	h.t.Helper()
	var out struct{ Error string }
	code := h.call(g, user, "GET", "/api/v1/clusters/"+name+"?wait", nil, &out)
	return code, out.Error
}

// exitScheduler starts a cluster whose scheduler exits with code 3 before
// it is ready, and waits until the cluster is FAILED.
func (h *harness) exitScheduler() (g *gatewayReplica, name string) {
	h.t.Helper()
	h.clusterConfig = func(c *cluster.Config) { c.NodeSelector = map[string]string{"daskgate-test/none": "x"} }
	h.startController("c1")
	g = h.startGateway()
	name = h.create(g, "alice", nil)
	ns, hex, _ := kube.SplitName(name)
	waitFor(h.t, 10*time.Second, "scheduler pod", func() bool {
		_, err := h.admin.Core.CoreV1().Pods(ns).Get(context.Background(), "dask-scheduler-"+hex, metav1.GetOptions{})
		return err == nil
	})
	h.setPodStatus(ns, "dask-scheduler-"+hex, func(s *corev1.PodStatus) {
		s.ContainerStatuses = []corev1.ContainerStatus{{Name: "dask-scheduler", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}}}
	})
	waitFor(h.t, 10*time.Second, "FAILED", func() bool { return h.status(g, "alice", name, false) == "FAILED" })
	return g, name
}

// TestSchedulerExitKeepsItsPod: a scheduler that exits with an error fails
// the cluster with its exit code, and its pod is kept for kubectl logs.
func TestSchedulerExitKeepsItsPod(t *testing.T) {
	h := newHarness(t, nil)
	g, name := h.exitScheduler()
	ns, hex, _ := kube.SplitName(name)
	if dc := h.dc(name); dc.Status.Reason != "Error" || dc.Status.Message != "scheduler exited with code 3" {
		t.Fatalf("status: %+v", dc.Status)
	}
	if code, msg := h.waitError(g, "alice", name); code != 409 || !strings.Contains(msg, "failed to start: Error: scheduler exited with code 3") {
		t.Fatalf("?wait: %d %q", code, msg)
	}
	time.Sleep(time.Second) // a wrongful delete would have happened by now
	if _, err := h.admin.Core.CoreV1().Pods(ns).Get(context.Background(), "dask-scheduler-"+hex, metav1.GetOptions{}); err != nil {
		t.Fatalf("the failed scheduler's pod was not kept for its logs: %v", err)
	}
}

// TestDeleteFailedScheduler: with delete_failed_scheduler the pod of a
// failed scheduler goes at once, as upstream does.
func TestDeleteFailedScheduler(t *testing.T) {
	h := newHarness(t, func(c *kube.ControllerConfig) { c.DeleteFailedScheduler = true })
	_, name := h.exitScheduler()
	waitFor(t, 10*time.Second, "failed scheduler pod deleted", func() bool { return h.deleted(name, "scheduler") })
}

// TestRefusedSchedulerPod: a pod the API server calls invalid (extra pod
// configs are passed through, so only it validates their insides) fails
// the cluster at once; a pod refused by a quota is retried, shown as the
// reason while pending, and fails the cluster at the start timeout.
func TestRefusedSchedulerPod(t *testing.T) {
	h := newHarness(t, func(c *kube.ControllerConfig) { c.StartTimeout = 15 * time.Second })
	h.startController("c1")
	h.clusterConfig = func(c *cluster.Config) { c.SchedulerExtraPodConfig = map[string]any{"hostname": "Not_A_Hostname"} }
	bad := h.startGateway()
	name := h.create(bad, "alice", nil)
	waitFor(t, 10*time.Second, "FAILED", func() bool { return h.status(bad, "alice", name, false) == "FAILED" })
	if dc := h.dc(name); dc.Status.Reason != "FailedCreate" || !strings.Contains(dc.Status.Message, "hostname") {
		t.Fatalf("status: %+v", dc.Status)
	}
	if code, msg := h.waitError(bad, "alice", name); code != 409 || !strings.Contains(msg, "FailedCreate") || !strings.Contains(msg, "hostname") {
		t.Fatalf("?wait: %d %q", code, msg)
	}

	quota := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-pods"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}}
	if _, err := h.admin.Core.CoreV1().ResourceQuotas(h.ns).Create(context.Background(), quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.clusterConfig = nil
	g := h.startGateway()
	name = h.create(g, "alice", nil)
	waitFor(t, 10*time.Second, "the quota as the pending reason", func() bool {
		dc := h.dc(name)
		return dc.Status.Phase != "Failed" && dc.Status.Reason == "FailedCreate" && strings.Contains(dc.Status.Message, "forbidden")
	})
	if st := h.status(g, "alice", name, false); st != "PENDING" {
		t.Fatalf("while refused: %s", st)
	}
	waitFor(t, 60*time.Second, "FAILED at the start timeout", func() bool { return h.status(g, "alice", name, false) == "FAILED" })
	if code, msg := h.waitError(g, "alice", name); code != 409 || !strings.Contains(msg, "forbidden") || !strings.Contains(msg, "start timeout") {
		t.Fatalf("?wait: %d %q", code, msg)
	}
	// Cleanup follows the FAILED status write: wait for it.
	waitFor(t, 10*time.Second, "the failed cluster's Secret deleted", func() bool { return h.deleted(name, "secret") })
}

// TestControllerRestartedMidReconcile: a lone controller stopped as soon
// as its work is partly done (the Secret written but maybe not the pod; a
// scale-up of 6 with some workers created) leaves state that a fresh
// controller completes without duplicating anything.
func TestControllerRestartedMidReconcile(t *testing.T) {
	h := newHarness(t, nil)
	g := h.startGateway()
	ctx := context.Background()
	name := h.create(g, "alice", nil)
	ns, hex, _ := kube.SplitName(name)
	stop := h.startController("first")
	waitFor(t, 20*time.Second, "the Secret written", func() bool {
		_, err := h.admin.Core.CoreV1().Secrets(ns).Get(ctx, "dask-credentials-"+hex, metav1.GetOptions{})
		return err == nil
	})
	stop()
	stop = h.startController("second")
	if st := h.status(g, "alice", name, true); st != "RUNNING" {
		t.Fatalf("after the restart: %s", st)
	}
	h.heartbeat(g, name, 6)
	waitFor(t, 30*time.Second, "some workers created", func() bool { return len(h.workerPods(name)) > 0 })
	stop()
	h.startController("third")
	h.waitWorkers(name, 6, 30*time.Second)
	time.Sleep(time.Second) // a duplicate create would show by now
	if n := len(h.workerPods(name)); n != 6 {
		t.Fatalf("%d workers after the restarts, want 6", n)
	}
	sched, _ := h.admin.Core.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{
		LabelSelector: kube.LabelCluster + "=" + hex + "," + kube.LabelComponent + "=" + kube.ComponentScheduler})
	if len(sched.Items) != 1 {
		t.Fatalf("%d scheduler pods", len(sched.Items))
	}
}

// TestSchedulerCleanExitStops: a running scheduler that exits 0 (its idle
// timeout) stops the cluster even when its DELETE to the gateway has not
// arrived: STOPPED, not FAILED, and its pod and Secret go.
func TestSchedulerCleanExitStops(t *testing.T) {
	h := newHarness(t, nil)
	h.startController("c1")
	g := h.startGateway()
	name, ns, hex := running(t, h, g)
	h.setPodStatus(ns, "dask-scheduler-"+hex, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodSucceeded
		s.ContainerStatuses = []corev1.ContainerStatus{{Name: "dask-scheduler", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}}
	})
	waitFor(t, 10*time.Second, "STOPPED", func() bool { return h.status(g, "alice", name, false) == "STOPPED" })
	waitFor(t, 20*time.Second, "scheduler pod and Secret deleted", func() bool { return h.deleted(name, "scheduler", "secret") })
	if dc := h.dc(name); dc.Status.Phase != "Stopped" || dc.Status.Reason != "" {
		t.Fatalf("status: %+v", dc.Status)
	}
}
