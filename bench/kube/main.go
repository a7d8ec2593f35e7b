// Command kube is the Kubernetes scale benchmark (not run in CI): it
// starts a real API server with kwok (internal/testenv), runs
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
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	"github.com/daskgate/daskgate/backend/kube/kubetest"
	"github.com/daskgate/daskgate/bench/internal/gateway"
	"github.com/daskgate/daskgate/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	users      int
	profile    string
	apiProfile string
)

func main() {
	n := flag.Int("n", 1000, "clusters")
	workers := flag.Int("workers", 2, "workers per cluster")
	bin := flag.String("bin", "bin/daskgate", "daskgate binary")
	qps := flag.Int("qps", 500, "client QPS of gateway and controller (burst 2x)")
	flag.IntVar(&users, "users", 50, "distinct users creating clusters (at most 1000)")
	flag.StringVar(&profile, "controller-profile", "", "write the controller's CPU profile to this file")
	flag.StringVar(&apiProfile, "apiserver-profile", "", "write a 40 s CPU profile of kube-apiserver, from the first POST, to this file")
	schedQPS := flag.Int("scheduler-qps", 500, "kube-scheduler's client QPS (burst 2x); 0 keeps its default of 50")
	flag.Parse()
	if users < 1 || users > len(userLocks) {
		log.Fatalf("-users must be 1..%d", len(userLocks))
	}
	if err := run(*n, *workers, *bin, *qps, *schedQPS); err != nil {
		log.Fatal(err)
	}
}

func run(n, perCluster int, bin string, qps, schedQPS int) error {
	// Reuse connections like a fleet of long-lived clients would; the
	// default keeps 2 idle per host, so most requests would dial anew.
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = 1024
	ctx := context.Background()
	env, err := testenv.Start(ctx, testenv.Options{SchedulerQPS: schedQPS})
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
	if profile != "" {
		ctl.Env = append(os.Environ(), "DASKGATE_CPUPROFILE="+profile)
	}
	if err := ctl.Start(); err != nil {
		return err
	}
	defer func() { ctl.Process.Signal(os.Interrupt); ctl.Wait() }()
	peak := &peaks{}
	stopSampling := peak.sample(map[string]int{"gateway": gw.Pid(), "controller": ctl.Process.Pid})
	procs := env.Pids()
	procs["daskgate gateway"], procs["daskgate controller"], procs["bench"] = gw.Pid(), ctl.Process.Pid, os.Getpid()
	hostBefore := hostCheck()
	cpuBefore, stealBefore := gateway.CPUSecondsOf(procs), stealSeconds()
	time.Sleep(3 * time.Second) // leader election
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	pods, err := kubetest.WatchPods(watchCtx, admin.Core, ns, kube.LabelComponent+"="+kube.ComponentWorker)
	if err != nil {
		return err
	}
	before, err := writes(ctx, admin)
	if err != nil {
		return err
	}

	// Each cluster follows a notebook's flow: new_cluster() (POST, then
	// GET ?wait until RUNNING), then scale(2), which the scheduler turns
	// into a heartbeat asking for 2 workers. At most 32 POSTs are in
	// flight; the waits and heartbeats are not limited.
	if apiProfile != "" {
		go func() {
			raw, err := admin.Core.Discovery().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "40").Timeout(time.Minute).DoRaw(ctx)
			if err == nil {
				err = os.WriteFile(apiProfile, raw, 0o644)
			}
			if err != nil {
				log.Printf("apiserver profile: %v", err)
			}
		}()
	}
	start := time.Now()
	posts := make(chan struct{}, 32)
	var lastPost, lastRunning atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			user := fmt.Sprintf("user%d", i%users)
			mu := &userLocks[i%users] // one user's creates are serialised (quota)
			mu.Lock()
			posts <- struct{}{}
			name, err := createCluster(gw.URL, user)
			<-posts
			mu.Unlock()
			if err == nil {
				storeMax(&lastPost, time.Since(start))
				err = waitRunning(gw.URL, user, name)
			}
			if err == nil {
				storeMax(&lastRunning, time.Since(start))
				err = heartbeat(ctx, admin, gw.URL, ns, name, perCluster)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("%d clusters failed, first: %w", len(errs)+1, err)
	}
	created, allRunning := time.Duration(lastPost.Load()), time.Duration(lastRunning.Load())
	want := n * perCluster
	if err := waitUntil(10*time.Minute, func() bool { created, _ := pods.Counts(); return created >= want }); err != nil {
		return fmt.Errorf("worker pods created: %w", err)
	}
	podsCreated := time.Since(start)
	if err := waitUntil(10*time.Minute, func() bool { _, running := pods.Counts(); return running >= want }); err != nil {
		return fmt.Errorf("workers running: %w", err)
	}
	total := time.Since(start)
	stopSampling()
	after, err := writes(ctx, admin)
	if err != nil {
		return err
	}

	sched := "50 (default)"
	if schedQPS > 0 {
		sched = fmt.Sprint(schedQPS)
	}
	fmt.Printf("kube scale benchmark: %d clusters x %d workers, kwok, client QPS %d, kube-scheduler QPS %s\n", n, perCluster, qps, sched)
	fmt.Printf("  POST x%d (32 concurrent, %d users): %6.1f s\n", n, users, created.Seconds())
	fmt.Printf("  all clusters RUNNING (GET ?wait): %6.1f s after the first POST\n", allRunning.Seconds())
	fmt.Printf("  all %d worker pods created:    %6.1f s after the first POST\n", want, podsCreated.Seconds())
	fmt.Printf("  all %d workers Running:        %6.1f s after the first POST\n", want, total.Seconds())
	// Who writes what: the gateway writes DaskClusters (create, scale
	// patch), the controller their status and every other object.
	writer := map[string]string{"daskclusters": "gateway", "daskclusters/status": "controller", "pods": "controller", "secrets": "controller", "services": "controller"}
	writerOf := func(key string) string { res, _, _ := strings.Cut(key, " "); return writer[res] }
	sums := map[string]float64{}
	var keys []string
	for k := range after {
		if d := after[k] - before[k]; d > 0 && !strings.HasPrefix(k, "leases") {
			keys = append(keys, k)
			sums[writerOf(k)] += d
		}
	}
	sort.Strings(keys)
	perN := func(who string) float64 { return sums[who] / float64(n) }
	fmt.Printf("  daskgate API writes per cluster: %6.2f = controller %.2f (Secret, scheduler pod, Service, status, %d worker pods) + gateway %.2f (create, scale)\n",
		perN("controller")+perN("gateway"), perN("controller"), perCluster, perN("gateway"))
	fmt.Printf("  Kubernetes' own writes per cluster (scheduler bindings, kwok status, endpoints, events): %.2f\n", perN(""))
	for _, k := range keys {
		who := writerOf(k)
		if who == "" {
			who = "kubernetes"
		}
		fmt.Printf("    %-28s %-10s %6.2f\n", k, who, (after[k]-before[k])/float64(n))
	}
	fmt.Printf("  peak RSS: gateway %.1f MiB, controller %.1f MiB\n", peak.get("gateway"), peak.get("controller"))
	cpuAfter := gateway.CPUSecondsOf(procs)
	var names []string
	for name := range procs {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		return cpuAfter[names[i]]-cpuBefore[names[i]] > cpuAfter[names[j]]-cpuBefore[names[j]]
	})
	fmt.Printf("  CPU seconds used during the run (%.0f available on %d vCPUs):", total.Seconds()*float64(runtime.NumCPU()), runtime.NumCPU())
	for _, name := range names {
		fmt.Printf(" %s %.1f,", name, cpuAfter[name]-cpuBefore[name])
	}
	fmt.Printf("\n  CPU time stolen from this VM by its host during the run: %.1f s\n", stealSeconds()-stealBefore)
	time.Sleep(5 * time.Second) // let the control plane settle
	fmt.Printf("  host check (4M random reads over 64 MiB, one core, best of 3; lower is faster): %.0f ms before, %.0f ms after\n",
		hostBefore.Seconds()*1000, hostCheck().Seconds()*1000)
	return nil
}

// hostCheck times a fixed single-core workload that misses the caches
// (a random walk over 64 MiB), so runs on a slower or busier host can be
// told apart from runs where the software did more work.
func hostCheck() time.Duration {
	next := make([]uint32, 16<<20)
	for i := range next {
		next[i] = uint32(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	// Sattolo's shuffle: one cycle through every slot.
	for i := len(next) - 1; i > 0; i-- {
		j := rng.IntN(i)
		next[i], next[j] = next[j], next[i]
	}
	best := time.Duration(math.MaxInt64)
	for range 3 {
		start := time.Now()
		p := uint32(0)
		for range 4 << 20 {
			p = next[p]
		}
		best = min(best, time.Since(start))
		runtime.KeepAlive(p)
	}
	return best
}

var userLocks [1000]sync.Mutex

func storeMax(v *atomic.Int64, d time.Duration) {
	for {
		old := v.Load()
		if int64(d) <= old || v.CompareAndSwap(old, int64(d)) {
			return
		}
	}
}

func createCluster(url, user string) (string, error) {
	req, _ := http.NewRequest("POST", url+"/api/v1/clusters/", strings.NewReader(`{"cluster_options": {}}`))
	req.SetBasicAuth(user, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 201 {
		return "", fmt.Errorf("create: status %d", resp.StatusCode)
	}
	var out struct{ Name string }
	err = json.NewDecoder(resp.Body).Decode(&out)
	return out.Name, err
}

// waitRunning long-polls GET ?wait like the client until RUNNING.
func waitRunning(url, user, name string) error {
	for range 60 {
		req, _ := http.NewRequest("GET", url+"/api/v1/clusters/"+name+"?wait", nil)
		req.SetBasicAuth(user, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		var out struct{ Status, Error string }
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		switch {
		case err != nil:
			return err
		case resp.StatusCode != http.StatusOK:
			return fmt.Errorf("%s: %d %s", name, resp.StatusCode, out.Error)
		case out.Status == "RUNNING":
			return nil
		case out.Status != "PENDING":
			return fmt.Errorf("%s: %s", name, out.Status)
		}
	}
	return fmt.Errorf("%s: not RUNNING after 60 waits", name)
}

// heartbeat asks for count workers the way the cluster's scheduler does,
// with the cluster's token from its Secret.
func heartbeat(ctx context.Context, admin *kube.Clients, url, ns, name string, count int) error {
	_, hex, _ := kube.SplitName(name)
	sec, err := admin.Core.CoreV1().Secrets(ns).Get(ctx, "dask-credentials-"+hex, metav1.GetOptions{})
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"count": count, "active_workers": []string{}, "closing_workers": []string{}, "closed_workers": []string{}})
	req, _ := http.NewRequest("POST", url+"/api/v1/clusters/"+name+"/heartbeat", bytes.NewReader(body))
	req.Header.Set("Authorization", "token "+string(sec.Data["api-token"]))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("heartbeat %s: status %d", name, resp.StatusCode)
	}
	return nil
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
		out[key+" "+l["verb"]] += f
	}
	return out, sc.Err()
}

// stealSeconds is the machine's total steal time from /proc/stat: time
// the hypervisor ran something else while a vCPU wanted to run.
func stealSeconds() float64 {
	b, _ := os.ReadFile("/proc/stat")
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks float64
	fmt.Sscan(f[8], &ticks)
	return ticks / 100
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
