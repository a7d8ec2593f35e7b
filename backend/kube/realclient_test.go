package kube_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	corev1 "k8s.io/api/core/v1"
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
	venv := venvBin(t)
	h := newHarness(t, nil)
	h.startController("c")
	pods := &podRunner{t: t, h: h, venv: venv, addrs: map[string]string{}, procs: map[string]*podProcess{}, dir: t.TempDir()}
	g := h.startGatewayWith(pods.dial, true)
	pods.apiURL = g.api.URL + "/api"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); pods.run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; pods.stopAll() })

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
		pods.dumpLogs()
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

// venvBin is the project's Python venv, with the real dask-gateway client
// and distributed. `make test` builds it before the Go tests; without it
// the test fails (never a skip).
func venvBin(t *testing.T) string {
	dir, _ := filepath.Abs("../../.venv/bin")
	if _, err := os.Stat(filepath.Join(dir, "dask")); err != nil {
		t.Fatalf("no Python venv with dask at %s (run `make venv`): %v", dir, err)
	}
	return dir
}

// podRunner stands in for the kubelet: it runs each Running pod of the
// namespace as a local process and maps the pod's Service ports to the
// process's loopback ports for the gateway's and proxy's dialer.
type podRunner struct {
	t      *testing.T
	h      *harness
	venv   string
	apiURL string
	dir    string

	mu    sync.Mutex
	addrs map[string]string // "dask-<hex>.<ns>:8786" -> "127.0.0.1:port"
	procs map[string]*podProcess
}

// podProcess is a pod's process group (dask worker's nanny starts a
// child), killed as a whole.
type podProcess struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func (p *podProcess) kill() { syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL) }

func (r *podRunner) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	local, ok := r.addrs[addr]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no running pod serves %s", addr)
	}
	return (&net.Dialer{}).DialContext(ctx, network, local)
}

func (r *podRunner) run(ctx context.Context) {
	for ctx.Err() == nil {
		l, err := r.h.admin.Core.CoreV1().Pods(r.h.ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelCluster})
		if err == nil {
			live := map[string]bool{}
			for _, p := range l.Items {
				if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
					continue
				}
				live[p.Name] = true
				r.mu.Lock()
				_, started := r.procs[p.Name]
				r.mu.Unlock()
				if !started {
					if err := r.start(ctx, &p); err != nil { // retried on the next pass
						r.t.Logf("starting pod %s: %v", p.Name, err)
					}
				}
			}
			r.mu.Lock()
			for name, proc := range r.procs {
				if !live[name] {
					proc.kill()
				}
			}
			r.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// start turns the pod's container into a process: the credentials volume
// becomes a directory with the Secret's files, the API URL the test's,
// fixed ports free loopback ports, and $(VAR) references are expanded as
// the kubelet does.
func (r *podRunner) start(ctx context.Context, p *corev1.Pod) error {
	hex := p.Labels[kube.LabelCluster]
	sec, err := r.h.admin.Core.CoreV1().Secrets(p.Namespace).Get(ctx, "dask-credentials-"+hex, metav1.GetOptions{})
	if err != nil {
		return err
	}
	creds := filepath.Join(r.dir, p.Name, "credentials")
	if err := os.MkdirAll(creds, 0o700); err != nil {
		return err
	}
	for k, v := range sec.Data {
		if err := os.WriteFile(filepath.Join(creds, k), v, 0o600); err != nil {
			return err
		}
	}
	c := p.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		v := strings.ReplaceAll(e.Value, "/etc/dask-credentials/", creds+"/")
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name" {
			v = p.Name
		}
		env[e.Name] = v
	}
	env["DASK_GATEWAY_API_URL"] = r.apiURL
	service := "dask-" + hex + "." + p.Namespace
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		for k, v := range env {
			a = strings.ReplaceAll(a, "$("+k+")", v)
		}
		args[i] = a
	}
	mapped := map[string]string{}
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--host" && i+1 < len(args):
			args[i+1] = "127.0.0.1"
		case (args[i] == "--port" || args[i] == "--dashboard-address" || args[i] == "--dg-api-address") && i+1 < len(args):
			port, err := freePort()
			if err != nil {
				return err
			}
			inPod := strings.TrimPrefix(args[i+1], ":")
			if args[i] == "--port" {
				args[i+1] = port
			} else {
				args[i+1] = "127.0.0.1:" + port
			}
			mapped[service+":"+inPod] = "127.0.0.1:" + port
		case strings.HasPrefix(args[i], "tls://"+service+":"):
			r.mu.Lock()
			local, ok := r.addrs[strings.TrimPrefix(args[i], "tls://")]
			r.mu.Unlock()
			if !ok {
				return errors.New("worker started before its scheduler")
			}
			args[i] = "tls://" + local
		}
	}
	cmd := exec.Command(filepath.Join(r.venv, args[0]), args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "PATH="+r.venv+":"+os.Getenv("PATH"))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logf, err := os.Create(filepath.Join(r.dir, p.Name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	proc := &podProcess{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(proc.exited) }()
	r.mu.Lock()
	r.procs[p.Name] = proc
	for k, v := range mapped {
		r.addrs[k] = v
	}
	r.mu.Unlock()
	return nil
}

func (r *podRunner) stopAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, proc := range r.procs {
		proc.kill()
		select {
		case <-proc.exited:
		case <-time.After(10 * time.Second):
			r.t.Errorf("pod process %d did not exit", proc.cmd.Process.Pid)
		}
	}
}

func (r *podRunner) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(r.dir, "*.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		r.t.Logf("%s:\n%s", filepath.Base(f), b)
	}
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}
