package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/backend/local"
	"github.com/daskgate/daskgate/config"
	"github.com/daskgate/daskgate/options"
	"github.com/daskgate/daskgate/proxy"
	"github.com/daskgate/daskgate/server"
	"github.com/daskgate/daskgate/store"
)

func loadConfig(path string) (*config.Config, error) {
	return config.Load(path, os.Environ())
}

// serve runs the gateway until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	db, err := openStore(cfg.DataDir, log)
	if err != nil {
		return err
	}
	defer db.Close()
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = "http://" + publicHost(ln.Addr().(*net.TCPAddr)) + cfg.Prefix + "/api"
	}
	table := proxy.NewTable()
	srv, backend, err := build(cfg, log, db, table, apiURL)
	if err != nil {
		ln.Close()
		return err
	}
	px, err := proxy.New(proxy.Config{API: srv, Routes: table, Prefix: cfg.Prefix, Logger: log,
		HelloTimeout: time.Duration(cfg.Proxy.HelloTimeout), DialTimeout: time.Duration(cfg.Proxy.DialTimeout)})
	if err != nil {
		ln.Close()
		return err
	}
	backend.Start()
	go func() { _ = px.Serve(ln) }()
	log.Info("daskgate serving", "address", ln.Addr().String(), "prefix", cfg.Prefix, "api_url", apiURL,
		"data_dir", cfg.DataDir, "version", Version)
	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	ln.Close()
	backend.Shutdown(sctx)
	return px.Shutdown(sctx)
}

func openStore(dir string, log *slog.Logger) (*store.DB, error) {
	keyFile := filepath.Join(dir, "encrypt.key")
	keys, created, err := store.LoadOrCreateKeys(os.Getenv(store.EnvKeys), keyFile)
	if err != nil {
		return nil, err
	}
	if created {
		log.Warn("generated an encryption key for the store; set "+store.EnvKeys+" to manage keys yourself", "file", keyFile)
	}
	db, err := store.Open(filepath.Join(dir, "daskgate.db"), keys)
	if err != nil {
		return nil, err
	}
	return db, nil
}

func build(cfg *config.Config, log *slog.Logger, db *store.DB, table *proxy.Table, apiURL string) (*server.Server, *local.Backend, error) {
	set, err := options.New(cfg.Options.Fields)
	if err != nil {
		return nil, nil, err
	}
	var srv *server.Server
	b := cfg.Backend
	dir := b.ClustersDirectory
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "clusters")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create clusters directory: %w", err)
	}
	backend, err := local.New(local.Config{
		Logger: log, Dir: dir, Store: db, APIURL: apiURL, InheritedEnv: b.InheritedEnvironment, Routes: table,
		OnRunning:           func(d time.Duration) { srv.ObserveClusterStart(d) },
		ClusterStartTimeout: time.Duration(b.ClusterStartTimeout), WorkerStartTimeout: time.Duration(b.WorkerStartTimeout),
		HeartbeatPeriod: time.Duration(b.HeartbeatPeriod), HeartbeatTimeout: time.Duration(b.HeartbeatTimeout),
		StatusPeriod: time.Duration(b.StatusPeriod), WorkerStartFailureLimit: b.WorkerStartFailureLimit,
		StopTimeouts:   [3]time.Duration{time.Duration(b.SigintTimeout), time.Duration(b.SigtermTimeout), time.Duration(b.SigkillTimeout)},
		StopOnShutdown: b.StopClustersOnShutdown, ClusterMaxAge: time.Duration(b.ClusterMaxAge), CleanupPeriod: time.Duration(b.CleanupPeriod),
	})
	if err != nil {
		return nil, nil, err
	}
	srv, err = server.New(server.Config{
		Backend: backend, Auth: auth.NewSimple(cfg.Auth.Password), Sessions: auth.NewSessions(time.Duration(cfg.Auth.CacheMaxAge)),
		Options: server.StaticOptions{Set: set}, ClusterConfig: cfg.Cluster, Version: apiVersion(), Logger: log,
	})
	return srv, backend, err
}

// publicHost is the listen address as schedulers should dial it: an
// unspecified host becomes this machine's hostname.
func publicHost(a *net.TCPAddr) string {
	if a.IP.IsUnspecified() {
		if h, err := os.Hostname(); err == nil {
			return net.JoinHostPort(h, fmt.Sprint(a.Port))
		}
	}
	return a.String()
}
