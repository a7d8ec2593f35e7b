// Package kubetest starts a real control plane for tests and benchmarks:
// kube-testenv's etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok, plus a kwok node of our own on which pods keep
// running (see StartRunForeverKwok).
//
// Typical use:
//
//	env, err := kubetest.Start("../shared/tools/kube-testenv")
//	defer env.Stop()
//	cl, err := kube.NewClients(kube.ClientConfig{Kubeconfig: env.Kubeconfig})
package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Env is a running control plane.
type Env struct {
	Dir        string
	Kubeconfig string
	stops      []func()
}

// Pids returns the process ids of the control plane by name
// (kube-apiserver, etcd, kube-scheduler, kube-controller-manager, kwok,
// and our run-forever kwok as daskgate-kwok), for CPU accounting.
func (e *Env) Pids() map[string]int {
	out := map[string]int{}
	files, _ := filepath.Glob(filepath.Join(e.Dir, "pids", "*.pid"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		var pid int
		if _, err := fmt.Sscan(string(b), &pid); err == nil {
			out[strings.TrimSuffix(filepath.Base(f), ".pid")] = pid
		}
	}
	return out
}

// Stop ends every process Start began and removes Dir.
func (e *Env) Stop() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	os.RemoveAll(e.Dir)
}

// Options tune the control plane.
type Options struct {
	// SchedulerQPS, if set, replaces kube-testenv's kube-scheduler with one
	// whose API client may send this many requests per second (burst 2x).
	// Its default, 50, binds at most 50 pods a second.
	SchedulerQPS int
}

// Start runs `kube-testenv start --kwok` in a new directory and adds the
// run-forever kwok node.
func Start(script string) (*Env, error) { return StartWith(script, Options{}) }

// StartWith is Start with options.
func StartWith(script string, opt Options) (*Env, error) {
	dir, err := os.MkdirTemp("", "daskgate-kube-")
	if err != nil {
		return nil, err
	}
	e := &Env{Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig")}
	out, err := exec.Command(script, "start", "--kwok", dir).CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s start --kwok: %v\n%s", script, err, out)
	}
	e.stops = append(e.stops, func() { exec.Command(script, "stop", dir).Run() })
	stop, err := startRunForeverKwok(script, dir)
	if err != nil {
		e.Stop()
		return nil, err
	}
	e.stops = append(e.stops, stop)
	if opt.SchedulerQPS > 0 {
		stop, err := e.replaceScheduler(script, opt.SchedulerQPS)
		if err != nil {
			e.Stop()
			return nil, err
		}
		e.stops = append(e.stops, stop)
	}
	return e, nil
}

// replaceScheduler stops kube-testenv's kube-scheduler and starts the same
// binary with a configuration file that raises its client's QPS.
func (e *Env) replaceScheduler(script string, qps int) (func(), error) {
	env, err := testenvVars(script)
	if err != nil {
		return nil, err
	}
	pid, ok := e.Pids()["kube-scheduler"]
	if !ok {
		return nil, fmt.Errorf("kube-testenv recorded no kube-scheduler under %s", e.Dir)
	}
	if p, err := os.FindProcess(pid); err == nil {
		p.Kill() // not our child: kube-testenv launched it
	}
	os.Remove(filepath.Join(e.Dir, "pids", "kube-scheduler.pid"))
	conf := fmt.Sprintf(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: %q, qps: %d, burst: %d}
leaderElection: {leaderElect: false}
`, e.Kubeconfig, qps, 2*qps)
	confFile := filepath.Join(e.Dir, "daskgate-scheduler.yaml")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return startLogged(e.Dir, "kube-scheduler", env["KUBE_SCHEDULER"], "--config="+confFile, "--secure-port=0")
}

// startLogged starts a process with its output in dir/logs/name.log, its
// pid in dir/pids/name.pid (kube-testenv's layout, pid only), and returns
// its stop function.
func startLogged(dir, name, bin string, args ...string) (func(), error) {
	logf, err := os.OpenFile(filepath.Join(dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	pidFile := filepath.Join(dir, "pids", name+".pid")
	_ = os.WriteFile(pidFile, []byte(fmt.Sprintln(cmd.Process.Pid)), 0o644)
	return func() { cmd.Process.Kill(); cmd.Wait(); logf.Close(); os.Remove(pidFile) }, nil
}

// testenvVars reads the tool paths `kube-testenv env` prints.
func testenvVars(script string) (map[string]string, error) {
	out, err := exec.Command(script, "env").Output()
	if err != nil {
		return nil, fmt.Errorf("%s env: %v", script, err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok {
			env[k] = strings.Trim(v, `'"`)
		}
	}
	return env, nil
}

// startRunForeverKwok works around one kube-testenv stage: it completes
// every Running pod whose restartPolicy is Never or OnFailure at once (so
// `helm test` hooks pass), which would make every scheduler exit. It
// taints kube-testenv's node and runs a second kwok, with the same stages
// but that one, for a node of our own where pods keep running until the
// test changes their status.
func startRunForeverKwok(script, dir string) (func(), error) {
	env, err := testenvVars(script)
	if err != nil {
		return nil, err
	}
	stages, err := os.ReadFile(env["KWOK_STAGES"])
	if err != nil {
		return nil, err
	}
	var keep []string
	for _, doc := range strings.Split(string(stages), "\n---\n") {
		if !strings.Contains(doc, "name: pod-complete-run-once") {
			keep = append(keep, doc)
		}
	}
	stagesFile := filepath.Join(dir, "daskgate-kwok-stages.yaml")
	if err := os.WriteFile(stagesFile, []byte(strings.Join(keep, "\n---\n")), 0o644); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kubectl := func(args ...string) error {
		out, err := exec.Command(env["KUBECTL"], append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubectl %v: %v\n%s", args, err, out)
		}
		return nil
	}
	if err := kubectl("taint", "nodes", "-l", "type=kwok", "daskgate-test/unused=true:NoSchedule"); err != nil {
		return nil, err
	}
	stop, err := startLogged(dir, "daskgate-kwok", env["KWOK"], "--kubeconfig="+kubeconfig, "--config="+stagesFile, "--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=daskgate-test/node=fake", "--manage-nodes-with-label-selector=",
		"--cidr=10.245.0.0/16", "--node-ip=127.0.0.1", "--node-lease-duration-seconds=40")
	if err != nil {
		return nil, err
	}
	node := `{"apiVersion":"v1","kind":"Node","metadata":{"name":"daskgate-node-0",
"annotations":{"node.alpha.kubernetes.io/ttl":"0","daskgate-test/node":"fake"},
"labels":{"kubernetes.io/os":"linux","kubernetes.io/hostname":"daskgate-node-0","type":"daskgate-kwok"}},
"status":{"allocatable":{"cpu":"100000","memory":"1Pi","pods":"100000"},"capacity":{"cpu":"100000","memory":"1Pi","pods":"100000"}}}`
	nodeFile := filepath.Join(dir, "daskgate-node.json")
	if err := os.WriteFile(nodeFile, []byte(node), 0o644); err != nil {
		stop()
		return nil, err
	}
	if err := kubectl("apply", "-f", nodeFile); err != nil {
		stop()
		return nil, err
	}
	if err := kubectl("wait", "--for=condition=Ready", "node/daskgate-node-0", "--timeout=60s"); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}
