// Package proxy is daskgate's public front door: one listener that passes
// dask TLS connections through to schedulers by SNI (daskgateway-<name>)
// without terminating TLS, and serves everything else as HTTP: the
// clusters' dashboards under <prefix>/clusters/<name>/ and the API under
// <prefix>/.
//
// Typical use:
//
//	table := proxy.NewTable()
//	p, err := proxy.New(proxy.Config{API: apiHandler, Routes: table, Prefix: "/services/dask-gateway"})
//	go p.Serve(ln)
//	table.SetCluster(name, "tls://127.0.0.1:40123", "http://127.0.0.1:40124")
//	p.Shutdown(ctx)
package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// SNIPrefix marks a dask connection: the SNI is SNIPrefix + cluster name.
const SNIPrefix = "daskgateway-"

// Config configures a Proxy.
type Config struct {
	// API serves every HTTP request that is not a dashboard, with the
	// prefix already stripped. Required.
	API http.Handler
	// Routes holds the clusters' targets. Required.
	Routes *Table
	// Prefix is the URL prefix ("" or "/x/y", no trailing slash).
	Prefix string
	// Logger gets connection errors; nil discards.
	Logger *slog.Logger
	// HelloTimeout bounds how long a client may take to send its first
	// bytes and ClientHello; zero means 10s.
	HelloTimeout time.Duration
	// DialTimeout bounds dialing a scheduler or dashboard; zero means 10s.
	DialTimeout time.Duration
	// DialContext dials targets; nil means a net.Dialer with keepalive.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Proxy is a running front door.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	http    *http.Server
	httpLn  *connListener
	dash    http.Handler
	conns   sync.WaitGroup
	mu      sync.Mutex
	tcp     map[net.Conn]struct{}
	closing bool
}

// New checks cfg and builds the proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.API == nil || cfg.Routes == nil {
		return nil, errors.New("proxy: API and Routes are required")
	}
	if cfg.Prefix != "" && (!strings.HasPrefix(cfg.Prefix, "/") || strings.HasSuffix(cfg.Prefix, "/")) {
		return nil, errors.New("proxy: prefix must start with / and not end with /")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = 10 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.DialContext == nil {
		d := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
		cfg.DialContext = d.DialContext
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, tcp: map[net.Conn]struct{}{}}
	p.dash = p.dashboardProxy()
	p.httpLn = newConnListener()
	p.http = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug)}
	go func() { _ = p.http.Serve(p.httpLn) }()
	return p, nil
}

// Serve accepts connections on ln until it is closed. Other accept errors
// (EMFILE and friends) back off, 5 ms doubling to 1 s, instead of spinning.
func (p *Proxy) Serve(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.isClosing() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			p.log.Warn("accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		p.conns.Add(1)
		go p.handle(c)
	}
}

func (p *Proxy) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}

// handle classifies one connection by its first bytes.
func (p *Proxy) handle(c net.Conn) {
	defer p.conns.Done()
	_ = c.SetReadDeadline(time.Now().Add(p.cfg.HelloTimeout))
	sni, peeked, isTLS, err := peekHello(c)
	if err != nil && !isTLS {
		c.Close()
		return
	}
	if isTLS && strings.HasPrefix(sni, SNIPrefix) {
		_ = c.SetReadDeadline(time.Time{})
		p.passthrough(c, strings.TrimPrefix(sni, SNIPrefix), peeked)
		return
	}
	if err != nil {
		p.log.Debug("bad client hello", "remote", c.RemoteAddr(), "err", err)
		c.Close()
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	if !p.httpLn.push(&replayConn{Conn: c, r: io.MultiReader(strings.NewReader(string(peeked)), c)}) {
		c.Close()
	}
}

// ServeHTTP routes dashboards and hands the rest to the API.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if p.cfg.Prefix != "" {
		if path != p.cfg.Prefix && !strings.HasPrefix(path, p.cfg.Prefix+"/") {
			http.Error(w, "Not Found", http.StatusNotFound)
			return
		}
		path = strings.TrimPrefix(path, p.cfg.Prefix)
	}
	if name, rest, ok := dashboardPath(path); ok {
		if route, ok := p.cfg.Routes.Lookup(name); ok && route.Dashboard != "" {
			p.serveDashboard(w, r, name, route.Dashboard, rest)
			return
		}
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path, r2.URL.RawPath = path, ""
	if r2.URL.Path == "" {
		r2.URL.Path = "/"
	}
	p.cfg.API.ServeHTTP(w, r2)
}

// dashboardPath splits "/clusters/<name>/rest" into name and "/rest".
func dashboardPath(path string) (name, rest string, ok bool) {
	after, found := strings.CutPrefix(path, "/clusters/")
	if !found {
		return "", "", false
	}
	name, rest, _ = strings.Cut(after, "/")
	return name, "/" + rest, name != ""
}

// Shutdown stops accepting HTTP, lets requests finish and closes
// passthrough connections when ctx ends.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	err := p.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() { p.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.mu.Lock()
		for c := range p.tcp {
			c.Close()
		}
		p.mu.Unlock()
	}
	return err
}
