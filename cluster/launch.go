package cluster

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Role is which of a cluster's processes a launch is for.
type Role string

// The two roles.
const (
	RoleScheduler Role = "scheduler"
	RoleWorker    Role = "worker"
)

// EnvVar is one environment variable of a cluster process.
type EnvVar struct{ Name, Value string }

// Launch is what one cluster process runs: its argv and environment,
// built once from the cluster's configuration by NewLaunch. The local
// backend runs it as a process, the Kubernetes backend as a container;
// neither builds flags or variables of its own.
type Launch struct {
	Argv []string
	Env  []EnvVar
}

// Placement is what differs between backends: where processes listen and
// find each other, and where their credentials are.
type Placement struct {
	// ClusterName is the public name (DASK_GATEWAY_CLUSTER_NAME); APIURL
	// is where the scheduler's preload sends heartbeats.
	ClusterName, APIURL string
	// Token is DASK_GATEWAY_API_TOKEN: the token itself, or a path to a
	// file holding it (the preload reads values with a "/" as paths).
	Token string
	// CredentialsDir holds dask.crt and dask.pem; it ends in "/".
	CredentialsDir string
	// SchedulerHost and SchedulerPort are where the scheduler listens
	// ("" host: all interfaces; port 0: any); DashboardAddress and
	// APIAddress likewise for its dashboard and the preload's API
	// ("127.0.0.1:0", ":8787"). Workers use DashboardAddress too.
	SchedulerHost                string
	SchedulerPort                int
	DashboardAddress, APIAddress string
	// HeartbeatPeriod is how often the preload reports (0: only when
	// something changed, as on Kubernetes, where the controller watches).
	HeartbeatPeriod time.Duration
	// SchedulerAddress is where workers find the scheduler;
	// WorkerName is a worker's --name (a literal, or "$(VAR)" that the
	// container runtime expands).
	SchedulerAddress, WorkerName string
	// Env are the backend's own variables (the local backend's inherited
	// PATH and USER): after the cluster's environment, which they
	// override, and before the gateway's variables, which nothing does.
	Env []EnvVar
}

// reserved names the variables a cluster's own environment cannot set:
// they carry the gateway's identity and TLS settings.
var reserved = []string{
	"DASK_GATEWAY_API_URL", "DASK_GATEWAY_API_TOKEN", "DASK_GATEWAY_CLUSTER_NAME", "DASK_GATEWAY_WORKER_NAME",
	"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION", "DASK_DISTRIBUTED__COMM__TLS__CA_FILE",
	"DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT", "DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY",
	"DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT", "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY",
}

// NewLaunch builds the scheduler's or a worker's launch: upstream's
// command lines (the scheduler with the dask_gateway preload over TLS, a
// worker with the cluster's threads and memory limit) and environment.
func NewLaunch(c Config, role Role, p Placement) Launch {
	var argv []string
	if role == RoleScheduler {
		argv = append(slices.Clone(c.SchedulerCmd),
			"--protocol", "tls", "--host", p.SchedulerHost, "--port", strconv.Itoa(p.SchedulerPort),
			"--dashboard-address", p.DashboardAddress, "--dg-api-address", p.APIAddress,
			"--preload", "dask_gateway.scheduler_preload",
			"--dg-heartbeat-period", seconds(p.HeartbeatPeriod),
			"--dg-adaptive-period", seconds(time.Duration(c.AdaptivePeriod)),
			"--dg-idle-timeout", seconds(time.Duration(c.IdleTimeout)))
	} else {
		argv = append(slices.Clone(c.WorkerCmd), p.SchedulerAddress,
			"--dashboard-address", p.DashboardAddress, "--name", p.WorkerName,
			"--nthreads", strconv.Itoa(c.Threads()),
			"--memory-limit", strconv.FormatInt(int64(c.WorkerMemoryLimitOrRequest()), 10))
	}
	return Launch{Argv: argv, Env: launchEnv(c, p)}
}

func launchEnv(c Config, p Placement) []EnvVar {
	var env []EnvVar
	set := func(name, value string) {
		if i := slices.IndexFunc(env, func(e EnvVar) bool { return e.Name == name }); i >= 0 {
			env = slices.Delete(env, i, i+1)
		}
		env = append(env, EnvVar{name, value})
	}
	for _, k := range slices.Sorted(maps.Keys(c.Environment)) {
		if !slices.Contains(reserved, k) {
			set(k, c.Environment[k])
		}
	}
	for _, e := range p.Env {
		if !slices.Contains(reserved, e.Name) {
			set(e.Name, e.Value)
		}
	}
	cert, key := p.CredentialsDir+"dask.crt", p.CredentialsDir+"dask.pem"
	for _, e := range []EnvVar{
		{"DASK_GATEWAY_API_URL", p.APIURL}, {"DASK_GATEWAY_CLUSTER_NAME", p.ClusterName}, {"DASK_GATEWAY_API_TOKEN", p.Token},
		{"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION", "True"}, {"DASK_DISTRIBUTED__COMM__TLS__CA_FILE", cert},
		{"DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__CERT", cert}, {"DASK_DISTRIBUTED__COMM__TLS__SCHEDULER__KEY", key},
		{"DASK_DISTRIBUTED__COMM__TLS__WORKER__CERT", cert}, {"DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY", key},
	} {
		set(e.Name, e.Value)
	}
	return env
}

// seconds prints a duration the way the preload's flags expect.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// WorkerMemoryLimitOrRequest is a worker's memory limit: worker_memory_limit
// when set, else worker_memory.
func (c Config) WorkerMemoryLimitOrRequest() Memory {
	if c.WorkerMemoryLimit != 0 {
		return c.WorkerMemoryLimit
	}
	return c.WorkerMemory
}

// String shows a launch for logs and errors (environment values hidden:
// the token may be among them).
func (l Launch) String() string {
	names := make([]string, len(l.Env))
	for i, e := range l.Env {
		names[i] = e.Name
	}
	return fmt.Sprintf("%q env %v", l.Argv, names)
}
