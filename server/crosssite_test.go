package server

import (
	"net/http/httptest"
	"testing"
)

func TestCrossSite(t *testing.T) {
	for _, tt := range []struct {
		method  string
		headers map[string]string
		refused bool
	}{
		{"POST", nil, false}, // the Python client, a scheduler
		{"DELETE", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://gw.example.org"}, false},
		{"POST", map[string]string{"Sec-Fetch-Site": "none"}, false},
		{"POST", map[string]string{"Origin": "http://proxy.example.org", "X-Forwarded-Host": "proxy.example.org"}, false},
		{"GET", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example.com"}, false},
		{"POST", map[string]string{"Sec-Fetch-Site": "cross-site"}, true},
		{"POST", map[string]string{"Sec-Fetch-Site": "same-site"}, true}, // dash.example.org is another origin
		{"DELETE", map[string]string{"Origin": "http://evil.example.com"}, true},
		{"POST", map[string]string{"Origin": "null"}, true}, // a sandboxed page
		{"POST", map[string]string{"Origin": "http://gw.example.org:8080"}, true},
		{"PATCH", map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example.com"}, true},
	} {
		r := httptest.NewRequest(tt.method, "http://gw.example.org/api/v1/clusters/", nil)
		for k, v := range tt.headers {
			r.Header.Set(k, v)
		}
		if got := crossSite(r) != ""; got != tt.refused {
			t.Errorf("%s %v: refused %v, want %v (%q)", tt.method, tt.headers, got, tt.refused, crossSite(r))
		}
	}
}
