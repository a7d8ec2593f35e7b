package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestProxyProtocolFromTrustedOnly(t *testing.T) {
	f := newFixture(t, "", func(c *Config) { c.TrustedProxies = []string{"127.0.0.1/32"} })
	send := func(header string) string {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "%sGET /api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", header)
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := send("PROXY TCP4 203.0.113.9 127.0.0.1 4242 8000\r\n"); !strings.Contains(got, "api:/api/x from 203.0.113.9:4242") {
		t.Fatalf("v1: %q", got)
	}
	v2 := string(v2Header(1, 0x11, []byte{198, 51, 100, 1, 127, 0, 0, 1, 0, 80, 0, 80}))
	if got := send(v2); !strings.Contains(got, "from 198.51.100.1:80") {
		t.Fatalf("v2: %q", got)
	}
	if got := send(""); !strings.Contains(got, "from 127.0.0.1:") {
		t.Fatalf("no header from a trusted peer must still work: %q", got)
	}
	if got := send("PROXY TCP4 bogus\r\n"); got != "" {
		t.Fatalf("malformed header answered: %q", got)
	}
	// Untrusted peers: the header is not interpreted (it is a bad request).
	g := newFixture(t, "")
	c, _ := net.Dial("tcp", g.addr)
	defer c.Close()
	fmt.Fprintf(c, "PROXY TCP4 203.0.113.9 127.0.0.1 4242 8000\r\nGET /api/x HTTP/1.1\r\nHost: x\r\n\r\n")
	b, _ := io.ReadAll(c)
	if strings.Contains(string(b), "203.0.113.9") || !strings.Contains(string(b), "400") {
		t.Fatalf("untrusted header honoured: %q", b)
	}
}

func TestHTTPSAndDaskOnOnePort(t *testing.T) {
	web := httptest.NewUnstartedServer(nil)
	web.StartTLS() // borrow its self-signed certificate
	cert := web.TLS.Certificates[0]
	web.Close()
	f := newFixture(t, "", func(c *Config) { c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}} })
	sched := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "scheduler") }))
	defer sched.Close()
	f.table.SetCluster("abc", "tls://"+sched.Listener.Addr().String(), "")
	for sni, want := range map[string]string{"daskgateway-abc": "scheduler", "gateway.example.org": "api:/ from 127.0.0.1:"} {
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: sni, InsecureSkipVerify: true}}}
		resp, err := client.Get("https://" + f.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(b), want) {
			t.Errorf("SNI %s: got %q", sni, b)
		}
	}
	if code, _, _ := get(t, "http://"+f.addr+"/api/health"); code != 200 {
		t.Errorf("plain HTTP on the TLS port = %d", code)
	}
}

func TestSeparateTCPPort(t *testing.T) {
	f := newFixture(t, "")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go f.proxy.ServeTCP(ln)
	defer ln.Close()
	sched := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "scheduler") }))
	defer sched.Close()
	f.table.SetCluster("abc", "tls://"+sched.Listener.Addr().String(), "")
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "daskgateway-abc", InsecureSkipVerify: true}}}
	resp, err := client.Get("https://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := http.Get("http://" + ln.Addr().String() + "/api/health"); err == nil {
		t.Fatal("HTTP served on the TCP-only port")
	}
}

func TestWebsocketThroughDashboard(t *testing.T) {
	f := newFixture(t, "/pre")
	dash := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" || r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want upgrade on /ws", 400)
			return
		}
		c, brw, _ := w.(http.Hijacker).Hijack()
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		brw.WriteString("echo " + line)
		brw.Flush()
	}))
	defer dash.Close()
	f.table.SetCluster("abc", "tls://127.0.0.1:1", dash.URL)
	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /pre/clusters/abc/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade = %v %v", resp, err)
	}
	fmt.Fprintf(c, "hello\n")
	if line, _ := br.ReadString('\n'); line != "echo hello\n" {
		t.Fatalf("got %q", line)
	}
}

// TestNoGoroutineLeaks runs passthrough, HTTP, rejected and timed-out
// connections, shuts down, and checks the goroutine count returns.
func TestNoGoroutineLeaks(t *testing.T) {
	sched := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "s") }))
	defer sched.Close()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	before := runtime.NumGoroutine()
	func() {
		f := newFixture(t, "")
		f.table.SetCluster("abc", "tls://"+sched.Listener.Addr().String(), "")
		for range 20 {
			tr := &http.Transport{TLSClientConfig: &tls.Config{ServerName: "daskgateway-abc", InsecureSkipVerify: true}}
			resp, err := (&http.Client{Transport: tr}).Get("https://" + f.addr + "/")
			if err == nil {
				io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			tr.CloseIdleConnections()
			get(t, "http://"+f.addr+"/x")
			if c, err := net.Dial("tcp", f.addr); err == nil {
				c.Write([]byte{0x16, 3, 1, 0, 1, 0})
				c.Close()
			}
		}
		idle, _ := net.Dial("tcp", f.addr) // never sends: closed at the deadline
		defer idle.Close()
		time.Sleep(400 * time.Millisecond)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		f.proxy.Shutdown(ctx)
	}()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	sched.CloseClientConnections()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

func TestSlowBodyIsCutButLongHandlersAreNot(t *testing.T) {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusRequestTimeout)
			return
		}
		time.Sleep(600 * time.Millisecond) // a long poll after the body: must not be cancelled
		if r.Context().Err() != nil {
			http.Error(w, "cancelled", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "got "+string(b))
	})
	f := newFixture(t, "", func(c *Config) { c.API = api; c.BodyTimeout = 200 * time.Millisecond })

	resp, err := http.Post("http://"+f.addr+"/api/x", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "got hello" {
		t.Fatalf("full body: %d %q", resp.StatusCode, b)
	}

	c, err := net.Dial("tcp", f.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	io.WriteString(c, "POST /api/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
	reply, _ := io.ReadAll(c) // the server answers, then closes
	if !strings.Contains(string(reply), "408") || !strings.Contains(string(reply), "timeout") {
		t.Fatalf("slow body reply: %q", reply)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("slow body held the connection %v", el)
	}
}

func TestNoPassthroughAfterDrain(t *testing.T) {
	f := newFixture(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // drain timeout already over
	f.proxy.Shutdown(ctx)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if f.proxy.track(a, b, true) {
		t.Fatal("a passthrough pair was registered after the drain sweep")
	}
}
