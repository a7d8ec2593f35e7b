// Package cluster holds the model every backend shares: the public status
// of a cluster, the per-cluster configuration (upstream's ClusterConfig
// names and defaults), the heartbeat message a scheduler sends, and the
// self-signed TLS credentials a cluster is created with.
//
// Typical use:
//
//	cfg := cluster.DefaultConfig()
//	cfg, ignored, err := cfg.WithOverrides(map[string]any{"worker_cores": 2}, false)
//	max, ok := cfg.MaxWorkers()
//	cert, key, err := cluster.NewKeypair(name)
package cluster

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Status is the public cluster status shown by the API.
type Status int

// Public statuses, with upstream's numbering.
const (
	Pending Status = iota + 1
	Running
	Stopping
	Stopped
	Failed
)

var statusNames = [...]string{"", "PENDING", "RUNNING", "STOPPING", "STOPPED", "FAILED"}

func (s Status) String() string {
	if s < Pending || s > Failed {
		return fmt.Sprintf("Status(%d)", int(s))
	}
	return statusNames[s]
}

// MarshalJSON writes the upper-case name.
func (s Status) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON reads a name, as MarshalJSON writes it.
func (s *Status) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return err
	}
	st, err := ParseStatus(name)
	*s = st
	return err
}

// Finished reports whether the cluster has reached STOPPED or FAILED.
func (s Status) Finished() bool { return s == Stopped || s == Failed }

// ParseStatus parses a status name case-insensitively. The error text is
// upstream's: "'foo' is not a valid ClusterStatus".
func ParseStatus(s string) (Status, error) {
	for i, n := range statusNames {
		if i > 0 && strings.EqualFold(n, s) {
			return Status(i), nil
		}
	}
	return 0, fmt.Errorf("'%s' is not a valid ClusterStatus", s)
}

// AllStatuses lists every public status in order.
var AllStatuses = []Status{Pending, Running, Stopping, Stopped, Failed}

// Secret is a string that never shows up in logs.
type Secret string

// LogValue hides the value from slog.
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String hides the value from fmt.
func (Secret) String() string { return "REDACTED" }

// NewName returns 32 lowercase hex characters, like uuid4().hex: safe as a
// DNS label, a URL segment and a token (no '/').
func NewName() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// Cluster is a backend's answer about one cluster: what the API reports
// plus what the server needs to forward requests to the scheduler.
type Cluster struct {
	Name     string
	Username string
	Status   Status
	// Options are the validated user options, as JSON.
	Options json.RawMessage
	Config  Config
	// StartTime and StopTime are ms since the epoch; StopTime 0 means unset.
	StartTime int64
	StopTime  int64
	// Addresses reported by the scheduler's first heartbeat.
	SchedulerAddress string
	DashboardAddress string
	APIAddress       string
	// TLSCert and TLSKey are PEM; the key is secret.
	TLSCert string
	TLSKey  Secret
	Token   Secret
	// Workers counts workers not yet stopped; Reason says why a cluster failed.
	Workers int
	Reason  string
}

// ErrNotFound is returned by backends for an unknown cluster name.
var ErrNotFound = errors.New("cluster not found")

// CreateRequest is a validated cluster for a backend to create.
type CreateRequest struct {
	Username string
	// Options are the validated user options, as JSON.
	Options json.RawMessage
	Config  Config
}

// Heartbeat is the message the scheduler preload posts every period.
type Heartbeat struct {
	SchedulerAddress string   `json:"scheduler_address"`
	DashboardAddress string   `json:"dashboard_address"`
	APIAddress       string   `json:"api_address"`
	Count            int      `json:"count"`
	ActiveWorkers    []string `json:"active_workers"`
	ClosingWorkers   []string `json:"closing_workers"`
	ClosedWorkers    []string `json:"closed_workers"`
}

// User is who a request acts for, as the authenticator saw it.
type User struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
	Admin  bool     `json:"admin"`
}

// Action is what a user asks to do, for authorization.
type Action string

// Actions an Authorizer is asked about.
const (
	ActionCreate Action = "create"
	ActionList   Action = "list"
	ActionView   Action = "view"
	ActionScale  Action = "scale"
	ActionAdapt  Action = "adapt"
	ActionStop   Action = "stop"
	// ActionDashboard is a request through the proxy to a cluster's
	// dashboard. Browsers send no API credentials, so the user is the
	// session's or Basic auth's when present, else anonymous (name "").
	ActionDashboard Action = "dashboard"
)

// Usage is what a user's active clusters hold together.
type Usage struct {
	Clusters int     `json:"clusters"`
	Workers  int     `json:"workers"`
	Cores    float64 `json:"cores"`
	Memory   int64   `json:"memory"`
}

// AuthzRequest is one authorization question.
type AuthzRequest struct {
	User   *User
	Action Action
	// Cluster is the cluster acted on; nil for create and list.
	Cluster *Cluster
	// Request is the cluster asked for, for create.
	Request *CreateRequest
	// Usage is the user's current usage (for quotas).
	Usage Usage
	// RemoteAddr is the client's address (after PROXY protocol).
	RemoteAddr string
	// DashboardSignIn says that browsers sign in (at the hub) before a
	// dashboard: the default rule then keeps dashboards to their owner
	// and admins instead of leaving them open as upstream does.
	DashboardSignIn bool
}

// SortByStart orders clusters oldest first (ties by name), the order
// every backend lists them in.
func SortByStart(cs []*Cluster) {
	slices.SortFunc(cs, func(a, b *Cluster) int {
		if c := cmp.Compare(a.StartTime, b.StartTime); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// Activity is what the gateway last saw of a running cluster's scheduler
// (its dashboard's counts): the web page shows it, and the lifecycle
// rules act on it.
type Activity struct {
	// Clients is how many clients are connected; -1 means unknown (the
	// dashboard did not answer the last check).
	Clients int
	// Busy says tasks were processing or waiting at the last check.
	Busy bool
	// IdleSince is when the cluster was last seen busy, or first watched;
	// zero while busy.
	IdleSince time.Time
	// LastClient is when a client was last seen connected, or when the
	// gateway first watched the cluster.
	LastClient time.Time
	// Checked is when the scheduler last answered.
	Checked time.Time
}
