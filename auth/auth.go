// Package auth authenticates API users: the Authenticator interface each
// scheme implements (simple/Basic here; JupyterHub, Kerberos and policy
// schemes plug in the same way) and the cookie session cache shared by all
// schemes, which spares clients the 401 round trip on every request.
//
// Typical use:
//
//	a := auth.NewSimple("shared-password")
//	sessions := auth.NewSessions(auth.SessionsConfig{MaxAge: 5 * time.Minute, Path: "/"})
//	user, err := a.Authenticate(r) // errors.Is(err, auth.ErrUnauthorized) -> 401
//	sessions.Issue(w, r, user)
package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/daskgate/daskgate/cluster"
)

// ErrUnauthorized means the request carries no acceptable credentials;
// the server answers 401 with the scheme's WWW-Authenticate challenge.
var ErrUnauthorized = errors.New("authentication required")

// Authenticator checks one request's credentials.
type Authenticator interface {
	// Scheme is the WWW-Authenticate challenge ("Basic", "jupyterhub").
	Scheme() string
	// Authenticate returns the user, ErrUnauthorized, or another error
	// (a failing identity provider) for a 5xx.
	Authenticate(r *http.Request) (*cluster.User, error)
}

// Mutual is implemented by schemes whose successful authentication also
// answers the client, on the same response (Kerberos' mutual-auth token
// in WWW-Authenticate on the 200).
type Mutual interface {
	AuthenticateMutual(r *http.Request) (*cluster.User, http.Header, error)
}

// Simple is upstream's SimpleAuthenticator: HTTP Basic, any user name, and
// an optional shared password compared in constant time.
type Simple struct {
	password [32]byte
	check    bool
}

// NewSimple returns a Basic authenticator; an empty password accepts any.
func NewSimple(password string) *Simple {
	return &Simple{password: sha256.Sum256([]byte(password)), check: password != ""}
}

// Scheme is "Basic".
func (*Simple) Scheme() string { return "Basic" }

// Authenticate parses "Authorization: Basic base64(user:password)".
func (s *Simple) Authenticate(r *http.Request) (*cluster.User, error) {
	kind, cred, ok := SplitAuthorization(r)
	if !ok || kind != "Basic" {
		return nil, ErrUnauthorized
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return nil, ErrUnauthorized
	}
	user, pass, _ := strings.Cut(string(raw), ":")
	if user == "" {
		return nil, ErrUnauthorized
	}
	if s.check {
		got := sha256.Sum256([]byte(pass))
		if subtle.ConstantTimeCompare(got[:], s.password[:]) != 1 {
			return nil, ErrUnauthorized
		}
	}
	return &cluster.User{Name: user, Groups: []string{}}, nil
}

// SplitAuthorization splits the Authorization header on its first space
// into scheme and credentials; ok is false when either is missing.
func SplitAuthorization(r *http.Request) (kind, cred string, ok bool) {
	kind, cred, ok = strings.Cut(r.Header.Get("Authorization"), " ")
	return kind, cred, ok && kind != ""
}

// TokenEqual compares two secrets in constant time.
func TokenEqual(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1 && a != "" && b != ""
}
