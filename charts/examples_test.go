package charts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExamplePoliciesDecide: the Rego policies inside the chart values
// examples compile and decide as their comments say (the daskgate binary's
// own `policy eval`).
func TestExamplePoliciesDecide(t *testing.T) {
	cases := []struct {
		file, decision, input, want string
	}{
		{"dask-gateway-options.yaml", "fields", `{}`, `"label": "Worker Memory (GiB)"`},
		{"dask-gateway-options.yaml", "options", `{"options": {"worker_cores": 3, "worker_memory": 1.5, "image": "img:1"}}`, `"worker_memory": 1610612736`},
		{"daskhub-config.yaml", "options", `{"options": {"image": "pangeo/base-notebook"}}`, "When specifying an image you must also provide a tag"},
		{"daskhub-config.yaml", "options", `{"options": {"image": "pangeo/base-notebook:2025.11.13"}}`, `"options.errors": []`},
	}
	for _, c := range cases {
		v := readYAML(t, filepath.Join("../examples/helm", c.file))
		gw, _ := v["gateway"].(map[string]any)
		if sub, ok := v["dask-gateway"].(map[string]any); ok {
			gw, _ = sub["gateway"].(map[string]any)
		}
		policies, _ := gw["policies"].(map[string]any)
		if len(policies) == 0 {
			t.Fatalf("%s has no policies", c.file)
		}
		dir := t.TempDir()
		for name, src := range policies {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(src.(string)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		in := filepath.Join(dir, "input.json")
		if err := os.WriteFile(in, []byte(c.input), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(binary, "policy", "eval", c.decision, "--policy", dir, "--input", in).CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("%s %s %s: %v\n%s\nwant %s", c.file, c.decision, c.input, err, out, c.want)
		}
	}
}
