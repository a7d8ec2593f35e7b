// Package backendtest is the contract every cluster backend keeps: one
// table of behaviours, run against the local-process backend and the
// Kubernetes backend alike (each binds the hooks below to its own test
// harness: the local backend's re-executed test child, kwok pods on a real
// API server).
//
//	backendtest.Run(t, backendtest.Harness{Backend: b, Config: cfg, Workers: count, KillScheduler: kill})
package backendtest

import (
	"context"
	"errors"
	"slices"

	"testing"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/server"
)

// Harness is one backend under test.
type Harness struct {
	Backend server.Backend
	// Config is what clusters start from; its scheduler comes up and
	// reports on its own (the backend's test scheduler).
	Config cluster.Config
	// Workers names the cluster's worker processes or pods that run.
	Workers func(t *testing.T, name string) []string
	// KillScheduler ends a running cluster's scheduler abnormally.
	KillScheduler func(t *testing.T, name string)
	// KillWorker ends one of a running cluster's workers abnormally and
	// names it.
	KillWorker func(t *testing.T, name string) string
	// Restart replaces the backend by a new instance over the same state
	// (a gateway restart) and returns it; the hooks above follow it.
	Restart func(t *testing.T) server.Backend
	// Timeout bounds each eventual condition; zero means 30s.
	Timeout time.Duration
}

// Run runs every behaviour of the contract as a subtest.
func Run(t *testing.T, h Harness) {
	if h.Timeout == 0 {
		h.Timeout = 30 * time.Second
	}
	for _, c := range []struct {
		name string
		run  func(*testing.T, *Harness)
	}{
		{"create/get/list/wait/counts", createGetListWait},
		{"scale up by heartbeat", scaleUp},
		{"a heartbeat's count is clamped to the cluster's limit", clamp},
		{"stop a running cluster", stopRunning},
		{"stop a pending cluster", stopPending},
		{"a dead worker is replaced", workerDeath},
		{"scheduler death fails the cluster with a reason", schedulerDeath},
		{"unknown names", unknownNames},
		{"a restarted backend adopts a running cluster", restartAdopts}, // last: it replaces the backend
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, &h) })
	}
}

func (h *Harness) create(t *testing.T, user string, mod func(*cluster.Config)) *cluster.Cluster {
	t.Helper()
	cfg := h.Config
	if mod != nil {
		mod(&cfg)
	}
	c, err := h.Backend.Create(context.Background(), cluster.CreateRequest{Username: user, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *Harness) running(t *testing.T, name string) *cluster.Cluster {
	t.Helper()
	var c *cluster.Cluster
	h.eventually(t, "RUNNING", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var err error
		c, err = h.Backend.Wait(ctx, name)
		return err == nil && c.Status == cluster.Running
	})
	return c
}

func (h *Harness) status(t *testing.T, name string) cluster.Status {
	t.Helper()
	c, err := h.Backend.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return c.Status
}

func (h *Harness) eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(h.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %v", what, h.Timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (h *Harness) heartbeat(t *testing.T, name string, count int) {
	t.Helper()
	if err := h.Backend.Heartbeat(context.Background(), name, cluster.Heartbeat{Count: count}); err != nil {
		t.Fatal(err)
	}
}

func (h *Harness) stop(t *testing.T, name string) {
	t.Helper()
	if err := h.Backend.Stop(context.Background(), name, false, "contract"); err != nil {
		t.Fatal(err)
	}
}

func createGetListWait(t *testing.T, h *Harness) {
	c := h.create(t, "alice", nil)
	if c.Status != cluster.Pending || c.Name == "" || c.Username != "alice" {
		t.Fatalf("created: %+v", c)
	}
	l, err := h.Backend.List(context.Background(), func(x *cluster.Cluster) bool { return x.Username == "alice" })
	if err != nil || !contains(l, c.Name) {
		t.Fatalf("list: %v %v", l, err)
	}
	r := h.running(t, c.Name)
	// The addresses the proxy routes to, and the scheduler API that scale
	// and adapt requests go to (the server forwards them there).
	if r.SchedulerAddress == "" || r.DashboardAddress == "" || r.APIAddress == "" {
		t.Errorf("running without addresses: %+v", r)
	}
	if h.Backend.Counts()[cluster.Running] < 1 {
		t.Errorf("counts %v", h.Backend.Counts())
	}
	h.stop(t, c.Name)
	h.eventually(t, "STOPPED", func() bool { return h.status(t, c.Name) == cluster.Stopped })
}

func scaleUp(t *testing.T, h *Harness) {
	c := h.create(t, "bob", nil)
	h.running(t, c.Name)
	h.heartbeat(t, c.Name, 3)
	h.eventually(t, "3 workers", func() bool { return len(h.Workers(t, c.Name)) == 3 })
	h.stop(t, c.Name)
	h.eventually(t, "STOPPED with no workers", func() bool {
		return h.status(t, c.Name) == cluster.Stopped && len(h.Workers(t, c.Name)) == 0
	})
}

func clamp(t *testing.T, h *Harness) {
	two := 2
	c := h.create(t, "carol", func(cfg *cluster.Config) { cfg.ClusterMaxWorkers = &two })
	h.running(t, c.Name)
	h.heartbeat(t, c.Name, 50)
	h.eventually(t, "2 workers", func() bool { return len(h.Workers(t, c.Name)) == 2 })
	for range 10 { // and no more come
		if n := len(h.Workers(t, c.Name)); n > 2 {
			t.Fatalf("%d workers past the limit of 2", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	h.stop(t, c.Name)
	h.eventually(t, "STOPPED", func() bool { return h.status(t, c.Name) == cluster.Stopped })
}

func stopRunning(t *testing.T, h *Harness) {
	c := h.create(t, "dave", nil)
	h.running(t, c.Name)
	h.stop(t, c.Name)
	h.stop(t, c.Name) // again: nothing to do, no error
	h.eventually(t, "STOPPED", func() bool { return h.status(t, c.Name) == cluster.Stopped })
	// The reason a stop was asked for stays with the stopped cluster (the
	// web page shows who or which rule stopped it).
	if got, err := h.Backend.Get(context.Background(), c.Name); err != nil {
		t.Error(err)
	} else if got.Reason != "contract" {
		t.Errorf("stopped cluster's reason %q, want the stop's", got.Reason)
	}
	h.stop(t, c.Name)
	if st := h.status(t, c.Name); st != cluster.Stopped {
		t.Fatalf("stopping a stopped cluster made it %v", st)
	}
}

func stopPending(t *testing.T, h *Harness) {
	c := h.create(t, "erin", nil)
	h.stop(t, c.Name)
	h.eventually(t, "STOPPED", func() bool { return h.status(t, c.Name) == cluster.Stopped })
}

func workerDeath(t *testing.T, h *Harness) {
	c := h.create(t, "grace", nil)
	h.running(t, c.Name)
	h.heartbeat(t, c.Name, 2)
	h.eventually(t, "2 workers", func() bool { return len(h.Workers(t, c.Name)) == 2 })
	dead := h.KillWorker(t, c.Name)
	h.heartbeat(t, c.Name, 2) // the scheduler still wants two
	h.eventually(t, "2 workers again, the dead one replaced", func() bool {
		ws := h.Workers(t, c.Name)
		return len(ws) == 2 && !slices.Contains(ws, dead)
	})
	if st := h.status(t, c.Name); st != cluster.Running {
		t.Fatalf("one worker's death made the cluster %v", st)
	}
	h.stop(t, c.Name)
	h.eventually(t, "STOPPED", func() bool { return h.status(t, c.Name) == cluster.Stopped })
}

func schedulerDeath(t *testing.T, h *Harness) {
	c := h.create(t, "frank", nil)
	h.running(t, c.Name)
	h.KillScheduler(t, c.Name)
	h.eventually(t, "FAILED", func() bool { return h.status(t, c.Name) == cluster.Failed })
	got, _ := h.Backend.Get(context.Background(), c.Name)
	if got.Reason == "" {
		t.Errorf("failed without a reason: %+v", got)
	}
	// Stopping a failed cluster is no error and leaves it FAILED.
	h.stop(t, c.Name)
	time.Sleep(200 * time.Millisecond)
	if st := h.status(t, c.Name); st != cluster.Failed {
		t.Fatalf("stopping a failed cluster made it %v", st)
	}
}

func unknownNames(t *testing.T, h *Harness) {
	name := h.Config.Namespace + "made-up"
	if h.Config.Namespace != "" {
		name = h.Config.Namespace + ".0123456789abcdef0123456789abcdef"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for what, err := range map[string]error{
		"Get":  second(h.Backend.Get(ctx, name)),
		"Wait": second(h.Backend.Wait(ctx, name)),
		"Stop": h.Backend.Stop(ctx, name, false, "contract"),
	} {
		if !errors.Is(err, cluster.ErrNotFound) {
			t.Errorf("%s of an unknown name: %v, want ErrNotFound", what, err)
		}
	}
	// A heartbeat for a name nobody knows changes nothing and is no error.
	if err := h.Backend.Heartbeat(ctx, name, cluster.Heartbeat{Count: 1}); err != nil && !errors.Is(err, cluster.ErrNotFound) {
		t.Errorf("heartbeat of an unknown name: %v", err)
	}
}

func restartAdopts(t *testing.T, h *Harness) {
	c := h.create(t, "heidi", nil)
	before := h.running(t, c.Name)
	h.Backend = h.Restart(t)
	after := h.running(t, c.Name)
	if after.SchedulerAddress != before.SchedulerAddress || after.Token != before.Token || after.TLSCert != before.TLSCert {
		t.Fatalf("adopted cluster changed: %+v -> %+v", before, after)
	}
	h.heartbeat(t, c.Name, 1)
	h.eventually(t, "1 worker", func() bool { return len(h.Workers(t, c.Name)) == 1 })
	h.stop(t, c.Name)
	h.eventually(t, "STOPPED", func() bool { return h.status(t, c.Name) == cluster.Stopped })
}

func second[T any](_ T, err error) error { return err }

func contains(l []*cluster.Cluster, name string) bool {
	for _, c := range l {
		if c.Name == name {
			return true
		}
	}
	return false
}
