// Package proxy is daskgate's public front door: one listener that passes
// dask TLS connections through to schedulers by SNI (daskgateway-<name>)
// without terminating TLS, and serves everything else as HTTP(S): the
// clusters' dashboards under <prefix>/clusters/<name>/ and the API under
// <prefix>/. PROXY protocol v1/v2 headers from trusted balancers carry
// the real client address.
//
// Typical use:
//
//	table := proxy.NewTable()
//	p, err := proxy.New(proxy.Config{API: apiHandler, Routes: table, Prefix: "/services/dask-gateway"})
//	go p.Serve(ln)          // shared port: dask TLS and HTTP
//	go p.ServeTCP(tcpLn)    // optional: a port for dask TLS only
//	table.SetCluster(name, "tls://127.0.0.1:40123", "http://127.0.0.1:40124")
//	p.Shutdown(ctx)
package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	// HelloTimeout bounds how long a client may take to send its PROXY
	// header, first bytes and whole ClientHello; zero means 10s.
	HelloTimeout time.Duration
	// BodyTimeout bounds how long a client may take to upload a request
	// body (headers have their own 30s limit); zero means 60s. Websocket
	// upgrades and requests without a body are not limited by it.
	BodyTimeout time.Duration
	// DialTimeout bounds dialing a scheduler or dashboard; zero means 10s.
	DialTimeout time.Duration
	// TLS, if set, serves HTTPS for API and dashboards on the shared port
	// (connections whose SNI is not daskgateway-*). Plain HTTP stays served.
	TLS *tls.Config
	// TrustedProxies are CIDRs (or addresses) whose connections may start
	// with a PROXY v1/v2 header; from anyone else a header is not read.
	TrustedProxies []string
	// AuthorizeDashboard, if set, decides each dashboard request; when it
	// returns false it has answered the request itself (an error, or a
	// redirect to sign in). nil allows all.
	AuthorizeDashboard func(w http.ResponseWriter, r *http.Request, cluster string) bool
	// DashboardHost, if set, is the host[:port] of a separate origin that
	// serves dashboards and nothing else; the API's host then serves no
	// dashboard: AuthorizeDashboard answers each (handing the browser
	// over). Pages a cluster's owner controls never share the API's origin.
	DashboardHost string
	// DashboardGate decides each request on the dashboard origin (rest is
	// the path below /clusters/<name>); false means it answered itself.
	// Required with DashboardHost.
	DashboardGate func(w http.ResponseWriter, r *http.Request, cluster, rest string) bool
	// SessionCookiePrefix names the gateway's session cookies; they are
	// removed, with the Authorization header, from every request passed
	// to a dashboard (the cluster owner's code). Empty means "daskgate-".
	SessionCookiePrefix string
	// Registry gets the proxy's metrics; nil means a private registry.
	Registry prometheus.Registerer
	// DialContext dials targets; nil means a net.Dialer with keepalive.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Proxy is a running front door.
type Proxy struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	trusted trustedNets
	http    *http.Server
	httpLn  *connListener
	dash    http.Handler
	conns   sync.WaitGroup
	// loops are the running accept loops; classifying, the accepted
	// connections not yet handed to the HTTP server or a passthrough.
	// Shutdown waits for both to reach zero, so no accepted connection
	// goes unanswered (counters, not WaitGroups: they rise during Wait).
	loops, classifying atomic.Int64
	// busy are the HTTP connections reading or serving a request (zero
	// time), or new since the time given: the HTTP server's Shutdown
	// would drop a request it reads after it began.
	busyMu sync.Mutex
	busy   map[net.Conn]time.Time

	mu      sync.Mutex
	tcp     map[net.Conn]struct{}
	closing bool // Shutdown began: the accept loops stop
	drained bool // the drain timeout passed: no new passthrough pairs
}

// New checks cfg and builds the proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.API == nil || cfg.Routes == nil {
		return nil, errors.New("proxy: API and Routes are required")
	}
	if cfg.DashboardHost != "" && (cfg.DashboardGate == nil || cfg.AuthorizeDashboard == nil) {
		return nil, errors.New("proxy: DashboardHost needs DashboardGate and AuthorizeDashboard")
	}
	if cfg.Prefix != "" && (!strings.HasPrefix(cfg.Prefix, "/") || strings.HasSuffix(cfg.Prefix, "/")) {
		return nil, errors.New("proxy: prefix must start with / and not end with /")
	}
	trusted, err := parseTrusted(cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	cfg.setDefaults()
	p := &Proxy{cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Registry), trusted: trusted, tcp: map[net.Conn]struct{}{}}
	p.dash = p.dashboardProxy()
	p.httpLn = newConnListener()
	p.http = &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute,
		ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug), ConnState: p.trackState}
	p.busy = map[net.Conn]time.Time{}
	go func() { _ = p.http.Serve(p.httpLn) }()
	return p, nil
}

func (cfg *Config) setDefaults() {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = 10 * time.Second
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = 60 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.DialContext == nil {
		d := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
		cfg.DialContext = d.DialContext
	}
}

// Serve accepts connections on the shared port until ln is closed: dask
// TLS is passed through, everything else is HTTP(S).
func (p *Proxy) Serve(ln net.Listener) error { return p.accept(ln, false) }

// ServeTCP accepts dask TLS connections only (upstream's separate
// tcp_address); anything else is closed.
func (p *Proxy) ServeTCP(ln net.Listener) error { return p.accept(ln, true) }

// accept loops on ln. Accept errors other than a closed listener (EMFILE
// and friends) back off, 5 ms doubling to 1 s, instead of spinning.
func (p *Proxy) accept(ln net.Listener, tcpOnly bool) error {
	p.loops.Add(1)
	defer p.loops.Add(-1)
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
		p.classifying.Add(1)
		go p.handle(c, tcpOnly)
	}
}

func (p *Proxy) isClosing() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closing
}

// handle reads an optional PROXY header, then classifies the connection
// by its first bytes, all under HelloTimeout.
func (p *Proxy) handle(c net.Conn, tcpOnly bool) {
	defer p.conns.Done()
	classified := sync.OnceFunc(func() { p.classifying.Add(-1) })
	defer classified()
	_ = c.SetReadDeadline(time.Now().Add(p.cfg.HelloTimeout))
	remote, pre, err := p.readProxyHeader(c)
	var sni string
	var peeked []byte
	var isTLS bool
	if err == nil {
		rest := bytes.NewReader(pre)
		sni, peeked, isTLS, err = peekHello(io.MultiReader(rest, c))
		// Bytes read with the header but not used by the peek come next.
		peeked = append(peeked, pre[len(pre)-rest.Len():]...)
	}
	switch {
	case isTLS && strings.HasPrefix(sni, SNIPrefix):
		_ = c.SetReadDeadline(time.Time{})
		classified()
		p.passthrough(c, remote, strings.TrimPrefix(sni, SNIPrefix), peeked)
	case err != nil:
		p.reject(c, remote, err)
	case tcpOnly:
		p.reject(c, remote, errors.New("not a dask TLS connection"))
	default:
		_ = c.SetReadDeadline(time.Time{})
		p.serveHTTP(c, remote, peeked, isTLS)
	}
}

// readProxyHeader consumes a PROXY header from trusted peers and returns
// the client address and the bytes read past the header.
func (p *Proxy) readProxyHeader(c net.Conn) (net.Addr, []byte, error) {
	if !p.trusted.contains(c.RemoteAddr()) {
		return c.RemoteAddr(), nil, nil
	}
	br := bufio.NewReaderSize(c, 256)
	addr, err := readProxyHeader(br)
	if err != nil {
		return c.RemoteAddr(), nil, err
	}
	if addr == nil {
		addr = c.RemoteAddr()
	}
	rest, _ := br.Peek(br.Buffered())
	return addr, bytes.Clone(rest), nil
}

func (p *Proxy) reject(c net.Conn, remote net.Addr, err error) {
	reason := "bad_first_bytes"
	if errors.Is(err, os.ErrDeadlineExceeded) {
		reason = "timeout"
		p.m.timeouts.Inc()
	} else if errors.Is(err, errProxyHeader) {
		reason = "proxy_header"
	}
	p.m.rejected.WithLabelValues(reason).Inc()
	p.log.Debug("connection rejected", "remote", remote, "reason", reason, "err", err)
	c.Close()
}

// serveHTTP hands the connection, with its peeked bytes replayed, to the
// HTTP server; TLS (any SNI but daskgateway-*) is terminated here when
// configured, else refused.
func (p *Proxy) serveHTTP(c net.Conn, remote net.Addr, peeked []byte, isTLS bool) {
	var hc net.Conn = &replayConn{Conn: c, r: io.MultiReader(bytes.NewReader(peeked), c), remote: remote}
	if isTLS {
		if p.cfg.TLS == nil {
			p.reject(c, remote, errors.New("TLS without daskgateway SNI and no tls_cert configured"))
			return
		}
		hc = tls.Server(hc, p.cfg.TLS)
	}
	p.m.conns.WithLabelValues("http").Inc()
	// Busy from now, not from the HTTP server's StateNew: between the
	// hand-over and that, Shutdown would not see it and drop its request.
	p.trackState(hc, http.StateNew)
	if !p.httpLn.push(hc) {
		p.trackState(hc, http.StateClosed)
		c.Close()
	}
}

// ServeHTTP routes dashboards and hands the rest to the API.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.limitBody(w, r)
	path := r.URL.Path
	if p.cfg.Prefix != "" {
		switch {
		case path == p.cfg.Prefix || strings.HasPrefix(path, p.cfg.Prefix+"/"):
			path = strings.TrimPrefix(path, p.cfg.Prefix)
		case strings.HasPrefix(path, "/api/"):
			// The API without the prefix, as upstream's api Service serves it:
			// schedulers started before a move to daskgate heartbeat there.
		default:
			http.Error(w, "Not Found", http.StatusNotFound)
			return
		}
	}
	name, rest, isDash := dashboardPath(path)
	if p.cfg.DashboardHost != "" && strings.EqualFold(r.Host, p.cfg.DashboardHost) {
		// The dashboard origin: dashboards only, never the API.
		route, ok := p.cfg.Routes.Lookup(name)
		if !isDash || !ok || route.Dashboard == "" {
			writeError(w, http.StatusNotFound, "not found")
			return
		}
		if p.cfg.DashboardGate(w, r, name, rest) {
			p.serveDashboard(w, r, name, route.Dashboard, rest)
		}
		return
	}
	if isDash {
		if route, ok := p.cfg.Routes.Lookup(name); ok && route.Dashboard != "" {
			if p.cfg.AuthorizeDashboard != nil && !p.cfg.AuthorizeDashboard(w, r, name) {
				return
			}
			if p.cfg.DashboardHost != "" { // never on the API's origin
				writeError(w, http.StatusForbidden, "dashboards are served on their own origin")
				return
			}
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

func (p *Proxy) trackState(c net.Conn, s http.ConnState) {
	p.busyMu.Lock()
	defer p.busyMu.Unlock()
	switch s {
	case http.StateNew:
		if _, ok := p.busy[c]; !ok {
			p.busy[c] = time.Now()
		}
	case http.StateActive:
		p.busy[c] = time.Time{}
	default:
		delete(p.busy, c)
	}
}

// newConnGrace is how long Shutdown waits for a new connection's first
// request: one that stays silent longer is not waited for.
const newConnGrace = time.Second

// waitQuiet waits, at most until ctx ends, until no HTTP connection is
// serving a request or is new within newConnGrace (with the listeners
// closed, none comes).
func (p *Proxy) waitQuiet(ctx context.Context) {
	for {
		n := 0
		p.busyMu.Lock()
		for _, since := range p.busy {
			if since.IsZero() || time.Since(since) < newConnGrace {
				n++
			}
		}
		p.busyMu.Unlock()
		if n == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitZero waits until n is zero or ctx ends.
func waitZero(ctx context.Context, n *atomic.Int64) {
	for n.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// Shutdown stops accepting HTTP, lets requests finish and keeps
// passthrough connections until ctx ends (the drain timeout), then closes
// them. Callers close their listeners first.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	p.http.SetKeepAlivesEnabled(false) // kept-alive clients move on after their next answer
	// Connections accepted before the listeners closed are still served:
	// the HTTP server takes each before it stops accepting.
	waitZero(ctx, &p.loops)
	waitZero(ctx, &p.classifying)
	p.waitQuiet(ctx)
	err := p.http.Shutdown(ctx)
	done := make(chan struct{})
	go func() { p.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		p.mu.Lock()
		p.drained = true
		for c := range p.tcp {
			c.Close()
		}
		p.mu.Unlock()
		<-done
	}
	return err
}
