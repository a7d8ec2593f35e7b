package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"
)

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want Memory
		bad  bool
	}{
		{"2 G", 2 << 30, false}, {"1.5G", 3 << 29, false}, {"512M", 512 << 20, false}, {" 4 T ", 4 << 40, false},
		{"2Gi", 2 << 30, false}, {"2GiB", 2 << 30, false}, {"1024", 0, true}, {"2 g", 0, true}, {"G", 0, true}, {"-1G", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseMemory(tt.in)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("ParseMemory(%q) = %d, %v", tt.in, got, err)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[int64]string{1 << 30: "1024.00 MiB", 2 << 30: "2.00 GiB", 100: "100 B", 1536: "1.50 kiB"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestMaxWorkers(t *testing.T) {
	base := DefaultConfig()
	tests := []struct {
		name string
		mod  func(*Config)
		want int
		ok   bool
	}{
		{"none", func(*Config) {}, 0, false},
		{"explicit", func(c *Config) { c.ClusterMaxWorkers = ptr(10) }, 10, true},
		{"cores", func(c *Config) { c.ClusterMaxCores = ptr(6.0); c.WorkerCores = 2 }, 2, true},
		{"memory", func(c *Config) { c.ClusterMaxMemory = ptr(Memory(6 << 30)); c.SchedulerMemory = 1 << 30 }, 2, true},
		{"min of explicit and derived", func(c *Config) { c.ClusterMaxWorkers = ptr(10); c.ClusterMaxCores = ptr(6.0); c.WorkerCores = 2 }, 2, true},
		{"never negative", func(c *Config) { c.ClusterMaxCores = ptr(1.0) }, 0, true},
	}
	for _, tt := range tests {
		c := base.clone()
		tt.mod(&c)
		if got, ok := c.MaxWorkers(); got != tt.want || ok != tt.ok {
			t.Errorf("%s: MaxWorkers = %d, %v; want %d, %v", tt.name, got, ok, tt.want, tt.ok)
		}
		// What both backends clamp a heartbeat's count to: the limit, or
		// the default when none is set (an explicit limit above it wins).
		want := tt.want
		if !tt.ok {
			want = DefaultWorkerLimit
		}
		if got := c.WorkerLimit(); got != want {
			t.Errorf("%s: WorkerLimit = %d, want %d", tt.name, got, want)
		}
	}
	c := base.clone()
	c.ClusterMaxWorkers = ptr(5000)
	if c.WorkerLimit() != 5000 {
		t.Errorf("an explicit limit above the default: %d", c.WorkerLimit())
	}
}

func TestWithOverrides(t *testing.T) {
	base := DefaultConfig()
	c, ignored, err := base.WithOverrides(map[string]any{
		"worker_cores": 2, "worker_memory": "4 G", "idle_timeout": 30.5, "adaptive_period": "1s",
		"environment": map[string]any{"A": "b"}, "scheduler_cmd": "my-scheduler", "flavor": "x",
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if c.WorkerCores != 2 || c.WorkerMemory != 4<<30 || c.IdleTimeout != Duration(30500*time.Millisecond) ||
		c.AdaptivePeriod != Duration(time.Second) || c.Environment["A"] != "b" || len(c.SchedulerCmd) != 1 || c.Threads() != 2 {
		t.Fatalf("overrides not applied: %+v", c)
	}
	if len(ignored) != 1 || ignored[0] != "flavor" {
		t.Fatalf("ignored = %v", ignored)
	}
	if len(base.Environment) != 0 {
		t.Fatal("base config was modified")
	}
	_, _, err = base.WithOverrides(map[string]any{"flavor": "x", "worker_cores": "two"}, true)
	for _, want := range []string{"flavor is not a cluster config setting", "invalid value for worker_cores"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("strict error %v lacks %q", err, want)
		}
	}
	_, _, err = base.WithOverrides(map[string]any{"worker_cores": 0}, false)
	if err == nil || !strings.Contains(err.Error(), "worker_cores must be > 0") {
		t.Errorf("worker_cores=0: %v", err)
	}
}

func TestSchedulerOverLimit(t *testing.T) {
	c := DefaultConfig()
	c.ClusterMaxMemory = ptr(Memory(1 << 30))
	c.ClusterMaxCores = ptr(0.5)
	err := c.Validate()
	for _, want := range []string{"Scheduler memory request of 2.00 GiB exceeds cluster memory limit of 1024.00 MiB",
		"Scheduler cores request of 1 exceeds cluster cores limit of 0.5"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestStatus(t *testing.T) {
	if s, err := ParseStatus("running"); err != nil || s != Running {
		t.Fatal(s, err)
	}
	if _, err := ParseStatus("foo"); err == nil || err.Error() != "'foo' is not a valid ClusterStatus" {
		t.Fatal(err)
	}
	if _, err := ParseStatus(""); err == nil || err.Error() != "'' is not a valid ClusterStatus" {
		t.Fatal(err)
	}
}

func TestNewKeypair(t *testing.T) {
	for _, gen := range []func(string) ([]byte, []byte, error){NewKeypair, NewECKeypair} {
		checkKeypair(t, gen)
	}
}

func checkKeypair(t *testing.T, gen func(string) ([]byte, []byte, error)) {
	name := NewName()
	certPEM, keyPEM, err := gen(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "dask-internal" || cert.Issuer.CommonName != "dask-internal" ||
		strings.Join(cert.DNSNames, ",") != name+",dask-internal,skein-internal" || cert.IsCA {
		t.Fatalf("certificate fields: %+v", cert)
	}
	if d := cert.NotAfter.Sub(cert.NotBefore); d != 365*24*time.Hour {
		t.Fatalf("validity %v", d)
	}
	if len(cert.Extensions) != 1 { // SubjectAltName only
		t.Fatalf("extensions: %v", cert.Extensions)
	}
	if !strings.HasPrefix(string(keyPEM), "-----BEGIN PRIVATE KEY-----") {
		t.Fatal("key is not PKCS#8")
	}
	if len(name) != 32 || strings.Trim(name, "0123456789abcdef") != "" {
		t.Fatalf("name %q", name)
	}
}
