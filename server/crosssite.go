package server

import (
	"net/http"
	"net/url"
	"strings"
)

// crossSite says why a request that changes state must be refused: a
// browser sent it from a page of another site or origin (a page there
// cannot act with the visitor's session cookie or cached Basic
// credentials). Browsers say where a request comes from (Sec-Fetch-Site,
// Origin); API clients (the Python client, schedulers' heartbeats) send
// neither and are unaffected. Safe methods change nothing, and browsers
// keep their responses from other origins (no CORS here).
func crossSite(r *http.Request) string {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return ""
	}
	switch site := r.Header.Get("Sec-Fetch-Site"); site {
	case "", "same-origin", "none":
	default:
		return "Sec-Fetch-Site: " + site
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return ""
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return "Origin: " + o
	}
	for _, h := range []string{r.Host, r.Header.Get("X-Forwarded-Host")} {
		if h != "" && strings.EqualFold(u.Host, h) {
			return ""
		}
	}
	return "Origin: " + o
}

// refuseCrossSite wraps h with the check above.
func refuseCrossSite(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if why := crossSite(r); why != "" {
			return errorf(http.StatusForbidden, "Cross-site request refused (%s): the API does not act for pages of other origins", why)
		}
		return h(w, r)
	}
}
