package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestServerRunning(t *testing.T) {
	replies := map[string]string{
		"running":  `{"name": "running", "servers": {"": {"ready": true, "pending": null, "stopped": false}}}`,
		"starting": `{"name": "starting", "servers": {"gpu": {"ready": false, "pending": "spawn"}}}`,
		"stopping": `{"name": "stopping", "servers": {"": {"ready": false, "pending": "stop"}}}`,
		"none":     `{"name": "none", "servers": {}}`,
		"noscope":  `{"name": "noscope"}`,
	}
	hub := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "token svc-token" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/hub/api/users/")
		if name == "forbidden" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		body, ok := replies[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}))
	defer hub.Close()
	j, err := NewJupyterHub(JupyterHubConfig{APIURL: hub.URL + "/hub/api", ServiceToken: "svc-token"})
	if err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]bool{"running": true, "starting": true, "stopping": false, "none": false} {
		got, err := j.ServerRunning(t.Context(), user)
		if err != nil || got != want {
			t.Errorf("ServerRunning(%s) = %v, %v; want %v", user, got, err, want)
		}
	}
	for user, msg := range map[string]string{"noscope": "read:servers", "forbidden": "read:users:name and read:servers",
		"unknown": "does not show user unknown"} {
		if _, err := j.ServerRunning(t.Context(), user); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ServerRunning(%s) error %v, want one naming %q", user, err, msg)
		}
	}
	noToken, _ := NewJupyterHub(JupyterHubConfig{APIURL: hub.URL + "/hub/api"})
	if _, err := noToken.ServerRunning(t.Context(), "running"); err == nil {
		t.Error("asked the hub without a service token")
	}
}
