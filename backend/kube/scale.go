package kube

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// expectationsLeft is how long earlier creates/deletes may still take to
// be observed before they expire; zero when all have been (or expired).
func (c *Controller) expectationsLeft(key string) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.exp[key]
	if e == nil || (e.adds <= 0 && e.dels <= 0) {
		return 0
	}
	return max(c.cfg.ExpectationsTimeout-time.Since(e.at), 0)
}

func (c *Controller) expect(key string, adds, dels int) {
	c.mu.Lock()
	c.exp[key] = &expectation{adds: adds, dels: dels, at: time.Now()}
	c.mu.Unlock()
}

// scale makes the live workers match spec.replicas: it deletes finished
// worker pods (retired workers exit 0 and their pods succeed), creates
// missing ones in growing batches, and on scale-down deletes pending pods
// only (unscheduled first, then the newest), never running workers: the
// scheduler retires those itself. It returns the number of worker pods
// the scheduler found no node for (pods merely queued are not counted:
// that would cost status writes under every burst).
func (c *Controller) scale(ctx context.Context, dc *DaskCluster, sched *corev1.Pod) (unscheduled int, recheck time.Duration, err error) {
	key := dc.Namespace + "/" + dc.Name
	pods, err := c.workers(dc.Namespace, dc.Name)
	if err != nil {
		return 0, 0, err
	}
	var live, pending, finished []*corev1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp != nil {
			continue
		}
		switch p.Status.Phase {
		case corev1.PodSucceeded, corev1.PodFailed:
			finished = append(finished, p)
		case corev1.PodRunning:
			live = append(live, p)
		default:
			live = append(live, p)
			pending = append(pending, p)
			if unschedulable(p) {
				unscheduled++
			}
		}
	}
	if left := c.expectationsLeft(key); left > 0 {
		// Their watch events bring the cluster back; so does this recheck,
		// should an event never come.
		return unscheduled, left + time.Second, nil
	}
	delta := int(dc.Spec.replicas()) - len(live)
	var doomed []*corev1.Pod
	doomed = append(doomed, finished...)
	if delta < 0 {
		sort.SliceStable(pending, func(i, j int) bool {
			si, sj := scheduled(pending[i]), scheduled(pending[j])
			if si != sj {
				return !si
			}
			return pending[j].CreationTimestamp.Before(&pending[i].CreationTimestamp)
		})
		doomed = append(doomed, pending[:min(-delta, len(pending))]...)
	}
	c.expect(key, max(delta, 0), len(doomed))
	for i, p := range doomed {
		if err := c.deletePod(ctx, dc.Namespace, p.Name); err != nil {
			c.mu.Lock()
			if e := c.exp[key]; e != nil {
				// These deletes, and the creates after them, were never issued.
				e.dels -= len(doomed) - i
				e.adds -= max(delta, 0)
			}
			c.mu.Unlock()
			return unscheduled, recheck, err
		}
	}
	if delta <= 0 {
		return unscheduled, recheck, nil
	}
	tmpl, err := c.podTemplate(dc, false)
	if err != nil {
		return unscheduled, recheck, err
	}
	tmpl.OwnerReferences = []metav1.OwnerReference{podOwner(sched)}
	submitted := 0
	for batch := 1; submitted < delta; batch *= 2 {
		n := min(batch, delta-submitted)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, errs[i] = c.cfg.Clients.Core.CoreV1().Pods(dc.Namespace).Create(ctx, tmpl.DeepCopy(), metav1.CreateOptions{FieldManager: "daskgate"})
			})
		}
		wg.Wait()
		failed := 0
		var first error
		for _, err := range errs {
			if err != nil {
				failed++
				first = cmpErr(first, err)
			}
		}
		submitted += n
		if failed > 0 {
			c.mu.Lock()
			if e := c.exp[key]; e != nil {
				e.adds -= failed + (delta - submitted)
			}
			c.mu.Unlock()
			return unscheduled, recheck, fmt.Errorf("creating worker pods: %d of %d failed: %w", failed, n, first)
		}
	}
	return unscheduled, recheck, nil
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// unschedulable reports a pod the scheduler tried and could not place.
func unschedulable(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled {
			return cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable
		}
	}
	return false
}

func scheduled(p *corev1.Pod) bool {
	if p.Spec.NodeName != "" {
		return true
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}
