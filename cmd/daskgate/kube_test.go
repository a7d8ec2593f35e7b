package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/config"
)

// An API server that cannot be reached fails `serve` at startup_timeout
// with the cause, and SIGTERM during that wait ends it at once.
func TestUnreachableAPIServerFailsStartup(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, addr), 0o600)
	newCfg := func(timeout time.Duration) *config.Config {
		cfg := config.Default()
		cfg.Address, cfg.DataDir = "127.0.0.1:0", t.TempDir()
		cfg.Backend.Type = "kubernetes"
		cfg.Backend.Kubernetes.Kubeconfig, cfg.Backend.Kubernetes.Namespaces = kc, []string{"dask"}
		cfg.Backend.Kubernetes.StartupTimeout = cluster.Duration(timeout)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return &cfg
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))

	t0 := time.Now()
	err := serve(context.Background(), newCfg(2*time.Second), log)
	if err == nil || !strings.Contains(err.Error(), "startup_timeout") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("unreachable API server: %v", err)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("failed after %v", d)
	}

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(500*time.Millisecond, cancel) // SIGTERM
	t0 = time.Now()
	if err := serve(ctx, newCfg(time.Minute), log); err == nil {
		t.Fatal("serve returned no error after SIGTERM during the startup wait")
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("SIGTERM during the wait took %v", d)
	}
}
