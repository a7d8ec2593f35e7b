package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// nodeName is the one fake node; kwok manages nodes with the annotation.
const nodeName = "kwok-node-0"

const fakeNode = `{"apiVersion": "v1", "kind": "Node",
 "metadata": {"name": "` + nodeName + `",
  "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
  "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux", "kubernetes.io/hostname": "` + nodeName + `", "type": "kwok"}},
 "status": {
  "allocatable": {"cpu": "100000", "memory": "1Pi", "pods": "100000"},
  "capacity": {"cpu": "100000", "memory": "1Pi", "pods": "100000"},
  "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": "fake", "kubeProxyVersion": "fake"}}}`

// startKwok runs kube-scheduler and kwok and registers the fake node.
func (e *Env) startKwok(ctx context.Context, opt Options) error {
	stages, err := kwokStages()
	if err != nil {
		return err
	}
	qps := opt.SchedulerQPS
	if qps == 0 {
		qps = 50
	}
	conf := filepath.Join(e.Dir, "kube-scheduler.yaml")
	err = os.WriteFile(conf, fmt.Appendf(nil, `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection: {kubeconfig: %q, qps: %d, burst: %d}
leaderElection: {leaderElect: false}
`, e.Kubeconfig, qps, 2*qps), 0o644)
	if err != nil {
		return err
	}
	if err := launch(e.Dir, "kube-scheduler", e.detach, e.bin["kube-scheduler"], "--config="+conf, "--secure-port=0"); err != nil {
		return err
	}
	// No --server-address: kwok opens no port. Node IP 127.0.0.1, so
	// anything that would contact a "kubelet" stays on loopback.
	err = launch(e.Dir, "kwok", e.detach, e.bin["kwok"], "--kubeconfig="+e.Kubeconfig, "--config="+stages,
		"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--manage-nodes-with-label-selector=", "--cidr="+podCIDR, "--node-ip=127.0.0.1",
		"--node-lease-duration-seconds=40")
	if err != nil {
		return err
	}
	admin, err := e.adminClient()
	if err != nil {
		return err
	}
	resp, err := admin.Post(e.Server+"/api/v1/nodes", "application/json", bytes.NewBufferString(fakeNode))
	if err != nil {
		return fmt.Errorf("create node %s: %w", nodeName, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("create node %s: %s: %s", nodeName, resp.Status, body)
	}
	return e.waitFor(ctx, opt.Timeout, "kwok", func() bool { return nodeReady(admin, e.Server) })
}

func nodeReady(c *http.Client, server string) bool {
	resp, err := c.Get(server + "/api/v1/nodes/" + nodeName)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var node struct {
		Status struct {
			Conditions []struct{ Type, Status string }
		}
	}
	if json.NewDecoder(resp.Body).Decode(&node) != nil {
		return false
	}
	for _, c := range node.Status.Conditions {
		if c.Type == "Ready" && c.Status == "True" {
			return true
		}
	}
	return false
}
