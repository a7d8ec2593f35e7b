package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

type dashKey struct{}

type dashTarget struct {
	target *url.URL
	rest   string
	base   string // public path of the dashboard root, for Location rewrites
}

func (p *Proxy) dashboardProxy() http.Handler {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(dashKey{}).(dashTarget)
			pr.Out.URL.Path, pr.Out.URL.RawPath = t.rest, ""
			pr.SetURL(t.target)
			pr.SetXForwarded()
			p.dropCredentials(pr.Out.Header)
		},
		Transport:     &http.Transport{DialContext: p.cfg.DialContext, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second},
		FlushInterval: 100 * time.Millisecond,
		ModifyResponse: func(resp *http.Response) error {
			t := resp.Request.Context().Value(dashKey{}).(dashTarget)
			if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") {
				resp.Header.Set("Location", t.base+loc)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			p.m.dialErrors.WithLabelValues("dashboard").Inc()
			p.log.Warn("dashboard proxy", "path", r.URL.Path, "err", err)
			writeError(w, http.StatusBadGateway, "dashboard unreachable")
		},
	}
}

// dropCredentials removes the visitor's gateway credentials from a
// request bound for a dashboard: the Authorization header and the
// session cookies. The dashboard's own cookies pass.
func (p *Proxy) dropCredentials(h http.Header) {
	h.Del("Authorization")
	h.Del("Proxy-Authorization")
	prefix := p.cfg.SessionCookiePrefix
	if prefix == "" {
		prefix = "daskgate-"
	}
	var keep []string
	for _, line := range h.Values("Cookie") {
		for _, c := range strings.Split(line, ";") {
			if name, _, _ := strings.Cut(strings.TrimSpace(c), "="); name != "" && !strings.HasPrefix(name, prefix) {
				keep = append(keep, strings.TrimSpace(c))
			}
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

func writeError(w http.ResponseWriter, code int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func (p *Proxy) serveDashboard(w http.ResponseWriter, r *http.Request, name, target, rest string) {
	u, err := url.Parse(target)
	if err != nil {
		http.Error(w, "bad dashboard address", http.StatusBadGateway)
		return
	}
	t := dashTarget{target: u, rest: rest, base: p.cfg.Prefix + "/clusters/" + name}
	start := time.Now()
	p.dash.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), dashKey{}, t)))
	p.m.dashboard.Observe(time.Since(start).Seconds())
}

// connListener is a net.Listener fed with connections classified as HTTP.
type connListener struct {
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newConnListener() *connListener {
	return &connListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// replayConn serves the peeked bytes before the rest of the connection and
// reports the client address a PROXY header gave.
type replayConn struct {
	net.Conn
	r      io.Reader
	remote net.Addr
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *replayConn) RemoteAddr() net.Addr { return c.remote }

// limitBody puts a read deadline on the request body so a client that
// trickles its upload cannot hold a handler forever. The deadline is
// lifted once the body is read, so long polls and streaming responses are
// not cut; upgrades (websockets) and bodiless requests are left alone.
func (p *Proxy) limitBody(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.Header.Get("Upgrade") != "" {
		return
	}
	rc := http.NewResponseController(w)
	if rc.SetReadDeadline(time.Now().Add(p.cfg.BodyTimeout)) != nil {
		return
	}
	r.Body = &deadlineBody{ReadCloser: r.Body, rc: rc}
}

// deadlineBody clears the connection's read deadline at the body's end.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
