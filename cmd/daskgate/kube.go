package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	"github.com/daskgate/daskgate/config"
	"github.com/daskgate/daskgate/proxy"
)

// kubeInstance resolves the instance label like upstream.
func kubeInstance(k config.Kubernetes) string {
	if k.Instance != "" {
		return k.Instance
	}
	if v := os.Getenv("DASK_GATEWAY_INSTANCE"); v != "" {
		return v
	}
	return "dask-gateway"
}

// kubeClients makes the process's Kubernetes clients and routes
// client-go's logs to log.
func kubeClients(k config.Kubernetes, log *slog.Logger) (*kube.Clients, error) {
	kube.RouteKlog(log)
	return kube.NewClients(kube.ClientConfig{Kubeconfig: k.Kubeconfig, QPS: float32(k.QPS), Burst: k.Burst})
}

func kubeNamespaces(k config.Kubernetes) []string {
	if len(k.Namespaces) > 0 {
		return k.Namespaces
	}
	return []string{kube.OwnNamespace()}
}

// kubeBackend is the gateway side of backend.type kubernetes, plus the
// controller when it runs in the same process.
type kubeBackend struct {
	*kube.Gateway
	ctl            *kube.Controller
	clients        *kube.Clients
	startupTimeout time.Duration
	log            *slog.Logger
	cancel         context.CancelFunc
	done           chan struct{}
}

func newKubeBackend(cfg *config.Config, log *slog.Logger, table *proxy.Table, apiURL string) (*kubeBackend, error) {
	k := cfg.Backend.Kubernetes
	cl, err := kubeClients(k, log)
	if err != nil {
		return nil, err
	}
	gw, err := kube.NewGateway(kube.GatewayConfig{Clients: cl, Logger: log, Instance: kubeInstance(k),
		Namespaces: kubeNamespaces(k), Labels: k.Labels, Annotations: k.Annotations, Routes: table})
	if err != nil {
		return nil, err
	}
	b := &kubeBackend{Gateway: gw, log: log, clients: cl, startupTimeout: time.Duration(k.StartupTimeout)}
	if b.startupTimeout <= 0 {
		b.startupTimeout = time.Minute
	}
	if k.Controller.Enabled {
		if b.ctl, err = newController(cfg, log, cl, apiURL); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func newController(cfg *config.Config, log *slog.Logger, cl *kube.Clients, apiURL string) (*kube.Controller, error) {
	k, c := cfg.Backend.Kubernetes, cfg.Backend.Kubernetes.Controller
	return kube.NewController(kube.ControllerConfig{Clients: cl, Logger: log, Instance: kubeInstance(k),
		Namespaces: kubeNamespaces(k), APIURL: apiURL, Labels: k.Labels, Annotations: k.Annotations,
		Parallelism: c.Parallelism, BackoffBase: time.Duration(c.BackoffBaseDelay), BackoffMax: time.Duration(c.BackoffMaxDelay),
		StartTimeout: time.Duration(c.StartTimeout), DeleteFailedScheduler: c.DeleteFailedScheduler,
		CompletedMaxAge: time.Duration(c.CompletedClusterMaxAge), CleanupPeriod: time.Duration(c.CleanupPeriod), LeaseName: c.LeaseName})
}

// Start runs the informers (and the controller) and waits for the cache,
// at most startup_timeout: an API server that cannot be reached is an
// error naming why, and ctx ending (SIGTERM) ends the wait at once.
func (b *kubeBackend) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		var wg sync.WaitGroup
		if ctl := b.ctl; ctl != nil { // waited for, so it releases its Lease before we exit
			b.ctl = nil // RunCampaigning replaces it after a lost Lease; let its caches go
			wg.Go(func() {
				if err := kube.RunCampaigning(runCtx, ctl); err != nil {
					b.log.Error("embedded controller stopped", "err", err)
				}
			})
		}
		if err := b.Gateway.Run(runCtx); err != nil {
			b.log.Error("kubernetes backend stopped", "err", err)
		}
		wg.Wait()
	}()
	wctx, wcancel := context.WithTimeout(ctx, b.startupTimeout)
	defer wcancel()
	if b.Gateway.WaitSynced(wctx) {
		return nil
	}
	cancel()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer pcancel()
	cause := b.clients.Ping(pctx)
	if cause == nil {
		cause = errors.New("the informer caches did not fill (check RBAC for daskclusters in the namespaces)")
	}
	return fmt.Errorf("backend.kubernetes: not ready within startup_timeout (%v): %w", b.startupTimeout, cause)
}

// Shutdown stops watching; clusters keep running (their state is in the API server).
func (b *kubeBackend) Shutdown(ctx context.Context) {
	b.cancel()
	select {
	case <-b.done:
	case <-ctx.Done():
	}
}

// controllerCmd runs the leader-elected controller alone.
func controllerCmd(args []string) error {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	path := fs.String("config", "", "YAML config file (backend.kubernetes and api_url are read)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	log := newLogger(cfg.Log.Level, cfg.Log.Format, os.Stderr)
	if cfg.APIURL == "" {
		return errors.New("api_url must be set: it is DASK_GATEWAY_API_URL for schedulers (e.g. http://api-dask-gateway.dask:8000/api)")
	}
	cl, err := kubeClients(cfg.Backend.Kubernetes, log)
	if err != nil {
		return err
	}
	ctl, err := newController(cfg, log, cl, cfg.APIURL)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return ctl.Run(ctx)
}

// installCRDsCmd applies (or prints) the DaskCluster CRD.
func installCRDsCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("install-crds", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig path (default: in-cluster, then $KUBECONFIG)")
	print := fs.Bool("print", false, "print the manifest instead of applying it")
	rbac := fs.String("print-rbac", "", "print the gateway and controller RBAC for this namespace and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rbac != "" {
		b, err := kube.RBACYAML(*rbac)
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	if *print {
		b, err := kube.CRDYAML()
		if err != nil {
			return err
		}
		_, err = stdout.Write(b)
		return err
	}
	cl, err := kube.NewClients(kube.ClientConfig{Kubeconfig: *kubeconfig})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kube.InstallCRD(ctx, cl.Dynamic); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "customresourcedefinition %s.%s applied (server-side)\n", kube.Plural, kube.Group)
	return nil
}
