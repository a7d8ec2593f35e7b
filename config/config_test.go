package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	p := write(t, `
address: 0.0.0.0:9000
prefix: /services/dask-gateway/
auth: {password: x}
options:
  fields:
    - {field: worker_cores, type: int, default: 1, min: 1, max: 4}
    - {field: env, type: select, options: [a, {key: b, value: {x: 1}}]}
cluster:
  worker_memory: 4 G
  idle_timeout: 30s
  cluster_max_workers: 5
backend:
  heartbeat_period: 2s
`)
	cfg, err := Load(p, []string{"DASKGATE_AUTH__PASSWORD=fromenv", "DASKGATE_BACKEND__WORKER_START_FAILURE_LIMIT=7", "DASKGATE_BIN=/x"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Prefix != "/services/dask-gateway" || cfg.Auth.Password != "fromenv" || cfg.Backend.WorkerStartFailureLimit != 7 ||
		cfg.Cluster.WorkerMemory != 4<<30 || time.Duration(cfg.Cluster.IdleTimeout) != 30*time.Second ||
		*cfg.Cluster.ClusterMaxWorkers != 5 || time.Duration(cfg.Backend.HeartbeatPeriod) != 2*time.Second ||
		len(cfg.Options.Fields) != 2 || cfg.DataDir != "./daskgate-data" {
		t.Fatalf("config: %+v", cfg)
	}
}

func TestUnknownKeysNamePaths(t *testing.T) {
	p := write(t, `
adress: x
cluster: {worker_memry: 1G}
options: {fields: [{field: a, type: int, mn: 1}]}
`)
	_, err := Load(p, nil)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"adress", "cluster.worker_memry", "options.fields[0].mn"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := Load("", []string{"DASKGATE_CLUSTER__NOPE=1"}); err == nil || !strings.Contains(err.Error(), "cluster.nope") {
		t.Errorf("env unknown key: %v", err)
	}
}

func TestValidateReportsAll(t *testing.T) {
	cfg := Default()
	cfg.Address, cfg.Log.Level, cfg.Auth.Type = "nope", "loud", "ldap"
	cfg.Cluster.WorkerCores = 0
	err := cfg.Validate()
	for _, want := range []string{"address", "log.level", "auth.type", "cluster: worker_cores"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
	def := Default()
	if err := def.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestEnvValuesAreTypedByTheSchema(t *testing.T) {
	tests := []struct {
		name, env string
		check     func(*Config) bool
		errWants  string
	}{
		{"comment-like password", "DASKGATE_AUTH__PASSWORD=#hunter2", func(c *Config) bool { return c.Auth.Password == "#hunter2" }, ""},
		{"numeric password", "DASKGATE_AUTH__PASSWORD=1234", func(c *Config) bool { return c.Auth.Password == "1234" }, ""},
		{"yaml-looking password", "DASKGATE_AUTH__PASSWORD={a: b}", func(c *Config) bool { return c.Auth.Password == "{a: b}" }, ""},
		{"empty password", "DASKGATE_AUTH__PASSWORD=", func(c *Config) bool { return c.Auth.Password == "" }, ""},
		{"integer", "DASKGATE_BACKEND__WORKER_START_FAILURE_LIMIT=7", func(c *Config) bool { return c.Backend.WorkerStartFailureLimit == 7 }, ""},
		{"duration", "DASKGATE_CLUSTER__IDLE_TIMEOUT=90s", func(c *Config) bool { return time.Duration(c.Cluster.IdleTimeout) == 90*time.Second }, ""},
		{"explicit null", "DASKGATE_CLUSTER__CLUSTER_MAX_WORKERS=null", func(c *Config) bool { return c.Cluster.ClusterMaxWorkers == nil }, ""},
		{"bad integer", "DASKGATE_BACKEND__WORKER_START_FAILURE_LIMIT=lots", nil, "backend.worker_start_failure_limit"},
		{"comment as integer", "DASKGATE_BACKEND__WORKER_START_FAILURE_LIMIT=#7", nil, "DASKGATE_BACKEND__WORKER_START_FAILURE_LIMIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load("", []string{tt.env})
			if tt.errWants != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errWants) {
					t.Fatalf("Load(%s) = %v, want an error naming %s", tt.env, err, tt.errWants)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(cfg) {
				t.Fatalf("Load(%s) gave %+v", tt.env, cfg)
			}
		})
	}
}

func TestJupyterHubSettings(t *testing.T) {
	p := write(t, "auth: {type: jupyterhub}\n")
	cfg, err := Load(p, []string{"JUPYTERHUB_API_URL=http://hub:8081/hub/api/", "JUPYTERHUB_API_TOKEN=secret", "JUPYTERHUB_SERVICE_NAME=dask-gateway"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if a := cfg.Auth; a.JupyterHubAPIURL != "http://hub:8081/hub/api" || a.JupyterHubAPIToken != "secret" || a.JupyterHubServiceName != "dask-gateway" {
		t.Fatalf("hub settings from the environment: %+v", a)
	}
	cfg, err = Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	for _, key := range []string{"auth.jupyterhub_api_url", "auth.jupyterhub_api_token"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("missing %s: %v", key, err)
		}
	}
}

// The hub's API URL comes from the Kubernetes service links of a Service
// named hub when nothing else sets it, as upstream's chart does; an
// explicit setting or JUPYTERHUB_API_URL wins.
func TestJupyterHubServiceLinks(t *testing.T) {
	p := write(t, "auth: {type: jupyterhub}\n")
	for _, tt := range []struct {
		env  []string
		want string
	}{
		{[]string{"HUB_SERVICE_HOST=10.0.0.7", "HUB_SERVICE_PORT=8081"}, "http://10.0.0.7:8081/hub/api"},
		{[]string{"HUB_SERVICE_HOST=fd00::7", "HUB_SERVICE_PORT=8081"}, "http://[fd00::7]:8081/hub/api"},
		{[]string{"HUB_SERVICE_HOST=10.0.0.7", "JUPYTERHUB_API_URL=http://other/hub/api"}, "http://other/hub/api"},
	} {
		cfg, err := Load(p, tt.env)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Auth.JupyterHubAPIURL != tt.want {
			t.Errorf("%v: api url %q, want %q", tt.env, cfg.Auth.JupyterHubAPIURL, tt.want)
		}
	}
}

// Origins are kept as browsers spell them, so the Host the proxy compares
// with is the one browsers send (no default port, no trailing slash).
func TestDashboardOrigins(t *testing.T) {
	for _, tt := range []struct{ dash, api, wantDash, wantHost, err string }{
		{"https://dash.example.org:443/", "https://dask.example.org", "https://dash.example.org", "dash.example.org", ""},
		{"http://dash.test:8000", "http://api.test:8000", "http://dash.test:8000", "dash.test:8000", ""},
		{"http://dash.test:8000", "http://dash.test:9000", "", "", "another host name"},
		{"https://dash.example.org/x", "https://dask.example.org", "", "", "must be an origin"},
		{"https://dash.example.org", "", "", "", "proxy.api_origin"},
	} {
		p := Proxy{DashboardOrigin: tt.dash, APIOrigin: tt.api}
		err := p.validateOrigins()
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s %s: %v, want %q", tt.dash, tt.api, err, tt.err)
			}
			continue
		}
		if err != nil || p.DashboardOrigin != tt.wantDash || p.DashboardHost() != tt.wantHost {
			t.Errorf("%s: %q %q %v", tt.dash, p.DashboardOrigin, p.DashboardHost(), err)
		}
	}
}
