package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type fixture struct {
	addr  string
	table *Table
	proxy *Proxy
}

func newFixture(t *testing.T, prefix string, mods ...func(*Config)) *fixture {
	t.Helper()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/clusters/") {
			http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
			return
		}
		io.WriteString(w, "api:"+r.URL.Path+" from "+r.RemoteAddr)
	})
	table := NewTable()
	cfg := Config{API: api, Routes: table, Prefix: prefix, HelloTimeout: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	for _, m := range mods {
		m(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go p.Serve(ln)
	t.Cleanup(func() {
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.Shutdown(ctx)
	})
	return &fixture{addr: ln.Addr().String(), table: table, proxy: p}
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestHTTPRouting(t *testing.T) {
	f := newFixture(t, "/pre")
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			http.Redirect(w, r, "/status", http.StatusFound)
			return
		}
		io.WriteString(w, "dash:"+r.URL.RequestURI()+" xff="+r.Header.Get("X-Forwarded-For"))
	}))
	defer dash.Close()
	f.table.SetCluster("abc", "tls://127.0.0.1:1", dash.URL)
	f.table.SetCluster("dead", "tls://127.0.0.1:1", "http://127.0.0.1:1")
	base := "http://" + f.addr
	tests := []struct {
		path string
		code int
		body string
	}{
		{"/pre/api/v1/clusters/", 200, "api:/api/v1/clusters/ from 127.0.0.1:"},
		{"/pre", 200, "api:/ from 127.0.0.1:"},
		{"/pre/clusters/abc/status", 200, "dash:/status xff=127.0.0.1"},
		{"/pre/clusters/abc/individual-plots.json?x=1", 200, "dash:/individual-plots.json?x=1 xff=127.0.0.1"},
		{"/pre/clusters/abcd/status", 404, `{"error":"not found"}`},
		{"/pre/clusters/dead/status", 502, `{"error":"dashboard unreachable"}`},
		{"/api/v1/clusters/x/heartbeat", 200, "api:/api/v1/clusters/x/heartbeat from 127.0.0.1:"}, // upstream's api Service: no prefix
		{"/clusters/abc/status", 404, "Not Found"},
		{"/other", 404, "Not Found"},
		{"/prefix-lookalike", 404, "Not Found"},
	}
	for _, tt := range tests {
		code, body, _ := get(t, base+tt.path)
		if strings.HasSuffix(tt.body, ":") && strings.HasPrefix(body, tt.body) {
			body = tt.body // the client's port varies
		}
		if code != tt.code || strings.TrimSpace(body) != tt.body {
			t.Errorf("GET %s = %d %q, want %d %q", tt.path, code, body, tt.code, tt.body)
		}
	}
	code, _, h := get(t, base+"/pre/clusters/abc/")
	if code != http.StatusFound || h.Get("Location") != "/pre/clusters/abc/status" {
		t.Errorf("redirect = %d %q", code, h.Get("Location"))
	}
	f.table.RemoveCluster("abc")
	if code, _, _ := get(t, base+"/pre/clusters/abc/status"); code != 404 {
		t.Errorf("removed route still served: %d", code)
	}
}

func TestSNIPassthrough(t *testing.T) {
	f := newFixture(t, "")
	sched := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "scheduler saw SNI "+r.TLS.ServerName)
	}))
	defer sched.Close()
	f.table.SetCluster("abc", "tls://"+sched.Listener.Addr().String(), "")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "daskgateway-abc", InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + f.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "scheduler saw SNI daskgateway-abc" {
		t.Fatalf("got %q", b)
	}
	// Unknown cluster: the connection is closed.
	conn, err := tls.Dial("tcp", f.addr, &tls.Config{ServerName: "daskgateway-nope", InsecureSkipVerify: true})
	if err == nil {
		conn.Close()
		t.Fatal("handshake with unknown cluster succeeded")
	}
}

func TestHelloDeadline(t *testing.T) {
	f := newFixture(t, "")
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read = %v, want EOF from the proxy closing", err)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Fatalf("closed after %v, want ~300ms", d)
	}
}

func TestTableConcurrent(t *testing.T) {
	table := NewTable()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			table.SetCluster("a", "tls://x:1", "")
			table.RemoveCluster("a")
		}
	}()
	for range 1000 {
		if r, ok := table.Lookup("a"); ok && r.Scheduler != "x:1" {
			t.Fatalf("torn read %+v", r)
		}
	}
	<-done
}

func TestTableReplace(t *testing.T) {
	table := NewTable()
	table.SetCluster("old", "tls://a:1", "")
	table.Replace(map[string]Route{"new": {Scheduler: "tls://b:2", Dashboard: "http://b:3"}})
	if _, ok := table.Lookup("old"); ok {
		t.Fatal("old route survived Replace")
	}
	if r, ok := table.Lookup("new"); !ok || r.Scheduler != "b:2" || table.Len() != 1 {
		t.Fatalf("new route = %+v", r)
	}
}

// TestTableSkipsNoOps: an update that changes no route copies nothing.
func TestTableSkipsNoOps(t *testing.T) {
	table := NewTable()
	table.SetCluster("a", "tls://a:1", "http://a:2")
	before := table.routes.Load()
	table.SetCluster("a", "tls://a:1", "http://a:2")
	table.RemoveCluster("missing")
	if table.routes.Load() != before {
		t.Fatal("a no-op update replaced the table")
	}
	table.SetCluster("a", "tls://a:9", "http://a:2")
	if r, _ := table.Lookup("a"); r.Scheduler != "a:9" || table.routes.Load() == before {
		t.Fatalf("a changed route was not applied: %+v", r)
	}
	table.RemoveCluster("a")
	if _, ok := table.Lookup("a"); ok {
		t.Fatal("route kept after RemoveCluster")
	}
}

func TestDashboardAuthorization(t *testing.T) {
	f := newFixture(t, "", func(c *Config) {
		c.AuthorizeDashboard = func(w http.ResponseWriter, r *http.Request, name string) bool {
			if r.Header.Get("X-Allowed") == "yes" {
				return true
			}
			writeError(w, http.StatusForbidden, "not for you: "+name)
			return false
		}
	})
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "dash") }))
	defer dash.Close()
	f.table.SetCluster("abc", "tls://127.0.0.1:1", dash.URL)
	if code, body, _ := get(t, "http://"+f.addr+"/clusters/abc/status"); code != 403 || body != `{"error":"not for you: abc"}` {
		t.Fatalf("denied = %d %s", code, body)
	}
	req, _ := http.NewRequest("GET", "http://"+f.addr+"/clusters/abc/status", nil)
	req.Header.Set("X-Allowed", "yes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "dash" {
		t.Fatalf("allowed = %q", b)
	}
}

// A dashboard is the cluster owner's code: it never sees the visitor's
// gateway credentials (Authorization, session cookies), only its own
// cookies and the X-Forwarded-* headers.
func TestDashboardNeverSeesGatewayCredentials(t *testing.T) {
	f := newFixture(t, "", func(c *Config) { c.SessionCookiePrefix = "daskgate-" })
	seen := make(chan http.Header, 1)
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen <- r.Header.Clone() }))
	defer dash.Close()
	f.table.SetCluster("abc", "tls://127.0.0.1:1", dash.URL)
	req, _ := http.NewRequest("GET", "http://"+f.addr+"/clusters/abc/status", nil)
	req.Header.Set("Authorization", "Basic YWRtaW46c2VjcmV0")
	req.Header.Set("Cookie", "daskgate-1a2b=admin-session; bokeh-theme=dark; daskgate-other=x")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-seen
	if h.Get("Authorization") != "" || strings.Contains(h.Get("Cookie"), "daskgate-") {
		t.Fatalf("the dashboard saw the visitor's credentials: Authorization %q, Cookie %q", h.Get("Authorization"), h.Get("Cookie"))
	}
	if h.Get("Cookie") != "bokeh-theme=dark" || h.Get("X-Forwarded-For") == "" {
		t.Fatalf("dashboard headers: Cookie %q, X-Forwarded-For %q", h.Get("Cookie"), h.Get("X-Forwarded-For"))
	}
}

// TestDashboardOrigin: on the dashboard host only dashboards are served
// (after the gate), never the API; on the API's host a dashboard path is
// answered by AuthorizeDashboard (a hand-over), never served.
func TestDashboardOrigin(t *testing.T) {
	var gated, handed []string
	f := newFixture(t, "/pre", func(c *Config) {
		c.DashboardHost = "dash.test"
		c.DashboardGate = func(w http.ResponseWriter, r *http.Request, name, rest string) bool {
			gated = append(gated, name+rest)
			return name == "abc"
		}
		c.AuthorizeDashboard = func(w http.ResponseWriter, r *http.Request, name string) bool {
			if name == "other" {
				return true // a decision that forgot the hand-over
			}
			handed = append(handed, name)
			http.Redirect(w, r, "http://dash.test"+r.URL.RequestURI(), http.StatusFound)
			return false
		}
	})
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "dash:"+r.URL.Path) }))
	defer dash.Close()
	f.table.SetCluster("abc", "tls://127.0.0.1:1", dash.URL)
	f.table.SetCluster("other", "tls://127.0.0.1:1", dash.URL)
	do := func(host, path string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+f.addr+path, nil)
		req.Host = host
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("dash.test", "/pre/clusters/abc/status"); code != 200 || body != "dash:/status" {
		t.Errorf("dashboard on its origin: %d %q", code, body)
	}
	if _, body := do("dash.test", "/pre/clusters/other/status"); strings.Contains(body, "dash:") {
		t.Errorf("the gate's refusal was served")
	}
	for _, p := range []string{"/pre/api/v1/clusters/", "/pre/", "/api/health", "/pre/clusters/nope/status"} {
		if code, body := do("dash.test", p); code != 404 || strings.Contains(body, "api:") {
			t.Errorf("dashboard origin served %s: %d %q", p, code, body)
		}
	}
	if code, body := do("api.test", "/pre/clusters/abc/status"); code != 302 || strings.Contains(body, "dash:") {
		t.Errorf("dashboard on the API's origin: %d %q", code, body)
	}
	if code, body := do("api.test", "/pre/clusters/other/status"); code != 403 || strings.Contains(body, "dash:") {
		t.Errorf("a dashboard let through on the API's origin was served: %d %q", code, body)
	}
	if code, body := do("api.test", "/pre/api/v1/clusters/"); code != 200 || !strings.HasPrefix(body, "api:") {
		t.Errorf("API: %d %q", code, body)
	}
	if strings.Join(gated, ",") != "abc/status,other/status" || strings.Join(handed, ",") != "abc" {
		t.Errorf("gated %v, handed %v", gated, handed)
	}
}
