package charts

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	"github.com/daskgate/daskgate/backend/kube/kubetest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestInstallRunAndUpgrade installs the chart with helm v3 (--wait, on
// the control plane with kwok nodes), checks the objects, runs the
// installed gateway and controller containers as the chart configures
// them (their ServiceAccounts' RBAC), drives them with the real Python
// client through a cluster's life, and upgrades the release with helm v4:
// a policy edit reaches the running gateway without a restart.
func TestInstallRunAndUpgrade(t *testing.T) {
	const ns, rel = "dask", "dg"
	values := []string{"-f", "testdata/dask-gateway/good/upstream-ci.yaml", "-f", "testdata/dask-gateway/install.yaml"}
	notes := mustHelm(t, "helm", append([]string{"install", rel, "dask-gateway", "--namespace", ns, "--create-namespace",
		"--wait", "--timeout", "3m"}, values...)...)
	for _, want := range []string{"Service traefik-dg-dask-gateway (NodePort), port 80", `gateway = Gateway("http://<address>:80/services/dask-gateway", auth="basic")`,
		"Schedulers report to http://api-dg-dask-gateway.dask:8000/services/dask-gateway/api"} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, notes)
		}
	}
	cl, err := kube.NewClients(kube.ClientConfig{Kubeconfig: env.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const full = "dg-dask-gateway"

	// Services: the names daskhub, hub configs and running schedulers use.
	svc := func(name string) *corev1.Service {
		s, err := cl.Core.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if p := svc("api-" + full).Spec.Ports; len(p) != 1 || p[0].Port != 8000 || p[0].TargetPort.IntValue() != 8000 {
		t.Errorf("api Service ports %+v", p)
	}
	proxy := svc("traefik-" + full)
	if p := proxy.Spec.Ports; proxy.Spec.Type != corev1.ServiceTypeNodePort || len(p) != 1 || p[0].Port != 80 || p[0].NodePort != 30200 || p[0].TargetPort.IntValue() != 8000 {
		t.Errorf("proxy Service %s ports %+v", proxy.Spec.Type, p)
	}
	if proxy.Spec.Selector["app.kubernetes.io/component"] != "gateway" {
		t.Errorf("proxy Service selects %v, want the gateway pods", proxy.Spec.Selector)
	}
	// RBAC: namespaced, named after the release, bound to the pods' accounts.
	for _, name := range []string{"api-" + full, "controller-" + full} {
		rb, err := cl.Core.RbacV1().RoleBindings(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rb.RoleRef.Name != name || rb.Subjects[0].Name != name {
			t.Errorf("RoleBinding %s: %+v", name, rb)
		}
	}
	pods, err := cl.Core.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=gateway"})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("gateway pods: %v %v", pods, err)
	}
	if pods.Items[0].Labels["hub.jupyter.org/network-access-hub"] != "true" || pods.Items[0].Labels["gateway.dask.org/instance"] != full {
		t.Errorf("gateway pod labels %v", pods.Items[0].Labels)
	}

	// The installed containers, run as the chart configures them.
	dir := t.TempDir()
	dialMap := filepath.Join(dir, "dial.json")
	if err := os.WriteFile(dialMap, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	gw := runContainer(t, cl, ns, "api-"+full, "gateway", "DASKGATE_ADDRESS="+addr, "DASKGATE_TESTDIAL_MAP="+dialMap)
	gw.waitReady(base, 60*time.Second)
	runContainer(t, cl, ns, "controller-"+full, "controller")
	venv := kubetest.VenvBin(t, "..")
	pr := &kubetest.PodRunner{Core: cl.Core, Namespace: ns, Venv: venv, APIURL: base + "/api", Dir: dir, MapFile: dialMap, Logf: t.Logf}
	pr.Start(ctx, t)

	out := python(t, venv, base+"/services/dask-gateway", `
import os, time
from dask_gateway import Gateway, BasicAuth
addr = os.environ["GATEWAY_URL"]
with Gateway(addr, auth=BasicAuth("mallory", "hunter2")) as bad:
    try:
        bad.list_clusters()
        print("WRONG PASSWORD ACCEPTED")
    except Exception as e:
        print("WRONG PASSWORD REFUSED", type(e).__name__)
gw = Gateway(addr, auth=BasicAuth("alice", "#hunter2"))
opts = gw.cluster_options()
print("OPTIONS", opts._fields["worker_cores"].label)
opts.worker_cores = 2
cluster = gw.new_cluster(opts)
print("NAME", cluster.name)
deadline = time.time() + 60
while True:
    try:
        cluster.scale(1)
        break
    except Exception:
        if time.time() > deadline:
            raise
        time.sleep(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=120)
print("RESULT", client.submit(lambda x: x + 1, 41).result())
print("THREADS", sorted(client.nthreads().values()))
client.close()
cluster.shutdown()
print("LEFT", gw.list_clusters())
gw.close()
`)
	for _, want := range []string{"WRONG PASSWORD REFUSED", "OPTIONS Worker cores (v1)", "RESULT 42", "THREADS [2]", "LEFT []"} {
		if !strings.Contains(out, want) {
			pr.DumpLogs()
			t.Fatalf("client output lacks %q:\n%s", want, out)
		}
	}
	// The DaskCluster carries the chart's instance; the chart's controller
	// made the pods under it.
	dcs, err := cl.Dynamic.Resource(kube.GVR).Namespace(ns).List(ctx, metav1.ListOptions{LabelSelector: "gateway.dask.org/instance=" + full})
	if err != nil || len(dcs.Items) != 1 {
		t.Fatalf("DaskClusters of the release: %v %v", dcs, err)
	}

	// helm test's pod, run here: the API answers through the proxy Service.
	hook := testHookArgs(t, rel, ns)
	for i, a := range hook {
		hook[i] = strings.Replace(a, "http://traefik-"+full+"."+ns+":80", base, 1)
	}
	if b, err := exec.Command(binary, hook...).CombinedOutput(); err != nil {
		t.Fatalf("the helm test hook's check: %v\n%s", err, b)
	}

	// Upgrade with helm v4: the policy edit reaches the running gateway
	// (no rollout: the gateway's pod template is unchanged), and two
	// replicas get a PodDisruptionBudget.
	before := templateOf(t, cl, ns, "api-"+full).Spec.Template.Annotations
	mustHelm(t, "helm4", append([]string{"upgrade", rel, "dask-gateway", "--namespace", ns, "--wait", "--timeout", "3m"},
		append(values, "-f", "testdata/dask-gateway/upgrade.yaml")...)...)
	after := templateOf(t, cl, ns, "api-"+full).Spec.Template.Annotations
	if before["checksum/configmap"] != after["checksum/configmap"] {
		t.Errorf("a policy edit changed the gateway's config checksum: the pods would restart")
	}
	if _, err := cl.Core.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, "api-"+full, metav1.GetOptions{}); err != nil {
		t.Errorf("no PodDisruptionBudget with 2 replicas: %v", err)
	}
	gw.syncVolumes() // what the kubelet does with the updated ConfigMap
	deadline := time.Now().Add(20 * time.Second)
	for {
		body := get(t, base+"/services/dask-gateway/api/v1/options", "alice", "#hunter2")
		if strings.Contains(body, "Worker cores (v2)") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the running gateway still serves %s\n%s", body, gw.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	mustHelm(t, "helm4", "uninstall", rel, "--namespace", ns, "--wait")
}

// testHookArgs are the args of the chart's helm test pod.
func testHookArgs(t *testing.T, rel, ns string) []string {
	out := mustHelm(t, "helm", "get", "hooks", rel, "--namespace", ns)
	for _, line := range strings.Split(out, "\n") {
		if a, ok := strings.CutPrefix(strings.TrimSpace(line), "args: [check, "); ok {
			u := strings.Trim(strings.TrimSuffix(a, "]"), `"`)
			return []string{"check", u}
		}
	}
	t.Fatalf("no helm test hook in:\n%s", out)
	return nil
}

func get(t *testing.T, url, user, password string) string {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.SetBasicAuth(user, password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// python runs a client script with GATEWAY_URL set; its output is returned.
func python(t *testing.T, venv, url, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(venv, "python"), "-c", script)
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+url, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	t.Logf("client output:\n%s", out)
	return string(out)
}
