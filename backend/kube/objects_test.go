package kube

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/daskgate/daskgate/cluster"
	corev1 "k8s.io/api/core/v1"
)

func TestMerge(t *testing.T) {
	cases := []struct{ a, b, want string }{
		{`{"a":{"x":1,"y":2}}`, `{"a":{"y":3,"z":4}}`, `{"a":{"x":1,"y":3,"z":4}}`}, // nested objects merge
		{`{"a":{"x":1}}`, `{"a":1}`, `{"a":1}`},                                     // object replaced by a scalar
		{`{"a":[1,2]}`, `{"a":[2,3]}`, `{"a":[1,2,2,3]}`},                           // lists concatenate
		{`{"a":1}`, `{"b":2}`, `{"a":1,"b":2}`},                                     // unrelated keys add
		{`{"a":1}`, `{}`, `{"a":1}`},                                                // empty b is a no-op
		{`{"a":1}`, `{"a":null}`, `{"a":null}`},                                     // null replaces
	}
	for _, c := range cases {
		var a, b, want map[string]any
		json.Unmarshal([]byte(c.a), &a)
		json.Unmarshal([]byte(c.b), &b)
		json.Unmarshal([]byte(c.want), &want)
		before, _ := json.Marshal(a)
		if got := merge(a, b); !reflect.DeepEqual(got, want) {
			t.Errorf("merge(%s, %s) = %v, want %s", c.a, c.b, got, c.want)
		}
		if after, _ := json.Marshal(a); string(after) != string(before) {
			t.Errorf("merge modified its input: %s", after)
		}
	}
}

func testBuilder() builder {
	return builder{instance: "gw", apiURL: "http://api:8000/api", labels: map[string]string{LabelName: "dask-gateway"}}
}

func TestPodTemplates(t *testing.T) {
	b := testBuilder()
	cfg := cluster.DefaultConfig()
	cfg.Image = "img:1"
	cfg.WorkerCores, cfg.WorkerCoresLimit, cfg.WorkerMemory = 2, 3, 4<<30
	cfg.Environment = map[string]string{"FOO": "bar", "DASK_GATEWAY_CLUSTER_NAME": "spoofed"}
	cfg.WorkerExtraPodLabels = map[string]string{"team": "a", LabelCluster: "hijack", LabelComponent: "hijack"}
	cfg.WorkerExtraPodAnnotations = map[string]string{"note": "x"}
	cfg.WorkerExtraContainerConfig = map[string]any{"workingDir": "/work", "env": []any{map[string]any{"name": "EXTRA", "value": "1"}}}
	cfg.WorkerExtraPodConfig = map[string]any{"containers": []any{map[string]any{"name": "sidecar", "image": "side:1"}},
		"tolerations": []any{map[string]any{"key": "gpu", "operator": "Exists"}}}
	cfg.NodeSelector = map[string]string{"pool": "dask"}
	cfg.Tolerations = []map[string]any{{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}}
	cfg.ServiceAccount, cfg.PriorityClassName = "dask-worker", "low"
	hex := "0123456789abcdef0123456789abcdef"
	p, warnings, err := b.pod("ns", hex, cfg, false)
	if err != nil || len(warnings) != 0 {
		t.Fatal(err, warnings)
	}
	if p.GenerateName != "dask-worker-"+hex+"-" || p.Labels[LabelCluster] != hex || p.Labels[LabelComponent] != ComponentWorker ||
		p.Labels["team"] != "a" || p.Labels[LabelInstance] != "gw" || p.Labels[LabelName] != "dask-gateway" || p.Annotations["note"] != "x" {
		t.Fatalf("metadata: %+v", p.ObjectMeta)
	}
	c := p.Spec.Containers[0]
	if len(p.Spec.Containers) != 2 || p.Spec.Containers[1].Name != "sidecar" || c.WorkingDir != "/work" {
		t.Fatalf("containers: %+v", p.Spec.Containers)
	}
	if c.Resources.Requests.Cpu().String() != "2" || c.Resources.Limits.Cpu().String() != "3" ||
		c.Resources.Requests.Memory().Value() != 4<<30 || c.Resources.Limits.Memory().Value() != 4<<30 {
		t.Fatalf("resources: %+v", c.Resources)
	}
	args := strings.Join(c.Args, " ")
	if args != "dask worker tls://dask-"+hex+".ns:8786 --dashboard-address :8787 --name $(DASK_GATEWAY_WORKER_NAME) --nthreads 2 --memory-limit 4294967296" {
		t.Fatalf("args: %s", args)
	}
	var names []string
	for _, e := range c.Env {
		names = append(names, e.Name)
		if e.Name == "DASK_GATEWAY_CLUSTER_NAME" && e.Value != "ns."+hex {
			t.Fatalf("environment overrode %s", e.Name)
		}
	}
	if names[0] != "FOO" || names[len(names)-2] != "DASK_GATEWAY_WORKER_NAME" || names[len(names)-1] != "EXTRA" {
		t.Fatalf("env order: %v", names)
	}
	if p.Spec.NodeSelector["pool"] != "dask" || len(p.Spec.Tolerations) != 2 || p.Spec.ServiceAccountName != "dask-worker" ||
		p.Spec.PriorityClassName != "low" || p.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
		t.Fatalf("pod spec: %+v", p.Spec)
	}

	s, _, err := b.pod("ns", hex, cfg, true)
	if err != nil {
		t.Fatal(err)
	}
	sc := s.Spec.Containers[0]
	if s.Name != "dask-scheduler-"+hex || sc.ReadinessProbe.HTTPGet.Path != "/api/health" || s.Spec.RestartPolicy != corev1.RestartPolicyNever ||
		sc.Resources.Requests.Cpu().String() != "1" || s.Labels["team"] != "" || len(s.Spec.Containers) != 1 {
		t.Fatalf("scheduler: %+v", s)
	}
}

func TestValidate(t *testing.T) {
	b := testBuilder()
	bad := cluster.DefaultConfig()
	bad.Tolerations = []map[string]any{{"key": "x", "tolerationSeconds": "soon"}}
	bad.NodeSelector = map[string]string{"bad key!": "v"}
	bad.ServiceAccount = "Not_Valid"
	_, err := b.validate("ns", bad)
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"node_selector", "service_account"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	bad = cluster.DefaultConfig()
	bad.Tolerations = []map[string]any{{"key": "x", "tolerationSeconds": "soon"}}
	if _, err := b.validate("ns", bad); err == nil || !strings.Contains(err.Error(), "tolerations") {
		t.Errorf("bad toleration: %v", err)
	}
	typo := cluster.DefaultConfig()
	typo.WorkerExtraPodConfig = map[string]any{"nodeSelecter": map[string]any{"a": "b"}}
	warnings, err := b.validate("ns", typo)
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "nodeSelecter") {
		t.Errorf("misspelt key: %v %v", warnings, err)
	}
	if _, err := b.validate("Bad.NS", cluster.DefaultConfig()); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("bad namespace: %v", err)
	}
}

func TestUpstreamConfigDecodes(t *testing.T) {
	// spec.config as upstream's KubeClusterConfig.to_dict() writes it.
	raw := `{"scheduler_cmd":"dask-scheduler","worker_cmd":["dask-worker"],"environment":{},"worker_memory":2147483648,
	"worker_cores":1.0,"worker_threads":1,"scheduler_memory":2147483648,"scheduler_cores":1.0,"adaptive_period":3.0,
	"idle_timeout":0.0,"cluster_max_memory":null,"cluster_max_cores":null,"cluster_max_workers":null,"namespace":"dask",
	"image":"ghcr.io/dask/dask-gateway:2026.3.0","image_pull_policy":null,"image_pull_secrets":[],"worker_cores_limit":1.0,
	"worker_memory_limit":2147483648,"scheduler_cores_limit":1.0,"scheduler_memory_limit":2147483648,
	"worker_extra_container_config":{},"scheduler_extra_container_config":{},"worker_extra_pod_config":{},
	"scheduler_extra_pod_config":{},"worker_extra_pod_annotations":{},"scheduler_extra_pod_annotations":{},
	"worker_extra_pod_labels":{},"scheduler_extra_pod_labels":{}}`
	var m map[string]any
	json.Unmarshal([]byte(raw), &m)
	c := &Controller{}
	cfg, err := c.clusterConfig(&DaskCluster{Spec: Spec{Config: m}})
	if err != nil || cfg.SchedulerCmd[0] != "dask-scheduler" || cfg.Namespace != "dask" || cfg.WorkerMemoryLimit != 2<<30 {
		t.Fatalf("%v %+v", err, cfg)
	}
	b := testBuilder()
	if _, err := b.validate("dask", cfg); err != nil {
		t.Fatal(err)
	}
}
