package kube

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// cleanupLoop deletes finished DaskClusters older than CompletedMaxAge;
// their Secret, pods and Service go with them (owner references).
func (c *Controller) cleanupLoop(ctx context.Context) {
	t := time.NewTicker(c.cfg.CleanupPeriod)
	defer t.Stop()
	for {
		c.cleanup(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Controller) cleanup(ctx context.Context) {
	cutoff := time.Now().Add(-c.cfg.CompletedMaxAge)
	for _, inf := range c.dcInformers {
		for _, obj := range inf.GetStore().List() {
			dc, err := fromUnstructured(obj)
			if err != nil || (dc.Status.phase() != PhaseStopped && dc.Status.phase() != PhaseFailed) {
				continue
			}
			done, err := time.Parse(time.RFC3339, dc.Status.CompletionTime)
			if err != nil { // upstream may leave it out: count from when we first saw it finished
				c.mu.Lock()
				if _, ok := c.finishedSeen[dc.UID]; !ok {
					c.finishedSeen[dc.UID] = time.Now()
				}
				done = c.finishedSeen[dc.UID]
				c.mu.Unlock()
			}
			if !done.After(cutoff) {
				policy := metav1.DeletePropagationBackground
				err := c.cfg.Clients.Dynamic.Resource(GVR).Namespace(dc.Namespace).Delete(ctx, dc.Name,
					metav1.DeleteOptions{PropagationPolicy: &policy})
				if err != nil && !apierrors.IsNotFound(err) {
					c.log.Warn("deleting finished cluster", "cluster", PublicName(dc.Namespace, dc.Name), "err", err)
				} else {
					c.log.Info("deleted finished cluster", "cluster", PublicName(dc.Namespace, dc.Name), "completed", dc.Status.CompletionTime)
				}
			}
		}
	}
}
