package server

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/cluster"
)

// DashboardOrigins puts dashboards on an origin of their own, so a page a
// cluster's owner writes never runs where the API's cookies are valid.
// Both are scheme://host[:port] as browsers see them, with different
// host names (cookies ignore ports).
type DashboardOrigins struct {
	// Dashboard serves dashboards only; API is where browsers sign in.
	Dashboard, API string
}

// dashCookie holds one cluster's dashboard access on the dashboard
// origin. Its path is that cluster's dashboard, and its name starts with
// the session prefix, so no dashboard ever sees it.
const dashCookie = auth.CookiePrefix + "dash"

// ticketTTL bounds the hand-over ticket, which travels in a URL.
const ticketTTL = time.Minute

// dashGrant is what a ticket or a dashboard cookie says, signed.
type dashGrant struct {
	Kind    string   `json:"k"` // "ticket" or "cookie": one is never the other
	Cluster string   `json:"c"`
	User    string   `json:"u"`
	Groups  []string `json:"g"`
	Admin   bool     `json:"a"`
	Expires int64    `json:"e"`
}

func newDashKey() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic(err)
	}
	return k
}

func (s *Server) sign(g dashGrant) string {
	b, _ := json.Marshal(g)
	m := hmac.New(sha256.New, s.dashKey)
	m.Write(b)
	return base64.RawURLEncoding.EncodeToString(b) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// verify checks v's signature, kind, cluster and expiry.
func (s *Server) verify(v, kind, name string) *dashGrant {
	body, sig, ok := strings.Cut(v, ".")
	if !ok {
		return nil
	}
	b, err1 := base64.RawURLEncoding.DecodeString(body)
	got, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil {
		return nil
	}
	m := hmac.New(sha256.New, s.dashKey)
	m.Write(b)
	if !hmac.Equal(got, m.Sum(nil)) {
		return nil
	}
	var g dashGrant
	if json.Unmarshal(b, &g) != nil || g.Kind != kind || g.Cluster != name || time.Now().Unix() >= g.Expires {
		return nil
	}
	return &g
}

func (s *Server) dashPath(name string) string { return s.cfg.Prefix + "/clusters/" + name + "/" }

// handOff answers an allowed dashboard request on the API's origin when
// dashboards live on their own: to the same page there, with a one-minute
// ticket when the visitor u is known. Never inside a frame: a page on the
// dashboard origin could otherwise frame another cluster's hand-off and
// read what it loads, same-origin.
func (s *Server) handOff(w http.ResponseWriter, r *http.Request, name string, u *cluster.User) {
	o := s.cfg.DashboardOrigins
	w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "Dashboards are served at " + o.Dashboard})
		return
	}
	switch r.Header.Get("Sec-Fetch-Dest") {
	case "iframe", "frame", "embed", "object":
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "Open the dashboard in its own tab: " + o.Dashboard + r.URL.RequestURI()})
		return
	}
	target := o.Dashboard + r.URL.RequestURI()
	if u != nil {
		t := s.sign(dashGrant{Kind: "ticket", Cluster: name, User: u.Name, Groups: u.Groups, Admin: u.Admin,
			Expires: time.Now().Add(ticketTTL).Unix()})
		target = o.Dashboard + s.dashPath(name) + "_daskgate/ticket?" + url.Values{"t": {t}, "next": {r.URL.RequestURI()}}.Encode()
	}
	http.Redirect(w, r, target, http.StatusFound)
}

// DashboardGate decides a request on the dashboard origin: the ticket
// route sets the cluster's dashboard cookie; a request with the cookie is
// that user; without one, dashboards that need sign-in send the browser
// to the API's origin to sign in (and come back with a ticket), and open
// ones are decided for an anonymous visitor.
func (s *Server) DashboardGate(w http.ResponseWriter, r *http.Request, name, rest string) bool {
	if rest == "/_daskgate/ticket" {
		s.redeemTicket(w, r, name)
		return false
	}
	var u *cluster.User
	if c, err := r.Cookie(dashCookie); err == nil {
		if g := s.verify(c.Value, "cookie", name); g != nil {
			u = &cluster.User{Name: g.User, Groups: g.Groups, Admin: g.Admin}
		}
	}
	if u == nil && s.cfg.Login != nil {
		if r.Method == http.MethodGet {
			http.Redirect(w, r, s.cfg.DashboardOrigins.API+r.URL.RequestURI(), http.StatusFound)
		} else {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "Sign in to open this dashboard"})
		}
		return false
	}
	ok, code, msg := s.decideDashboard(r, u, name)
	if !ok {
		writeJSON(w, code, map[string]string{"error": msg})
	}
	return ok
}

func (s *Server) redeemTicket(w http.ResponseWriter, r *http.Request, name string) {
	g := s.verify(r.URL.Query().Get("t"), "ticket", name)
	next := r.URL.Query().Get("next")
	inside := next == strings.TrimSuffix(s.dashPath(name), "/") || strings.HasPrefix(next, s.dashPath(name))
	if g == nil || !inside || strings.Contains(next, "//") {
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "Invalid or expired dashboard ticket: open the dashboard link again"})
		return
	}
	maxAge := s.cfg.Sessions.MaxAge()
	g.Kind, g.Expires = "cookie", time.Now().Add(maxAge).Unix()
	http.SetCookie(w, &http.Cookie{Name: dashCookie, Value: s.sign(*g), Path: s.dashPath(name), MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(s.cfg.DashboardOrigins.Dashboard, "https://")})
	http.Redirect(w, r, next, http.StatusFound)
}
