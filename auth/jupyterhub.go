package auth

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

// Error is an authentication failure that is not the user's fault (the
// identity provider is down or refuses us): the server answers Code with
// Msg and logs Err.
type Error struct {
	Code int
	Msg  string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Msg, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

// JupyterHubConfig configures JupyterHub authentication.
type JupyterHubConfig struct {
	// APIURL is the hub's API, e.g. http://hub:8081/hub/api; requests go
	// to APIURL + "/user", the URL kept byte for byte.
	APIURL string
	// ServiceName is the gateway's service name in the hub; with
	// UseServiceAccessScopes a token must hold access:services or
	// access:services!service=<ServiceName>.
	ServiceName            string
	UseServiceAccessScopes bool
	// Client calls the hub (TLS and a timeout set by the caller); nil
	// means a client with a 10 s timeout.
	Client *http.Client
	// CacheTTL is how long a verified token is trusted without asking the
	// hub again, so a revoked token stops working within it; zero means
	// 60 s.
	CacheTTL time.Duration
	// CacheSize bounds the cached tokens; zero means 10,000.
	CacheSize int
	// OAuth signs browsers in through the hub (for dashboards); its zero
	// value means no browser sign-in.
	OAuth HubOAuth
	// ServiceToken is the gateway's own service token, for the questions
	// it asks the hub as itself (ServerRunning); empty means none.
	ServiceToken cluster.Secret
}

// HubOAuth is the gateway's OAuth client registration in the hub.
type HubOAuth struct {
	// AuthorizeURL is where browsers go to sign in, usually relative to
	// the hub's public origin: /hub/api/oauth2/authorize.
	AuthorizeURL string
	// ClientID is the hub's name for the gateway, service-<service name>;
	// ClientSecret is the gateway's service token.
	ClientID, ClientSecret string
	// RedirectURI is the callback the hub sends browsers back to,
	// <prefix>/oauth_callback.
	RedirectURI string
}

// JupyterHub authenticates "Authorization: jupyterhub <token>" by asking
// the hub who the token belongs to, with the user's own token, as
// upstream's JupyterHubAuthenticator does.
type JupyterHub struct {
	cfg JupyterHubConfig
	now func() time.Time

	mu    sync.Mutex
	cache map[[32]byte]cachedUser
}

type cachedUser struct {
	user    cluster.User
	expires time.Time
}

// NewJupyterHub checks cfg and applies defaults.
func NewJupyterHub(cfg JupyterHubConfig) (*JupyterHub, error) {
	if cfg.APIURL == "" {
		return nil, errors.New("auth.jupyterhub_api_url (or JUPYTERHUB_API_URL) is required")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = time.Minute
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 10000
	}
	return &JupyterHub{cfg: cfg, now: time.Now, cache: map[[32]byte]cachedUser{}}, nil
}

// Scheme is "jupyterhub", the word the client's JupyterHubAuth answers.
func (*JupyterHub) Scheme() string { return "jupyterhub" }

// Authenticate returns the token's user from the cache or the hub. The
// hub's 401, 403 and 404 (an unknown, revoked or expired token) and a
// token without the access scope are ErrUnauthorized; the hub failing or
// unreachable is a 502 *Error.
func (j *JupyterHub) Authenticate(r *http.Request) (*cluster.User, error) {
	kind, token, ok := SplitAuthorization(r)
	token = strings.TrimSpace(token)
	if !ok || kind != "jupyterhub" || token == "" {
		return nil, ErrUnauthorized
	}
	key := sha256.Sum256([]byte(token))
	if u, ok := j.cached(key); ok {
		return u, nil
	}
	u, err := j.ask(r.Context(), token)
	if err != nil {
		return nil, err
	}
	j.remember(key, u)
	return u, nil
}

// hubModel is the part of the hub's GET /user reply we use.
type hubModel struct {
	Name   string   `json:"name"`
	Kind   string   `json:"kind"`
	Admin  bool     `json:"admin"`
	Groups []string `json:"groups"`
	Scopes []string `json:"scopes"`
}

func (j *JupyterHub) ask(ctx context.Context, token string) (*cluster.User, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.cfg.APIURL+"/user", nil)
	if err != nil {
		return nil, &Error{Code: http.StatusInternalServerError, Msg: "Failure verifying user's JupyterHub API token", Err: err}
	}
	req.Header.Set("Authorization", "token "+token)
	resp, body, err := j.do(req)
	if err != nil {
		return nil, &Error{Code: http.StatusBadGateway, Msg: "Upstream failure verifying user's JupyterHub API token", Err: err}
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden, resp.StatusCode == http.StatusNotFound:
		return nil, ErrUnauthorized
	case resp.StatusCode >= 500:
		return nil, &Error{Code: http.StatusBadGateway, Msg: "Upstream failure verifying user's JupyterHub API token",
			Err: fmt.Errorf("hub answered %s", resp.Status)}
	case resp.StatusCode >= 400:
		return nil, &Error{Code: http.StatusInternalServerError, Msg: "Failure verifying user's JupyterHub API token",
			Err: fmt.Errorf("hub answered %s", resp.Status)}
	}
	var m hubModel
	if err := json.Unmarshal(body, &m); err != nil || m.Name == "" {
		return nil, &Error{Code: http.StatusBadGateway, Msg: "Upstream failure verifying user's JupyterHub API token",
			Err: fmt.Errorf("hub's /user reply is not a user model: %v", err)}
	}
	if j.cfg.UseServiceAccessScopes && !slices.Contains(m.Scopes, "access:services") &&
		!slices.Contains(m.Scopes, "access:services!service="+j.cfg.ServiceName) {
		return nil, ErrUnauthorized
	}
	return userOf(m), nil
}

// userOf names hub users by name and anything else (services) as
// "<kind>:<name>", as do names holding a colon, so that no service can
// pass for a user.
func userOf(m hubModel) *cluster.User {
	name := m.Name
	if m.Kind == "" {
		m.Kind = "user"
	}
	if m.Kind != "user" || strings.Contains(name, ":") {
		name = m.Kind + ":" + name
	}
	groups := m.Groups
	if groups == nil {
		groups = []string{}
	}
	return &cluster.User{Name: name, Groups: groups, Admin: m.Admin}
}

func (j *JupyterHub) cached(key [32]byte) (*cluster.User, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	c, ok := j.cache[key]
	if !ok || j.now().After(c.expires) {
		delete(j.cache, key)
		return nil, false
	}
	u := c.user
	u.Groups = slices.Clone(c.user.Groups)
	return &u, true
}

// remember caches u for CacheTTL. A full cache drops its expired entries
// and, if still full, arbitrary ones: memory stays bounded whatever
// tokens an attacker makes us verify.
func (j *JupyterHub) remember(key [32]byte, u *cluster.User) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.cache) >= j.cfg.CacheSize {
		now := j.now()
		for k, c := range j.cache {
			if now.After(c.expires) || len(j.cache) >= j.cfg.CacheSize {
				delete(j.cache, k)
			}
		}
	}
	j.cache[key] = cachedUser{user: *u, expires: j.now().Add(j.cfg.CacheTTL)}
}

// LoginURL is where to send a browser to sign in at the hub; state comes
// back on the callback. It is "" when browser sign-in is not configured.
func (j *JupyterHub) LoginURL(state string) string {
	o := j.cfg.OAuth
	if o.AuthorizeURL == "" {
		return ""
	}
	q := url.Values{"client_id": {o.ClientID}, "redirect_uri": {o.RedirectURI}, "response_type": {"code"}, "state": {state}}
	return o.AuthorizeURL + "?" + q.Encode()
}

// LogoutURL is the hub's logout page, beside its authorize endpoint.
func (j *JupyterHub) LogoutURL() string {
	base, ok := strings.CutSuffix(j.cfg.OAuth.AuthorizeURL, "/api/oauth2/authorize")
	if !ok {
		return ""
	}
	return base + "/logout"
}

// Exchange turns the code of an OAuth callback into the signed-in user:
// the code is exchanged at the hub for an access token, whose owner the
// hub then names. A code the hub refuses is ErrUnauthorized.
func (j *JupyterHub) Exchange(ctx context.Context, code string) (*cluster.User, error) {
	o := j.cfg.OAuth
	form := url.Values{"client_id": {o.ClientID}, "client_secret": {o.ClientSecret}, "grant_type": {"authorization_code"},
		"code": {code}, "redirect_uri": {o.RedirectURI}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.cfg.APIURL+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, body, err := j.do(req)
	if err != nil {
		return nil, &Error{Code: http.StatusBadGateway, Msg: "Upstream failure signing in with JupyterHub", Err: err}
	}
	switch {
	case resp.StatusCode >= 500:
		return nil, &Error{Code: http.StatusBadGateway, Msg: "Upstream failure signing in with JupyterHub", Err: fmt.Errorf("hub answered %s", resp.Status)}
	case resp.StatusCode >= 400:
		return nil, fmt.Errorf("%w: the hub refused the sign-in code: %s", ErrUnauthorized, resp.Status)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return nil, &Error{Code: http.StatusBadGateway, Msg: "Upstream failure signing in with JupyterHub", Err: fmt.Errorf("no access token in the hub's reply: %v", err)}
	}
	return j.ask(ctx, tok.AccessToken)
}

// do sends req to the hub and reads at most 1 MiB of the reply, all
// within the client's timeout.
func (j *JupyterHub) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := j.cfg.Client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, err
}
