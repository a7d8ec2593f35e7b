package kube

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// ClientConfig says how to reach the API server.
type ClientConfig struct {
	// Kubeconfig is a kubeconfig path; empty means in-cluster config, then
	// $KUBECONFIG, then ~/.kube/config.
	Kubeconfig string
	// QPS and Burst bound this process's API calls (upstream's
	// k8s_api_rate_limit and _burst); zero means 50 and 100.
	QPS   float32
	Burst int
	// Impersonate runs every call as this user (tests use it to prove the
	// documented RBAC rules are enough).
	Impersonate string
}

// RouteKlog sends client-go's own logs (klog: leader election, watch
// errors, throttling) to log, so the process writes one stream in one
// format. klog is process-wide: the first call wins, later ones (a second
// serve in one test binary) change nothing while client-go may be logging.
func RouteKlog(log *slog.Logger) {
	klogOnce.Do(func() { klog.SetSlogLogger(log.With("component", "client-go")) })
}

var klogOnce sync.Once

// Ping asks the API server for its version: nil when it answers, else
// why not (connection refused, a bad certificate, 401...).
func (c *Clients) Ping(ctx context.Context) error {
	return c.Core.Discovery().RESTClient().Get().AbsPath("/version").Do(ctx).Error()
}

// Clients are the typed and dynamic clients of one process.
type Clients struct {
	Core    kubernetes.Interface
	Dynamic dynamic.Interface
	Config  *rest.Config
}

// NewClients builds clients from cfg.
func NewClients(cfg ClientConfig) (*Clients, error) {
	rc, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return nil, err
	}
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	if rc.QPS <= 0 {
		rc.QPS = 50
	}
	if rc.Burst <= 0 {
		rc.Burst = 100
	}
	rc.UserAgent = "daskgate"
	if cfg.Impersonate != "" {
		rc.Impersonate = rest.ImpersonationConfig{UserName: cfg.Impersonate}
	}
	// Built-in kinds travel as protobuf, as they do for kube-controller-manager
	// and kube-scheduler: the API server decodes and encodes them for much less
	// CPU than JSON (docs/benchmarks.md). DaskClusters are custom resources and
	// stay JSON.
	pc := rest.CopyConfig(rc)
	pc.ContentType = runtime.ContentTypeProtobuf
	pc.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	core, err := kubernetes.NewForConfig(pc)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	return &Clients{Core: core, Dynamic: dyn, Config: rc}, nil
}

func restConfig(path string) (*rest.Config, error) {
	if path == "" {
		if rc, err := rest.InClusterConfig(); err == nil {
			return rc, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path != "" {
		rules.ExplicitPath = path
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	return rc, nil
}

// OwnNamespace is the namespace this pod runs in, else "default".
func OwnNamespace() string {
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if ns := strings.TrimSpace(string(b)); err == nil && ns != "" {
		return ns
	}
	return "default"
}
