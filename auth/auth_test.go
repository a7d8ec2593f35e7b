package auth

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

func basic(user, pass string) *http.Request {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	return r
}

func TestSimple(t *testing.T) {
	open, locked := NewSimple(""), NewSimple("s3cret")
	noHeader := httptest.NewRequest("GET", "/", nil)
	noSpace := httptest.NewRequest("GET", "/", nil)
	noSpace.Header.Set("Authorization", "Basic")
	tests := []struct {
		name string
		a    *Simple
		r    *http.Request
		user string
	}{
		{"any password", open, basic("alice", "whatever"), "alice"},
		{"odd names kept", open, basic("alice@non-alpha.characters", ""), "alice@non-alpha.characters"},
		{"colon in password", locked, basic("bob", "s3cret"), "bob"},
		{"wrong password", locked, basic("bob", "nope"), ""},
		{"no header", open, noHeader, ""},
		{"no space", open, noSpace, ""},
		{"other scheme", open, func() *http.Request { r := basic("a", ""); r.Header.Set("Authorization", "token abc"); return r }(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tt.a.Authenticate(tt.r)
			if tt.user == "" {
				if !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("err = %v, want ErrUnauthorized", err)
				}
				return
			}
			if err != nil || u.Name != tt.user {
				t.Fatalf("got %v, %v", u, err)
			}
		})
	}
}

func TestSessions(t *testing.T) {
	s := NewSessions(SessionsConfig{MaxAge: time.Minute, Path: "/services/dask-gateway/"})
	now := time.Unix(1000, 0)
	s.now = func() time.Time { return now }
	w := httptest.NewRecorder()
	userAlice := cluster.User{Name: "alice", Groups: []string{"g"}}
	plain := httptest.NewRequest("GET", "/", nil)
	s.Issue(w, plain, &userAlice)
	cookie := w.Header().Get("Set-Cookie")
	for _, attr := range []string{"Path=/services/dask-gateway/", "Max-Age=120", "HttpOnly", "SameSite=Lax"} {
		if !strings.Contains(cookie, attr) {
			t.Errorf("cookie %q lacks %s", cookie, attr)
		}
	}
	if strings.Contains(cookie, "Secure") || !strings.HasPrefix(cookie, s.name+"=") {
		t.Fatalf("cookie %q", cookie)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Cookie", strings.Split(cookie, ";")[0])
	if u := s.Lookup(r); u == nil || u.Name != "alice" {
		t.Fatalf("lookup = %v", u)
	}
	w2 := httptest.NewRecorder()
	s.Issue(w2, plain, &userAlice)
	if w2.Header().Get("Set-Cookie") != cookie {
		t.Fatal("a second login should reuse the session")
	}
	overTLS := httptest.NewRequest("GET", "https://gw/", nil)
	forwarded := httptest.NewRequest("GET", "/", nil)
	forwarded.Header.Set("X-Forwarded-Proto", "https")
	for _, req := range []*http.Request{overTLS, forwarded} {
		w3 := httptest.NewRecorder()
		s.Issue(w3, req, &userAlice)
		if !strings.Contains(w3.Header().Get("Set-Cookie"), "Secure") {
			t.Errorf("cookie over TLS not Secure: %q", w3.Header().Get("Set-Cookie"))
		}
	}
	now = now.Add(61 * time.Second)
	if u := s.Lookup(r); u != nil {
		t.Fatal("expired session accepted")
	}
	forged := httptest.NewRequest("GET", "/", nil)
	forged.Header.Set("Cookie", s.name+"=deadbeef")
	if s.Lookup(forged) != nil {
		t.Fatal("unknown session accepted")
	}
}

// An attacker minting user names (simple auth without a password) cannot
// grow the session table without bound.
func TestSessionsAreBounded(t *testing.T) {
	s := NewSessions(SessionsConfig{Max: 100})
	r := httptest.NewRequest("GET", "/", nil)
	for i := range 10000 {
		s.Issue(httptest.NewRecorder(), r, &cluster.User{Name: "u" + strconv.Itoa(i)})
	}
	if len(s.byID) > 100 || len(s.byUser) > 100 {
		t.Fatalf("%d sessions, %d users held; bound 100", len(s.byID), len(s.byUser))
	}
}

func TestTokenEqual(t *testing.T) {
	if !TokenEqual("abc", "abc") || TokenEqual("abc", "abd") || TokenEqual("", "") {
		t.Fatal("TokenEqual is wrong")
	}
}
