// Command kube is the Kubernetes scale benchmark (not run in CI): it
// starts a real API server with kwok (backend/kube/kubetest), runs
// bin/daskgate serve (backend kubernetes) and bin/daskgate controller as
// separate processes, creates N clusters through the HTTP API, scales each
// to 2 workers with the heartbeat a scheduler would send, and prints the
// time until all workers run, API writes per cluster by resource (from
// the API server's own apiserver_request_total), and peak RSS.
//
//	go run ./bench/kube -n 1000 -bin bin/daskgate
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	"github.com/daskgate/daskgate/backend/kube/kubetest"
	"github.com/daskgate/daskgate/bench/internal/gateway"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

var users int

func main() {
	n := flag.Int("n", 1000, "clusters")
	workers := flag.Int("workers", 2, "workers per cluster")
	bin := flag.String("bin", "bin/daskgate", "daskgate binary")
	script := flag.String("kube-testenv", "../shared/tools/kube-testenv", "kube-testenv script")
	qps := flag.Int("qps", 500, "client QPS of gateway and controller (burst 2x)")
	flag.IntVar(&users, "users", 50, "distinct users creating clusters")
	flag.Parse()
	if err := run(*n, *workers, *bin, *script, *qps); err != nil {
		log.Fatal(err)
	}
}

func run(n, perCluster int, bin, script string, qps int) error {
	ctx := context.Background()
	env, err := kubetest.Start(script)
	if err != nil {
		return err
	}
	defer env.Stop()
	admin, err := kube.NewClients(kube.ClientConfig{Kubeconfig: env.Kubeconfig, QPS: 1000, Burst: 2000})
	if err != nil {
		return err
	}
	if err := kube.InstallCRD(ctx, admin.Dynamic); err != nil {
		return err
	}
	ns := "bench"
	if _, err := admin.Core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // CRD established
	cfg := fmt.Sprintf(`api_url: http://api-dask-gateway.bench:8000/api
log: {level: warn}
backend:
  type: kubernetes
  kubernetes: {kubeconfig: %s, instance: bench, namespaces: [bench], qps: %d, burst: %d}
cluster: {image: "ghcr.io/dask/dask-gateway:2026.3.0"}
`, env.Kubeconfig, qps, 2*qps)
	gw, err := gateway.Start(bin, cfg)
	if err != nil {
		return err
	}
	defer gw.Stop()
	cfgPath := filepath.Join(env.Dir, "controller.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return err
	}
	ctl := exec.Command(bin, "controller", "--config", cfgPath)
	ctl.Stderr = os.Stderr
	if err := ctl.Start(); err != nil {
		return err
	}
	defer func() { ctl.Process.Signal(os.Interrupt); ctl.Wait() }()
	peak := &peaks{}
	stopSampling := peak.sample(map[string]int{"gateway": gw.Pid(), "controller": ctl.Process.Pid})
	time.Sleep(3 * time.Second) // leader election
	before, err := writes(ctx, admin)
	if err != nil {
		return err
	}

	start := time.Now()
	names := make([]string, n)
	var failed atomic.Int64
	parallel(n, 32, func(i int) {
		body := []byte(`{"cluster_options": {}}`)
		req, _ := http.NewRequest("POST", gw.URL+"/api/v1/clusters/", bytes.NewReader(body))
		req.SetBasicAuth(fmt.Sprintf("user%d", i%users), "") // creates of one user are serialised (quota)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 201 {
			failed.Add(1)
			return
		}
		var out struct{ Name string }
		json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		names[i] = out.Name
	})
	if failed.Load() > 0 {
		return fmt.Errorf("%d creates failed", failed.Load())
	}
	created := time.Since(start)
	if err := waitUntil(10*time.Minute, func() bool { return countRunning(ctx, admin, ns) >= n }); err != nil {
		return fmt.Errorf("clusters running: %w (%d of %d)", err, countRunning(ctx, admin, ns), n)
	}
	allRunning := time.Since(start)

	secrets, err := admin.Core.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelComponent + "=credentials"})
	if err != nil {
		return err
	}
	tokens := map[string]string{}
	for _, s := range secrets.Items {
		tokens[s.Labels[kube.LabelCluster]] = string(s.Data["api-token"])
	}
	parallel(n, 32, func(i int) {
		_, hex, _ := kube.SplitName(names[i])
		body, _ := json.Marshal(map[string]any{"count": perCluster, "active_workers": []string{}, "closing_workers": []string{}, "closed_workers": []string{}})
		req, _ := http.NewRequest("POST", gw.URL+"/api/v1/clusters/"+names[i]+"/heartbeat", bytes.NewReader(body))
		req.Header.Set("Authorization", "token "+tokens[hex])
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				failed.Add(1)
			}
		}
	})
	if failed.Load() > 0 {
		return fmt.Errorf("%d heartbeats failed", failed.Load())
	}
	want := n * perCluster
	if err := waitUntil(10*time.Minute, func() bool { return workerPods(ctx, admin, ns, false) >= want }); err != nil {
		return fmt.Errorf("worker pods created: %w", err)
	}
	podsCreated := time.Since(start)
	if err := waitUntil(10*time.Minute, func() bool { return workerPods(ctx, admin, ns, true) >= want }); err != nil {
		return fmt.Errorf("workers running: %w", err)
	}
	total := time.Since(start)
	stopSampling()
	after, err := writes(ctx, admin)
	if err != nil {
		return err
	}

	fmt.Printf("kube scale benchmark: %d clusters x %d workers, kwok, client QPS %d\n", n, perCluster, qps)
	fmt.Printf("  POST x%d (32 concurrent, %d users): %6.1f s\n", n, users, created.Seconds())
	fmt.Printf("  all clusters RUNNING:            %6.1f s after the first POST\n", allRunning.Seconds())
	fmt.Printf("  all %d worker pods created:    %6.1f s after the first POST\n", want, podsCreated.Seconds())
	fmt.Printf("  all %d workers Running:        %6.1f s after the first POST\n", want, total.Seconds())
	ours := map[string]bool{"daskclusters": true, "daskclusters/status": true, "pods": true, "secrets": true, "services": true}
	var sumOurs, sumTheirs float64
	var keys []string
	for k := range after {
		if d := after[k] - before[k]; d > 0 && !strings.HasPrefix(k, "leases") {
			keys = append(keys, k)
			if ours[k] {
				sumOurs += d
			} else {
				sumTheirs += d
			}
		}
	}
	sort.Strings(keys)
	fmt.Printf("  daskgate API writes per cluster: %6.2f (of which %d worker pod creates)\n", sumOurs/float64(n), perCluster)
	fmt.Printf("  Kubernetes' own writes per cluster (scheduler bindings, kwok status, endpoints, events): %.2f\n", sumTheirs/float64(n))
	for _, k := range keys {
		who := "kubernetes"
		if ours[k] {
			who = "daskgate"
		}
		fmt.Printf("    %-22s %-10s %6.2f\n", k, who, (after[k]-before[k])/float64(n))
	}
	fmt.Printf("  peak RSS: gateway %.1f MiB, controller %.1f MiB\n", peak.get("gateway"), peak.get("controller"))
	return nil
}

func parallel(n, width int, fn func(i int)) {
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range width {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

func waitUntil(timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v", timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}

func countRunning(ctx context.Context, admin *kube.Clients, ns string) int {
	l, err := admin.Dynamic.Resource(kube.GVR).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0
	}
	n := 0
	for _, u := range l.Items {
		if phase, _, _ := unstructured.NestedString(u.Object, "status", "phase"); phase == "Running" {
			n++
		}
	}
	return n
}

// workerPods counts worker pods, or only the Running ones.
func workerPods(ctx context.Context, admin *kube.Clients, ns string, running bool) int {
	l, err := admin.Core.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: kube.LabelComponent + "=dask-worker"})
	if err != nil {
		return 0
	}
	n := 0
	for _, p := range l.Items {
		if !running || p.Status.Phase == corev1.PodRunning {
			n++
		}
	}
	return n
}

// writes sums the API server's apiserver_request_total for mutating verbs,
// by resource (and subresource).
func writes(ctx context.Context, admin *kube.Clients) (map[string]float64, error) {
	raw, err := admin.Core.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		labels, value, _ := strings.Cut(line[len("apiserver_request_total{"):], "} ")
		l := map[string]string{}
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[k] = strings.Trim(v, `"`)
		}
		switch l["verb"] {
		case "POST", "PATCH", "PUT", "DELETE", "APPLY":
		default:
			continue
		}
		var f float64
		fmt.Sscan(value, &f)
		key := l["resource"]
		if l["subresource"] != "" {
			key += "/" + l["subresource"]
		}
		out[key] += f
	}
	return out, sc.Err()
}

type peaks struct {
	mu sync.Mutex
	m  map[string]float64
}

func (p *peaks) sample(pids map[string]int) func() {
	p.m = map[string]float64{}
	done := make(chan struct{})
	go func() {
		for {
			for name, pid := range pids {
				v := gateway.RSSMiB(pid)
				p.mu.Lock()
				p.m[name] = math.Max(p.m[name], v)
				p.mu.Unlock()
			}
			select {
			case <-done:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	return func() { close(done) }
}

func (p *peaks) get(name string) float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[name]
}
