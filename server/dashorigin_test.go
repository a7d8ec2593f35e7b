package server

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/cluster"
)

// TestDashboardOriginHandOff: with dashboards on their own origin, the
// API's origin hands a signed-in browser over with a one-minute ticket
// bound to the cluster; the dashboard origin turns it into a cookie for
// that cluster's path only, and refuses forged, expired, foreign-cluster
// and cookie-as-ticket values, and open redirects.
func TestDashboardOriginHandOff(t *testing.T) {
	a := newAPI(t, nil)
	sessions := auth.NewSessions(auth.SessionsConfig{Path: "/p/"})
	s, _ := New(Config{Backend: a.be, Auth: auth.NewSimple(""), ClusterConfig: cluster.DefaultConfig(), Sessions: sessions,
		Login: fakeLogin{}, Prefix: "/p", DashboardOrigins: &DashboardOrigins{Dashboard: "http://dash.test", API: "http://api.test"}})
	name, other := a.create("alice"), a.create("bob")

	// No dashboard cookie on the dashboard origin: to the API's origin.
	w := httptest.NewRecorder()
	if s.DashboardGate(w, httptest.NewRequest("GET", "http://dash.test/p/clusters/"+name+"/status", nil), name, "/status") {
		t.Fatal("served without a cookie")
	}
	if w.Code != 302 || w.Header().Get("Location") != "http://api.test/p/clusters/"+name+"/status" {
		t.Fatalf("to sign in: %d %v", w.Code, w.Header())
	}
	// Signed in on the API's origin: a ticket for this cluster.
	r := httptest.NewRequest("GET", "http://api.test/p/clusters/"+name+"/status", nil)
	iw := httptest.NewRecorder()
	sessions.Issue(iw, r, &cluster.User{Name: "alice", Groups: []string{}})
	for _, c := range iw.Result().Cookies() {
		r.AddCookie(c)
	}
	w = httptest.NewRecorder()
	if s.AuthorizeDashboard(w, r, name) {
		t.Fatal("a dashboard was let through on the API's origin")
	}
	loc, _ := url.Parse(w.Header().Get("Location"))
	ticket := loc.Query().Get("t")
	if w.Code != 302 || loc.Host != "dash.test" || loc.Path != "/p/clusters/"+name+"/_daskgate/ticket" || ticket == "" {
		t.Fatalf("hand-off: %d %v", w.Code, loc)
	}
	redeem := func(name, t, next string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		q := url.Values{"t": {t}, "next": {next}}.Encode()
		s.DashboardGate(w, httptest.NewRequest("GET", "http://dash.test/p/clusters/"+name+"/_daskgate/ticket?"+q, nil), name, "/_daskgate/ticket")
		return w
	}
	for what, w := range map[string]*httptest.ResponseRecorder{
		"forged":           redeem(name, ticket[:len(ticket)-2]+"xx", "/p/clusters/"+name+"/status"),
		"another cluster":  redeem(other, ticket, "/p/clusters/"+other+"/status"),
		"open redirect":    redeem(name, ticket, "https://evil.test/"),
		"another path":     redeem(name, ticket, "/p/clusters/"+other+"/status"),
		"scheme-relative":  redeem(name, ticket, "/p/clusters/"+name+"//evil.test"),
		"expired":          redeem(name, s.sign(dashGrant{Kind: "ticket", Cluster: name, User: "alice", Expires: time.Now().Add(-time.Second).Unix()}), "/p/clusters/"+name+"/"),
		"cookie as ticket": redeem(name, s.sign(dashGrant{Kind: "cookie", Cluster: name, User: "alice", Expires: time.Now().Add(time.Minute).Unix()}), "/p/clusters/"+name+"/"),
	} {
		if w.Code != http.StatusForbidden || len(w.Result().Cookies()) != 0 {
			t.Errorf("%s: %d %v", what, w.Code, w.Header())
		}
	}
	w = redeem(name, ticket, "/p/clusters/"+name+"/status")
	cookies := w.Result().Cookies()
	if w.Code != 302 || w.Header().Get("Location") != "/p/clusters/"+name+"/status" || len(cookies) != 1 {
		t.Fatalf("redeem: %d %v", w.Code, w.Header())
	}
	c := cookies[0]
	if c.Name != "daskgate-dash" || c.Path != "/p/clusters/"+name+"/" || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode {
		t.Fatalf("dashboard cookie %+v", c)
	}
	// The dashboard root without its slash is a place to return to too.
	if w := redeem(name, ticket, "/p/clusters/"+name); w.Code != 302 {
		t.Errorf("redeem to the root without a slash: %d %s", w.Code, w.Body)
	}
	// A frame never gets a hand-over (a page on the dashboard origin would
	// read what it loads), and the answer forbids framing.
	fr := httptest.NewRequest("GET", "http://api.test/p/clusters/"+name+"/status", nil)
	fr.Header.Set("Sec-Fetch-Dest", "iframe")
	for _, ck := range iw.Result().Cookies() {
		fr.AddCookie(ck)
	}
	w = httptest.NewRecorder()
	s.AuthorizeDashboard(w, fr, name)
	if w.Code != http.StatusForbidden || w.Header().Get("Content-Security-Policy") != "frame-ancestors 'none'" {
		t.Errorf("hand-off into a frame: %d %v", w.Code, w.Header())
	}
	// Credentials sent with the request (no session) get a ticket too.
	br := httptest.NewRequest("GET", "http://api.test/p/clusters/"+name+"/status", nil)
	br.SetBasicAuth("alice", "x")
	w = httptest.NewRecorder()
	s.AuthorizeDashboard(w, br, name)
	if loc, _ := url.Parse(w.Header().Get("Location")); w.Code != 302 || loc.Query().Get("t") == "" {
		t.Errorf("hand-off with Basic credentials: %d %v", w.Code, w.Header())
	}
	// The cookie opens this cluster's dashboard, and no other.
	gate := func(name string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "http://dash.test/p/clusters/"+name+"/status", nil)
		r.AddCookie(c)
		if s.DashboardGate(w, r, name, "/status") {
			w.Code = 0 // served
		}
		return w
	}
	if w := gate(name); w.Code != 0 {
		t.Fatalf("alice's own dashboard: %d %s", w.Code, w.Body)
	}
	if w := gate(other); w.Code != 302 || !strings.HasPrefix(w.Header().Get("Location"), "http://api.test/") {
		t.Fatalf("bob's dashboard with alice's cookie: %d %v", w.Code, w.Header())
	}
}
