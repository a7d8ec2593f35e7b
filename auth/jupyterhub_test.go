package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeHub answers GET .../user like JupyterHub: tokens maps a token to
// the JSON of its owner's model; anything else is a 403.
func fakeHub(t *testing.T, tokens map[string]string) (*httptest.Server, *atomic.Int32, *atomic.Value) {
	var calls atomic.Int32
	var lastURI atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		lastURI.Store(r.RequestURI)
		model, ok := tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "token ")]
		switch {
		case model == "500":
			w.WriteHeader(500)
		case model == "418":
			w.WriteHeader(418)
		case !ok:
			w.WriteHeader(403)
		default:
			w.Write([]byte(model))
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls, &lastURI
}

func hubRequest(token string) *http.Request {
	r := httptest.NewRequest("GET", "/api/v1/clusters/", nil)
	if token != "" {
		r.Header.Set("Authorization", "jupyterhub "+token)
	}
	return r
}

func TestJupyterHub(t *testing.T) {
	hub, _, lastURI := fakeHub(t, map[string]string{
		"alice-tok":   `{"kind": "user", "name": "alice", "admin": false, "groups": ["bigmem"], "scopes": ["access:services!service=dask-gateway"]}`,
		"admin-tok":   `{"kind": "user", "name": "root", "admin": true, "scopes": ["access:services"]}`,
		"svc-tok":     `{"kind": "service", "name": "any-service", "scopes": ["access:services"]}`,
		"colon-tok":   `{"kind": "user", "name": "a:b", "scopes": ["access:services"]}`,
		"noscope-tok": `{"kind": "user", "name": "carol", "scopes": ["read:users"]}`,
		"other-tok":   `{"kind": "user", "name": "dave", "scopes": ["access:services!service=other"]}`,
		"down-tok":    "500",
		"teapot-tok":  "418",
	})
	// The URL is kept byte for byte, "@" and "%20" included.
	j, err := NewJupyterHub(JupyterHubConfig{APIURL: hub.URL + "/@/some%20path/hub/api", ServiceName: "dask-gateway", UseServiceAccessScopes: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		token, name string
		groups      []string
		admin       bool
		code        int // 0: success; 401: ErrUnauthorized; else *Error's code
	}{
		{"alice-tok", "alice", []string{"bigmem"}, false, 0},
		{"admin-tok", "root", []string{}, true, 0},
		{"svc-tok", "service:any-service", []string{}, false, 0},
		{"colon-tok", "user:a:b", []string{}, false, 0},
		{"noscope-tok", "", nil, false, 401},
		{"other-tok", "", nil, false, 401},
		{"unknown-tok", "", nil, false, 401},
		{"", "", nil, false, 401},
		{"down-tok", "", nil, false, 502},
		{"teapot-tok", "", nil, false, 500},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			u, err := j.Authenticate(hubRequest(tt.token))
			var ae *Error
			switch {
			case tt.code == 0 && err != nil:
				t.Fatal(err)
			case tt.code == 0 && (u.Name != tt.name || !slices.Equal(u.Groups, tt.groups) || u.Admin != tt.admin):
				t.Fatalf("user %+v, want %s %v admin=%v", u, tt.name, tt.groups, tt.admin)
			case tt.code == 401 && !errors.Is(err, ErrUnauthorized):
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			case tt.code > 401 && (!errors.As(err, &ae) || ae.Code != tt.code):
				t.Fatalf("err = %v, want an *Error with code %d", err, tt.code)
			}
		})
	}
	if got := lastURI.Load().(string); !strings.HasPrefix(got, "/@/some%20path/hub/api/user") {
		t.Errorf("hub saw %s: the configured URL was re-escaped", got)
	}
	// Basic credentials are not ours: 401, and the hub is not asked.
	r := httptest.NewRequest("GET", "/", nil)
	r.SetBasicAuth("alice", "x")
	if _, err := j.Authenticate(r); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Basic credentials: %v", err)
	}
}

func TestJupyterHubRevokedTokenStopsWithinTTL(t *testing.T) {
	tokens := map[string]string{"tok": `{"kind": "user", "name": "alice"}`}
	hub, calls, _ := fakeHub(t, tokens)
	j, _ := NewJupyterHub(JupyterHubConfig{APIURL: hub.URL, CacheTTL: time.Minute})
	now := time.Now()
	j.now = func() time.Time { return now }
	for range 3 {
		if _, err := j.Authenticate(hubRequest("tok")); err != nil {
			t.Fatal(err)
		}
	}
	if calls.Load() != 1 {
		t.Fatalf("hub asked %d times for one token within the TTL", calls.Load())
	}
	delete(tokens, "tok") // revoked in the hub
	now = now.Add(59 * time.Second)
	if _, err := j.Authenticate(hubRequest("tok")); err != nil {
		t.Fatalf("within the TTL the cached answer serves: %v", err)
	}
	now = now.Add(2 * time.Second)
	if _, err := j.Authenticate(hubRequest("tok")); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("revoked token after the TTL: %v, want ErrUnauthorized", err)
	}
}

func TestJupyterHubCacheIsBounded(t *testing.T) {
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"kind": "user", "name": "u"}`))
	}))
	defer hub.Close()
	j, _ := NewJupyterHub(JupyterHubConfig{APIURL: hub.URL, CacheSize: 50})
	for i := range 500 {
		if _, err := j.Authenticate(hubRequest("tok-" + string(rune('a'+i%26)) + strings.Repeat("x", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(j.cache); n > 50 {
		t.Fatalf("cache holds %d tokens, bound 50", n)
	}
}

func TestJupyterHubDownIsA502NotAHang(t *testing.T) {
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Second)
	}))
	defer hub.Close()
	j, _ := NewJupyterHub(JupyterHubConfig{APIURL: hub.URL, Client: &http.Client{Timeout: 200 * time.Millisecond}})
	t0 := time.Now()
	_, err := j.Authenticate(hubRequest("tok"))
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != 502 {
		t.Fatalf("slow hub: %v, want a 502", err)
	}
	if time.Since(t0) > time.Second {
		t.Fatalf("took %v", time.Since(t0))
	}
	closed := httptest.NewServer(nil)
	closed.Close()
	j, _ = NewJupyterHub(JupyterHubConfig{APIURL: closed.URL})
	if _, err := j.Authenticate(hubRequest("tok")); !errors.As(err, &ae) || ae.Code != 502 {
		t.Fatalf("hub down: %v, want a 502", err)
	}
}

// A hub behind a redirect (a moved API path) is followed, the user's
// token going along on the same host.
func TestJupyterHubFollowsRedirects(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/old/api/user", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/hub/api/user", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/hub/api/user", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "token tok" {
			w.WriteHeader(403)
			return
		}
		w.Write([]byte(`{"kind": "user", "name": "alice"}`))
	})
	hub := httptest.NewServer(mux)
	defer hub.Close()
	j, _ := NewJupyterHub(JupyterHubConfig{APIURL: hub.URL + "/old/api"})
	if u, err := j.Authenticate(hubRequest("tok")); err != nil || u.Name != "alice" {
		t.Fatalf("through a redirect: %v %v", u, err)
	}
}
