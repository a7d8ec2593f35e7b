package auth

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

// Sessions is the cookie cache: a full authentication issues a cookie, and
// requests carrying it are served as that user until MaxAge has passed
// since the authentication. The cookie name is random per process, so a
// restart makes clients re-authenticate (they get a 401 and retry).
type Sessions struct {
	name string
	cfg  SessionsConfig
	now  func() time.Time

	mu     sync.Mutex
	byID   map[string]session
	byUser map[string]string
}

// SessionsConfig configures the cookie cache.
type SessionsConfig struct {
	// MaxAge is how long a session lives (upstream's cache_max_age);
	// zero means 5 minutes.
	MaxAge time.Duration
	// Path is the cookie's Path, the gateway's prefix; "" means "/".
	Path string
	// Max bounds the sessions held (one per user name); zero means
	// 100,000. When full, expired sessions go first, then arbitrary ones
	// (their users simply authenticate again).
	Max int
}

type session struct {
	user    cluster.User
	created time.Time
}

// NewSessions returns a cookie cache.
func NewSessions(cfg SessionsConfig) *Sessions {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 5 * time.Minute
	}
	if cfg.Path == "" {
		cfg.Path = "/"
	}
	if cfg.Max <= 0 {
		cfg.Max = 100000
	}
	return &Sessions{name: CookiePrefix + randomHex(8), cfg: cfg, now: time.Now,
		byID: map[string]session{}, byUser: map[string]string{}}
}

// Name is the session cookie's name (random per process).
func (s *Sessions) Name() string { return s.name }

// Len is the number of sessions held.
func (s *Sessions) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byID)
}

// MaxAge is how long a session lives.
func (s *Sessions) MaxAge() time.Duration { return s.cfg.MaxAge }

// CookiePrefix starts every session cookie's name.
const CookiePrefix = "daskgate-"

// Lookup returns the user of a valid session cookie, or nil.
func (s *Sessions) Lookup(r *http.Request) *cluster.User {
	c, err := r.Cookie(s.name)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[c.Value]
	if !ok {
		return nil
	}
	if s.expired(sess) {
		s.drop(c.Value)
		return nil
	}
	u := sess.user
	u.Groups = slices.Clone(sess.user.Groups)
	return &u
}

// Issue sets the session cookie for user on a response to r. One
// session per user name: an existing one is reused without refreshing
// its age. The cookie is HttpOnly, SameSite=Lax, scoped to the prefix,
// and Secure when r came over TLS (directly or per X-Forwarded-Proto).
func (s *Sessions) Issue(w http.ResponseWriter, r *http.Request, user *cluster.User) {
	s.mu.Lock()
	id, ok := s.byUser[user.Name]
	if sess, live := s.byID[id]; !ok || !live || s.expired(sess) {
		s.drop(id)
		s.makeRoom()
		id = randomHex(16)
		s.byID[id] = session{user: *user, created: s.now()}
		s.byUser[user.Name] = id
	}
	s.mu.Unlock()
	c := &http.Cookie{Name: s.name, Value: id, Path: s.cfg.Path, MaxAge: int(2 * s.cfg.MaxAge.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")}
	w.Header().Add("Set-Cookie", c.String())
}

// Revoke ends the session of r's cookie, if any, and tells the browser
// to drop the cookie.
func (s *Sessions) Revoke(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(s.name); err == nil {
		s.mu.Lock()
		s.drop(c.Value)
		s.mu.Unlock()
	}
	c := &http.Cookie{Name: s.name, Value: "", Path: s.cfg.Path, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode}
	w.Header().Add("Set-Cookie", c.String())
}

func (s *Sessions) expired(sess session) bool { return s.now().Sub(sess.created) > s.cfg.MaxAge }

// drop removes session id; the caller holds s.mu.
func (s *Sessions) drop(id string) {
	if sess, ok := s.byID[id]; ok {
		delete(s.byID, id)
		if s.byUser[sess.user.Name] == id {
			delete(s.byUser, sess.user.Name)
		}
	}
}

// makeRoom keeps the table under Max; the caller holds s.mu.
func (s *Sessions) makeRoom() {
	if len(s.byID) < s.cfg.Max {
		return
	}
	for id, sess := range s.byID {
		if s.expired(sess) {
			s.drop(id)
		}
	}
	for id := range s.byID {
		if len(s.byID) < s.cfg.Max {
			return
		}
		s.drop(id)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
