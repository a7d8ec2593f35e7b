package local

import (
	"encoding/json"
	"time"

	"github.com/daskgate/daskgate/cluster"
)

// jobStatus is upstream's JobStatus: how far a cluster or worker has got
// (status) and where it should end up (target).
type jobStatus int

const (
	jobCreated jobStatus = iota + 1
	jobSubmitted
	jobRunning
	jobClosing
	jobStopped
	jobFailed
)

// record is one cluster as persisted. Fields without JSON tags are runtime
// state rebuilt at load.
type record struct {
	Name     string          `json:"name"`
	Username string          `json:"username"`
	Token    string          `json:"token"`
	TLSCert  string          `json:"tls_cert"`
	TLSKey   string          `json:"tls_key"`
	Status   jobStatus       `json:"status"`
	Target   jobStatus       `json:"target"`
	Count    int             `json:"count"`
	Options  json.RawMessage `json:"options"`
	Config   cluster.Config  `json:"config"`
	Workdir  string          `json:"workdir"`
	PID      int             `json:"pid"`

	SchedulerAddress string `json:"scheduler_address"`
	DashboardAddress string `json:"dashboard_address"`
	APIAddress       string `json:"api_address"`

	StartTime    int64              `json:"start_time"`
	StopTime     int64              `json:"stop_time"`
	FailureCount int                `json:"failure_count"`
	Reason       string             `json:"reason,omitempty"`
	Workers      map[string]*worker `json:"workers"`

	lastHeartbeat time.Time
	routed        bool
}

// worker is one dask-worker process of a cluster.
type worker struct {
	Name          string    `json:"name"`
	Status        jobStatus `json:"status"`
	Target        jobStatus `json:"target"`
	PID           int       `json:"pid"`
	StartTime     int64     `json:"start_time"`
	StopTime      int64     `json:"stop_time"`
	CloseExpected bool      `json:"close_expected"`
}

// publicStatus maps (status, target) to the API status.
func (r *record) publicStatus() cluster.Status {
	switch {
	case r.Status == jobStopped:
		return cluster.Stopped
	case r.Status == jobFailed:
		return cluster.Failed
	case r.Target != jobRunning || r.Status == jobClosing:
		return cluster.Stopping
	case r.Status == jobRunning:
		return cluster.Running
	}
	return cluster.Pending
}

// view copies what callers may see; the caller holds the lock.
func (r *record) view() *cluster.Cluster {
	v := &cluster.Cluster{
		Name: r.Name, Username: r.Username, Status: r.publicStatus(),
		Options: r.Options, Config: r.Config,
		StartTime: r.StartTime, StopTime: r.StopTime,
		SchedulerAddress: r.SchedulerAddress, DashboardAddress: r.DashboardAddress, APIAddress: r.APIAddress,
		TLSCert: r.TLSCert, TLSKey: cluster.Secret(r.TLSKey), Token: cluster.Secret(r.Token),
		Reason: r.Reason,
	}
	for _, w := range r.Workers {
		if w.Status < jobStopped {
			v.Workers++
		}
	}
	return v
}

// activeWorkers counts workers that should be running.
func (r *record) activeWorkers() int {
	n := 0
	for _, w := range r.Workers {
		if w.Target < jobStopped {
			n++
		}
	}
	return n
}
