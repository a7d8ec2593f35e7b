// Package kubetest holds client-go helpers for the Kubernetes tests and
// benchmarks; the control plane itself comes from internal/testenv.
//
//	env, _ := testenv.Start(ctx, testenv.Options{})
//	cl, _ := kube.NewClients(kube.ClientConfig{Kubeconfig: env.Kubeconfig})
//	pods, _ := kubetest.WatchPods(ctx, cl.Core, "ns", "app=x")
//	fmt.Println(pods.Running())
package kubetest

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// PodWatch counts pods from a watch, so a benchmark observing thousands
// of pods puts no repeated LISTs on the API server it measures.
type PodWatch struct {
	mu      sync.Mutex
	running map[string]bool
}

// WatchPods watches the pods in ns matching selector until ctx ends.
func WatchPods(ctx context.Context, cs kubernetes.Interface, ns, selector string) (*PodWatch, error) {
	w := &PodWatch{running: map[string]bool{}}
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
	inf := f.Core().V1().Pods().Informer()
	set := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			w.mu.Lock()
			w.running[p.Name] = p.Status.Phase == corev1.PodRunning
			w.mu.Unlock()
		}
	}
	del := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if p, ok := obj.(*corev1.Pod); ok {
			w.mu.Lock()
			delete(w.running, p.Name)
			w.mu.Unlock()
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: set, UpdateFunc: func(_, o any) { set(o) }, DeleteFunc: del}); err != nil {
		return nil, err
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return nil, fmt.Errorf("pod watch in %s did not sync", ns)
	}
	return w, nil
}

// Counts returns how many matching pods exist and how many are Running.
func (w *PodWatch) Counts() (pods, running int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.running {
		pods++
		if r {
			running++
		}
	}
	return pods, running
}
