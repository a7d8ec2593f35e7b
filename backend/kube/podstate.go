package kube

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

const workersIndex = "daskgate-workers"

// workersOf indexes worker pods by their cluster's hex name.
func workersOf(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Labels[LabelComponent] != ComponentWorker || p.Labels[LabelCluster] == "" {
		return nil, nil
	}
	return []string{p.Labels[LabelCluster]}, nil
}

func (c *Controller) workers(ns, hex string) ([]*corev1.Pod, error) {
	objs, err := c.podIndex[c.nsIndex[ns]].ByIndex(workersIndex, hex)
	if err != nil {
		return nil, err
	}
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if p, ok := o.(*corev1.Pod); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// schedulerFailure reports a scheduler that ended or can never start.
func schedulerFailure(p *corev1.Pod) (reason, msg string, failed bool) {
	if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
		reason, msg = string(p.Status.Phase), p.Status.Message
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil {
				reason, msg = t.Reason, fmt.Sprintf("scheduler exited with code %d", t.ExitCode)
			}
		}
		if reason == "" {
			reason = "SchedulerExited"
		}
		return reason, msg, true
	}
	for _, cs := range p.Status.ContainerStatuses {
		if t := cs.State.Terminated; t != nil {
			return orDefault(t.Reason, "Error"), fmt.Sprintf("scheduler exited with code %d", t.ExitCode), true
		}
		if w := cs.State.Waiting; w != nil {
			switch w.Reason {
			case "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError":
				return w.Reason, w.Message, true
			}
		}
	}
	return "", "", false
}

// everRan reports whether one of the pod's containers has started, so
// that it may have logs.
func everRan(p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil {
			return true
		}
	}
	return false
}

// waitingReason says why a scheduler pod is not ready yet, if it knows.
func waitingReason(p *corev1.Pod) (reason, msg string) {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			return w.Reason, w.Message
		}
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse {
			return orDefault(cond.Reason, "Unschedulable"), cond.Message
		}
	}
	return "", ""
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}
