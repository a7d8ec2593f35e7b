package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for _, tt := range []struct {
		code int
		body string
		ok   bool
	}{
		{200, `{"status":"pass"}`, true},
		{200, `{"status":"warn","policy":"broken.rego:3"}`, false},
		{503, `{"status":"pass"}`, false},
		{200, `<html>`, false},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tt.code)
			io.WriteString(w, tt.body)
		}))
		err := run([]string{"check", srv.URL + "/api/health"}, io.Discard)
		srv.Close()
		if (err == nil) != tt.ok {
			t.Errorf("%d %s: err %v, want ok=%v", tt.code, tt.body, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), srv.URL) {
			t.Errorf("error does not name the URL: %v", err)
		}
	}
	if err := run([]string{"check"}, io.Discard); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("no URL: %v", err)
	}
}
