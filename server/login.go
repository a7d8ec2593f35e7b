package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/cluster"
)

// Login is a browser sign-in flow for dashboards (the hub's OAuth).
type Login interface {
	// LoginURL is where to send the browser; state comes back with it.
	LoginURL(state string) string
	// Exchange turns the callback's code into the signed-in user.
	Exchange(ctx context.Context, code string) (*cluster.User, error)
}

// loginCookie carries the sign-in's state and the page to return to
// between the redirect to the hub and the callback. Its name starts with
// the session prefix, so dashboards never see it.
const loginCookie = auth.CookiePrefix + "login"

// startLogin sends a browser to sign in, remembering where it was going:
// returnTo, a public path (with the prefix).
func (s *Server) startLogin(w http.ResponseWriter, r *http.Request, returnTo string) {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	state := base64.RawURLEncoding.EncodeToString(b)
	next := base64.RawURLEncoding.EncodeToString([]byte(returnTo))
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: state + "." + next, Path: s.cfg.Prefix + "/",
		MaxAge: 600, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
	http.Redirect(w, r, s.cfg.Login.LoginURL(state), http.StatusFound)
}

// oauthCallback finishes a sign-in: the state must be the one this
// browser was given, the hub must accept the code; then the session
// cookie is set and the browser goes back to the dashboard it asked for.
func (s *Server) oauthCallback(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Login == nil {
		return errorf(http.StatusNotFound, "Not Found")
	}
	c, err := r.Cookie(loginCookie)
	var state, next string
	if err == nil {
		state, next, _ = strings.Cut(c.Value, ".")
	}
	if state == "" || !auth.TokenEqual(r.URL.Query().Get("state"), state) {
		return errorf(http.StatusBadRequest, "Sign-in state does not match: open the dashboard link again")
	}
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: s.cfg.Prefix + "/", MaxAge: -1, HttpOnly: true})
	u, err := s.cfg.Login.Exchange(r.Context(), r.URL.Query().Get("code"))
	var ae *auth.Error
	switch {
	case errors.As(err, &ae):
		return &httpError{Code: ae.Code, Msg: ae.Msg, Err: ae.Err}
	case err != nil:
		return &httpError{Code: http.StatusForbidden, Msg: "JupyterHub did not accept the sign-in", Err: err}
	}
	s.cfg.Sessions.Issue(w, r, u)
	http.Redirect(w, r, s.returnTo(next), http.StatusFound)
	return nil
}

// logout ends the browser's session; with hub sign-in it goes on to the
// hub's logout, which ends the hub session too (else the next dashboard
// link would sign straight back in).
func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	s.cfg.Sessions.Revoke(w, r)
	if l, ok := s.cfg.Login.(interface{ LogoutURL() string }); ok && l.LogoutURL() != "" {
		http.Redirect(w, r, l.LogoutURL(), http.StatusFound)
		return nil
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "signed out"})
	return nil
}

// returnTo decodes the page a sign-in started from; only dashboard pages
// and the web page under the prefix are returned to (no open redirect),
// else the prefix.
func (s *Server) returnTo(encoded string) string {
	b, err := base64.RawURLEncoding.DecodeString(encoded)
	next := string(b)
	page := strings.HasPrefix(next, s.cfg.Prefix+"/clusters/") || strings.HasPrefix(next, s.cfg.Prefix+"/ui/")
	if err != nil || !page || strings.ContainsAny(next, "\\\r\n") || strings.Contains(next, "/../") {
		return s.cfg.Prefix + "/"
	}
	return next
}
