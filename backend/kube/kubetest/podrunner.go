package kubetest

import (
	"context"
	"encoding/json"
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
	"k8s.io/client-go/kubernetes"
)

// PodRunner stands in for the kubelet where there is no container
// runtime: each Dask pod kwok marks Running becomes a local process run
// from the pod's own args and env (dask scheduler with the preload, dask
// worker), with its Secret's files in place of the credentials volume.
// The pods' Service ports are mapped to the processes' loopback ports;
// Dial (or the map file, for a gateway in another process) uses that map,
// so no pod or Service address is ever dialled.
//
//	r := &kubetest.PodRunner{Core: cs, Namespace: "dask", Venv: ".venv/bin", APIURL: url, Dir: dir, Logf: t.Logf}
//	go r.Run(ctx)
//	defer r.StopAll()
type PodRunner struct {
	Core      kubernetes.Interface
	Namespace string
	// Venv is a bin directory with python, dask and dask-gateway.
	Venv string
	// APIURL replaces the pods' DASK_GATEWAY_API_URL (the gateway's
	// in-cluster Service name does not resolve here).
	APIURL string
	// Dir holds credentials and logs; MapFile, if set, is rewritten with
	// the address map (JSON) whenever it changes.
	Dir, MapFile string
	Logf         func(format string, args ...any)

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

// Dial connects to the process serving a pod Service address.
func (r *PodRunner) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	r.mu.Lock()
	local, ok := r.addrs[addr]
	r.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("no running pod serves %s", addr)
	}
	return (&net.Dialer{}).DialContext(ctx, network, local)
}

// Run starts and stops processes as pods come and go, until ctx ends.
func (r *PodRunner) Run(ctx context.Context) {
	r.mu.Lock()
	if r.addrs == nil {
		r.addrs, r.procs = map[string]string{}, map[string]*podProcess{}
	}
	r.mu.Unlock()
	for ctx.Err() == nil {
		l, err := r.Core.CoreV1().Pods(r.Namespace).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelCluster})
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
						r.Logf("starting pod %s: %v", p.Name, err)
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
func (r *PodRunner) start(ctx context.Context, p *corev1.Pod) error {
	hex := p.Labels[kube.LabelCluster]
	sec, err := r.Core.CoreV1().Secrets(p.Namespace).Get(ctx, "dask-credentials-"+hex, metav1.GetOptions{})
	if err != nil {
		return err
	}
	creds := filepath.Join(r.Dir, p.Name, "credentials")
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
	env["DASK_GATEWAY_API_URL"] = r.APIURL
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
	cmd := exec.Command(filepath.Join(r.Venv, args[0]), args[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "PATH="+r.Venv+":"+os.Getenv("PATH"))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	logf, err := os.Create(filepath.Join(r.Dir, p.Name+".log"))
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
	defer r.mu.Unlock()
	r.procs[p.Name] = proc
	for k, v := range mapped {
		r.addrs[k] = v
	}
	return r.writeMap()
}

// writeMap replaces MapFile atomically (r.mu held).
func (r *PodRunner) writeMap() error {
	if r.MapFile == "" {
		return nil
	}
	b, err := json.Marshal(r.addrs)
	if err != nil {
		return err
	}
	tmp := r.MapFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, r.MapFile)
}

// Start runs r until the test ends, then stops every process it started
// (a process left behind fails the test).
func (r *PodRunner) Start(ctx context.Context, t testing.TB) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := r.StopAll(); err != nil {
			t.Error(err)
		}
	})
}

// StopAll kills every process and waits for each.
func (r *PodRunner) StopAll() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for _, proc := range r.procs {
		proc.kill()
		select {
		case <-proc.exited:
		case <-time.After(10 * time.Second):
			errs = append(errs, fmt.Errorf("pod process %d did not exit", proc.cmd.Process.Pid))
		}
	}
	return errors.Join(errs...)
}

// DumpLogs logs every pod process's output.
func (r *PodRunner) DumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(r.Dir, "*.log"))
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		r.Logf("%s:\n%s", filepath.Base(f), b)
	}
}

// VenvBin is the bin directory of the project's Python venv (make venv),
// with the real dask-gateway client and distributed; root is the path to
// the repository's root from the test's package. Without it the test
// fails, never skips.
func VenvBin(t testing.TB, root string) string {
	t.Helper()
	dir, _ := filepath.Abs(filepath.Join(root, ".venv", "bin"))
	if _, err := os.Stat(filepath.Join(dir, "dask")); err != nil {
		t.Fatalf("no Python venv with dask at %s (run `make venv`): %v", dir, err)
	}
	return dir
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}
