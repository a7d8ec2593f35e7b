package kube_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestLifecycle runs create → running → scale 2 → retire 1 → stop →
// cleanup through the gateway's HTTP API and a real API server, as the
// gateway and controller service accounts, and checks the objects.
func TestLifecycle(t *testing.T) {
	h := newHarness(t, func(c *kube.ControllerConfig) { c.CompletedMaxAge = 2 * time.Second })
	h.startController("c1")
	g := h.startGateway()
	ctx := context.Background()

	name := h.create(g, "alice", nil)
	ns, hex, ok := kube.SplitName(name)
	if !ok || ns != h.ns || len(hex) != 32 {
		t.Fatalf("cluster name %q is not <namespace>.<hex>", name)
	}
	if st := h.status(g, "alice", name, true); st != "RUNNING" {
		t.Fatalf("after ?wait: %s", st)
	}

	// The objects the stock image and preload expect.
	sec, err := h.admin.Core.CoreV1().Secrets(ns).Get(ctx, "dask-credentials-"+hex, metav1.GetOptions{})
	if err != nil || len(sec.Data["dask.crt"]) == 0 || len(sec.Data["dask.pem"]) == 0 || len(sec.Data["api-token"]) != 32 {
		t.Fatalf("secret: %v %v", err, sec)
	}
	sched, err := h.admin.Core.CoreV1().Pods(ns).Get(ctx, "dask-scheduler-"+hex, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := sched.Spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"dask scheduler --protocol tls --host  --port 8786", "--dashboard-address :8787",
		"--dg-api-address :8788", "--preload dask_gateway.scheduler_preload", "--dg-adaptive-period 3", "--dg-idle-timeout 0"} {
		if !strings.Contains(args, want) {
			t.Errorf("scheduler args %q lack %q", args, want)
		}
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["DASK_GATEWAY_CLUSTER_NAME"] != name || env["DASK_GATEWAY_API_TOKEN"] != "/etc/dask-credentials/api-token" ||
		env["DASK_GATEWAY_API_URL"] != h.ctlCfg.APIURL || env["DASK_DISTRIBUTED__COMM__TLS__CA_FILE"] != "/etc/dask-credentials/dask.crt" {
		t.Errorf("scheduler env: %v", env)
	}
	if c.Image != "ghcr.io/dask/dask-gateway:test" || sched.Spec.RestartPolicy != corev1.RestartPolicyNever ||
		*sched.Spec.AutomountServiceAccountToken || sched.Spec.Volumes[0].Secret.SecretName != "dask-credentials-"+hex {
		t.Errorf("scheduler pod spec: %+v", sched.Spec)
	}
	if own := sched.OwnerReferences; len(own) != 1 || own[0].Kind != "DaskCluster" || own[0].Name != hex || !*own[0].Controller {
		t.Errorf("scheduler owner: %+v", own)
	}
	svc, err := h.admin.Core.CoreV1().Services(ns).Get(ctx, "dask-"+hex, metav1.GetOptions{})
	if err != nil || svc.Spec.ClusterIP != "None" || len(svc.Spec.Ports) != 3 || svc.Spec.Selector[kube.LabelComponent] != "dask-scheduler" {
		t.Fatalf("service: %v %+v", err, svc)
	}
	dc := h.dc(name)
	if dc.Status.Phase != "Running" || dc.Status.Service != "dask-"+hex || dc.Status.Credentials != "dask-credentials-"+hex ||
		dc.Spec.Username != "alice" || dc.Labels[kube.LabelInstance] != h.instance {
		t.Fatalf("DaskCluster: %+v", dc)
	}
	if r, ok := g.routes.Lookup(name); !ok || r.Scheduler != "dask-"+hex+"."+ns+":8786" || r.Dashboard != "http://dask-"+hex+"."+ns+":8787" {
		t.Fatalf("proxy route: %+v %v", r, ok)
	}

	// Scale: the gateway forwards to the scheduler, whose heartbeat sets spec.replicas.
	if code := h.call(g, "alice", "POST", "/api/v1/clusters/"+name+"/scale", map[string]any{"count": 2}, nil); code != 200 {
		t.Fatalf("scale: %d", code)
	}
	pods := h.waitWorkers(name, 2, 30*time.Second)
	w := pods[0].Spec.Containers[0]
	if !slices.Contains(w.Args, "tls://dask-"+hex+"."+ns+":8786") || !slices.Contains(w.Args, "$(DASK_GATEWAY_WORKER_NAME)") ||
		w.Env[len(w.Env)-1].ValueFrom.FieldRef.FieldPath != "metadata.name" || pods[0].Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Errorf("worker pod: %+v", pods[0].Spec)
	}
	if own := pods[0].OwnerReferences; len(own) != 1 || own[0].Kind != "Pod" || own[0].Name != "dask-scheduler-"+hex {
		t.Errorf("worker owner: %+v", own)
	}

	// Adapt goes to the same scheduler API, with the cluster's token.
	if code := h.call(g, "alice", "POST", "/api/v1/clusters/"+name+"/adapt", map[string]any{"minimum": 1, "maximum": 2, "active": true}, nil); code != 200 {
		t.Fatalf("adapt: %d", code)
	}
	select {
	case m := <-h.adapts:
		if m.Host != "dask-"+hex+"."+ns || m.Minimum == nil || *m.Minimum != 1 || m.Maximum == nil || *m.Maximum != 2 || !m.Active {
			t.Fatalf("adapt reached the scheduler as %+v", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("adapt never reached the scheduler")
	}

	// Retire one: the scheduler lowers the count, the worker exits 0, its
	// pod succeeds and is deleted; the running one is never touched.
	if code := h.heartbeat(g, name, 1); code != 200 {
		t.Fatalf("heartbeat: %d", code)
	}
	waitFor(t, 10*time.Second, "spec.replicas 1", func() bool { d := h.dc(name); return d.Spec.Replicas != nil && *d.Spec.Replicas == 1 })
	time.Sleep(300 * time.Millisecond) // the controller must not delete a running worker meanwhile
	if n := len(h.workerPods(name)); n != 2 {
		t.Fatalf("controller deleted a running worker: %d left", n)
	}
	retired := pods[1].Name
	h.setPodStatus(ns, retired, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodSucceeded
		s.ContainerStatuses = []corev1.ContainerStatus{{Name: "dask-worker", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}}
	})
	left := h.waitWorkers(name, 1, 20*time.Second)
	if left[0].Name != pods[0].Name {
		t.Fatalf("the wrong worker went: %s left, retired %s", left[0].Name, retired)
	}

	// Stop: STOPPED through the API, scheduler, Secret and workers go.
	if code := h.call(g, "alice", "DELETE", "/api/v1/clusters/"+name, nil, nil); code != 204 {
		t.Fatalf("stop: %d", code)
	}
	waitFor(t, 10*time.Second, "STOPPED", func() bool { return h.status(g, "alice", name, false) == "STOPPED" })
	waitFor(t, 30*time.Second, "scheduler, secret and workers deleted", func() bool {
		return h.deleted(name, "scheduler", "secret") && len(h.workerPods(name)) == 0
	})
	if _, ok := g.routes.Lookup(name); ok {
		t.Fatal("route kept after stop")
	}
	// Cleanup: the finished DaskCluster is deleted after CompletedMaxAge.
	waitFor(t, 20*time.Second, "DaskCluster cleaned up", func() bool { return h.dc(name) == nil })
	waitFor(t, 10*time.Second, "the gateway forgets it (404)", func() bool { return h.status(g, "alice", name, false) == "HTTP 404" })
}

// TestDeletingTheDaskClusterDeletesItsObjects: owner references let
// Kubernetes' garbage collector take a running cluster's Secret, scheduler
// pod, Service and workers when its DaskCluster is deleted (kubectl delete
// dc), and the gateway forgets the cluster and its routes.
func TestDeletingTheDaskClusterDeletesItsObjects(t *testing.T) {
	h := newHarness(t, nil)
	h.startController("c1")
	g := h.startGateway()
	ctx := context.Background()
	name := h.create(g, "alice", nil)
	ns, hex, _ := kube.SplitName(name)
	if st := h.status(g, "alice", name, true); st != "RUNNING" {
		t.Fatalf("after ?wait: %s", st)
	}
	if code := h.heartbeat(g, name, 1); code != 200 {
		t.Fatalf("heartbeat: %d", code)
	}
	h.waitWorkers(name, 1, 30*time.Second)
	sec, err := h.admin.Core.CoreV1().Secrets(ns).Get(ctx, "dask-credentials-"+hex, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := h.admin.Core.CoreV1().Services(ns).Get(ctx, "dask-"+hex, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if own := sec.OwnerReferences; len(own) != 1 || own[0].Kind != "DaskCluster" || own[0].Name != hex {
		t.Fatalf("secret owner: %+v", own)
	}
	if own := svc.OwnerReferences; len(own) != 1 || own[0].Kind != "Pod" || own[0].Name != "dask-scheduler-"+hex {
		t.Fatalf("service owner: %+v", own)
	}

	// The collector learns of a new CRD's kind at its next discovery pass
	// (every 30 s), hence the long wait on a fresh control plane.
	if err := h.admin.Dynamic.Resource(kube.GVR).Namespace(ns).Delete(ctx, hex, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 120*time.Second, "Secret, scheduler pod, Service and workers collected", func() bool {
		return h.deleted(name, "scheduler", "secret", "service") && len(h.workerPods(name)) == 0
	})
	waitFor(t, 10*time.Second, "the gateway forgets it (404)", func() bool { return h.status(g, "alice", name, false) == "HTTP 404" })
	if _, ok := g.routes.Lookup(name); ok {
		t.Fatal("route kept after the DaskCluster was deleted")
	}
}
