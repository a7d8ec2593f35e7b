package server

import (
	"bytes"
	"errors"
	"net/http/httptest"
	"testing"
)

// FuzzDecodeBody: request bodies are untrusted bytes. Any input either
// decodes into exactly one object or is refused with a 4xx naming why;
// nothing panics.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{`{"cluster_options": {"worker_cores": 2}}`, `null`, `[]`, `{"count": 3}`, `{} {}`,
		`{"minimum": null, "maximum": 5, "active": true}`, "\xff\xfe", `{"a": 1e999}`, `{"a": "\u0000"}`} {
		f.Add([]byte(seed))
	}
	s := &Server{cfg: Config{BodyTimeout: 1e9}}
	f.Fuzz(func(t *testing.T, body []byte) {
		var v struct {
			Options map[string]any `json:"cluster_options"`
			Count   any            `json:"count"`
		}
		r := httptest.NewRequest("POST", "/api/v1/clusters/", bytes.NewReader(body))
		err := s.decodeBody(httptest.NewRecorder(), r, &v)
		var he *httpError
		if err != nil && (!errors.As(err, &he) || he.Code < 400 || he.Code >= 500) {
			t.Fatalf("body %q: %v, want a 4xx", body, err)
		}
	})
}
