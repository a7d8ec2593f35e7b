package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

// SchedulerClient posts to a scheduler's /api/comm with the cluster token.
type SchedulerClient struct {
	// HTTP is the client used; nil means one with a 10s timeout.
	HTTP *http.Client
	// Attempts is the number of tries; zero means 3 (0.1 s, 0.2 s apart).
	Attempts int
}

// Send posts msg to the scheduler, retrying failures that may pass (no
// answer, a 5xx) with doubling sleeps; a 4xx is the scheduler's final
// word and is not retried.
func (sc *SchedulerClient) Send(ctx context.Context, c *cluster.Cluster, msg any) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	client, attempts := sc.HTTP, sc.Attempts
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if attempts <= 0 {
		attempts = 3
	}
	delay := 100 * time.Millisecond
	for i := range attempts {
		var refused *schedulerRefusal
		if err = sc.post(ctx, client, c, body); err == nil || errors.As(err, &refused) {
			return err
		}
		if i < attempts-1 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
		}
	}
	return err
}

func (sc *SchedulerClient) post(ctx context.Context, client *http.Client, c *cluster.Cluster, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.APIAddress+"/api/comm", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "token "+string(c.Token))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	// Read what is left (bounded) so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 500:
		return fmt.Errorf("scheduler answered %s", resp.Status)
	case resp.StatusCode >= 400:
		return &schedulerRefusal{status: resp.Status}
	}
	return nil
}

// schedulerRefusal is a 4xx from the scheduler: final, not retried.
type schedulerRefusal struct{ status string }

func (e *schedulerRefusal) Error() string { return "scheduler answered " + e.status }

type scaleReply struct {
	OK  bool    `json:"ok"`
	Msg *string `json:"msg"`
}

func (s *Server) scaleCluster(w http.ResponseWriter, r *http.Request, u *cluster.User) error {
	c, err := s.lookup(r, u, cluster.ActionScale)
	if err != nil {
		return err
	}
	var body struct {
		Count any `json:"count"`
	}
	if err := s.decodeBody(w, r, &body); err != nil {
		return err
	}
	count, ok := nonNegInt(body.Count)
	if !ok {
		return errorf(http.StatusUnprocessableEntity, "Scale expects a non-negative integer, got %s", pyStr(body.Count))
	}
	reply := scaleReply{OK: true}
	if limit, ok := c.Config.MaxWorkers(); ok && count > limit {
		msg := fmt.Sprintf("Scale request of %d workers would exceed resource limit of %d workers. Scaling to %d instead.", count, limit, limit)
		reply, count = scaleReply{Msg: &msg}, limit
	}
	if err := s.forward(r.Context(), c, map[string]any{"op": "scale", "count": count}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

func (s *Server) adaptCluster(w http.ResponseWriter, r *http.Request, u *cluster.User) error {
	c, err := s.lookup(r, u, cluster.ActionAdapt)
	if err != nil {
		return err
	}
	body := struct {
		Minimum any  `json:"minimum"`
		Maximum any  `json:"maximum"`
		Active  bool `json:"active"`
	}{Active: true}
	if err := s.decodeBody(w, r, &body); err != nil {
		return err
	}
	minimum, maximum, err := adaptBounds(body.Minimum, body.Maximum)
	if err != nil {
		return err
	}
	reply := scaleReply{OK: true}
	if limit, ok := c.Config.MaxWorkers(); ok {
		reply, minimum, maximum = clampAdapt(limit, minimum, maximum)
	}
	msg := map[string]any{"op": "adapt", "minimum": minimum, "maximum": maximum, "active": body.Active}
	if err := s.forward(r.Context(), c, msg); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, reply)
	return nil
}

// adaptBounds checks that minimum and maximum are null or non-negative integers.
func adaptBounds(rawMin, rawMax any) (minimum, maximum *int, err error) {
	parse := func(field string, v any) (*int, error) {
		if v == nil {
			return nil, nil
		}
		n, ok := nonNegInt(v)
		if !ok {
			return nil, errorf(http.StatusUnprocessableEntity, "Adapt expects %s to be a non-negative integer or null, got %s", field, pyStr(v))
		}
		return &n, nil
	}
	if minimum, err = parse("minimum", rawMin); err != nil {
		return nil, nil, err
	}
	if maximum, err = parse("maximum", rawMax); err != nil {
		return nil, nil, err
	}
	if minimum != nil && maximum != nil && *minimum > *maximum {
		return nil, nil, errorf(http.StatusUnprocessableEntity, "Adapt expects minimum (%d) to be at most maximum (%d)", *minimum, *maximum)
	}
	return minimum, maximum, nil
}

// clampAdapt applies cluster_max_workers to adaptive bounds with
// upstream's warning text.
func clampAdapt(limit int, minimum, maximum *int) (scaleReply, *int, *int) {
	lo, hi := 0, limit
	if minimum != nil {
		lo = *minimum
	}
	if maximum != nil {
		hi = *maximum
	}
	if hi <= limit && lo <= limit {
		return scaleReply{OK: true}, &lo, &hi
	}
	nhi, nlo := min(limit, hi), min(limit, lo)
	msg := fmt.Sprintf("Adapt with `maximum=%d, minimum=%d` workers would exceed resource limit of %d workers. Using `maximum=%d, minimum=%d` instead.",
		hi, lo, limit, nhi, nlo)
	return scaleReply{Msg: &msg}, &nlo, &nhi
}

// forward sends a message to a RUNNING cluster's scheduler; if it cannot
// be reached the cluster is failed. Both cases are a 409.
func (s *Server) forward(ctx context.Context, c *cluster.Cluster, msg any) error {
	notRunning := errorf(http.StatusConflict, "cluster %s is not running", c.Name)
	if c.Status != cluster.Running {
		return notRunning
	}
	if err := s.cfg.Scheduler.Send(ctx, c, msg); err != nil {
		notRunning.Err = err
		if ctx.Err() != nil { // the client went away: not the scheduler's fault
			return notRunning
		}
		_ = s.cfg.Backend.Stop(context.WithoutCancel(ctx), c.Name, true, "scheduler unreachable: "+err.Error())
		return notRunning
	}
	return nil
}

func nonNegInt(v any) (int, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := n.Int64()
	if err != nil || i < 0 || i > 1<<31 {
		return 0, false
	}
	return int(i), true
}

// pyStr renders a decoded JSON value like Python's str().
func pyStr(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		if x {
			return "True"
		}
		return "False"
	case string:
		return x
	}
	b, _ := json.Marshal(v)
	return string(b)
}
