package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/options"
)

// fakeBackend keeps clusters in a map; tests move them between statuses.
type fakeBackend struct {
	mu       sync.Mutex
	clusters map[string]*cluster.Cluster
	order    []string
	stopped  map[string]string
	hbs      []cluster.Heartbeat
	gets     int
}

func newFake() *fakeBackend {
	return &fakeBackend{clusters: map[string]*cluster.Cluster{}, stopped: map[string]string{}}
}

func (f *fakeBackend) Create(_ context.Context, req cluster.CreateRequest) (*cluster.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &cluster.Cluster{Name: cluster.NewName(), Username: req.Username, Status: cluster.Pending,
		Options: req.Options, Config: req.Config, StartTime: time.Now().UnixMilli(), Token: "tok-" + cluster.Secret(req.Username)}
	f.clusters[c.Name] = c
	f.order = append(f.order, c.Name)
	return c, nil
}

func (f *fakeBackend) Get(_ context.Context, name string) (*cluster.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	c, ok := f.clusters[name]
	if !ok {
		return nil, cluster.ErrNotFound
	}
	cp := *c
	return &cp, nil
}

func (f *fakeBackend) List(_ context.Context, keep func(*cluster.Cluster) bool) ([]*cluster.Cluster, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*cluster.Cluster
	for _, n := range f.order {
		if cp := *f.clusters[n]; keep(&cp) {
			out = append(out, &cp)
		}
	}
	return out, nil
}

func (f *fakeBackend) Stop(_ context.Context, name string, failed bool, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c, ok := f.clusters[name]; ok {
		c.Status = cluster.Stopping
		f.stopped[name] = reason
	}
	return nil
}

func (f *fakeBackend) Heartbeat(_ context.Context, _ string, hb cluster.Heartbeat) error {
	f.mu.Lock()
	f.hbs = append(f.hbs, hb)
	f.mu.Unlock()
	return nil
}

func (f *fakeBackend) Wait(ctx context.Context, name string) (*cluster.Cluster, error) {
	for {
		c, err := f.Get(ctx, name)
		if err != nil || c.Status != cluster.Pending {
			return c, err
		}
		select {
		case <-ctx.Done():
			return c, nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (f *fakeBackend) Counts() map[cluster.Status]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[cluster.Status]int{}
	for _, c := range f.clusters {
		out[c.Status]++
	}
	return out
}

func (f *fakeBackend) set(name string, mod func(*cluster.Cluster)) {
	f.mu.Lock()
	mod(f.clusters[name])
	f.mu.Unlock()
}

type apiFixture struct {
	t      testing.TB
	url    string
	be     *fakeBackend
	server *Server
}

func newAPI(t testing.TB, mod func(*Config)) *apiFixture {
	t.Helper()
	set, err := options.New([]options.Field{{Field: "worker_cores", Type: options.Int, Default: json.RawMessage("1"), Max: options.Num("4")}})
	if err != nil {
		t.Fatal(err)
	}
	be := newFake()
	cfg := Config{Backend: be, Auth: auth.NewSimple(""), Options: StaticOptions{Set: set}, ClusterConfig: cluster.DefaultConfig(),
		Version: "test", Logger: slog.New(slog.NewTextHandler(t.Output(), nil)), WaitTimeout: 200 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return &apiFixture{t: t, url: ts.URL, be: be, server: s}
}

// do sends a request as user ("" for none; "token:X" for a cluster token).
func (a *apiFixture) do(method, path, user, body string) (int, string, http.Header) {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.url+path, strings.NewReader(body))
	switch {
	case strings.HasPrefix(user, "token:"):
		req.Header.Set("Authorization", "token "+strings.TrimPrefix(user, "token:"))
	case user != "":
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":")))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), resp.Header
}

func (a *apiFixture) create(user string) string {
	code, body, _ := a.do("POST", "/api/v1/clusters/", user, `{"cluster_options": {"worker_cores": 2}}`)
	if code != 201 {
		a.t.Fatalf("create = %d %s", code, body)
	}
	var out map[string]string
	_ = json.Unmarshal([]byte(body), &out)
	return out["name"]
}

func TestPublicRoutes(t *testing.T) {
	a := newAPI(t, nil)
	for path, want := range map[string]string{"/api/health": `{"status":"pass"}`, "/api/version": `{"version":"test"}`} {
		if code, body, _ := a.do("GET", path, "", ""); code != 200 || body != want {
			t.Errorf("GET %s = %d %s", path, code, body)
		}
	}
	if code, body, _ := a.do("GET", "/api/nope", "", ""); code != 404 || body != `{"error":"Not Found"}` {
		t.Errorf("unknown route = %d %s", code, body)
	}
	if code, _, _ := a.do("PUT", "/api/health", "", ""); code != 405 {
		t.Errorf("wrong method = %d", code)
	}
}

func TestAuthChallengeAndCookie(t *testing.T) {
	a := newAPI(t, nil)
	code, body, h := a.do("GET", "/api/v1/options", "", "")
	if code != 401 || body != `{"error":"Authentication required"}` || h.Get("WWW-Authenticate") != "Basic" {
		t.Fatalf("no credentials = %d %s %v", code, body, h)
	}
	code, body, h = a.do("GET", "/api/v1/options", "alice", "")
	want := `{"cluster_options":[{"field":"worker_cores","label":"worker_cores","default":1,"spec":{"max":4,"min":null,"type":"int"}}]}`
	if code != 200 || body != want {
		t.Fatalf("options = %d %s", code, body)
	}
	cookie := strings.Split(h.Get("Set-Cookie"), ";")[0]
	req, _ := http.NewRequest("GET", a.url+"/api/v1/clusters/", nil)
	req.Header.Set("Cookie", cookie)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Set-Cookie") != "" {
		t.Fatalf("cookie request = %d, set-cookie %q", resp.StatusCode, resp.Header.Get("Set-Cookie"))
	}
}

func TestClusterLifecycleAPI(t *testing.T) {
	a := newAPI(t, nil)
	name := a.create("alice")
	code, body, _ := a.do("GET", "/api/v1/clusters/", "alice", "")
	var list map[string]map[string]any
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
		t.Fatalf("list = %d %s", code, body)
	}
	c := list[name]
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range c {
			if !yield(k) {
				return
			}
		}
	})
	if strings.Join(keys, ",") != "dashboard_route,name,options,start_time,status,stop_time,tls_cert,tls_key" {
		t.Fatalf("cluster keys %v", keys)
	}
	if c["status"] != "PENDING" || c["tls_cert"] != nil || c["options"].(map[string]any)["worker_cores"] != 2.0 {
		t.Fatalf("cluster %v", c)
	}
	// Long poll returns once the cluster runs.
	go func() {
		time.Sleep(50 * time.Millisecond)
		a.be.set(name, func(c *cluster.Cluster) {
			c.Status, c.TLSCert, c.TLSKey, c.DashboardAddress = cluster.Running, "CERT", "KEY", "http://x"
		})
	}()
	code, body, _ = a.do("GET", "/api/v1/clusters/"+name+"?wait", "alice", "")
	if code != 200 || !strings.Contains(body, `"status":"RUNNING"`) || !strings.Contains(body, `"dashboard_route":"/clusters/`+name+`/status"`) ||
		!strings.Contains(body, `"tls_key":"KEY"`) {
		t.Fatalf("wait = %d %s", code, body)
	}
	// A failed cluster's long poll is a 409 naming the reason (the client
	// raises GatewayClusterError with it); a plain GET still gives the object.
	failed := a.create("alice")
	a.be.set(failed, func(c *cluster.Cluster) { c.Status, c.Reason = cluster.Failed, "ImagePullBackOff: no such image" })
	code, body, _ = a.do("GET", "/api/v1/clusters/"+failed+"?wait", "alice", "")
	if want := `{"error":"Cluster '` + failed + `' failed to start: ImagePullBackOff: no such image"}`; code != 409 || body != want {
		t.Fatalf("wait on failed = %d %s", code, body)
	}
	if code, body, _ = a.do("GET", "/api/v1/clusters/"+failed, "alice", ""); code != 200 || !strings.Contains(body, `"status":"FAILED"`) || strings.Contains(body, "reason") {
		t.Fatalf("get failed = %d %s", code, body)
	}
	if code, body, _ = a.do("GET", "/api/v1/clusters/?status=running,PENDING", "alice", ""); code != 200 || !strings.Contains(body, name) {
		t.Fatalf("status filter = %d %s", code, body)
	}
	if code, body, _ = a.do("GET", "/api/v1/clusters/?status=foo", "alice", ""); code != 422 || body != `{"error":"'foo' is not a valid ClusterStatus"}` {
		t.Fatalf("bad status = %d %s", code, body)
	}
	if code, _, _ = a.do("DELETE", "/api/v1/clusters/"+name, "alice", ""); code != 204 {
		t.Fatalf("delete = %d", code)
	}
	if code, body, _ = a.do("GET", "/api/v1/clusters/", "alice", ""); body != "{}" {
		t.Fatalf("list after delete = %d %s", code, body)
	}
}

func TestPermissions(t *testing.T) {
	a := newAPI(t, nil)
	name := a.create("alice")
	cases := []struct{ method, path, want string }{
		{"GET", "/api/v1/clusters/" + name, "User bob lacks permissions to view cluster " + name},
		{"DELETE", "/api/v1/clusters/" + name, "User bob lacks permissions to stop cluster " + name},
		{"POST", "/api/v1/clusters/" + name + "/scale", "User bob lacks permissions to view cluster " + name},
		{"POST", "/api/v1/clusters/" + name + "/adapt", "User bob lacks permissions to view cluster " + name},
	}
	for _, c := range cases {
		code, body, _ := a.do(c.method, c.path, "bob", `{"count": 1}`)
		if code != 403 || body != `{"error":"`+c.want+`"}` {
			t.Errorf("%s %s = %d %s", c.method, c.path, code, body)
		}
	}
	if _, body, _ := a.do("GET", "/api/v1/clusters/?status=PENDING", "bob", ""); body != "{}" {
		t.Errorf("bob lists %s", body)
	}
	if code, body, _ := a.do("GET", "/api/v1/clusters/nope", "bob", ""); code != 404 || body != `{"error":"Cluster nope not found"}` {
		t.Errorf("unknown = %d %s", code, body)
	}
	if code, _, _ := a.do("DELETE", "/api/v1/clusters/nope", "bob", ""); code != 204 {
		t.Errorf("delete unknown = %d", code)
	}
}

func TestCreateValidation(t *testing.T) {
	set, _ := options.New([]options.Field{
		{Field: "worker_cores", Type: options.Int, Default: json.RawMessage("1"), Max: options.Num("4")},
		{Field: "scheduler_memory", Type: options.String, Default: json.RawMessage(`"1 G"`)},
	})
	a := newAPI(t, func(c *Config) {
		limit := cluster.Memory(3 << 30)
		c.ClusterConfig.ClusterMaxMemory, c.Options = &limit, StaticOptions{Set: set}
	})
	cases := map[string]string{
		`{"cluster_options": {"worker_cores": 9}}`:         "worker_cores must be <= 4.000000, got 9",
		`{"cluster_options": {"worker_cores": "2"}}`:       "worker_cores must be an integer, got '2'",
		`{"cluster_options": {"bogus": 1}}`:                "Unknown fields ['bogus']",
		`{"cluster_options": [1]}`:                         "options must be a dict, got 'list'",
		`{"cluster_options": {"scheduler_memory": "4 G"}}`: "Scheduler memory request of 4.00 GiB exceeds cluster memory limit of 3.00 GiB",
		`{"cluster_options": {"scheduler_memory": "4"}}`:   `invalid value for scheduler_memory: memory \"4\" must end in one of K, M, G, T`,
		`not json`: "request body must be a JSON object",
	}
	for body, want := range cases {
		code, got, _ := a.do("POST", "/api/v1/clusters/", "alice", body)
		if code != 422 || !strings.Contains(got, want) {
			t.Errorf("POST %s = %d %s, want 422 %q", body, code, got, want)
		}
	}
}

func TestTokenRoutes(t *testing.T) {
	a := newAPI(t, nil)
	name := a.create("alice")
	hb := `{"scheduler_address":"tls://x:1","dashboard_address":"","api_address":"http://x:2","count":1,"active_workers":[],"closing_workers":[],"closed_workers":[]}`
	for _, user := range []string{"", "alice", "token:wrong"} {
		code, body, h := a.do("POST", "/api/v1/clusters/"+name+"/heartbeat", user, hb)
		if code != 401 || body != `{"error":"Unauthorized"}` || h.Get("WWW-Authenticate") != "token" {
			t.Errorf("heartbeat as %q = %d %s", user, code, body)
		}
	}
	if code, body, _ := a.do("POST", "/api/v1/clusters/"+name+"/heartbeat", "token:tok-alice", hb); code != 200 || body != "" || len(a.be.hbs) != 1 {
		t.Fatalf("heartbeat = %d %s", code, body)
	}
	if code, _, h := a.do("DELETE", "/api/v1/clusters/"+name, "token:wrong", ""); code != 401 || h.Get("WWW-Authenticate") != "Basic" {
		t.Fatalf("delete with wrong token = %d", code)
	}
	if code, _, _ := a.do("DELETE", "/api/v1/clusters/"+name, "token:tok-alice", ""); code != 204 || a.be.stopped[name] == "" {
		t.Fatalf("delete with token = %d", code)
	}
}

func TestScaleAndAdapt(t *testing.T) {
	var got []string
	sched := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "token tok-alice" || r.URL.Path != "/api/comm" {
			w.WriteHeader(403)
			return
		}
		b, _ := io.ReadAll(r.Body)
		got = append(got, string(b))
	}))
	defer sched.Close()
	a := newAPI(t, func(c *Config) { two := 2; c.ClusterConfig.ClusterMaxWorkers = &two })
	name := a.create("alice")
	path := "/api/v1/clusters/" + name
	if code, body, _ := a.do("POST", path+"/scale", "alice", `{"count": 1}`); code != 409 || body != `{"error":"cluster `+name+` is not running"}` {
		t.Fatalf("scale pending = %d %s", code, body)
	}
	a.be.set(name, func(c *cluster.Cluster) { c.Status, c.APIAddress = cluster.Running, sched.URL })
	for _, bad := range []string{`{"count": -1}`, `{"count": 1.5}`, `{"count": null}`, `{}`} {
		if code, body, _ := a.do("POST", path+"/scale", "alice", bad); code != 422 || !strings.Contains(body, "Scale expects a non-negative integer, got ") {
			t.Errorf("scale %s = %d %s", bad, code, body)
		}
	}
	cases := []struct{ route, body, reply, sent string }{
		{"scale", `{"count": 1}`, `{"ok":true,"msg":null}`, `{"count":1,"op":"scale"}`},
		{"scale", `{"count": 5}`, `{"ok":false,"msg":"Scale request of 5 workers would exceed resource limit of 2 workers. Scaling to 2 instead."}`, `{"count":2,"op":"scale"}`},
		{"adapt", `{"minimum": null, "maximum": 5, "active": true}`, "{\"ok\":false,\"msg\":\"Adapt with `maximum=5, minimum=0` workers would exceed resource limit of 2 workers. Using `maximum=2, minimum=0` instead.\"}", `{"active":true,"maximum":2,"minimum":0,"op":"adapt"}`},
		{"adapt", `{"minimum": 1, "maximum": null, "active": false}`, `{"ok":true,"msg":null}`, `{"active":false,"maximum":2,"minimum":1,"op":"adapt"}`},
	}
	for i, c := range cases {
		code, body, _ := a.do("POST", path+"/"+c.route, "alice", c.body)
		if code != 200 || body != c.reply || got[i] != c.sent {
			t.Errorf("%s %s = %d %s, sent %s", c.route, c.body, code, body, got[i])
		}
	}
	sched.Close()
	if code, _, _ := a.do("POST", path+"/scale", "alice", `{"count": 1}`); code != 409 || !strings.Contains(a.be.stopped[name], "scheduler unreachable") {
		t.Fatalf("unreachable scheduler = %d, stop reason %q", code, a.be.stopped[name])
	}
}

func TestMetrics(t *testing.T) {
	a := newAPI(t, nil)
	a.create("alice")
	_, body, _ := a.do("GET", "/metrics", "", "")
	for _, want := range []string{`daskgate_http_requests_total{code="201",method="POST",route="create"} 1`,
		`daskgate_clusters{status="PENDING"}`, `daskgate_cluster_start_seconds_bucket`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

type quota struct{ max int }

func (q quota) Authorize(_ context.Context, req cluster.AuthzRequest) (bool, string, error) {
	if req.Action == cluster.ActionCreate && req.Usage.Clusters >= q.max {
		return false, "Quota exceeded", nil
	}
	return true, "", nil
}

// TestQuotaIsAtomic: N parallel creates against a limit of k give exactly k.
func TestQuotaIsAtomic(t *testing.T) {
	const n, k = 24, 3
	a := newAPI(t, func(c *Config) { c.Authorizer = quota{max: k} })
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			code, body, _ := a.do("POST", "/api/v1/clusters/", "alice", `{}`)
			if code == 422 && body != `{"error":"Quota exceeded"}` {
				t.Errorf("denial body %s", body)
			}
			codes <- code
		})
	}
	wg.Wait()
	close(codes)
	created := 0
	for c := range codes {
		if c == 201 {
			created++
		}
	}
	if created != k {
		t.Fatalf("created %d clusters with a quota of %d", created, k)
	}
	if code, _, _ := a.do("POST", "/api/v1/clusters/", "bob", `{}`); code != 201 {
		t.Fatalf("another user's quota is separate: %d", code)
	}
}

type noAnonymous struct{}

func (noAnonymous) Authorize(_ context.Context, req cluster.AuthzRequest) (bool, string, error) {
	if req.Action == cluster.ActionDashboard && req.User.Name == "" {
		return false, "log in first", nil
	}
	return req.Cluster == nil || req.Cluster.Username == req.User.Name, "", nil
}

func TestAuthorizeDashboard(t *testing.T) {
	open := newAPI(t, nil)
	s, _ := New(Config{Backend: open.be, Auth: auth.NewSimple(""), ClusterConfig: cluster.DefaultConfig()})
	name := open.create("alice")
	decide := func(s *Server, r *http.Request, name string) (bool, int, string) {
		w := httptest.NewRecorder()
		ok := s.AuthorizeDashboard(w, r, name)
		var body map[string]string
		json.Unmarshal(w.Body.Bytes(), &body)
		return ok, w.Code, body["error"]
	}
	anon := httptest.NewRequest("GET", "/clusters/"+name+"/status", nil)
	if ok, _, _ := decide(s, anon, name); !ok {
		t.Fatal("upstream default: dashboards are open")
	}
	if ok, code, _ := decide(s, anon, "nope"); ok || code != 404 {
		t.Fatalf("unknown cluster: %v %d", ok, code)
	}
	strict, _ := New(Config{Backend: open.be, Auth: auth.NewSimple(""), ClusterConfig: cluster.DefaultConfig(), Authorizer: noAnonymous{}})
	if ok, code, msg := decide(strict, anon, name); ok || code != 403 || msg != "log in first" {
		t.Fatalf("anonymous under policy: %v %d %q", ok, code, msg)
	}
	withCreds := httptest.NewRequest("GET", "/clusters/"+name+"/status", nil)
	withCreds.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:")))
	if ok, _, _ := decide(strict, withCreds, name); !ok {
		t.Fatal("the owner with credentials is allowed")
	}
}
