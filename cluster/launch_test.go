package cluster

import (
	"strings"
	"testing"
	"time"
)

func TestNewLaunch(t *testing.T) {
	c := DefaultConfig()
	c.WorkerCores, c.WorkerMemory = 2, 4<<30
	c.IdleTimeout, c.AdaptivePeriod = Duration(90*time.Second), Duration(3*time.Second)
	c.Environment = map[string]string{"B": "2", "A": "1", "PATH": "/cluster", "DASK_GATEWAY_API_TOKEN": "spoofed",
		"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": "/evil"}
	p := Placement{ClusterName: "c1", APIURL: "http://gw/api", Token: "tok", CredentialsDir: "/w/.certs/",
		SchedulerHost: "127.0.0.1", DashboardAddress: "127.0.0.1:0", APIAddress: "127.0.0.1:0",
		HeartbeatPeriod: 15 * time.Second, SchedulerAddress: "tls://127.0.0.1:9", WorkerName: "w1",
		Env: []EnvVar{{"PATH", "/venv/bin"}, {"USER", "alice"}}}

	s := NewLaunch(c, RoleScheduler, p)
	want := "dask scheduler --protocol tls --host 127.0.0.1 --port 0 --dashboard-address 127.0.0.1:0 --dg-api-address 127.0.0.1:0 " +
		"--preload dask_gateway.scheduler_preload --dg-heartbeat-period 15 --dg-adaptive-period 3 --dg-idle-timeout 90"
	if got := strings.Join(s.Argv, " "); got != want {
		t.Errorf("scheduler argv:\n%s\nwant\n%s", got, want)
	}
	w := NewLaunch(c, RoleWorker, p)
	want = "dask worker tls://127.0.0.1:9 --dashboard-address 127.0.0.1:0 --name w1 --nthreads 2 --memory-limit 4294967296"
	if got := strings.Join(w.Argv, " "); got != want {
		t.Errorf("worker argv:\n%s\nwant\n%s", got, want)
	}
	c.WorkerMemoryLimit = 6 << 30
	if w := NewLaunch(c, RoleWorker, p); w.Argv[len(w.Argv)-1] != "6442450944" {
		t.Errorf("a memory limit is the worker's --memory-limit: %v", w.Argv)
	}

	env := map[string]string{}
	var names []string
	for _, e := range s.Env {
		if _, dup := env[e.Name]; dup {
			t.Errorf("%s twice", e.Name)
		}
		env[e.Name] = e.Value
		names = append(names, e.Name)
	}
	for k, v := range map[string]string{
		"A": "1", "B": "2", "PATH": "/venv/bin", "USER": "alice", // the backend's variables win over the cluster's
		"DASK_GATEWAY_API_TOKEN": "tok", "DASK_GATEWAY_CLUSTER_NAME": "c1", // nothing overrides the gateway's
		"DASK_DISTRIBUTED__COMM__TLS__CA_FILE": "/w/.certs/dask.crt", "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY": "/w/.certs/dask.pem",
		"DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION": "True",
	} {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if names[0] != "A" || names[1] != "B" || names[len(names)-1] != "DASK_DISTRIBUTED__COMM__TLS__WORKER__KEY" {
		t.Errorf("order: the cluster's (sorted), the backend's, the gateway's: %v", names)
	}
	if strings.Contains(s.String(), "tok") {
		t.Errorf("String shows a value: %s", s)
	}
}
