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

// Stop ends every process Start began and removes Dir.
func (e *Env) Stop() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	os.RemoveAll(e.Dir)
}

// Start runs `kube-testenv start --kwok` in a new directory and adds the
// run-forever kwok node.
func Start(script string) (*Env, error) {
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
	return e, nil
}

// startRunForeverKwok works around one kube-testenv stage: it completes
// every Running pod whose restartPolicy is Never or OnFailure at once (so
// `helm test` hooks pass), which would make every scheduler exit. It
// taints kube-testenv's node and runs a second kwok, with the same stages
// but that one, for a node of our own where pods keep running until the
// test changes their status.
func startRunForeverKwok(script, dir string) (func(), error) {
	envOut, err := exec.Command(script, "env").Output()
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(envOut), "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok {
			env[k] = v
		}
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
	logf, err := os.Create(filepath.Join(dir, "logs", "daskgate-kwok.log"))
	if err != nil {
		return nil, err
	}
	kwok := exec.Command(env["KWOK"], "--kubeconfig="+kubeconfig, "--config="+stagesFile, "--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=daskgate-test/node=fake", "--manage-nodes-with-label-selector=",
		"--cidr=10.245.0.0/16", "--node-ip=127.0.0.1", "--node-lease-duration-seconds=40")
	kwok.Stdout, kwok.Stderr = logf, logf
	if err := kwok.Start(); err != nil {
		return nil, err
	}
	stop := func() { kwok.Process.Kill(); kwok.Wait(); logf.Close() }
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
