package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/daskgate/daskgate/cluster"
)

// BenchmarkUIState measures what the page polls every two seconds, with
// the API's list of the same clusters as the peer in the same run: 100
// clusters of one user (the page also asks the authorizer whether the
// user may scale and stop each one, and adds up the usage).
func BenchmarkUIState(b *testing.B) {
	a := newAPI(b, func(c *Config) {
		c.UI = true
		c.Activity = func(string) (cluster.Activity, bool) { return cluster.Activity{Clients: 1}, true }
	})
	for range 100 {
		name := a.create("alice")
		a.be.set(name, func(c *cluster.Cluster) {
			c.Status, c.DashboardAddress, c.Workers, c.TLSCert = cluster.Running, "http://127.0.0.1:1", 2, "cert"
		})
	}
	for _, bc := range []struct{ name, path string }{{"page state", "/ui/api/state"}, {"API list (peer)", "/api/v1/clusters/"}} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.path, nil)
			req.SetBasicAuth("alice", "")
			for b.Loop() {
				w := httptest.NewRecorder()
				a.server.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("%s = %d", bc.path, w.Code)
				}
			}
		})
	}
}
