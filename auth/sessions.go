package auth

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

// Sessions is the cookie cache: a full authentication issues a cookie, and
// requests carrying it are served as that user until MaxAge has passed
// since the authentication. The cookie name is random per process, so a
// restart makes clients re-authenticate (they get a 401 and retry).
type Sessions struct {
	name   string
	maxAge time.Duration
	now    func() time.Time

	mu     sync.Mutex
	byID   map[string]session
	byUser map[string]string
}

type session struct {
	user    cluster.User
	created time.Time
}

// NewSessions returns a cache whose entries live maxAge (upstream's
// cache_max_age, default 300 s).
func NewSessions(maxAge time.Duration) *Sessions {
	if maxAge <= 0 {
		maxAge = 5 * time.Minute
	}
	return &Sessions{name: "daskgate-" + randomHex(8), maxAge: maxAge, now: time.Now,
		byID: map[string]session{}, byUser: map[string]string{}}
}

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
	if s.now().Sub(sess.created) > s.maxAge {
		delete(s.byID, c.Value)
		delete(s.byUser, sess.user.Name)
		return nil
	}
	u := sess.user
	return &u
}

// Issue sets the session cookie for user. One session per user name: an
// existing one is reused without refreshing its age.
func (s *Sessions) Issue(w http.ResponseWriter, user *cluster.User) {
	s.mu.Lock()
	id, ok := s.byUser[user.Name]
	if sess, live := s.byID[id]; !ok || !live || s.now().Sub(sess.created) > s.maxAge {
		delete(s.byID, id)
		id = randomHex(16)
		s.byID[id] = session{user: *user, created: s.now()}
		s.byUser[user.Name] = id
	}
	s.mu.Unlock()
	w.Header().Add("Set-Cookie", s.name+"="+id+"; Max-Age="+strconv.Itoa(int(2*s.maxAge.Seconds()))+"; Path=/")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
