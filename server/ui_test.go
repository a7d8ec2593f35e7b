package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/cluster"
)

// uiToken fetches the page as user and returns the CSRF token in it.
func uiToken(t *testing.T, a *apiFixture, user string) string {
	t.Helper()
	code, body, h := a.do("GET", "/ui/", user, "")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("page = %d %s", code, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("page CSP %q", csp)
	}
	m := regexp.MustCompile(`name="csrf-token" content="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no token in the page:\n%s", body)
	}
	return m[1]
}

// uiDo sends a page request as user with the given CSRF token ("" none).
func uiDo(t *testing.T, a *apiFixture, method, path, user, token, body string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, a.url+path, strings.NewReader(body))
	req.SetBasicAuth(user, "")
	if token != "" {
		req.Header.Set(csrfHeader, token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestUIPageNeedsLogin(t *testing.T) {
	a := newAPI(t, func(c *Config) { c.UI = true })
	code, _, h := a.do("GET", "/ui/", "", "")
	if code != 401 || h.Get("WWW-Authenticate") != "Basic" {
		t.Fatalf("page without credentials = %d %q, want 401 Basic", code, h.Get("WWW-Authenticate"))
	}
	if code, _, _ := a.do("GET", "/ui/api/state", "", ""); code != 401 {
		t.Fatalf("state without credentials = %d", code)
	}
	// With hub sign-in, a browser is sent to the hub instead.
	b := newAPI(t, func(c *Config) { c.UI, c.Login, c.Prefix = true, fakeLogin{}, "/p" })
	req, _ := http.NewRequest("GET", b.url+"/ui/", nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || !strings.HasPrefix(resp.Header.Get("Location"), "/hub/api/oauth2/authorize") {
		t.Fatalf("page without session = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The sign-in comes back to the page, under the prefix.
	if c := resp.Header.Get("Set-Cookie"); !strings.Contains(c, "."+base64URL("/p/ui/")) {
		t.Fatalf("login cookie %q does not return to /p/ui/", c)
	}
}

func TestUIOff(t *testing.T) {
	a := newAPI(t, nil)
	for _, p := range []string{"/ui/", "/ui/static/app.js", "/ui/api/state"} {
		if code, _, _ := a.do("GET", p, "alice", ""); code != 404 {
			t.Errorf("%s with the page off = %d, want 404", p, code)
		}
	}
}

func TestUIStatic(t *testing.T) {
	a := newAPI(t, func(c *Config) { c.UI = true })
	for p, ct := range map[string]string{"/ui/static/app.js": "text/javascript", "/ui/static/style.css": "text/css"} {
		code, _, h := a.do("GET", p, "", "")
		if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), ct) || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s = %d %q", p, code, h.Get("Content-Type"))
		}
	}
	for _, p := range []string{"/ui/static/index.html", "/ui/static/..%2fui.go", "/ui/static/nope.js"} {
		if code, _, _ := a.do("GET", p, "", ""); code != 404 {
			t.Errorf("%s = %d, want 404", p, code)
		}
	}
}

// The attacker's tests: a change without the page's token, with another
// user's token, or from another site is refused and changes nothing.
func TestUIChangesNeedTheToken(t *testing.T) {
	a := newAPI(t, func(c *Config) { c.UI = true })
	alice, bob := uiToken(t, a, "alice"), uiToken(t, a, "bob")
	if alice == bob {
		t.Fatal("two users got one token")
	}
	create := `{"cluster_options": {"worker_cores": 2}}`
	for _, tc := range []struct {
		name, token string
		hdr         []string
	}{
		{"no token", "", nil},
		{"bob's token", bob, nil},
		{"forged", strings.Repeat("A", len(alice)), nil},
		{"cross-site", alice, []string{"Sec-Fetch-Site", "cross-site"}},
		{"foreign origin", alice, []string{"Origin", "https://evil.example"}},
	} {
		if code, body := uiDo(t, a, "POST", "/ui/api/clusters", "alice", tc.token, create, tc.hdr...); code != 403 {
			t.Errorf("%s: create = %d %s, want 403", tc.name, code, body)
		}
	}
	if n := len(a.be.clusters); n != 0 {
		t.Fatalf("%d clusters created by refused requests", n)
	}
	code, body := uiDo(t, a, "POST", "/ui/api/clusters", "alice", alice, create, "Sec-Fetch-Site", "same-origin")
	if code != 201 {
		t.Fatalf("create with the token = %d %s", code, body)
	}
	var out struct{ Name string }
	_ = json.Unmarshal([]byte(body), &out)
	stop := "/ui/api/clusters/" + out.Name + "/stop"
	if code, _ := uiDo(t, a, "POST", stop, "alice", "", ""); code != 403 {
		t.Errorf("stop without the token = %d", code)
	}
	if code, _ := uiDo(t, a, "POST", stop, "bob", bob, ""); code != 403 {
		t.Errorf("bob stopping alice's cluster = %d", code)
	}
	if c, _ := a.be.Get(t.Context(), out.Name); c.Status != cluster.Pending {
		t.Fatalf("cluster %s after refused stops", c.Status)
	}
	if code, body := uiDo(t, a, "POST", stop, "alice", alice, ""); code != 204 {
		t.Fatalf("stop = %d %s", code, body)
	}
	a.be.mu.Lock()
	reason := a.be.stopped[out.Name]
	a.be.mu.Unlock()
	if reason != "stopped by alice from the web page" {
		t.Fatalf("stop reason %q", reason)
	}
}

func TestUIState(t *testing.T) {
	act := cluster.Activity{Clients: 2, IdleSince: time.UnixMilli(1000), LastClient: time.UnixMilli(2000)}
	a := newAPI(t, func(c *Config) {
		c.UI = true
		c.Activity = func(string) (cluster.Activity, bool) { return act, true }
	})
	mine, theirs := a.create("alice"), a.create("bob")
	a.be.set(mine, func(c *cluster.Cluster) {
		c.Status, c.DashboardAddress, c.Workers = cluster.Running, "http://127.0.0.1:1", 3
	})
	old := a.create("alice")
	a.be.set(old, func(c *cluster.Cluster) {
		c.Status, c.StopTime, c.Reason = cluster.Stopped, time.Now().UnixMilli(), "no client connected for 5m0s (last_client_timeout)"
	})
	code, body := uiDo(t, a, "GET", "/ui/api/state", "alice", "", "")
	if code != 200 {
		t.Fatalf("state = %d %s", code, body)
	}
	var st uiState
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.User.Name != "alice" || len(st.Clusters) != 2 || st.Usage.Clusters != 1 {
		t.Fatalf("state %+v", st)
	}
	byName := map[string]uiCluster{}
	for _, c := range st.Clusters {
		byName[c.Name] = c
	}
	if _, ok := byName[theirs]; ok {
		t.Fatal("alice sees bob's cluster")
	}
	c := byName[mine]
	if c.Workers != 3 || c.Cores != 1+3*2 || c.Dashboard != "/clusters/"+mine+"/status" || c.Clients == nil || *c.Clients != 2 ||
		c.IdleSince != 1000 || !c.CanScale || !c.CanStop || string(c.Options) != `{"worker_cores":2}` {
		t.Fatalf("running cluster %+v", c)
	}
	if o := byName[old]; o.Reason == "" || o.Workers != 0 {
		t.Fatalf("finished cluster %+v", o)
	}
}

// sharing lets admins view and stop every cluster and states a quota.
type sharing struct{ OwnerOnly }

func (s sharing) Authorize(ctx context.Context, req cluster.AuthzRequest) (bool, string, error) {
	if req.User.Admin && req.Action != cluster.ActionScale {
		return true, "", nil
	}
	return s.OwnerOnly.Authorize(ctx, req)
}

func (sharing) Quota(_ context.Context, u *cluster.User, usage cluster.Usage) (map[string]any, error) {
	return map[string]any{"clusters": 2, "seen_usage": usage.Clusters}, nil
}

func TestUIStateFollowsPolicy(t *testing.T) {
	a := newAPI(t, func(c *Config) {
		c.UI, c.Authorizer = true, sharing{}
		c.Auth = adminAuth{}
	})
	theirs := a.create("bob")
	code, body := uiDo(t, a, "GET", "/ui/api/state", "root", "", "")
	var st uiState
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("state = %d %s", code, body)
	}
	if len(st.Clusters) != 1 || st.Clusters[0].Name != theirs || st.Clusters[0].Owner != "bob" ||
		!st.Clusters[0].CanStop || st.Clusters[0].CanScale {
		t.Fatalf("the admin's view: %+v", st.Clusters)
	}
	if st.Quota["clusters"] != float64(2) || st.Quota["seen_usage"] != float64(0) {
		t.Fatalf("quota %v", st.Quota)
	}
}

// adminAuth is Basic auth where "root" is an admin.
type adminAuth struct{}

func (adminAuth) Scheme() string { return "Basic" }

func (adminAuth) Authenticate(r *http.Request) (*cluster.User, error) {
	u, err := auth.NewSimple("").Authenticate(r)
	if err == nil {
		u.Admin = u.Name == "root"
	}
	return u, err
}
