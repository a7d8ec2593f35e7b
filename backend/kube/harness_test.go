package kube_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/backend/kube"
	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/proxy"
	"github.com/daskgate/daskgate/server"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// harness is one namespace with a controller and gateway replicas (each
// running as its documented ServiceAccount), their HTTP APIs, and a fake
// scheduler that answers /api/comm and sends the heartbeats the preload
// would. Scheduler addresses (dask-<hex>.<ns>:8788) are never resolved:
// the scheduler client's dialer sends every request to the fake.
type harness struct {
	t        *testing.T
	admin    *kube.Clients
	ns       string
	instance string
	sched    *httptest.Server
	ctlCfg   kube.ControllerConfig
	gateways []*gatewayReplica
	// clusterConfig adjusts the admin cluster config of gateways started next.
	clusterConfig func(*cluster.Config)
	// adapts receives each adapt message the fake scheduler accepts, with
	// the service host it was sent to.
	adapts chan adaptMsg
}

type adaptMsg struct {
	Host             string
	Minimum, Maximum *int
	Active           bool
}

type gatewayReplica struct {
	gw     *kube.Gateway
	api    *httptest.Server
	routes *proxy.Table
	stop   context.CancelFunc
}

func newHarness(t *testing.T, mod func(*kube.ControllerConfig)) *harness {
	admin := requireKube(t)
	h := &harness{t: t, admin: admin, instance: "dg-" + randomSuffix(), adapts: make(chan adaptMsg, 4)}
	h.ns = newNamespace(t, admin)
	h.sched = httptest.NewServer(http.HandlerFunc(h.fakeScheduler))
	t.Cleanup(h.sched.Close)
	h.ctlCfg = kube.ControllerConfig{Instance: h.instance, Namespaces: []string{h.ns},
		APIURL: "http://api-daskgate." + h.ns + ":8000/api", Logger: testLogger(t),
		LeaseDuration: 2 * time.Second, RenewDeadline: 1500 * time.Millisecond, RetryPeriod: 250 * time.Millisecond,
		CleanupPeriod: 200 * time.Millisecond}
	if mod != nil {
		mod(&h.ctlCfg)
	}
	return h
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// startController starts one controller replica and returns its stop.
func (h *harness) startController(identity string) context.CancelFunc {
	cfg := h.ctlCfg
	cfg.Clients = as(h.t, h.ns, "daskgate-controller")
	cfg.Identity = identity
	ctl, err := kube.NewController(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ctl.Run(ctx) }()
	stop := func() { cancel(); <-done }
	h.t.Cleanup(stop)
	return stop
}

// startGateway starts one gateway replica behind its own HTTP server;
// every scheduler request goes to the fake scheduler.
func (h *harness) startGateway() *gatewayReplica {
	schedAddr := h.sched.Listener.Addr().String()
	return h.startGatewayWith(func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, schedAddr)
	}, false)
}

// startGatewayWith starts a gateway replica whose scheduler connections
// use dial; with front, its API is served behind daskgate's proxy (one
// port for the API, dashboards and SNI passthrough, dialing with dial),
// as `daskgate serve` does.
func (h *harness) startGatewayWith(dial func(ctx context.Context, network, addr string) (net.Conn, error), front bool) *gatewayReplica {
	routes := proxy.NewTable()
	gw, err := kube.NewGateway(kube.GatewayConfig{Clients: as(h.t, h.ns, "daskgate-gateway"), Instance: h.instance,
		Namespaces: []string{h.ns}, Routes: routes, Logger: testLogger(h.t)})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go gw.Run(ctx)
	if !gw.WaitSynced(ctx) {
		h.t.Fatal("gateway cache did not sync")
	}
	cfg := cluster.DefaultConfig()
	cfg.Image = "ghcr.io/dask/dask-gateway:test"
	if h.clusterConfig != nil {
		h.clusterConfig(&cfg)
	}
	srv, err := server.New(server.Config{Backend: gw, Auth: auth.NewSimple(""), ClusterConfig: cfg,
		WaitTimeout: 30 * time.Second, Logger: testLogger(h.t),
		Scheduler: &server.SchedulerClient{HTTP: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: dial}}}})
	if err != nil {
		h.t.Fatal(err)
	}
	api := httptest.NewUnstartedServer(srv)
	if front {
		p, err := proxy.New(proxy.Config{API: srv, Routes: routes, DialContext: dial, Logger: testLogger(h.t)})
		if err != nil {
			h.t.Fatal(err)
		}
		go p.Serve(api.Listener)
		api.URL = "http://" + api.Listener.Addr().String()
		h.t.Cleanup(func() {
			api.Listener.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			p.Shutdown(ctx) // passthrough tunnels get 5 s, then are closed
		})
	} else {
		api.Start()
	}
	r := &gatewayReplica{gw: gw, api: api, routes: routes, stop: func() {
		if !front {
			api.Close()
		}
		cancel()
	}}
	h.t.Cleanup(r.stop)
	h.gateways = append(h.gateways, r)
	return r
}

// fakeScheduler plays the scheduler preload: a scale or adapt request on
// /api/comm turns into a heartbeat with the new count to the gateway.
func (h *harness) fakeScheduler(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.Host)
	hex, ns, _ := strings.Cut(strings.TrimPrefix(host, "dask-"), ".")
	var msg struct {
		Op               string `json:"op"`
		Count            int    `json:"count"`
		Minimum, Maximum *int
		Active           bool
	}
	json.NewDecoder(r.Body).Decode(&msg)
	token := h.token(ns, hex)
	if r.Header.Get("Authorization") != "token "+token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusOK)
	switch msg.Op {
	case "scale":
		go h.heartbeat(h.gateways[len(h.gateways)-1], kube.PublicName(ns, hex), msg.Count)
	case "adapt":
		select {
		case h.adapts <- adaptMsg{Host: host, Minimum: msg.Minimum, Maximum: msg.Maximum, Active: msg.Active}:
		default:
		}
	}
}

func (h *harness) token(ns, hex string) string {
	s, err := h.admin.Core.CoreV1().Secrets(ns).Get(context.Background(), "dask-credentials-"+hex, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return string(s.Data["api-token"])
}

// heartbeat posts what the preload posts, with the cluster's token.
func (h *harness) heartbeat(g *gatewayReplica, name string, count int) int {
	ns, hex, _ := kube.SplitName(name)
	body, _ := json.Marshal(map[string]any{"count": count, "active_workers": []string{}, "closing_workers": []string{}, "closed_workers": []string{}})
	req, _ := http.NewRequest(http.MethodPost, g.api.URL+"/api/v1/clusters/"+name+"/heartbeat", bytes.NewReader(body))
	req.Header.Set("Authorization", "token "+h.token(ns, hex))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Error(err)
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// call makes an API request as user and decodes a JSON answer into out.
func (h *harness) call(g *gatewayReplica, user, method, path string, body any, out any) int {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, g.api.URL+path, rd)
	req.SetBasicAuth(user, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

func (h *harness) create(g *gatewayReplica, user string, options map[string]any) string {
	h.t.Helper()
	if options == nil {
		options = map[string]any{}
	}
	var out struct{ Name string }
	if code := h.call(g, user, "POST", "/api/v1/clusters/", map[string]any{"cluster_options": options}, &out); code != 201 {
		h.t.Fatalf("create: %d", code)
	}
	return out.Name
}

type clusterInfo struct {
	Name   string
	Status string
}

func (h *harness) status(g *gatewayReplica, user, name string, wait bool) string {
	h.t.Helper()
	path := "/api/v1/clusters/" + name
	if wait {
		path += "?wait"
	}
	var out clusterInfo
	if code := h.call(g, user, "GET", path, nil, &out); code != 200 {
		return fmt.Sprintf("HTTP %d", code)
	}
	return out.Status
}

func (h *harness) dc(name string) *kube.DaskCluster {
	h.t.Helper()
	ns, hex, _ := kube.SplitName(name)
	u, err := h.admin.Dynamic.Resource(kube.GVR).Namespace(ns).Get(context.Background(), hex, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	b, _ := u.MarshalJSON()
	var dc kube.DaskCluster
	json.Unmarshal(b, &dc)
	return &dc
}

// workerPods lists a cluster's worker pods that are not being deleted.
func (h *harness) workerPods(name string) []corev1.Pod {
	h.t.Helper()
	ns, hex, _ := kube.SplitName(name)
	l, err := h.admin.Core.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{
		LabelSelector: kube.LabelCluster + "=" + hex + "," + kube.LabelComponent + "=" + kube.ComponentWorker})
	if err != nil {
		h.t.Fatal(err)
	}
	var out []corev1.Pod
	for _, p := range l.Items {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func (h *harness) waitWorkers(name string, n int, timeout time.Duration) []corev1.Pod {
	h.t.Helper()
	var pods []corev1.Pod
	waitFor(h.t, timeout, fmt.Sprintf("%d running worker pods", n), func() bool {
		pods = h.workerPods(name)
		running := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return len(pods) == n && running == n
	})
	return pods
}

// setPodStatus overwrites a pod's status as a kubelet would.
func (h *harness) setPodStatus(ns, name string, mutate func(*corev1.PodStatus)) {
	h.t.Helper()
	ctx := context.Background()
	// kube-scheduler or kwok may write the status meanwhile: retry on conflict.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := h.admin.Core.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		mutate(&p.Status)
		_, err = h.admin.Core.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

// deleted reports whether the cluster's named objects ("scheduler",
// "secret", "service") are all gone from the API server.
func (h *harness) deleted(name string, objs ...string) bool {
	h.t.Helper()
	ns, hex, _ := kube.SplitName(name)
	ctx, core := context.Background(), h.admin.Core.CoreV1()
	for _, o := range objs {
		var err error
		switch o {
		case "scheduler":
			_, err = core.Pods(ns).Get(ctx, "dask-scheduler-"+hex, metav1.GetOptions{})
		case "secret":
			_, err = core.Secrets(ns).Get(ctx, "dask-credentials-"+hex, metav1.GetOptions{})
		case "service":
			_, err = core.Services(ns).Get(ctx, "dask-"+hex, metav1.GetOptions{})
		default:
			h.t.Fatalf("deleted: unknown object %q", o)
		}
		if !apierrors.IsNotFound(err) {
			return false
		}
	}
	return true
}
