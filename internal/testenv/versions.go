// Package testenv builds, caches and runs the real components daskgate's
// tests use: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
// kubectl, kwok, helm (v3 and v4) and kubeconform. Everything is built
// with the ordinary `go build` / `go install` from the Go module proxy, so
// a fresh clone needs nothing but Go; the binaries are cached under the
// user's cache directory.
//
// Install is its own step (cold ~15 min on 2 cores, then instant); tests
// only Start and Stop a control plane on loopback:
//
//	// once: go run ./hack/testenv install  (make testenv)
//	env, err := testenv.Start(testenv.Options{})
//	defer env.Stop()
//	// env.Kubeconfig holds a system:masters client certificate.
package testenv

// The pinned versions: the one place to change them. Kubernetes is the
// k8s.io/kubernetes tag served by the module proxy (its staging modules are
// pinned to the matching v0.N.M); Etcd is the version that tag's go.mod
// requires.
const (
	Kubernetes  = "v1.37.1"
	Etcd        = "v3.7.0"
	Kwok        = "v0.8.0"
	Helm3       = "v3.21.4"
	Helm4       = "v4.3.2"
	Kubeconform = "v0.8.0"
)

// kubernetesCommands are built together from k8s.io/kubernetes.
var kubernetesCommands = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"}

// Tools names every binary Install provides, in the order it builds them.
var Tools = append(append([]string{}, kubernetesCommands...), "etcd", "kwok", "helm", "helm4", "kubeconform")
