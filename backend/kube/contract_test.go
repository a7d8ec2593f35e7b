package kube_test

import (
	"testing"

	"github.com/daskgate/daskgate/backend/backendtest"
	"github.com/daskgate/daskgate/backend/kube"
	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/server"
	corev1 "k8s.io/api/core/v1"
)

// TestContract runs the backend contract (backend/backendtest) against
// the Kubernetes backend: the gateway and controller on the real API
// server as their service accounts, pods run by kwok (a scheduler pod is
// Ready at once; a scheduler's death is its pod failing, as the kubelet
// reports it).
func TestContract(t *testing.T) {
	h := newHarness(t, nil)
	h.startController("c1")
	g := h.startGateway()
	cfg := cluster.DefaultConfig()
	cfg.Image = "ghcr.io/dask/dask-gateway:test"
	cfg.Namespace = h.ns
	backendtest.Run(t, backendtest.Harness{
		Backend: g.gw,
		Restart: func(t *testing.T) server.Backend {
			g.stop() // the old replica goes; a new one fills its cache from the API server
			g = h.startGateway()
			return g.gw
		},
		Config: cfg,
		Workers: func(t *testing.T, name string) []string {
			var out []string
			for _, p := range h.workerPods(name) {
				if p.Status.Phase == corev1.PodRunning {
					out = append(out, p.Name)
				}
			}
			return out
		},
		KillWorker: func(t *testing.T, name string) string {
			pods := h.workerPods(name)
			if len(pods) == 0 {
				t.Fatal("no worker pod")
			}
			p := pods[0]
			h.setPodStatus(p.Namespace, p.Name, func(s *corev1.PodStatus) {
				s.Phase = corev1.PodFailed
				s.ContainerStatuses = []corev1.ContainerStatus{{Name: "dask-worker", State: corev1.ContainerState{
					Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}
			})
			return p.Name
		},
		KillScheduler: func(t *testing.T, name string) {
			ns, hex, _ := kube.SplitName(name)
			h.setPodStatus(ns, "dask-scheduler-"+hex, func(s *corev1.PodStatus) {
				s.Phase = corev1.PodFailed
				s.ContainerStatuses = []corev1.ContainerStatus{{Name: "dask-scheduler", State: corev1.ContainerState{
					Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}
			})
		},
	})
}
