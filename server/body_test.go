package server

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

// Bad bodies get the status that says what is wrong, name the problem,
// and change nothing.
func TestBadBodiesAreRefusedExactly(t *testing.T) {
	a := newAPI(t, nil)
	name := a.create("alice")
	a.be.set(name, func(c *cluster.Cluster) { c.Status, c.APIAddress = cluster.Running, "http://127.0.0.1:1" })
	big := `{"cluster_options": {"x": "` + strings.Repeat("a", 2<<20) + `"}}`
	tests := []struct {
		name, path, body string
		code             int
		msg              string
	}{
		{"null", "/api/v1/clusters/", `null`, 422, "JSON object"},
		{"array", "/api/v1/clusters/", `[]`, 422, "JSON object"},
		{"string", "/api/v1/clusters/", `"x"`, 422, "JSON object"},
		{"empty", "/api/v1/clusters/", ``, 422, "JSON object"},
		{"trailing garbage", "/api/v1/clusters/", `{"cluster_options": {}} {"x": 1}`, 422, "after the JSON object"},
		{"trailing text", "/api/v1/clusters/", `{"cluster_options": {}}x`, 422, "after the JSON object"},
		{"too large", "/api/v1/clusters/", big, 413, "larger than"},
		{"scale null", "/api/v1/clusters/" + name + "/scale", `null`, 422, "JSON object"},
		{"adapt minimum above maximum", "/api/v1/clusters/" + name + "/adapt", `{"minimum": 3, "maximum": 1, "active": true}`, 422, "minimum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(a.be.order)
			code, body, _ := a.do("POST", tt.path, "alice", tt.body)
			if code != tt.code || !strings.Contains(body, tt.msg) {
				t.Fatalf("POST %s %.40q = %d %s, want %d naming %q", tt.path, tt.body, code, body, tt.code, tt.msg)
			}
			if len(a.be.order) != before {
				t.Fatalf("a refused request created a cluster")
			}
		})
	}
}

// A client that stops sending its body gets 408 after the body timeout,
// not a 422 and not a held connection.
func TestSlowBodyIs408(t *testing.T) {
	a := newAPI(t, func(c *Config) { c.BodyTimeout = 200 * time.Millisecond })
	c, err := net.Dial("tcp", strings.TrimPrefix(a.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "POST /api/v1/clusters/ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWxpY2U6\r\n" +
		"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"cluster_"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow body = %d, want 408", resp.StatusCode)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("answered after %v", d)
	}
	if len(a.be.order) != 0 {
		t.Fatal("a timed-out request created a cluster")
	}
}

// A request's own credentials win over a session cookie: a cookie of
// alice's cannot make bob's explicit request run as alice.
func TestExplicitCredentialsWinOverCookie(t *testing.T) {
	a := newAPI(t, nil)
	_, _, h := a.do("GET", "/api/v1/clusters/", "alice", "")
	cookie := strings.Split(h.Get("Set-Cookie"), ";")[0]
	a.create("alice")
	req, _ := http.NewRequest("GET", a.url+"/api/v1/clusters/", nil)
	req.Header.Set("Cookie", cookie)
	req.SetBasicAuth("bob", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	if resp.StatusCode != 200 || len(body) != 0 {
		t.Fatalf("bob with alice's cookie sees %d %v, want his own (no) clusters", resp.StatusCode, body)
	}
}

// Heartbeats are unauthenticated routes: without a cluster token they are
// refused before the backend is asked anything.
func TestHeartbeatWithoutTokenReachesNothing(t *testing.T) {
	a := newAPI(t, nil)
	name := a.create("alice")
	a.be.mu.Lock()
	a.be.gets = 0
	a.be.mu.Unlock()
	for _, user := range []string{"", "alice"} { // none, or Basic credentials
		if code, _, h := a.do("POST", "/api/v1/clusters/"+name+"/heartbeat", user, `{"count": 1}`); code != 401 || h.Get("WWW-Authenticate") != "token" {
			t.Fatalf("heartbeat as %q = %d %v", user, code, h)
		}
	}
	a.be.mu.Lock()
	defer a.be.mu.Unlock()
	if a.be.gets != 0 || len(a.be.hbs) != 0 {
		t.Fatalf("refused heartbeats reached the backend: %d lookups, %d heartbeats", a.be.gets, len(a.be.hbs))
	}
}

// Per-user create locks do not pile up: after many users' creates, none
// is left behind; concurrent creates of one user still serialise.
func TestUserLocksAreReleased(t *testing.T) {
	var l userLocks
	for i := range 1000 {
		l.lock("user" + strconv.Itoa(i))()
	}
	if n := l.held(); n != 0 {
		t.Fatalf("%d locks left after all were released", n)
	}
	unlock := l.lock("alice")
	got := make(chan bool)
	go func() { l.lock("alice")(); got <- true }()
	select {
	case <-got:
		t.Fatal("a second create of alice's ran while the first held the lock")
	case <-time.After(50 * time.Millisecond):
	}
	unlock()
	<-got
	if n := l.held(); n != 0 {
		t.Fatalf("%d locks left", n)
	}
}

// The scheduler's 4xx is final (one call); a 5xx is retried.
func TestSchedulerClientRetriesOnlyWhatMayPass(t *testing.T) {
	for _, tt := range []struct {
		code, calls int
	}{{403, 1}, {400, 1}, {503, 3}, {200, 1}} {
		var calls int
		sched := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls++
			w.WriteHeader(tt.code)
			w.Write([]byte(strings.Repeat("x", 1000)))
		}))
		sc := &SchedulerClient{}
		err := sc.Send(context.Background(), &cluster.Cluster{APIAddress: sched.URL, Token: "t"}, map[string]any{"op": "scale"})
		sched.Close()
		if calls != tt.calls || (err == nil) != (tt.code == 200) {
			t.Errorf("scheduler %d: %d calls, err %v; want %d calls", tt.code, calls, err, tt.calls)
		}
	}
}
