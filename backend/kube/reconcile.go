package kube

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/cache"
)

// reconcile drives one cluster one step towards what its spec asks. It
// returns a delay after which to look again (start timeout), if any.
func (c *Controller) reconcile(ctx context.Context, key string) (time.Duration, error) {
	ns, hex, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	dc, err := c.getDC(ns, hex)
	if err != nil || dc == nil {
		return 0, err
	}
	st := dc.Status
	c.mu.Lock()
	if w, ok := c.written[key]; ok && (w.fromVersion == dc.ResourceVersion || w.status.Phase == PhaseStopped || w.status.Phase == PhaseFailed) {
		// Our own status write is not in the cache yet: it is the truth. A
		// finished status never goes back, whatever spec writes came
		// between (a finished cluster must never be restarted).
		st = w.status
	}
	c.mu.Unlock()
	switch st.phase() {
	case PhaseStopped, PhaseFailed:
		return 0, c.finish(ctx, dc, st)
	}
	sched, err := c.schedulerPod(ns, hex)
	if err != nil {
		return 0, err
	}
	// A running scheduler that exits 0 shut itself down (its idle timeout,
	// after telling the gateway), which may reach us before spec.active
	// does: that is a stop, not a failure.
	// (A deleted scheduler exits 0 on SIGTERM too: that is SchedulerDeleted.)
	cleanExit := sched != nil && sched.DeletionTimestamp == nil && sched.Status.Phase == corev1.PodSucceeded &&
		st.phase() == PhaseRunning
	if !dc.Spec.active() || cleanExit {
		st.Phase, st.CompletionTime, st.Unscheduled, st.Reason, st.Message = PhaseStopped, now(), 0, "", ""
		if err := c.writeStatus(ctx, dc, st); err != nil {
			return 0, err
		}
		return 0, c.finish(ctx, dc, st)
	}
	if sched == nil {
		if st.phase() == PhaseRunning {
			return 0, c.fail(ctx, dc, st, "SchedulerDeleted", "the scheduler pod was deleted")
		}
		err := c.createSecret(ctx, dc)
		if err == nil {
			err = c.createPod(ctx, dc, true)
		}
		if err != nil {
			return c.createFailed(ctx, dc, st, err)
		}
		return c.startTimeout(dc), nil
	}
	if sched.DeletionTimestamp != nil {
		return 0, nil // wait for it to go; its delete event brings us back
	}
	if reason, msg, failed := schedulerFailure(sched); failed {
		return 0, c.fail(ctx, dc, st, reason, msg)
	}
	if st.phase() == PhasePending {
		if !podReady(sched) {
			reason, msg := waitingReason(sched)
			return c.waitToStart(ctx, dc, st, reason, msg)
		}
		if err := c.ensureService(ctx, dc, sched); err != nil {
			return 0, err
		}
		st.Phase, st.Reason, st.Message = PhaseRunning, "", ""
		st.Credentials, st.SchedulerPod, st.Service = secretName(hex), schedulerName(hex), serviceName(hex)
	}
	unscheduled, recheck, err := c.scale(ctx, dc, sched)
	if err != nil {
		return 0, err
	}
	st.Unscheduled = int64(unscheduled)
	return recheck, c.writeStatus(ctx, dc, st)
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

// startTimeout is how long the cluster may still take to start.
func (c *Controller) startTimeout(dc *DaskCluster) time.Duration {
	return time.Until(dc.CreationTimestamp.Add(c.cfg.StartTimeout))
}

// configError is a cluster config no pod can be built from.
type configError struct{ error }

// createFailed handles a refused create of the Secret or the scheduler pod.
// A config no pod can be built from, or a pod the API server calls invalid
// (extra pod and container configs are passed through as upstream does, so
// only the API server validates their insides), fails the cluster at once.
// Anything else (a quota, an admission webhook, an unreachable API server)
// is recorded in status and retried with backoff until the start timeout,
// then fails the cluster. Either way the reason reaches the client.
func (c *Controller) createFailed(ctx context.Context, dc *DaskCluster, st Status, err error) (time.Duration, error) {
	const reason = "FailedCreate"
	msg := err.Error()
	if errors.As(err, new(configError)) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
		return 0, c.fail(ctx, dc, st, reason, msg)
	}
	left, werr := c.waitToStart(ctx, dc, st, reason, msg)
	if werr != nil || left == 0 {
		return 0, werr // failed at the start timeout (or could not say why it waits)
	}
	return left, err // retried with backoff, and at the start timeout
}

// waitToStart records why a pending cluster waits (one status write when
// the reason changes) and how long it may still wait; at the start timeout
// it fails the cluster with that reason.
func (c *Controller) waitToStart(ctx context.Context, dc *DaskCluster, st Status, reason, msg string) (time.Duration, error) {
	left := c.startTimeout(dc)
	if left <= 0 {
		if reason == "" {
			reason, msg = "StartTimeout", "the scheduler was not ready in time"
		}
		return 0, c.fail(ctx, dc, st, reason, fmt.Sprintf("%s (start timeout %s)", msg, c.cfg.StartTimeout))
	}
	if reason != st.Reason || msg != st.Message {
		st.Reason, st.Message = reason, msg
		return left, c.writeStatus(ctx, dc, st)
	}
	return left, nil
}

// fail marks the cluster Failed with a reason the API shows to the user,
// records an Event, then cleans up (finish). The status is written first:
// should a delete fail, the next pass finds the cluster finished and
// cleans up again, never restarting it.
func (c *Controller) fail(ctx context.Context, dc *DaskCluster, st Status, reason, msg string) error {
	c.log.Warn("cluster failed", "cluster", PublicName(dc.Namespace, dc.Name), "reason", reason, "message", msg)
	st.Phase, st.CompletionTime, st.Reason, st.Message, st.Unscheduled = PhaseFailed, now(), reason, msg, 0
	if err := c.writeStatus(ctx, dc, st); err != nil {
		return err
	}
	c.event(ctx, dc, corev1.EventTypeWarning, reason, msg)
	return c.finish(ctx, dc, st)
}

// finish cleans up after a finished cluster, once per controller: the
// Secret goes; the scheduler pod goes too (garbage collection takes the
// Service and the workers), except that a failed scheduler that ran is
// kept for its logs unless configured otherwise; a scheduler that never
// ran has no logs, and is deleted so it stops pulling images and holding
// a place in the scheduling queue. Worker pods are deleted on every pass
// (a kept scheduler pod would otherwise keep them alive as their owner).
func (c *Controller) finish(ctx context.Context, dc *DaskCluster, st Status) error {
	ns, hex := dc.Namespace, dc.Name
	key := ns + "/" + hex
	c.mu.Lock()
	done := c.cleaned[key]
	c.mu.Unlock()
	if !done {
		// (Deleted by name even when the cache has not seen it yet.)
		sched, _ := c.schedulerPod(ns, hex)
		keep := st.phase() == PhaseFailed && !c.cfg.DeleteFailedScheduler && sched != nil && everRan(sched)
		if !keep {
			if err := c.deletePod(ctx, ns, schedulerName(hex)); err != nil {
				return err
			}
		}
		if err := c.deleteSecret(ctx, ns, hex); err != nil {
			return err
		}
		c.mu.Lock()
		c.cleaned[key] = true
		c.mu.Unlock()
	}
	return c.finishWorkers(ctx, dc)
}

// finishWorkers deletes the worker pods of a finished cluster (a kept
// scheduler pod would otherwise keep them alive as their owner).
func (c *Controller) finishWorkers(ctx context.Context, dc *DaskCluster) error {
	workers, err := c.workers(dc.Namespace, dc.Name)
	if err != nil {
		return err
	}
	for _, p := range workers {
		if p.DeletionTimestamp == nil {
			if err := c.deletePod(ctx, dc.Namespace, p.Name); err != nil {
				return err
			}
		}
	}
	return nil
}
