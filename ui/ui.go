// Package ui is the gateway's web page of a user's clusters: one
// server-rendered HTML page, a small script and a style sheet, embedded
// in the binary (no front-end toolchain). The server package serves it
// behind the API's login and answers the JSON the script polls.
//
// Typical use:
//
//	r.Handler(http.MethodGet, "/ui/static/:file", ui.Static())
//	err := ui.Page(w, ui.PageData{User: "alice", CSRF: token, Scheme: "Basic"})
package ui

import (
	"embed"
	"html/template"
	"net/http"
	"path"

	"github.com/julienschmidt/httprouter"
)

//go:embed assets
var assets embed.FS

var page = template.Must(template.ParseFS(assets, "assets/index.html"))

// PageData is what the page is rendered with.
type PageData struct {
	User  string
	Admin bool
	// CSRF is the token the script sends with every change.
	CSRF string
	// Scheme is the authenticator's scheme (Basic, jupyterhub,
	// Negotiate), for the Python snippet's auth argument.
	Scheme  string
	Version string
	// Logout shows a sign-out link (hub sign-in: it ends the hub session).
	Logout bool
}

// securityHeaders are set on everything the page is made of: only this
// origin's script and styles run, nothing frames it, nothing sniffs.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "+
		"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

// Page writes the page for d.
func Page(w http.ResponseWriter, d PageData) error {
	securityHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	return page.Execute(w, d)
}

var contentTypes = map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

// Static serves the script and the style sheet by name (the route's
// :file parameter); anything else is a 404.
func Static() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := httprouter.ParamsFromContext(r.Context()).ByName("file")
		ct, ok := contentTypes[path.Ext(name)]
		b, err := assets.ReadFile("assets/" + path.Base(name))
		if !ok || err != nil || path.Base(name) != name {
			http.NotFound(w, r)
			return
		}
		securityHeaders(w.Header())
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	})
}
