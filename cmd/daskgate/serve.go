package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/backend/local"
	"github.com/daskgate/daskgate/config"
	"github.com/daskgate/daskgate/lifecycle"
	"github.com/daskgate/daskgate/options"
	"github.com/daskgate/daskgate/policy"
	"github.com/daskgate/daskgate/proxy"
	"github.com/daskgate/daskgate/server"
	"github.com/daskgate/daskgate/store"
	"github.com/daskgate/daskgate/wasm"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// testDial replaces the dialer for schedulers and dashboards in test
// builds only (testdial.go); nil in the released binary.
var testDial func(ctx context.Context, network, addr string) (net.Conn, error)

func loadConfig(path string) (*config.Config, error) {
	return config.Load(path, os.Environ())
}

// serve runs the gateway until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	lns, err := listen(cfg)
	if err != nil {
		return err
	}
	defer lns.close()
	apiURL := cfg.APIURL
	if apiURL == "" {
		apiURL = "http://" + publicHost(lns.main.Addr().(*net.TCPAddr)) + cfg.Prefix + "/api"
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	table := proxy.NewTable()
	srv, backend, closeBackend, watcher, err := build(ctx, cfg, log, table, apiURL, reg)
	if err != nil {
		return err
	}
	defer closeBackend()
	px, err := newProxy(cfg, log, srv, table, reg)
	if err != nil {
		return err
	}
	if err := backend.Start(ctx); err != nil {
		return err
	}
	go watcher.Run(ctx) // ends with ctx: no automatic stop during a shutdown
	go func() { _ = px.Serve(lns.main) }()
	if lns.tcp != nil {
		go func() { _ = px.ServeTCP(lns.tcp) }()
	}
	log.Info("daskgate serving", "address", lns.main.Addr().String(), "tcp_address", cfg.Proxy.TCPAddress, "inherited_sockets", lns.inherited,
		"prefix", cfg.Prefix, "api_url", apiURL, "data_dir", cfg.DataDir, "version", Version)
	<-ctx.Done()
	// Keep serving while load balancers notice (/api/health is now 503);
	// then stop accepting (an inherited socket stays open in its holder,
	// whose next process accepts what queues meanwhile), finish requests
	// and passthrough connections, and stop the backend, all within
	// shutdown_timeout.
	srv.Drain()
	log.Info("shutting down", "delay", time.Duration(cfg.ShutdownDelay).String(), "timeout", time.Duration(cfg.ShutdownTimeout).String())
	time.Sleep(time.Duration(cfg.ShutdownDelay))
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	lns.close()
	done := make(chan struct{})
	go func() { defer close(done); backend.Shutdown(sctx) }()
	err = px.Shutdown(sctx)
	<-done
	log.Info("stopped")
	return err
}

type listeners struct {
	main, tcp net.Listener
	inherited int
}

// listen opens the public listeners, or takes them from the process that
// started this one: systemd socket activation (LISTEN_FDS, fds from 3:
// the main address, then proxy.tcp_address), where the socket outlives
// each gateway process, so a restart refuses no connection.
func listen(cfg *config.Config) (*listeners, error) {
	var l listeners
	var err error
	inherited, err := inheritedListeners(os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"))
	if err != nil {
		return nil, err
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	l.inherited = len(inherited)
	if len(inherited) > 0 {
		l.main = inherited[0]
	} else if l.main, err = net.Listen("tcp", cfg.Address); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if cfg.Proxy.TCPAddress != "" {
		if len(inherited) > 1 {
			l.tcp = inherited[1]
		} else if l.tcp, err = net.Listen("tcp", cfg.Proxy.TCPAddress); err != nil {
			l.main.Close()
			return nil, fmt.Errorf("listen on proxy.tcp_address: %w", err)
		}
	}
	return &l, nil
}

// inheritedListeners are the sockets systemd passes (sd_listen_fds):
// LISTEN_FDS of them from fd 3, for this process when LISTEN_PID names it
// (or is unset, for supervisors that cannot know the pid before exec).
func inheritedListeners(pid, n string) ([]net.Listener, error) {
	if n == "" || (pid != "" && pid != strconv.Itoa(os.Getpid())) {
		return nil, nil
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 || count > 2 {
		return nil, fmt.Errorf("LISTEN_FDS=%q: want 1 (address) or 2 (address, proxy.tcp_address)", n)
	}
	var out []net.Listener
	for fd := 3; fd < 3+count; fd++ {
		f := os.NewFile(uintptr(fd), fmt.Sprintf("listen-fd-%d", fd))
		ln, err := net.FileListener(f)
		f.Close() // FileListener holds its own copy
		if err != nil {
			return nil, fmt.Errorf("LISTEN_FDS: fd %d is not a listening socket: %w", fd, err)
		}
		out = append(out, ln)
	}
	return out, nil
}

func (l *listeners) close() {
	l.main.Close()
	if l.tcp != nil {
		l.tcp.Close()
	}
}

func newProxy(cfg *config.Config, log *slog.Logger, api *server.Server, table *proxy.Table, reg prometheus.Registerer) (*proxy.Proxy, error) {
	pc := proxy.Config{API: api, Routes: table, AuthorizeDashboard: api.AuthorizeDashboard, SessionCookiePrefix: auth.CookiePrefix, Prefix: cfg.Prefix, Logger: log, Registry: reg,
		HelloTimeout: time.Duration(cfg.Proxy.HelloTimeout), BodyTimeout: time.Duration(cfg.Proxy.BodyTimeout),
		DialTimeout:    time.Duration(cfg.Proxy.DialTimeout),
		TrustedProxies: cfg.Proxy.ProxyProtocol.TrustedCIDRs, DialContext: testDial}
	if host := cfg.Proxy.DashboardHost(); host != "" {
		pc.DashboardHost, pc.DashboardGate = host, api.DashboardGate
	}
	if cfg.Proxy.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Proxy.TLSCert, cfg.Proxy.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("proxy.tls_cert: %w", err)
		}
		pc.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	return proxy.New(pc)
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

// runner is a backend's life cycle as serve drives it: Start returns
// when the backend serves, or with why it cannot (ctx ending included).
type runner interface {
	server.Backend
	Start(ctx context.Context) error
	Shutdown(ctx context.Context)
}

// localRunner adapts the local backend, which starts at once.
type localRunner struct{ *local.Backend }

func (l localRunner) Start(context.Context) error { l.Backend.Start(); return nil }

func build(ctx context.Context, cfg *config.Config, log *slog.Logger, table *proxy.Table, apiURL string, reg *prometheus.Registry) (*server.Server, runner, func(), *lifecycle.Watcher, error) {
	set, err := options.New(cfg.Options.Fields)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	sc, err := policies(ctx, cfg, log, reg, set)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	var srv *server.Server
	var backend runner
	closeBackend := func() {}
	if cfg.Backend.Type == "kubernetes" {
		if backend, err = newKubeBackend(cfg, log, table, apiURL); err != nil {
			return nil, nil, nil, nil, err
		}
	} else {
		db, err := openStore(cfg.DataDir, log)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		closeBackend = func() { db.Close() }
		lb, err := newLocalBackend(cfg, log, db, table, apiURL, func(d time.Duration) { srv.ObserveClusterStart(d) })
		if err != nil {
			db.Close()
			return nil, nil, nil, nil, err
		}
		backend = localRunner{lb}
	}
	authn, login, err := newAuthenticator(cfg.Auth, cfg.Prefix, log)
	if err != nil {
		closeBackend()
		return nil, nil, nil, nil, err
	}
	sc.Login, sc.Prefix, sc.BodyTimeout = login, cfg.Prefix, time.Duration(cfg.Proxy.BodyTimeout)
	sc.Backend, sc.Auth, sc.Sessions = backend, authn, auth.NewSessions(auth.SessionsConfig{MaxAge: time.Duration(cfg.Auth.CacheMaxAge), Path: cfg.Prefix + "/"})
	sc.ClusterConfig, sc.Version, sc.Logger, sc.Registry = cfg.Cluster, apiVersion(), log, reg
	if cfg.Proxy.DashboardOrigin != "" {
		sc.DashboardOrigins = &server.DashboardOrigins{Dashboard: cfg.Proxy.DashboardOrigin, API: cfg.Proxy.APIOrigin}
	}
	if testDial != nil {
		sc.Scheduler = &server.SchedulerClient{HTTP: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: testDial}}}
	}
	watcher := newWatcher(cfg, log, backend, authn)
	sc.UI, sc.Activity = cfg.UI.Enabled, watcher.Activity
	srv, err = server.New(sc)
	if err != nil {
		closeBackend()
		return nil, nil, nil, nil, err
	}
	return srv, backend, closeBackend, watcher, nil
}

// newWatcher builds the lifecycle watcher: schedulers' client counts for
// every cluster (the page, last_client_timeout) and, when configured, the
// hub's servers.
func newWatcher(cfg *config.Config, log *slog.Logger, backend runner, authn auth.Authenticator) *lifecycle.Watcher {
	lc := lifecycle.Config{Clusters: backend, Period: time.Duration(cfg.Lifecycle.CheckPeriod), Logger: log,
		HubGrace: time.Duration(cfg.Lifecycle.HubServerGrace), Dial: testDial, ObserveAll: cfg.UI.Enabled}
	if hub, ok := authn.(lifecycle.Hub); ok && cfg.Lifecycle.StopWithHubServer {
		lc.Hub = hub
		log.Info("clusters follow their user's JupyterHub server", "grace", lc.HubGrace.String())
	}
	return lifecycle.New(lc)
}

func newLocalBackend(cfg *config.Config, log *slog.Logger, db *store.DB, table *proxy.Table, apiURL string, onRunning func(time.Duration)) (*local.Backend, error) {
	b := cfg.Backend
	dir := b.ClustersDirectory
	if dir == "" {
		dir = filepath.Clean(cfg.DataDir) + "-clusters"
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create clusters directory: %w", err)
	}
	wrap, accounts, err := isolation(cfg, dir, log)
	if err != nil {
		return nil, err
	}
	return local.New(local.Config{
		Logger: log, Dir: dir, Store: db, APIURL: apiURL, InheritedEnv: b.InheritedEnvironment, Routes: table, Wrap: wrap, Accounts: accounts,
		OnRunning:           onRunning,
		ClusterStartTimeout: time.Duration(b.ClusterStartTimeout), WorkerStartTimeout: time.Duration(b.WorkerStartTimeout),
		HeartbeatPeriod: time.Duration(b.HeartbeatPeriod), HeartbeatTimeout: time.Duration(b.HeartbeatTimeout),
		StatusPeriod: time.Duration(b.StatusPeriod), WorkerStartFailureLimit: b.WorkerStartFailureLimit,
		StopTimeouts:   [3]time.Duration{time.Duration(b.SigintTimeout), time.Duration(b.SigtermTimeout), time.Duration(b.SigkillTimeout)},
		StopOnShutdown: b.StopClustersOnShutdown, ClusterMaxAge: time.Duration(b.ClusterMaxAge), CleanupPeriod: time.Duration(b.CleanupPeriod),
	})
}

// policies builds the decision chain: the .wasm module (for what it
// exports), then the Rego policies, then the built-in defaults.
func policies(ctx context.Context, cfg *config.Config, log *slog.Logger, reg *prometheus.Registry, set *options.Set) (server.Config, error) {
	sc := server.Config{Options: server.StaticOptions{Set: set}, Authorizer: server.OwnerOnly{}}
	var regoPaths []string
	wasmPath := ""
	for _, p := range cfg.Policies {
		if strings.HasSuffix(p, ".wasm") {
			wasmPath = p
		} else {
			regoPaths = append(regoPaths, p)
		}
	}
	var checks []func() error
	if len(regoPaths) > 0 {
		engine, err := policy.New(ctx, policy.Config{Paths: regoPaths, Static: set, Logger: log, Registry: reg,
			Timeout: time.Duration(cfg.Rego.Timeout), AllowBuiltins: cfg.Rego.AllowBuiltins})
		if err != nil {
			return sc, fmt.Errorf("policies: %w", err)
		}
		go engine.Watch(ctx)
		sc.Options, sc.Authorizer = engine, engine
		checks = append(checks, engine.Err)
	}
	if wasmPath != "" {
		engine, err := wasm.NewEngine(ctx, wasm.Config{Path: wasmPath, SHA256: cfg.WASM.SHA256, Logger: log,
			Timeout: time.Duration(cfg.WASM.Timeout), MemoryLimit: uint32(cfg.WASM.MemoryLimit),
			CacheDir: filepath.Join(cfg.DataDir, "wasm-cache")}, sc.Options, sc.Authorizer)
		if err != nil {
			return sc, fmt.Errorf("policies: %w", err)
		}
		go engine.Watch(ctx, time.Second)
		sc.Options, sc.Authorizer = engine, engine
		checks = append(checks, engine.Err)
	}
	sc.Health = func() error {
		for _, c := range checks {
			if err := c(); err != nil {
				return err
			}
		}
		return nil
	}
	return sc, nil
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
