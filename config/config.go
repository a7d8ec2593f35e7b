// Package config loads daskgate's YAML configuration: defaults, then the
// file, then DASKGATE_… environment variables, each key checked against
// the schema so a typo is an error naming its path.
//
// Typical use:
//
//	cfg, err := config.Load("daskgate.yaml", os.Environ())
//	cfg.Address = *addressFlag // flags win
//	err = cfg.Validate()
package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/daskgate/daskgate/cluster"
	"github.com/daskgate/daskgate/options"
	"gopkg.in/yaml.v3"
)

// Config is the whole configuration file.
type Config struct {
	// File is the path the configuration was read from ("" for none).
	File string `json:"-"`
	// Address is the one public listener: API, dashboards and scheduler TLS.
	Address string `json:"address"`
	// Prefix is the URL prefix, e.g. "/services/dask-gateway"; "" for none.
	Prefix string `json:"prefix"`
	// DataDir holds the store, the generated encryption key and cluster workdirs.
	DataDir string `json:"data_dir"`
	// APIURL is what schedulers heartbeat to; "" means http://<address><prefix>/api.
	APIURL string `json:"api_url"`
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout cluster.Duration `json:"shutdown_timeout"`
	// ShutdownDelay keeps accepting after SIGTERM, /api/health answering
	// 503, while load balancers stop sending (Kubernetes: a few seconds).
	ShutdownDelay cluster.Duration `json:"shutdown_delay"`
	Log           Log              `json:"log"`
	Auth          Auth             `json:"auth"`
	Options       Options          `json:"options"`
	// Policies are Rego files or directories (package daskgate.options,
	// daskgate.authz) and at most one .wasm module (daskgate-abi/1), which
	// answers the decisions it exports in front of the Rego ones; empty
	// means the built-in behaviour (upstream's).
	Policies []string `json:"policies"`
	// WASM limits the .wasm policy module.
	WASM WASM `json:"wasm"`
	// Rego limits the Rego policies.
	Rego Rego `json:"rego"`
	// Cluster is the ClusterConfig every cluster starts from.
	Cluster cluster.Config `json:"cluster"`
	Backend Backend        `json:"backend"`
	Proxy   Proxy          `json:"proxy"`
	// UI is the web page; Lifecycle the stops the gateway makes itself.
	UI        UI        `json:"ui"`
	Lifecycle Lifecycle `json:"lifecycle"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `json:"level"`
	// Format is text or json.
	Format string `json:"format"`
}

// Options declares the cluster option fields users see.
type Options struct {
	Fields []options.Field `json:"fields"`
}

// Backend configures where clusters run.
type Backend struct {
	// Type is "local" (processes on this machine) or "kubernetes" (pods).
	Type string `json:"type"`
	// Kubernetes configures the kubernetes backend and its controller.
	Kubernetes Kubernetes `json:"kubernetes"`
	// ClustersDirectory holds per-cluster workdirs; "" means
	// <data_dir>-clusters, beside the data dir and never inside it.
	ClustersDirectory string `json:"clusters_directory"`
	// Isolation keeps one tenant's cluster processes from another's files
	// and the gateway's: "sandbox" (Landlock, no root needed), "user"
	// (each user's OS account; the gateway runs as root) or "none" (a
	// single-user machine only); "" means sandbox, and a startup error
	// where the machine cannot.
	Isolation string `json:"isolation"`
	// UserUIDRange is where isolation "user" allocates uids: [min, max],
	// min >= 1000; uids of accounts, groups and subordinate ranges
	// (/etc/subuid, /etc/subgid) are skipped.
	UserUIDRange []int `json:"user_uid_range"`
	// UserExistingAccounts runs a user with an OS account of their name as
	// that account (upstream's LocalBackend), never a system or admin one;
	// only with an authenticator that proves the OS identity (Kerberos).
	UserExistingAccounts bool `json:"user_existing_accounts"`
	// SandboxReadOnlyPaths are more paths sandboxed clusters may read
	// (data sets, shared environments); none may hold the gateway's files.
	SandboxReadOnlyPaths []string `json:"sandbox_read_only_paths"`
	// InheritedEnvironment lists gateway variables copied to cluster processes.
	InheritedEnvironment []string `json:"inherited_environment"`
	// Timeouts and periods; see docs/configuration.md.
	ClusterStartTimeout cluster.Duration `json:"cluster_start_timeout"`
	WorkerStartTimeout  cluster.Duration `json:"worker_start_timeout"`
	HeartbeatPeriod     cluster.Duration `json:"heartbeat_period"`
	HeartbeatTimeout    cluster.Duration `json:"heartbeat_timeout"`
	StatusPeriod        cluster.Duration `json:"status_period"`
	// WorkerStartFailureLimit fails a cluster after this many consecutive worker failures.
	WorkerStartFailureLimit int `json:"worker_start_failure_limit"`
	// StopClustersOnShutdown fails running clusters when the gateway stops;
	// false leaves them running for the next start to re-adopt.
	StopClustersOnShutdown bool `json:"stop_clusters_on_shutdown"`
	// ClusterMaxAge purges finished clusters after this long.
	ClusterMaxAge cluster.Duration `json:"cluster_max_age"`
	CleanupPeriod cluster.Duration `json:"cleanup_period"`
	// SigintTimeout, SigtermTimeout, SigkillTimeout escalate process stops.
	SigintTimeout  cluster.Duration `json:"sigint_timeout"`
	SigtermTimeout cluster.Duration `json:"sigterm_timeout"`
	SigkillTimeout cluster.Duration `json:"sigkill_timeout"`
}

// Kubernetes configures backend.type kubernetes: the gateway side and the
// controller (`daskgate controller`, or in `serve` with controller.enabled).
type Kubernetes struct {
	// Kubeconfig is a kubeconfig path; "" means in-cluster, then $KUBECONFIG.
	Kubeconfig string `json:"kubeconfig"`
	// Instance is the gateway.dask.org/instance label gateway and controller
	// share; "" means $DASK_GATEWAY_INSTANCE, then "dask-gateway".
	Instance string `json:"instance"`
	// Namespaces clusters may run in; the first is the default (option
	// handlers may pick another from the list). Empty: the pod's own namespace.
	Namespaces []string `json:"namespaces"`
	// Labels and Annotations go on every object (upstream's common_labels/annotations).
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	// QPS and Burst limit this process's API calls.
	QPS   float64 `json:"qps"`
	Burst int     `json:"burst"`
	// StartupTimeout bounds the wait for the API server at startup: an
	// unreachable one is a startup error naming the cause after it.
	StartupTimeout cluster.Duration `json:"startup_timeout"`
	// Controller settings.
	Controller KubeController `json:"controller"`
}

// KubeController configures the controller.
type KubeController struct {
	// Enabled runs the controller inside `daskgate serve` as well (one
	// binary, one Deployment); the Lease keeps several replicas safe.
	Enabled                bool             `json:"enabled"`
	Parallelism            int              `json:"parallelism"`
	BackoffBaseDelay       cluster.Duration `json:"backoff_base_delay"`
	BackoffMaxDelay        cluster.Duration `json:"backoff_max_delay"`
	StartTimeout           cluster.Duration `json:"start_timeout"`
	CompletedClusterMaxAge cluster.Duration `json:"completed_cluster_max_age"`
	CleanupPeriod          cluster.Duration `json:"completed_cluster_cleanup_period"`
	DeleteFailedScheduler  bool             `json:"delete_failed_scheduler"`
	LeaseName              string           `json:"lease_name"`
}

// Proxy configures the built-in proxy.
type Proxy struct {
	// TCPAddress, if set, is a second listener for dask TLS only
	// (upstream's tcp_address); the main address keeps serving both.
	TCPAddress string `json:"tcp_address"`
	// TLSCert and TLSKey (PEM files, both or neither) serve HTTPS for the
	// API and dashboards on the main address, beside dask TLS passthrough.
	TLSCert string `json:"tls_cert"`
	TLSKey  string `json:"tls_key"`
	// DashboardOrigin, if set, serves dashboards on this origin only
	// (scheme://host[:port], a host name other than the API's), so pages
	// a cluster's owner writes never run where the API's cookies are
	// valid; APIOrigin is then where browsers reach the API.
	DashboardOrigin string `json:"dashboard_origin"`
	APIOrigin       string `json:"api_origin"`
	// ProxyProtocol accepts PROXY v1/v2 headers from trusted balancers.
	ProxyProtocol ProxyProtocol `json:"proxy_protocol"`
	// HelloTimeout bounds how long a new connection may take to send its
	// first bytes (and a whole TLS ClientHello).
	HelloTimeout cluster.Duration `json:"hello_timeout"`
	// BodyTimeout bounds the upload of one HTTP request body.
	BodyTimeout cluster.Duration `json:"body_timeout"`
	// DialTimeout bounds dialing schedulers and dashboards.
	DialTimeout cluster.Duration `json:"dial_timeout"`
}

// Rego limits what Rego policies may do.
type Rego struct {
	// Timeout bounds each decision (zero: 1s); a policy that runs longer
	// fails that request only.
	Timeout cluster.Duration `json:"timeout"`
	// AllowBuiltins lets policies call built-ins that are denied because
	// they reach outside the gateway: http.send, net.lookup_ip_addr,
	// opa.runtime (the gateway's environment, secrets included).
	AllowBuiltins []string `json:"allow_builtins"`
}

// WASM configures the WebAssembly policy module.
type WASM struct {
	// SHA256 pins the module: another file is refused at load and reload.
	SHA256 string `json:"sha256"`
	// Timeout bounds one call.
	Timeout cluster.Duration `json:"timeout"`
	// MemoryLimit caps the module's memory.
	MemoryLimit cluster.Memory `json:"memory_limit"`
}

// ProxyProtocol configures PROXY protocol on the public listeners.
type ProxyProtocol struct {
	// TrustedCIDRs may send a PROXY header; from anyone else it is not read.
	// Empty disables PROXY protocol.
	TrustedCIDRs []string `json:"trusted_cidrs"`
}

func dur(d time.Duration) cluster.Duration { return cluster.Duration(d) }

// Default is the configuration with no file: local processes, simple auth
// without password, data under ./daskgate-data, one port 127.0.0.1:8000.
func Default() Config {
	return Config{
		Address: "127.0.0.1:8000", DataDir: "./daskgate-data", ShutdownTimeout: dur(30 * time.Second),
		Log:     Log{Level: "info", Format: "text"},
		Auth:    Auth{Type: "simple", CacheMaxAge: dur(5 * time.Minute), Keytab: "dask_gateway.keytab", ServiceName: "HTTP"},
		Cluster: cluster.DefaultConfig(),
		Backend: Backend{
			Type:         "local",
			UserUIDRange: []int{700000000, 700999999}, // above login.defs' SUB_UID_MAX

			InheritedEnvironment: []string{"PATH", "PYTHONPATH", "CONDA_ROOT", "CONDA_DEFAULT_ENV", "VIRTUAL_ENV", "LANG", "LC_ALL"},
			ClusterStartTimeout:  dur(60 * time.Second), WorkerStartTimeout: dur(60 * time.Second),
			HeartbeatPeriod: dur(15 * time.Second), StatusPeriod: dur(30 * time.Second),
			WorkerStartFailureLimit: 3, StopClustersOnShutdown: true,
			ClusterMaxAge: dur(24 * time.Hour), CleanupPeriod: dur(10 * time.Minute),
			SigintTimeout: dur(10 * time.Second), SigtermTimeout: dur(5 * time.Second), SigkillTimeout: dur(5 * time.Second),
			Kubernetes: Kubernetes{QPS: 50, Burst: 100, Controller: KubeController{Parallelism: 20,
				BackoffBaseDelay: dur(100 * time.Millisecond), BackoffMaxDelay: dur(300 * time.Second), StartTimeout: dur(5 * time.Minute),
				CompletedClusterMaxAge: dur(24 * time.Hour), CleanupPeriod: dur(10 * time.Minute)}},
		},
		Proxy:     Proxy{HelloTimeout: dur(10 * time.Second), BodyTimeout: dur(60 * time.Second), DialTimeout: dur(10 * time.Second)},
		WASM:      WASM{Timeout: dur(100 * time.Millisecond), MemoryLimit: 64 << 20},
		UI:        UI{Enabled: true},
		Lifecycle: Lifecycle{CheckPeriod: dur(15 * time.Second), HubServerGrace: dur(5 * time.Minute)},
	}
}

// EnvPrefix starts every environment override: DASKGATE_AUTH__PASSWORD
// sets auth.password ("__" separates levels; values are YAML scalars).
const EnvPrefix = "DASKGATE_"

// Load reads path (none if "") and env overrides on top of Default.
func Load(path string, environ []string) (*Config, error) {
	tree := map[string]any{}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		if err := yaml.Unmarshal(b, &tree); err != nil {
			return nil, fmt.Errorf("parse config %s: %w", path, err)
		}
		if tree == nil {
			tree = map[string]any{}
		}
	}
	if err := applyEnv(tree, environ); err != nil {
		return nil, err
	}
	if err := checkKeys(tree); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	cfg := Default()
	b, err := json.Marshal(tree)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, describeJSONError(err))
	}
	cfg.Auth.hubEnvDefaults(environ)
	cfg.File = path
	return &cfg, nil
}

func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("key %s: expected %s, got %s", te.Field, te.Type, te.Value)
	}
	return err
}

// applyEnv sets DASKGATE_A__B=v as tree[a][b]. The value is typed by the
// schema, not guessed: a string key takes v as it is ("#hunter2" and
// "1234" are passwords), any other key parses v as a YAML value, and a
// value that is not one is an error naming the variable and the key.
// Variables whose first level is not a config key (DASKGATE_BIN, say) are
// not ours and are left alone.
func applyEnv(tree map[string]any, environ []string) error {
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(k, EnvPrefix)
		if !ok || rest == "" {
			continue
		}
		path := strings.Split(strings.ToLower(rest), "__")
		if !topLevelKey(path[0]) {
			continue
		}
		val, err := envValue(path, v)
		if err != nil {
			return fmt.Errorf("%s (key %s): %w", k, strings.Join(path, "."), err)
		}
		if err := setPath(tree, path, val); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// envValue types one variable's value by the kind of key it sets.
func envValue(path []string, v string) (any, error) {
	t := keyType(path)
	if t != nil && t.Kind() == reflect.String {
		return v, nil
	}
	var val any
	if err := yaml.Unmarshal([]byte(v), &val); err != nil {
		return nil, fmt.Errorf("not a YAML value: %w", err)
	}
	if val == nil && !slices.Contains([]string{"null", "~"}, strings.TrimSpace(v)) {
		return nil, fmt.Errorf("%q is not a value (write null to unset the key)", v)
	}
	return val, nil
}

func setPath(tree map[string]any, path []string, val any) error {
	for _, p := range path[:len(path)-1] {
		next, ok := tree[p].(map[string]any)
		if !ok {
			if tree[p] != nil {
				return fmt.Errorf("%s is not a mapping", p)
			}
			next = map[string]any{}
			tree[p] = next
		}
		tree = next
	}
	tree[path[len(path)-1]] = val
	return nil
}

// Validate checks values and reports every problem.
func (c *Config) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if _, _, err := net.SplitHostPort(c.Address); err != nil {
		add(fmt.Errorf("address: %w", err))
	}
	c.Prefix = strings.TrimRight(c.Prefix, "/")
	if c.Prefix != "" && !strings.HasPrefix(c.Prefix, "/") {
		add(errors.New("prefix: must start with /"))
	}
	add(oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error"))
	add(oneOf("log.format", c.Log.Format, "text", "json"))
	add(oneOf("auth.type", c.Auth.Type, "simple", "jupyterhub", "kerberos"))
	if c.Auth.Type == "jupyterhub" {
		if c.Auth.JupyterHubAPIURL == "" {
			add(errors.New("auth.jupyterhub_api_url: required with auth.type jupyterhub (or set JUPYTERHUB_API_URL)"))
		}
		if c.Auth.JupyterHubAPIToken == "" {
			add(errors.New("auth.jupyterhub_api_token: required with auth.type jupyterhub (or set JUPYTERHUB_API_TOKEN)"))
		}
		if (c.Auth.TLSCert == "") != (c.Auth.TLSKey == "") {
			add(errors.New("auth.tls_cert and auth.tls_key must be set together"))
		}
	}
	add(oneOf("backend.type", c.Backend.Type, "local", "kubernetes"))
	add(oneOf("backend.isolation", c.Backend.Isolation, "", "sandbox", "user", "none"))
	if r := c.Backend.UserUIDRange; len(r) != 2 || r[0] < 1000 || r[1] < r[0] {
		add(fmt.Errorf("backend.user_uid_range: %v must be [min, max] with 1000 <= min <= max", r))
	}
	if (c.Proxy.TLSCert == "") != (c.Proxy.TLSKey == "") {
		add(errors.New("proxy.tls_cert and proxy.tls_key must be set together"))
	}
	if c.Proxy.TCPAddress != "" {
		if _, _, err := net.SplitHostPort(c.Proxy.TCPAddress); err != nil {
			add(fmt.Errorf("proxy.tcp_address: %w", err))
		}
	}
	add(c.Proxy.validateOrigins())
	add(c.validateLifecycle())
	for _, cidr := range c.Proxy.ProxyProtocol.TrustedCIDRs {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			if _, err := netip.ParseAddr(cidr); err != nil {
				add(fmt.Errorf("proxy.proxy_protocol.trusted_cidrs: %q is not a CIDR or address", cidr))
			}
		}
	}
	nwasm := 0
	for _, p := range c.Policies {
		if strings.HasSuffix(p, ".wasm") {
			nwasm++
		}
	}
	if nwasm > 1 {
		add(errors.New("policies: at most one .wasm module"))
	}
	if c.WASM.MemoryLimit < 1<<16 || c.WASM.Timeout <= 0 {
		add(errors.New("wasm: memory_limit must be at least 64K and timeout positive"))
	}
	if c.DataDir == "" {
		add(errors.New("data_dir: must not be empty"))
	}
	if _, err := options.New(c.Options.Fields); err != nil {
		add(fmt.Errorf("options.%w", err))
	}
	if err := c.Cluster.Validate(); err != nil {
		add(fmt.Errorf("cluster: %w", err))
	}
	return errors.Join(errs...)
}

func oneOf(key, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fmt.Errorf("%s: %q is not one of %s", key, v, strings.Join(allowed, ", "))
}

// validateOrigins checks dashboard_origin and api_origin: both or neither,
// each scheme://host[:port] only, and different host names (browsers send
// a host's cookies to all its ports). It writes them back as browsers
// spell origins: no trailing slash, no default port.
func (p *Proxy) validateOrigins() error {
	if p.DashboardOrigin == "" && p.APIOrigin == "" {
		return nil
	}
	var hosts []string
	for _, o := range []struct {
		key string
		v   *string
	}{{"proxy.dashboard_origin", &p.DashboardOrigin}, {"proxy.api_origin", &p.APIOrigin}} {
		u, err := url.Parse(*o.v)
		if *o.v == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return fmt.Errorf("%s: %q must be an origin like https://dash.example.org (set both dashboard_origin and api_origin)", o.key, *o.v)
		}
		host := u.Host
		if port := u.Port(); (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
			host = u.Hostname()
		}
		*o.v = u.Scheme + "://" + host
		hosts = append(hosts, u.Hostname())
	}
	if strings.EqualFold(hosts[0], hosts[1]) {
		return fmt.Errorf("proxy.dashboard_origin: host %s is the API's; dashboards need another host name (cookies are shared across ports)", hosts[0])
	}
	return nil
}

// DashboardHost is the Host header browsers send to dashboard_origin
// (after Validate), "" when dashboards share the API's origin.
func (p *Proxy) DashboardHost() string {
	host, _ := strings.CutPrefix(p.DashboardOrigin, "http://")
	host, _ = strings.CutPrefix(host, "https://")
	return host
}
