package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config is the per-cluster configuration, upstream's ClusterConfig. The
// server builds it from the admin's config with an option handler's
// overrides on top and stores it with the cluster.
type Config struct {
	// SchedulerCmd and WorkerCmd are argv prefixes; a YAML string is one element.
	SchedulerCmd Command `json:"scheduler_cmd"`
	WorkerCmd    Command `json:"worker_cmd"`
	// Environment is added to both processes; the gateway's own variables win.
	Environment map[string]string `json:"environment"`
	// WorkerMemory and SchedulerMemory are byte limits ("2 G", "512M", 1024).
	WorkerMemory    Memory `json:"worker_memory"`
	SchedulerMemory Memory `json:"scheduler_memory"`
	// WorkerCores and SchedulerCores are CPU counts (> 0).
	WorkerCores    float64 `json:"worker_cores"`
	SchedulerCores float64 `json:"scheduler_cores"`
	// WorkerThreads is --nthreads; 0 means max(int(worker_cores), 1).
	WorkerThreads int `json:"worker_threads"`
	// AdaptivePeriod is the scheduler's adaptive loop interval.
	AdaptivePeriod Duration `json:"adaptive_period"`
	// IdleTimeout stops an idle cluster; 0 means never.
	IdleTimeout Duration `json:"idle_timeout"`
	// MaxLifetime stops a cluster this long after it was created, whatever
	// it is doing; 0 means never. (Not in upstream.)
	MaxLifetime Duration `json:"max_lifetime"`
	// LastClientTimeout stops a running cluster once no client has been
	// connected to its scheduler for this long (counted from the last one
	// seen, or from the gateway first watching it); 0 means never. (Not in
	// upstream; checked by the gateway's lifecycle watcher.)
	LastClientTimeout Duration `json:"last_client_timeout,omitempty"`
	// Image is the container image for the Kubernetes backend; the local
	// backend ignores it. Kept here so policies can set it on any backend.
	Image string `json:"image"`

	// Kubernetes backend settings (upstream's KubeClusterConfig plus typed
	// placement keys); the local backend ignores them. Namespace "" means
	// the backend's default namespace; a zero limit equals its request.
	Namespace                     string            `json:"namespace,omitempty"`
	ImagePullPolicy               string            `json:"image_pull_policy,omitempty"`
	ImagePullSecrets              []NameRef         `json:"image_pull_secrets,omitempty"`
	WorkerCoresLimit              float64           `json:"worker_cores_limit,omitempty"`
	WorkerMemoryLimit             Memory            `json:"worker_memory_limit,omitempty"`
	SchedulerCoresLimit           float64           `json:"scheduler_cores_limit,omitempty"`
	SchedulerMemoryLimit          Memory            `json:"scheduler_memory_limit,omitempty"`
	WorkerExtraContainerConfig    map[string]any    `json:"worker_extra_container_config,omitempty"`
	SchedulerExtraContainerConfig map[string]any    `json:"scheduler_extra_container_config,omitempty"`
	WorkerExtraPodConfig          map[string]any    `json:"worker_extra_pod_config,omitempty"`
	SchedulerExtraPodConfig       map[string]any    `json:"scheduler_extra_pod_config,omitempty"`
	WorkerExtraPodAnnotations     map[string]string `json:"worker_extra_pod_annotations,omitempty"`
	SchedulerExtraPodAnnotations  map[string]string `json:"scheduler_extra_pod_annotations,omitempty"`
	WorkerExtraPodLabels          map[string]string `json:"worker_extra_pod_labels,omitempty"`
	SchedulerExtraPodLabels       map[string]string `json:"scheduler_extra_pod_labels,omitempty"`
	NodeSelector                  map[string]string `json:"node_selector,omitempty"`
	Tolerations                   []map[string]any  `json:"tolerations,omitempty"`
	ServiceAccount                string            `json:"service_account,omitempty"`
	PriorityClassName             string            `json:"priority_class_name,omitempty"`
	// ClusterMaxMemory, ClusterMaxCores and ClusterMaxWorkers cap a
	// cluster; nil means no cap. The worker cap is derived from all three.
	ClusterMaxMemory  *Memory  `json:"cluster_max_memory"`
	ClusterMaxCores   *float64 `json:"cluster_max_cores"`
	ClusterMaxWorkers *int     `json:"cluster_max_workers"`
}

// DefaultConfig returns upstream's ClusterConfig defaults.
func DefaultConfig() Config {
	return Config{
		SchedulerCmd:    Command{"dask", "scheduler"},
		WorkerCmd:       Command{"dask", "worker"},
		Environment:     map[string]string{},
		WorkerMemory:    2 << 30,
		SchedulerMemory: 2 << 30,
		WorkerCores:     1,
		SchedulerCores:  1,
		AdaptivePeriod:  Duration(3 * time.Second),
	}
}

// Threads is the worker's --nthreads.
func (c Config) Threads() int {
	if c.WorkerThreads > 0 {
		return c.WorkerThreads
	}
	return max(int(c.WorkerCores), 1)
}

// DefaultWorkerLimit bounds the workers of a cluster without a limit of
// its own, so a huge scale (or a scheduler's token alone) cannot make a
// backend start processes or pods without end.
const DefaultWorkerLimit = 1000

// WorkerLimit is how many workers a cluster may have: MaxWorkers when a
// limit is set (it replaces the default), else DefaultWorkerLimit. Every
// backend clamps a scheduler's requested count with it.
func (c Config) WorkerLimit() int {
	if n, ok := c.MaxWorkers(); ok {
		return n
	}
	return DefaultWorkerLimit
}

// MaxWorkers is the effective cluster_max_workers: the explicit value and
// the limits derived from cluster_max_memory and cluster_max_cores, the
// smallest of those set; ok is false when none is.
func (c Config) MaxWorkers() (n int, ok bool) {
	derived, have := math.MaxInt, false
	if c.ClusterMaxMemory != nil {
		derived = min(derived, int(math.Floor(float64(*c.ClusterMaxMemory-c.SchedulerMemory)/float64(c.WorkerMemory))))
		have = true
	}
	if c.ClusterMaxCores != nil {
		derived = min(derived, int(math.Floor((*c.ClusterMaxCores-c.SchedulerCores)/c.WorkerCores)))
		have = true
	}
	if have {
		derived = max(derived, 0)
	}
	switch {
	case c.ClusterMaxWorkers != nil && have:
		return min(*c.ClusterMaxWorkers, derived), true
	case c.ClusterMaxWorkers != nil:
		return *c.ClusterMaxWorkers, true
	case have:
		return derived, true
	}
	return 0, false
}

// Validate checks ranges and the scheduler-over-limit rules, reporting
// every problem with the key it concerns.
func (c Config) Validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(len(c.SchedulerCmd) == 0, "scheduler_cmd must not be empty")
	check(len(c.WorkerCmd) == 0, "worker_cmd must not be empty")
	check(c.WorkerMemory <= 0, "worker_memory must be > 0, got %d", c.WorkerMemory)
	check(c.SchedulerMemory <= 0, "scheduler_memory must be > 0, got %d", c.SchedulerMemory)
	check(!(c.WorkerCores > 0), "worker_cores must be > 0, got %v", c.WorkerCores)
	check(!(c.SchedulerCores > 0), "scheduler_cores must be > 0, got %v", c.SchedulerCores)
	check(c.WorkerThreads < 0, "worker_threads must be >= 0, got %d", c.WorkerThreads)
	check(c.AdaptivePeriod < 0, "adaptive_period must be >= 0, got %s", c.AdaptivePeriod)
	check(c.IdleTimeout < 0, "idle_timeout must be >= 0, got %s", c.IdleTimeout)
	check(c.MaxLifetime < 0, "max_lifetime must be >= 0, got %s", c.MaxLifetime)
	check(c.LastClientTimeout < 0, "last_client_timeout must be >= 0, got %s", c.LastClientTimeout)
	check(c.ClusterMaxWorkers != nil && *c.ClusterMaxWorkers < 0, "cluster_max_workers must be >= 0")
	check(c.ClusterMaxCores != nil && *c.ClusterMaxCores < 0, "cluster_max_cores must be >= 0")
	if m := c.ClusterMaxMemory; m != nil {
		check(c.SchedulerMemory > *m, "Scheduler memory request of %s exceeds cluster memory limit of %s",
			FormatBytes(int64(c.SchedulerMemory)), FormatBytes(int64(*m)))
	}
	if n := c.ClusterMaxCores; n != nil {
		check(c.SchedulerCores > *n, "Scheduler cores request of %v exceeds cluster cores limit of %v",
			c.SchedulerCores, *n)
	}
	check(c.WorkerCoresLimit != 0 && c.WorkerCoresLimit < c.WorkerCores,
		"worker_cores_limit (%v) must be >= worker_cores (%v)", c.WorkerCoresLimit, c.WorkerCores)
	check(c.SchedulerCoresLimit != 0 && c.SchedulerCoresLimit < c.SchedulerCores,
		"scheduler_cores_limit (%v) must be >= scheduler_cores (%v)", c.SchedulerCoresLimit, c.SchedulerCores)
	check(c.WorkerMemoryLimit != 0 && c.WorkerMemoryLimit < c.WorkerMemory,
		"worker_memory_limit (%d) must be >= worker_memory (%d)", c.WorkerMemoryLimit, c.WorkerMemory)
	check(c.SchedulerMemoryLimit != 0 && c.SchedulerMemoryLimit < c.SchedulerMemory,
		"scheduler_memory_limit (%d) must be >= scheduler_memory (%d)", c.SchedulerMemoryLimit, c.SchedulerMemory)
	check(c.ImagePullPolicy != "" && !slices.Contains([]string{"Always", "IfNotPresent", "Never"}, c.ImagePullPolicy),
		"image_pull_policy must be Always, IfNotPresent or Never, got %q", c.ImagePullPolicy)
	for k := range c.Environment {
		check(k == "" || strings.ContainsAny(k, "=\x00"), "environment key %q is not a valid variable name", k)
	}
	return errors.Join(errs...)
}

// WithOverrides returns c with the given ClusterConfig keys replaced. Each
// value is decoded into the key's type; a bad value is an error naming the
// key. Keys that are not settings are errors when strict, otherwise they
// are returned in ignored (upstream ignores them). The result is validated.
func (c Config) WithOverrides(ov map[string]any, strict bool) (out Config, ignored []string, err error) {
	out = c.clone()
	fields := configFields()
	var errs []error
	keys := make([]string, 0, len(ov))
	for k := range ov {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		idx, ok := fields[k]
		if !ok {
			if strict {
				errs = append(errs, fmt.Errorf("%s is not a cluster config setting", k))
			} else {
				ignored = append(ignored, k)
			}
			continue
		}
		if err := setField(reflect.ValueOf(&out).Elem().Field(idx), ov[k]); err != nil {
			errs = append(errs, fmt.Errorf("invalid value for %s: %w", k, err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, out.Validate())
	}
	return out, ignored, errors.Join(errs...)
}

func (c Config) clone() Config {
	b, _ := json.Marshal(c)
	var out Config
	_ = json.Unmarshal(b, &out)
	if out.Environment == nil {
		out.Environment = map[string]string{}
	}
	return out
}

func setField(f reflect.Value, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	p := reflect.New(f.Type())
	if string(b) != "null" || f.Kind() == reflect.Pointer {
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(p.Interface()); err != nil {
			return cleanJSONError(err)
		}
	}
	f.Set(p.Elem())
	return nil
}

func cleanJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("expected %s, got %s", te.Type, te.Value)
	}
	return err
}

func configFields() map[string]int {
	t := reflect.TypeFor[Config]()
	m := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		m[strings.Split(t.Field(i).Tag.Get("json"), ",")[0]] = i
	}
	return m
}

// NameRef is a Kubernetes local object reference, {"name": ...}.
type NameRef struct {
	Name string `json:"name"`
}

// Command is an argv list; it also decodes from a single string, which is
// one element (not split on spaces).
type Command []string

// UnmarshalJSON accepts a string or a list of strings.
func (c *Command) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*c = Command{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("expected a string or a list of strings")
	}
	*c = l
	return nil
}

// Memory is a size in bytes. It decodes from a number of bytes or a string
// ending in K, M, G or T (powers of 1024), such as "2 G" or "1.5G".
type Memory int64

// UnmarshalJSON accepts a number or a suffixed string.
func (m *Memory) UnmarshalJSON(b []byte) error {
	var f float64
	if json.Unmarshal(b, &f) == nil {
		*m = Memory(f)
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("expected a number of bytes or a string like \"2 G\"")
	}
	v, err := ParseMemory(s)
	*m = v
	return err
}

// ParseMemory parses upstream's MemoryLimit strings: a number and one of
// the suffixes K, M, G, T (also Ki, Mi, Gi, Ti), spaces allowed between.
func ParseMemory(s string) (Memory, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	mult := map[byte]float64{'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}
	if t == "" || mult[t[len(t)-1]] == 0 {
		return 0, fmt.Errorf("memory %q must end in one of K, M, G, T", s)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(t[:len(t)-1]), 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("memory %q must be a non-negative number with a suffix", s)
	}
	return Memory(f * mult[t[len(t)-1]]), nil
}

// FormatBytes prints a size the way dask's format_bytes does: two decimals
// of the largest binary unit the value is strictly above.
func FormatBytes(n int64) string {
	units := []struct {
		name string
		size float64
	}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"kiB", 1 << 10}}
	for _, u := range units {
		if float64(n) > u.size {
			return fmt.Sprintf("%.2f %s", float64(n)/u.size, u.name)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// Duration is a time span that decodes from seconds (a number, as in
// upstream) or a Go duration string ("30s", "1h"), and encodes as a string.
type Duration time.Duration

// UnmarshalJSON accepts a number of seconds or a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var f float64
	if json.Unmarshal(b, &f) == nil {
		*d = Duration(f * float64(time.Second))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`expected seconds or a duration like "30s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Seconds is the duration in seconds.
func (d Duration) Seconds() float64 { return time.Duration(d).Seconds() }

func (d Duration) String() string { return time.Duration(d).String() }
