package kube

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/daskgate/daskgate/cluster"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func (c *Controller) clusterConfig(dc *DaskCluster) (cluster.Config, error) {
	cfg := cluster.DefaultConfig()
	b, err := json.Marshal(dc.Spec.Config)
	if err != nil {
		return cfg, err
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("spec.config: %w", err)
	}
	return cfg, nil
}

func (c *Controller) owner(dc *DaskCluster) metav1.OwnerReference {
	return ownerRef(Group+"/"+Version, Kind, dc.Name, dc.UID)
}

func (c *Controller) createSecret(ctx context.Context, dc *DaskCluster) error {
	s, err := c.build.secret(dc.Namespace, dc.Name)
	if err != nil {
		return err
	}
	s.OwnerReferences = []metav1.OwnerReference{c.owner(dc)}
	_, err = c.cfg.Clients.Core.CoreV1().Secrets(dc.Namespace).Create(ctx, s, metav1.CreateOptions{FieldManager: "daskgate"})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// createPod creates the scheduler pod, or one worker pod owned by sched.
func (c *Controller) createPod(ctx context.Context, dc *DaskCluster, scheduler bool) error {
	p, err := c.podTemplate(dc, scheduler)
	if err != nil {
		return configError{err}
	}
	if scheduler {
		p.OwnerReferences = []metav1.OwnerReference{c.owner(dc)}
	}
	_, err = c.cfg.Clients.Core.CoreV1().Pods(dc.Namespace).Create(ctx, p, metav1.CreateOptions{FieldManager: "daskgate"})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (c *Controller) podTemplate(dc *DaskCluster, scheduler bool) (*corev1.Pod, error) {
	cfg, err := c.clusterConfig(dc)
	if err != nil {
		return nil, err
	}
	p, warnings, err := c.build.pod(dc.Namespace, dc.Name, cfg, scheduler)
	for _, w := range warnings {
		c.log.Warn("cluster config has fields Kubernetes will drop", "cluster", PublicName(dc.Namespace, dc.Name), "warning", w)
	}
	return p, err
}

// schedulerPod is the cluster's scheduler pod from the cache, or nil.
func (c *Controller) schedulerPod(ns, hex string) (*corev1.Pod, error) {
	p, err := c.pods[c.nsIndex[ns]].Pods(ns).Get(schedulerName(hex))
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return p, err
}

func (c *Controller) ensureService(ctx context.Context, dc *DaskCluster, sched *corev1.Pod) error {
	if _, err := c.services[c.nsIndex[dc.Namespace]].Services(dc.Namespace).Get(serviceName(dc.Name)); err == nil {
		return nil
	}
	s := c.build.service(dc.Namespace, dc.Name)
	s.OwnerReferences = []metav1.OwnerReference{podOwner(sched)}
	_, err := c.cfg.Clients.Core.CoreV1().Services(dc.Namespace).Create(ctx, s, metav1.CreateOptions{FieldManager: "daskgate"})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func podOwner(p *corev1.Pod) metav1.OwnerReference {
	return ownerRef("v1", "Pod", p.Name, p.UID)
}

func (c *Controller) deletePod(ctx context.Context, ns, name string) error {
	err := c.cfg.Clients.Core.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (c *Controller) deleteSecret(ctx context.Context, ns, hex string) error {
	err := c.cfg.Clients.Core.CoreV1().Secrets(ns).Delete(ctx, secretName(hex), metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// writeStatus replaces the whole status with one patch, only if it changed.
func (c *Controller) writeStatus(ctx context.Context, dc *DaskCluster, st Status) error {
	if st == dc.Status {
		return nil
	}
	key := dc.Namespace + "/" + dc.Name
	c.mu.Lock()
	last, ok := c.written[key]
	c.mu.Unlock()
	if ok && last.fromVersion == dc.ResourceVersion && last.status == st {
		return nil // already written from this very version; the watch will catch up
	}
	body, err := json.Marshal([]map[string]any{{"op": "add", "path": "/status", "value": st}})
	if err != nil {
		return err
	}
	_, err = c.cfg.Clients.Dynamic.Resource(GVR).Namespace(dc.Namespace).Patch(ctx, dc.Name, types.JSONPatchType, body,
		metav1.PatchOptions{FieldManager: "daskgate"}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		c.mu.Lock()
		c.written[key] = writtenStatus{fromVersion: dc.ResourceVersion, status: st}
		c.mu.Unlock()
	}
	return err
}

// event records a Kubernetes Event on the DaskCluster; failures are logged only.
func (c *Controller) event(ctx context.Context, dc *DaskCluster, typ, reason, msg string) {
	t := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: dc.Name + ".", Namespace: dc.Namespace},
		InvolvedObject: corev1.ObjectReference{APIVersion: Group + "/" + Version, Kind: Kind, Name: dc.Name,
			Namespace: dc.Namespace, UID: dc.UID},
		Type: typ, Reason: reason, Message: msg, FirstTimestamp: t, LastTimestamp: t, Count: 1,
		Source: corev1.EventSource{Component: "daskgate-controller"},
	}
	if _, err := c.cfg.Clients.Core.CoreV1().Events(dc.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		c.log.Debug("recording event", "err", err)
	}
}
