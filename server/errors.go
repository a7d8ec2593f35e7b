package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// httpError is an error with a status code and a public message; Err is
// the cause, logged but never shown.
type httpError struct {
	Code   int
	Msg    string
	Err    error
	Header http.Header
}

func (e *httpError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Code, e.Msg)
}

func (e *httpError) Unwrap() error { return e.Err }

func errorf(code int, format string, args ...any) *httpError {
	return &httpError{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// handlerFunc is an API handler that returns its error.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts a handlerFunc: errors become {"error": msg} JSON with
// their status; anything else is a logged 500. It also counts requests,
// and refuses browsers' cross-site requests that would change state.
func (s *Server) handle(route string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		r = r.WithContext(context.WithValue(r.Context(), remoteKey{}, r.RemoteAddr))
		err := refuseCrossSite(h)(rec, r)
		if err != nil {
			s.writeError(rec, r, err)
		}
		s.metrics.observe(route, r.Method, rec.code, time.Since(start))
		s.log.DebugContext(r.Context(), "request", "method", r.Method, "route", route, "code", rec.code,
			"duration", time.Since(start), "remote", r.RemoteAddr)
	})
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		he = &httpError{Code: http.StatusInternalServerError, Msg: "Internal server error"}
	} else if he.Err != nil {
		s.log.WarnContext(r.Context(), "request error", "method", r.Method, "path", r.URL.Path, "code", he.Code, "err", he.Err)
	}
	for k, vs := range he.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	writeJSON(w, he.Code, map[string]string{"error": he.Msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
