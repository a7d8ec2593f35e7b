package server

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/cluster"
)

// fakeLogin is a hub that knows one code, "good", for alice.
type fakeLogin struct{}

func (fakeLogin) LoginURL(state string) string { return "/hub/api/oauth2/authorize?state=" + state }

func (fakeLogin) Exchange(_ context.Context, code string) (*cluster.User, error) {
	if code != "good" {
		return nil, auth.ErrUnauthorized
	}
	return &cluster.User{Name: "alice", Groups: []string{}}, nil
}

func TestDashboardSignIn(t *testing.T) {
	a := newAPI(t, nil)
	// The default rule: with sign-in, dashboards are the owner's and admins'.
	s, _ := New(Config{Backend: a.be, Auth: auth.NewSimple(""), ClusterConfig: cluster.DefaultConfig(),
		Login: fakeLogin{}, Prefix: "/services/dask-gateway"})
	name := a.create("alice")
	dash := "/services/dask-gateway/clusters/" + name + "/status?x=1"

	// 1. No session: to the hub, with state in a cookie.
	w := httptest.NewRecorder()
	if s.AuthorizeDashboard(w, httptest.NewRequest("GET", dash, nil), name) {
		t.Fatal("an anonymous browser was let in")
	}
	loc, _ := url.Parse(w.Header().Get("Location"))
	state := loc.Query().Get("state")
	var loginCookie *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == "daskgate-login" {
			loginCookie = c
		}
	}
	if w.Code != 302 || loc.Path != "/hub/api/oauth2/authorize" || state == "" || loginCookie == nil ||
		!loginCookie.HttpOnly || loginCookie.Path != "/services/dask-gateway/" {
		t.Fatalf("sign-in redirect: %d %v %+v", w.Code, loc, loginCookie)
	}
	callback := func(state, code string, cookie *http.Cookie) *httptest.ResponseRecorder {
		r := httptest.NewRequest("GET", "/oauth_callback?state="+state+"&code="+code, nil)
		if cookie != nil {
			r.AddCookie(cookie)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	// 2. Forged or missing state, or a code the hub refuses: no session.
	for what, w := range map[string]*httptest.ResponseRecorder{
		"wrong state": callback("forged", "good", loginCookie),
		"no cookie":   callback(state, "good", nil),
		"bad code":    callback(state, "bad", loginCookie),
	} {
		if w.Code < 400 || strings.Contains(w.Header().Get("Set-Cookie"), s.cfg.Sessions.Name()) {
			t.Errorf("%s: %d %v", what, w.Code, w.Header())
		}
	}
	// 3. The real callback: a session, and back to the dashboard asked for.
	w = callback(state, "good", loginCookie)
	if w.Code != 302 || w.Header().Get("Location") != dash {
		t.Fatalf("callback: %d %v %s", w.Code, w.Header(), w.Body)
	}
	var session *http.Cookie
	for _, c := range w.Result().Cookies() {
		if c.Name == s.cfg.Sessions.Name() {
			session = c
		}
	}
	r := httptest.NewRequest("GET", dash, nil)
	r.AddCookie(session)
	if !s.AuthorizeDashboard(httptest.NewRecorder(), r, name) {
		t.Fatal("the signed-in owner is refused her dashboard")
	}
	// 4. Someone else's cluster: signed in, but policy says no.
	other := a.create("bob")
	w = httptest.NewRecorder()
	r = httptest.NewRequest("GET", "/services/dask-gateway/clusters/"+other+"/status", nil)
	r.AddCookie(session)
	if s.AuthorizeDashboard(w, r, other) || w.Code != 403 {
		t.Fatalf("alice on bob's dashboard: %d", w.Code)
	}
}

func TestSignInReturnsOnlyToDashboards(t *testing.T) {
	s := &Server{cfg: Config{Prefix: "/p"}}
	enc := func(s string) string { return base64URL(s) }
	for next, want := range map[string]string{
		"/p/clusters/x/status": "/p/clusters/x/status",
		"//evil.example/":      "/p/",
		"https://evil.example": "/p/",
		"/p/api/v1/clusters/":  "/p/",
		"/p/clusters/x\r\nX:1": "/p/",
		"/p/ui/":               "/p/ui/",
		"/p/ui/../api/v1/x":    "/p/",
	} {
		if got := s.returnTo(enc(next)); got != want {
			t.Errorf("returnTo(%q) = %q, want %q", next, got, want)
		}
	}
	if got := s.returnTo("!!"); got != "/p/" {
		t.Errorf("undecodable: %q", got)
	}
}

func base64URL(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestLogoutEndsTheSession(t *testing.T) {
	a := newAPI(t, nil)
	_, _, h := a.do("GET", "/api/v1/clusters/", "alice", "")
	cookie := strings.Split(h.Get("Set-Cookie"), ";")[0]
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", a.url+path, nil)
		req.Header.Set("Cookie", cookie)
		return http.DefaultClient.Do(req)
	}
	resp, err := get("/logout")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("logout: %d %v", resp.StatusCode, resp.Header)
	}
	resp, err = get("/api/v1/clusters/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("the session still works after logout: %d", resp.StatusCode)
	}
}
