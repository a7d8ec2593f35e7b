package kube_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	"github.com/daskgate/daskgate/backend/kube/kubetest"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRealClientOnKubernetes runs the real Python dask-gateway client
// against the Kubernetes backend: the gateway (behind daskgate's proxy)
// and the controller against the real API server, with a local stand-in
// for the kubelet that runs each pod kwok marks Running as a real
// `dask scheduler` (with the preload) or `dask worker` process, from the
// pod's own args and env and its Secret's files. The client creates a
// cluster, scales it (its scheduler's preload asks the gateway for the
// worker), computes through the SNI passthrough, opens the dashboard
// through the proxy's HTTP routes, reconnects with gateway.connect (another
// user gets a 403, as upstream), and shuts it down.
func TestRealClientOnKubernetes(t *testing.T) {
	venv := kubetest.VenvBin(t, "../..")
	h := newHarness(t, nil)
	h.startController("c")
	pods := &kubetest.PodRunner{Core: h.admin.Core, Namespace: h.ns, Venv: venv, Dir: t.TempDir(), Logf: t.Logf}
	g := h.startGatewayWith(pods.Dial, true)
	pods.APIURL = g.api.URL + "/api"
	pods.Start(context.Background(), t)

	script := `
import os, time
from dask_gateway import Gateway, BasicAuth
gw = Gateway(address=os.environ["GATEWAY_URL"], auth=BasicAuth("alice", "x"))
cluster = gw.new_cluster()
print("NAME", cluster.name, flush=True)
deadline = time.time() + 60
while True:  # the scheduler process may still be importing dask
    try:
        cluster.scale(1)
        break
    except Exception as e:
        if time.time() > deadline:
            raise
        time.sleep(1)
client = cluster.get_client()
client.wait_for_workers(1, timeout=120)
print("RESULT", client.submit(lambda x: x + 1, 1).result(), flush=True)
import urllib.request
with urllib.request.urlopen(cluster.dashboard_link, timeout=30) as resp:
    print("DASHBOARD", resp.status, cluster.dashboard_link, flush=True)
print("LISTED", [c.name for c in gw.list_clusters()], flush=True)
bob = Gateway(address=os.environ["GATEWAY_URL"], auth=BasicAuth("bob", "x"))
try:
    bob.connect(cluster.name)
    print("BOB CONNECTED", flush=True)
except Exception as e:
    print("BOB REFUSED", type(e).__name__, flush=True)
print("BOB LISTS", [c.name for c in bob.list_clusters()], flush=True)
bob.close()
again = gw.connect(cluster.name)
print("RECONNECTED", again.name == cluster.name, again.scheduler_info.get("type"), flush=True)
again.close()
client.close()
cluster.shutdown()
print("LEFT", [c.name for c in gw.list_clusters()], flush=True)
gw.close()
`
	pctx, pcancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer pcancel()
	cmd := exec.CommandContext(pctx, filepath.Join(venv, "python"), "-c", script)
	cmd.Env = append(os.Environ(), "GATEWAY_URL="+g.api.URL, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s")
	out, err := cmd.CombinedOutput()
	t.Logf("client output:\n%s", out)
	if err != nil {
		pods.DumpLogs()
		t.Fatalf("real client: %v", err)
	}
	var name string
	for _, line := range strings.Split(string(out), "\n") {
		if after, ok := strings.CutPrefix(line, "NAME "); ok {
			name = after
		}
	}
	for _, want := range []string{"RESULT 2", "DASHBOARD 200 " + g.api.URL + "/clusters/" + name + "/status", "LISTED ['" + name + "']",
		"BOB REFUSED ClientResponseError", "BOB LISTS []", "RECONNECTED True Scheduler", "LEFT []"} {
		if name == "" || !strings.Contains(string(out), want) {
			t.Fatalf("client output lacks %q", want)
		}
	}
	// The stop reached the API server and the controller cleaned up.
	_, hex, _ := kube.SplitName(name)
	waitFor(t, 30*time.Second, "DaskCluster Stopped", func() bool { return h.dc(name).Status.Phase == kube.PhaseStopped })
	waitFor(t, 30*time.Second, "cluster pods gone", func() bool {
		l, err := h.admin.Core.CoreV1().Pods(h.ns).List(context.Background(), metav1.ListOptions{LabelSelector: kube.LabelCluster + "=" + hex})
		return err == nil && len(l.Items) == 0
	})
}
