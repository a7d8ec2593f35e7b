package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/daskgate/daskgate/auth"
	"github.com/daskgate/daskgate/cluster"
	"github.com/julienschmidt/httprouter"
)

// maxBody bounds request bodies.
const maxBody = 1 << 20

// encodedClusters caches each cluster's JSON: certificates make it a few
// KiB, and list is the hottest route. An entry is reused while the fields
// that change (status, stop time, dashboard) are the same.
type encodedClusters struct {
	m sync.Map
	n atomic.Int64 // stores since the last clear
}

const maxEncoded = 10000

type encodedEntry struct {
	status    cluster.Status
	stop      int64
	dashboard string
	hasTLS    bool // a backend may learn a running cluster's credentials later
	json      []byte
}

func (e *encodedClusters) get(c *cluster.Cluster) []byte {
	if c.Status.Finished() { // rarely listed again: do not keep it
		e.m.Delete(c.Name)
		b, _ := json.Marshal(toJSON(c))
		return b
	}
	if v, ok := e.m.Load(c.Name); ok {
		if ent := v.(*encodedEntry); ent.status == c.Status && ent.stop == c.StopTime && ent.dashboard == c.DashboardAddress &&
			ent.hasTLS == (c.TLSCert != "") {
			return ent.json
		}
	}
	b, _ := json.Marshal(toJSON(c))
	if e.n.Add(1) > maxEncoded { // bounded: start over rather than grow with churn
		e.m.Clear()
		e.n.Store(0)
	}
	e.m.Store(c.Name, &encodedEntry{status: c.Status, stop: c.StopTime, dashboard: c.DashboardAddress, hasTLS: c.TLSCert != "", json: b})
	return b
}

// clusterJSON is the cluster object the client parses; it must have
// exactly these keys.
type clusterJSON struct {
	Name           string          `json:"name"`
	DashboardRoute *string         `json:"dashboard_route"`
	Status         cluster.Status  `json:"status"`
	StartTime      int64           `json:"start_time"`
	StopTime       *int64          `json:"stop_time"`
	Options        json.RawMessage `json:"options"`
	TLSCert        *string         `json:"tls_cert"`
	TLSKey         *string         `json:"tls_key"`
}

func toJSON(c *cluster.Cluster) clusterJSON {
	out := clusterJSON{Name: c.Name, Status: c.Status, StartTime: c.StartTime, Options: c.Options}
	if len(out.Options) == 0 {
		out.Options = json.RawMessage("{}")
	}
	if c.StopTime != 0 {
		out.StopTime = &c.StopTime
	}
	if c.Status == cluster.Running {
		cert, key := c.TLSCert, string(c.TLSKey)
		out.TLSCert, out.TLSKey = &cert, &key
		if c.DashboardAddress != "" {
			route := "/clusters/" + c.Name + "/status"
			out.DashboardRoute = &route
		}
	}
	return out
}

func (s *Server) getOptions(w http.ResponseWriter, r *http.Request, u *cluster.User) error {
	set, err := s.cfg.Options.Fields(r.Context(), u)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"cluster_options": set})
	return nil
}

func (s *Server) listClusters(w http.ResponseWriter, r *http.Request, u *cluster.User) error {
	want, err := parseStatuses(r)
	if err != nil {
		return err
	}
	cs, err := s.cfg.Backend.List(r.Context(), func(c *cluster.Cluster) bool { return want[c.Status] })
	if err != nil {
		return err
	}
	// An object keeps creation order on the wire; build it by hand.
	var b strings.Builder
	b.WriteByte('{')
	n := 0
	for _, c := range cs {
		if ok, _, err := s.cfg.Authorizer.Authorize(r.Context(), cluster.AuthzRequest{User: u, Action: cluster.ActionView, Cluster: c}); err != nil || !ok {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(c.Name) // names are hex or <ns>.<hex>: no escaping needed
		b.WriteString(`":`)
		b.Write(s.encoded.get(c))
		n++
	}
	b.WriteByte('}')
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, err = io.WriteString(w, b.String())
	return err
}

// parseStatuses reads ?status=A,B; absent means active (PENDING, RUNNING).
func parseStatuses(r *http.Request) (map[cluster.Status]bool, error) {
	q, ok := r.URL.Query()["status"]
	if !ok {
		return map[cluster.Status]bool{cluster.Pending: true, cluster.Running: true}, nil
	}
	want := map[cluster.Status]bool{}
	for _, part := range strings.Split(strings.Join(q, ","), ",") {
		st, err := cluster.ParseStatus(strings.TrimSpace(part))
		if err != nil {
			return nil, errorf(http.StatusUnprocessableEntity, "%s", err)
		}
		want[st] = true
	}
	return want, nil
}

func (s *Server) createCluster(w http.ResponseWriter, r *http.Request, u *cluster.User) error {
	var body struct {
		Options json.RawMessage `json:"cluster_options"`
	}
	if err := s.decodeBody(w, r, &body); err != nil {
		return err
	}
	req, err := s.buildCluster(r.Context(), u, body.Options)
	if err != nil {
		return err
	}
	// Usage, the create decision and the create itself happen under the
	// user's lock, so concurrent creates cannot both slip under a quota.
	unlock := s.userLocks.lock(u.Name)
	defer unlock()
	usage, err := s.usage(r.Context(), u.Name)
	if err != nil {
		return err
	}
	ok, reason, err := s.cfg.Authorizer.Authorize(r.Context(), cluster.AuthzRequest{
		User: u, Action: cluster.ActionCreate, Request: &req, Usage: usage, RemoteAddr: r.RemoteAddr})
	if err := denial(err, ok, reason, u, cluster.ActionCreate, http.StatusUnprocessableEntity); err != nil {
		return err
	}
	c, err := s.cfg.Backend.Create(r.Context(), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]string{"name": c.Name})
	return nil
}

// usage adds up a user's active clusters.
func (s *Server) usage(ctx context.Context, user string) (cluster.Usage, error) {
	cs, err := s.cfg.Backend.List(ctx, func(c *cluster.Cluster) bool {
		return c.Username == user && (c.Status == cluster.Pending || c.Status == cluster.Running)
	})
	var u cluster.Usage
	for _, c := range cs {
		cores, memory := footprint(c)
		u.Clusters++
		u.Workers += c.Workers
		u.Cores += cores
		u.Memory += memory
	}
	return u, err
}

// footprint is what a cluster holds: its scheduler and its workers.
func footprint(c *cluster.Cluster) (cores float64, memory int64) {
	return c.Config.SchedulerCores + float64(c.Workers)*c.Config.WorkerCores,
		int64(c.Config.SchedulerMemory) + int64(c.Workers)*int64(c.Config.WorkerMemory)
}

// userLocks serialises one user's creates. A user's lock lives only while
// someone holds or waits for it, so the map does not grow with every
// user name ever seen.
type userLocks struct {
	mu sync.Mutex
	m  map[string]*userLock
}

type userLock struct {
	sync.Mutex
	refs int
}

func (l *userLocks) lock(user string) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*userLock{}
	}
	ul := l.m[user]
	if ul == nil {
		ul = &userLock{}
		l.m[user] = ul
	}
	ul.refs++
	l.mu.Unlock()
	ul.Lock()
	return func() {
		ul.Unlock()
		l.mu.Lock()
		if ul.refs--; ul.refs == 0 {
			delete(l.m, user)
		}
		l.mu.Unlock()
	}
}

// held is how many users' locks exist (for tests).
func (l *userLocks) held() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// buildCluster validates options, runs the handler and builds the
// ClusterConfig; every failure is a 422 naming what is wrong.
func (s *Server) buildCluster(ctx context.Context, u *cluster.User, raw json.RawMessage) (cluster.CreateRequest, error) {
	set, err := s.cfg.Options.Fields(ctx, u)
	if err != nil {
		return cluster.CreateRequest{}, err
	}
	vals, err := set.Parse(raw)
	if err != nil {
		return cluster.CreateRequest{}, unprocessable(err)
	}
	ov, strict, err := s.cfg.Options.Handle(ctx, u, vals, set.Transform(vals))
	if msg, ok := userMessage(err); ok {
		return cluster.CreateRequest{}, unprocessable(errors.New(msg))
	} else if err != nil {
		return cluster.CreateRequest{}, err // a broken handler is our fault: 500
	}
	cfg, ignored, err := s.cfg.ClusterConfig.WithOverrides(ov, strict)
	if err != nil {
		return cluster.CreateRequest{}, unprocessable(err)
	}
	if len(ignored) > 0 {
		s.log.DebugContext(ctx, "option keys that are not cluster settings ignored", "keys", ignored)
	}
	if v, ok := s.cfg.Backend.(ConfigValidator); ok {
		if err := v.ValidateConfig(cfg); err != nil {
			return cluster.CreateRequest{}, unprocessable(err)
		}
	}
	optsJSON, err := json.Marshal(vals)
	if err != nil {
		return cluster.CreateRequest{}, err
	}
	return cluster.CreateRequest{Username: u.Name, Options: optsJSON, Config: cfg}, nil
}

// unprocessable makes a validation error a 422 with its message on one line.
func unprocessable(err error) error {
	return &httpError{Code: http.StatusUnprocessableEntity, Msg: strings.ReplaceAll(err.Error(), "\n", "; ")}
}

// decodeBody reads a request body of at most maxBody bytes within the
// body timeout and decodes exactly one JSON object from it into v: too
// large is a 413, too slow a 408, anything but one object (null, a list,
// trailing bytes) a 422 saying which.
func (s *Server) decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		w.Header().Set("Connection", "close") // what is left of the body is not read
	} else {
		_ = rc.SetReadDeadline(time.Time{}) // the server watches for the client going away
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return errorf(http.StatusRequestEntityTooLarge, "request body larger than %d bytes", maxBody)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &httpError{Code: http.StatusRequestTimeout, Msg: "request body not received in time", Err: err}
	case err != nil:
		return &httpError{Code: http.StatusBadRequest, Msg: "request body could not be read", Err: err}
	}
	if trimmed := bytes.TrimSpace(b); len(trimmed) == 0 || trimmed[0] != '{' {
		return errorf(http.StatusUnprocessableEntity, "request body must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return &httpError{Code: http.StatusUnprocessableEntity, Msg: "request body must be a JSON object", Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errorf(http.StatusUnprocessableEntity, "request body has data after the JSON object")
	}
	return nil
}

// CachedGetter is implemented by backends whose Get may reach an
// external API for a cluster they do not hold (Kubernetes): GetCached
// answers from what they hold only, for unauthenticated callers.
type CachedGetter interface {
	GetCached(ctx context.Context, name string) (*cluster.Cluster, error)
}

func (s *Server) cachedCluster(ctx context.Context, name string) (*cluster.Cluster, error) {
	if cg, ok := s.cfg.Backend.(CachedGetter); ok {
		return cg.GetCached(ctx, name)
	}
	return s.cfg.Backend.Get(ctx, name)
}

// lookup finds the cluster in the path and checks the user may act on it.
func (s *Server) lookup(r *http.Request, u *cluster.User, action cluster.Action) (*cluster.Cluster, error) {
	name := httprouter.ParamsFromContext(r.Context()).ByName("name")
	c, err := s.cfg.Backend.Get(r.Context(), name)
	if errors.Is(err, cluster.ErrNotFound) {
		return nil, errorf(http.StatusNotFound, "Cluster %s not found", name)
	}
	if err != nil {
		return nil, err
	}
	return c, s.authorize(r.Context(), u, action, c, http.StatusForbidden)
}

func (s *Server) authorize(ctx context.Context, u *cluster.User, action cluster.Action, c *cluster.Cluster, code int) error {
	ok, reason, err := s.cfg.Authorizer.Authorize(ctx, cluster.AuthzRequest{User: u, Action: action, Cluster: c,
		RemoteAddr: remoteAddr(ctx)})
	return denial(err, ok, reason, u, action, code)
}

// denial turns an authorization answer into an error: the policy's
// reason with code, or a 500 when the policy itself failed.
func denial(err error, ok bool, reason string, u *cluster.User, action cluster.Action, code int) error {
	if err != nil {
		return err
	}
	if !ok {
		if reason == "" {
			reason = "User " + u.Name + " is not allowed to " + string(action)
		}
		return errorf(code, "%s", reason)
	}
	return nil
}

func (s *Server) getCluster(w http.ResponseWriter, r *http.Request, u *cluster.User) error {
	c, err := s.lookup(r, u, cluster.ActionView)
	if err != nil {
		return err
	}
	if waitRequested(r) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.WaitTimeout)
		stop := context.AfterFunc(s.draining, cancel)
		c, err = s.cfg.Backend.Wait(ctx, c.Name)
		stop()
		cancel()
		if err != nil {
			return err
		}
		// Only the client's start loop waits. Upstream answers a failed
		// cluster with 200, and the client raises GatewayClusterError with
		// a fixed "see logs" message; a 409 raises the same exception with
		// the reason in it. (A reason field in the cluster object would
		// break the client, which passes unknown keys to a constructor.)
		if c.Status == cluster.Failed {
			reason := c.Reason
			if reason == "" {
				reason = "see logs for more information"
			}
			return errorf(http.StatusConflict, "Cluster '%s' failed to start: %s", c.Name, reason)
		}
	}
	writeJSON(w, http.StatusOK, toJSON(c))
	return nil
}

// waitRequested parses ?wait like upstream: present and empty, or a
// non-zero integer.
func waitRequested(r *http.Request) bool {
	v, ok := r.URL.Query()["wait"]
	if !ok {
		return false
	}
	if len(v) == 0 || v[0] == "" {
		return true
	}
	n, err := strconv.Atoi(v[0])
	return err == nil && n != 0
}

// deleteCluster accepts the cluster's own token (the idle-timeout path)
// or a user allowed to stop it. Unknown clusters are a 204.
func (s *Server) deleteCluster(w http.ResponseWriter, r *http.Request) error {
	name := httprouter.ParamsFromContext(r.Context()).ByName("name")
	c, err := s.cfg.Backend.Get(r.Context(), name)
	if err != nil && !errors.Is(err, cluster.ErrNotFound) {
		return err
	}
	if !clusterToken(r, c) {
		u, err := s.authenticate(w, r)
		if err != nil {
			return err
		}
		if c == nil {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		if err := s.authorize(r.Context(), u, cluster.ActionStop, c, http.StatusForbidden); err != nil {
			return err
		}
	}
	if c != nil {
		return s.stop(w, r, name, "stopped by request")
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// stop asks the backend to stop cluster name with reason and answers 204;
// a cluster gone meanwhile is stopped as far as anyone can tell.
func (s *Server) stop(w http.ResponseWriter, r *http.Request, name, reason string) error {
	if err := s.cfg.Backend.Stop(r.Context(), name, false, reason); err != nil && !errors.Is(err, cluster.ErrNotFound) {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// heartbeat takes a scheduler's report. Only a request with the
// cluster's own token gets past the check, and the check itself reaches
// nothing beyond the backend's cache: no header, no lookup; a cluster the
// cache does not hold cannot be heartbeating.
func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	name := httprouter.ParamsFromContext(r.Context()).ByName("name")
	unauthorized := &httpError{Code: http.StatusUnauthorized, Msg: "Unauthorized", Header: http.Header{"Www-Authenticate": {"token"}}}
	if kind, _, ok := auth.SplitAuthorization(r); !ok || kind != "token" {
		return unauthorized
	}
	c, err := s.cachedCluster(r.Context(), name)
	if err != nil && !errors.Is(err, cluster.ErrNotFound) {
		return err
	}
	if !clusterToken(r, c) {
		return unauthorized
	}
	var hb cluster.Heartbeat
	if err := s.decodeBody(w, r, &hb); err != nil {
		return err
	}
	if err := s.cfg.Backend.Heartbeat(r.Context(), name, hb); err != nil {
		return err
	}
	w.WriteHeader(http.StatusOK)
	return nil
}
