package charts

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	"github.com/daskgate/daskgate/internal/testenv"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// daskhubChart assembles charts/daskhub with its dependencies where
// `helm dependency build` would put them: the JupyterHub chart (the local
// copy tests use, its version stamped as its release tooling would) and
// this repository's dask-gateway chart.
func daskhubChart(t *testing.T) string {
	t.Helper()
	hub, err := testenv.JupyterHubChart()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Logf("%v: the daskhub chart needs it (users: helm dependency build charts/daskhub)", err)
		return ""
	}
	dir := filepath.Join(t.TempDir(), "daskhub")
	copyTree(t, "daskhub", dir)
	if err := os.MkdirAll(filepath.Join(dir, "charts"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyTree(t, hub, filepath.Join(dir, "charts", "jupyterhub"))
	copyTree(t, "dask-gateway", filepath.Join(dir, "charts", "dask-gateway"))
	chartYAML := filepath.Join(dir, "charts", "jupyterhub", "Chart.yaml")
	b, err := os.ReadFile(chartYAML)
	if err != nil {
		t.Fatal(err)
	}
	stamped := strings.Replace(string(b), "version: 0.0.1-set.by.chartpress", "version: 4.4.0", 1)
	if stamped == string(b) {
		t.Fatalf("%s: no chartpress version to stamp", chartYAML)
	}
	if err := os.WriteFile(chartYAML, []byte(stamped), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-R", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp %s: %v\n%s", from, err, out)
	}
}

// TestDaskhubChart lints and renders daskhub with helm v3 and v4
// (kubeconform on the result), with dask-gateway and JupyterHub each
// switchable off.
func TestDaskhubChart(t *testing.T) {
	chart := daskhubChart(t)
	if chart == "" {
		return
	}
	schemas := newSchemaDir(t)
	examples, _ := filepath.Glob("../examples/helm/daskhub-*.yaml")
	good, _ := filepath.Glob("testdata/daskhub/good/*.yaml")
	examples = append(examples, good...)
	cases := map[string][]string{"defaults": nil, "no dask-gateway": {"--set", "dask-gateway.enabled=false"},
		"no jupyterhub": {"--set", "jupyterhub.enabled=false"}}
	for _, e := range examples {
		cases[filepath.Base(e)] = []string{"-f", e}
	}
	bad, _ := filepath.Glob("testdata/daskhub/bad/*.yaml")
	for _, h := range helms {
		for _, f := range bad {
			b, _ := os.ReadFile(f)
			first, _, _ := strings.Cut(string(b), "\n")
			want := strings.TrimPrefix(first, "# want: ")
			if out, err := helm(t, h, "template", "dh", chart, "-f", f); err == nil || !strings.Contains(out, want) {
				t.Errorf("%s with %s: err %v, output lacks %q:\n%s", h, filepath.Base(f), err, want, out)
			}
		}
		for name, args := range cases {
			t.Run(h+"/"+name, func(t *testing.T) {
				mustHelm(t, h, append([]string{"lint", "--strict", chart}, args...)...)
				out := mustHelm(t, h, append([]string{"template", "dh", chart, "--namespace", "dhub", "--kube-version", testenv.Kubernetes}, args...)...)
				gateway := strings.Contains(out, "name: api-dh-dask-gateway")
				hub := strings.Contains(out, "name: proxy-public\n")
				if gateway != (name != "no dask-gateway") || hub != (name != "no jupyterhub") {
					t.Errorf("gateway rendered %v, hub rendered %v", gateway, hub)
				}
				schemas.validate(t, out)
			})
		}
	}
}

// TestDaskhubInstall installs daskhub on the control plane and checks the
// wiring for real: the gateway's token is the one JupyterHub's Secret
// holds for its dask-gateway service; the gateway finds the hub's API from
// the hub Service's links; and z2jh's own jupyterhub_config.py, run by
// JupyterHub 5.5 with the hub pod's mounted config, registers the service
// with the gateway's URL and that token, gives user and server tokens the
// gateway's scope, and gives spawned servers the DASK_GATEWAY__ settings.
func TestDaskhubInstall(t *testing.T) {
	chart := daskhubChart(t)
	if chart == "" {
		return
	}
	const ns = "dhub"
	mustHelm(t, "helm", "install", "dh", chart, "--namespace", ns, "--create-namespace", "--wait", "--timeout", "4m",
		"-f", "testdata/daskhub/install.yaml")
	defer mustHelm(t, "helm", "uninstall", "dh", "--namespace", ns, "--wait")
	cl, err := kube.NewClients(kube.ClientConfig{Kubeconfig: env.Kubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sec, err := cl.Core.CoreV1().Secrets(ns).Get(ctx, "hub", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hubToken := string(sec.Data["hub.services.dask-gateway.apiToken"])
	if len(hubToken) < 32 {
		t.Fatalf("the hub's Secret holds no dask-gateway token: %q", hubToken)
	}
	gw := loadContainer(t, cl, ns, "api-dh-dask-gateway", "gateway")
	var gwToken, hubHost string
	for _, kv := range gw.environ() {
		if v, ok := strings.CutPrefix(kv, "JUPYTERHUB_API_TOKEN="); ok {
			gwToken = v
		}
		if v, ok := strings.CutPrefix(kv, "HUB_SERVICE_HOST="); ok {
			hubHost = v
		}
	}
	if gwToken != hubToken {
		t.Fatalf("the gateway's token %q is not the hub's %q", gwToken, hubToken)
	}
	hubSvc, err := cl.Core.CoreV1().Services(ns).Get(ctx, "hub", metav1.GetOptions{})
	if err != nil || hubHost != hubSvc.Spec.ClusterIP {
		t.Fatalf("the gateway's HUB_SERVICE_HOST %q, the hub Service %v %v", hubHost, hubSvc, err)
	}
	// The installed gateway starts with that token and the hub API it
	// infers from the links (upstream's chart does the same in Python).
	addr := freeAddr(t)
	gw = runContainer(t, cl, ns, "api-dh-dask-gateway", "gateway", "DASKGATE_ADDRESS="+addr)
	gw.waitReady("http://"+addr, 60*time.Second)
	if want := `"api_url":"http://` + hubHost + `:8081/hub/api"`; !strings.Contains(gw.log(), want) {
		t.Errorf("the gateway's log lacks %s:\n%s", want, gw.log())
	}

	hub := loadContainer(t, cl, ns, "hub", "hub")
	got := runHubConfig(t, hub)
	want := map[string]string{
		"DASK_GATEWAY__ADDRESS":        "http://proxy-public/services/dask-gateway",
		"DASK_GATEWAY__PROXY_ADDRESS":  "gateway://traefik-dh-dask-gateway.dhub:80",
		"DASK_GATEWAY__PUBLIC_ADDRESS": "/services/dask-gateway/",
		"DASK_GATEWAY__AUTH__TYPE":     "jupyterhub",
	}
	for k, v := range want {
		if got.Env[k] != v {
			t.Errorf("a spawned server's %s = %q, want %q", k, got.Env[k], v)
		}
	}
	if got.ServiceURL != "http://traefik-dh-dask-gateway.dhub:80" || got.ServiceToken != hubToken {
		t.Errorf("hub service dask-gateway: url %q, token matches the gateway's: %v", got.ServiceURL, got.ServiceToken == hubToken)
	}
	for _, role := range []string{"user", "server"} {
		if !strings.Contains(strings.Join(got.Scopes[role], " "), "access:services!service=dask-gateway") {
			t.Errorf("role %s scopes %v lack the gateway's", role, got.Scopes[role])
		}
	}
	if !strings.Contains(strings.Join(got.Scopes["server"], " "), "access:servers!server") {
		t.Errorf("the server role lost its defaults: %v", got.Scopes["server"])
	}
	// The web page is on by default: the hub lists the gateway among its
	// services. With stopWithHubServer the gateway may see users' servers.
	if got.Display == nil || !*got.Display {
		t.Errorf("hub service dask-gateway display = %v, want true", got.Display)
	}
	if s := strings.Join(got.Scopes["dask-gateway-servers"], " "); s != "read:users:name read:servers" {
		t.Errorf("the gateway's role for servers has scopes %q", s)
	}
}

// hubConfig is what JupyterHub made of its config files.
type hubConfig struct {
	Env          map[string]string   `json:"env"`
	ServiceURL   string              `json:"service_url"`
	ServiceToken string              `json:"service_token"`
	Display      *bool               `json:"display"`
	Scopes       map[string][]string `json:"scopes"`
}

// runHubConfig loads z2jh's jupyterhub_config.py as the hub does, in
// JupyterHub 5.5 with kubespawner: the hub pod's volumes are laid out
// under the container's root and bind-mounted at /usr/local/etc/jupyterhub
// in a private mount namespace (the file reads fixed paths), with the hub
// container's environment. A spawner built from the result reports the
// environment a user server would get.
func runHubConfig(t *testing.T, hub *container) hubConfig {
	t.Helper()
	py, _ := filepath.Abs("../.venv/hub-5.5/bin/python")
	if _, err := os.Stat(py); err != nil {
		t.Fatalf("no JupyterHub 5.5 venv (make venv): %v", err)
	}
	script := `
import asyncio, json, sys
from jupyterhub.app import JupyterHub
from kubespawner import KubeSpawner
app = JupyterHub()
app.load_config_file("/usr/local/etc/jupyterhub/jupyterhub_config.py")
cfg = app.config
svc = next(s for s in cfg.JupyterHub.services if s["name"] == "dask-gateway")
async def spawned_env():
    spawner = KubeSpawner(config=cfg, _mock=True)
    return spawner.get_env()
env = {k: v for k, v in asyncio.run(spawned_env()).items() if k.startswith("DASK_GATEWAY__")}
roles = {r["name"]: r.get("scopes", []) for r in cfg.JupyterHub.load_roles}
json.dump({"env": env, "service_url": svc.get("url"), "service_token": svc.get("api_token"), "display": svc.get("display"),
           "scopes": roles}, open(sys.argv[1], "w"))
`
	result := filepath.Join(t.TempDir(), "hub.json")
	etc := filepath.Join(hub.root, "usr/local/etc/jupyterhub")
	// In a new user and mount namespace: a tmpfs over /usr/local/etc, the
	// hub's files bound where it reads them.
	wrapper := `set -e; mount -t tmpfs tmpfs /usr/local/etc; mkdir -p /usr/local/etc/jupyterhub; mount --bind "$0" /usr/local/etc/jupyterhub; cd /usr/local/etc/jupyterhub; exec "$@"`
	cmd := exec.Command("/bin/sh", "-c", wrapper, etc, py, "-c", script, result)
	cmd.Env = append(hub.environ(), "PATH="+filepath.Dir(py)+":/usr/bin:/bin", "PYTHONPATH=/usr/local/etc/jupyterhub")
	cmd.SysProcAttr = userNamespace()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cmd.Process.Kill()
		case <-done:
		}
	}()
	out, err := cmd.CombinedOutput()
	close(done)
	t.Logf("the hub's config load:\n%s", out)
	if err != nil {
		t.Fatalf("z2jh's jupyterhub_config.py: %v", err)
	}
	b, err := os.ReadFile(result)
	if err != nil {
		t.Fatal(err)
	}
	var hc hubConfig
	if err := json.Unmarshal(b, &hc); err != nil {
		t.Fatal(err)
	}
	return hc
}
