package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Options tune Start.
type Options struct {
	// Dir keeps the control plane's state, pid files and logs. Empty
	// means a new temporary directory, which Stop removes.
	Dir string
	// NoKwok leaves out kube-scheduler and kwok: pods are never scheduled.
	NoKwok bool
	// SchedulerQPS is kube-scheduler's client QPS (burst twice that);
	// zero keeps its default of 50, which binds at most 50 pods a second.
	SchedulerQPS int
	// Timeout bounds each readiness wait; zero means 120 s.
	Timeout time.Duration
	// Detach lets the processes outlive this one (the testenv command's
	// start, which exits at once); otherwise they die with it.
	Detach bool
}

// Env is a running control plane on loopback: etcd, kube-apiserver (RBAC
// on), kube-controller-manager (garbage collection, namespaces, service
// accounts), and unless NoKwok, kube-scheduler and kwok with one fake
// node, kwok-node-0, on which pods become Running and Ready at once and
// keep running. Pod and Service IPs are fake: never dial them.
type Env struct {
	Dir        string // state, pids/ and logs/
	Kubeconfig string // admin (system:masters) client certificate
	Server     string // https://127.0.0.1:PORT
	temporary  bool
	detach     bool
	bin        map[string]string // resolved once by start
}

// Start brings up a control plane and waits until it serves; on error
// it stops whatever it started. The binaries must be installed.
func Start(ctx context.Context, opt Options) (*Env, error) {
	e := &Env{Dir: opt.Dir, detach: opt.Detach}
	if e.Dir == "" {
		d, err := os.MkdirTemp("", "daskgate-testenv-")
		if err != nil {
			return nil, err
		}
		e.Dir, e.temporary = d, true
	}
	if err := e.start(ctx, opt); err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) start(ctx context.Context, opt Options) error {
	for _, name := range processNames {
		if pid, ok := recorded(e.Dir, name); ok {
			return fmt.Errorf("%s already runs for %s (pid %d): stop it first", name, e.Dir, pid)
		}
	}
	need := processNames
	if opt.NoKwok {
		need = processNames[:3]
	}
	e.bin = map[string]string{}
	for _, name := range need {
		p, err := Path(name)
		if err != nil {
			return err
		}
		e.bin[name] = p
	}
	for _, d := range []string{"pids", "logs"} {
		if err := os.MkdirAll(filepath.Join(e.Dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := writePKI(e.Dir); err != nil {
		return fmt.Errorf("write certificates: %w", err)
	}
	if opt.Timeout == 0 {
		opt.Timeout = 120 * time.Second
	}
	// A port found free can be taken before the server binds it: retry.
	var err error
	for try := 0; try < 3; try++ {
		if err = e.startAPIServer(ctx, opt.Timeout); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		StopDir(e.Dir)
	}
	if err != nil {
		return err
	}
	if err := e.startControllerManager(ctx, opt.Timeout); err != nil {
		return err
	}
	if !opt.NoKwok {
		if err := e.startKwok(ctx, opt); err != nil {
			return err
		}
	}
	env := fmt.Sprintf("KUBECONFIG=%s\nKUBE_APISERVER_URL=%s\n", e.Kubeconfig, e.Server)
	return os.WriteFile(filepath.Join(e.Dir, "testenv.env"), []byte(env), 0o644)
}

// Stop ends every process Start began (see StopDir) and removes Dir if
// Start made it.
func (e *Env) Stop() error {
	err := StopDir(e.Dir)
	if e.temporary {
		os.RemoveAll(e.Dir)
	}
	return err
}

// Pids returns the running control plane's process ids by name (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler, kwok), for CPU
// accounting.
func (e *Env) Pids() map[string]int {
	out := map[string]int{}
	for _, name := range processNames {
		if pid, ok := recorded(e.Dir, name); ok {
			out[name] = pid
		}
	}
	return out
}

func (e *Env) startAPIServer(ctx context.Context, timeout time.Duration) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	client, peer := "http://127.0.0.1:"+ports[0], "http://127.0.0.1:"+ports[1]
	os.RemoveAll(filepath.Join(e.Dir, "etcd")) // every start is an empty cluster
	err = launch(e.Dir, "etcd", e.detach, e.bin["etcd"], "--name=testenv", "--data-dir="+filepath.Join(e.Dir, "etcd"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=testenv="+peer, "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return err
	}
	if err := e.waitFor(ctx, timeout, "etcd", httpOK(http.DefaultClient, client+"/health")); err != nil {
		return err
	}
	pki := filepath.Join(e.Dir, "pki")
	err = launch(e.Dir, "kube-apiserver", e.detach, e.bin["kube-apiserver"], "--etcd-servers="+client,
		"--bind-address=127.0.0.1", "--secure-port="+ports[2], "--advertise-address=127.0.0.1",
		"--endpoint-reconciler-type=none", "--cert-dir="+pki,
		"--tls-cert-file="+filepath.Join(pki, "apiserver.crt"), "--tls-private-key-file="+filepath.Join(pki, "apiserver.key"),
		"--client-ca-file="+filepath.Join(pki, "ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+filepath.Join(pki, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range="+serviceCIDR, "--authorization-mode=RBAC", "--allow-privileged=true")
	if err != nil {
		return err
	}
	e.Server = "https://127.0.0.1:" + ports[2]
	if e.Kubeconfig, err = writeKubeconfig(e.Dir, e.Server); err != nil {
		return err
	}
	admin, err := e.adminClient()
	if err != nil {
		return err
	}
	return e.waitFor(ctx, timeout, "kube-apiserver", httpOK(admin, e.Server+"/readyz"))
}

func (e *Env) startControllerManager(ctx context.Context, timeout time.Duration) error {
	pki := filepath.Join(e.Dir, "pki")
	err := launch(e.Dir, "kube-controller-manager", e.detach, e.bin["kube-controller-manager"], "--kubeconfig="+e.Kubeconfig,
		"--secure-port=0", "--leader-elect=false", "--use-service-account-credentials=false",
		"--service-account-private-key-file="+filepath.Join(pki, "sa.key"), "--root-ca-file="+filepath.Join(pki, "ca.crt"),
		"--cluster-signing-cert-file="+filepath.Join(pki, "ca.crt"), "--cluster-signing-key-file="+filepath.Join(pki, "ca.key"),
		"--cluster-cidr="+podCIDR, "--service-cluster-ip-range="+serviceCIDR, "--allocate-node-cidrs=false")
	if err != nil {
		return err
	}
	admin, err := e.adminClient()
	if err != nil {
		return err
	}
	// The serviceaccount controller creating default/default proves the
	// controllers run.
	return e.waitFor(ctx, timeout, "kube-controller-manager",
		httpOK(admin, e.Server+"/api/v1/namespaces/default/serviceaccounts/default"))
}

// waitFor polls ready every 100 ms until it holds, name exits, ctx ends
// or timeout passes.
func (e *Env) waitFor(ctx context.Context, timeout time.Duration, name string, ready func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ready() {
		if _, ok := recorded(e.Dir, name); !ok {
			return fmt.Errorf("%s exited while starting; last lines of %s:\n%s", name,
				filepath.Join(e.Dir, "logs", name+".log"), logTail(e.Dir, name))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v; last lines of its log:\n%s", name, timeout, logTail(e.Dir, name))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// adminClient is an HTTP client with the admin certificate.
func (e *Env) adminClient() (*http.Client, error) {
	pki := filepath.Join(e.Dir, "pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "admin.crt"), filepath.Join(pki, "admin.key"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}},
	}}, nil
}

func httpOK(c *http.Client, url string) func() bool {
	return func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
}

// freePorts returns n distinct loopback ports nobody listens on now.
func freePorts(n int) ([]string, error) {
	var ports []string
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, errors.Join(errors.New("find a free port"), err)
		}
		lns = append(lns, ln)
		ports = append(ports, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	}
	return ports, nil
}
