package charts

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/daskgate/daskgate/internal/testenv"
	"sigs.k8s.io/yaml"
)

var helms = []string{"helm", "helm4"}

// goodValues are the values files that must lint, render and validate:
// upstream's (unchanged), ours, and the chart examples users copy.
func goodValues(t *testing.T) []string {
	files, _ := filepath.Glob("testdata/dask-gateway/good/*.yaml")
	examples, _ := filepath.Glob("../examples/helm/dask-gateway-*.yaml")
	files = append(files, examples...)
	if len(files) < 8 {
		t.Fatalf("only %d values files", len(files))
	}
	return append([]string{""}, files...) // "": the chart's defaults
}

// TestDaskGatewayChartLintsAndValidates: helm v3 and v4 lint (strict) and
// render the chart with its defaults and every good values file, and
// what they render is valid for the real API server's schemas
// (kubeconform, strict: no unknown fields).
func TestDaskGatewayChartLintsAndValidates(t *testing.T) {
	schemas := newSchemaDir(t)
	for _, h := range helms {
		for _, f := range goodValues(t) {
			args := []string{"dask-gateway"}
			name := "defaults"
			if f != "" {
				args, name = append(args, "-f", f), filepath.Base(f)
			}
			t.Run(h+"/"+name, func(t *testing.T) {
				mustHelm(t, h, append([]string{"lint", "--strict"}, args...)...)
				out := mustHelm(t, h, append([]string{"template", "rel", "--namespace", "dask", "--include-crds",
					"--kube-version", testenv.Kubernetes}, args...)...)
				for _, want := range []string{"name: api-rel-dask-gateway", "name: traefik-rel-dask-gateway", "kind: CustomResourceDefinition"} {
					if !strings.Contains(out, want) {
						t.Errorf("rendered no %q", want)
					}
				}
				schemas.validate(t, out)
			})
		}
	}
}

// TestDaskGatewayChartRefusesBadValues: each bad values file fails with
// helm v3 and v4, and the error says what its first line wants: the
// schema names the key's path, and keys only Python could honour name
// their replacement.
func TestDaskGatewayChartRefusesBadValues(t *testing.T) {
	files, _ := filepath.Glob("testdata/dask-gateway/bad/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d bad values files", len(files))
	}
	for _, h := range helms {
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(b), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("%s: first line is not # want: ...", f)
			}
			out, err := helm(t, h, "template", "rel", "dask-gateway", "-f", f)
			if err == nil || !strings.Contains(out, want) {
				t.Errorf("%s with %s: err %v, output lacks %q:\n%s", h, filepath.Base(f), err, want, out)
			}
		}
	}
}

// TestValuesAndSchemaAgree: every key of values.yaml is in the schema (a
// key the schema lacks would fail every install) and is documented in
// docs/helm.md's values reference.
func TestValuesAndSchemaAgree(t *testing.T) {
	values := readYAML(t, "dask-gateway/values.yaml")
	schema := readJSON(t, "dask-gateway/values.schema.json")
	doc, err := os.ReadFile("../docs/helm.md")
	if err != nil {
		t.Fatal(err)
	}
	var walk func(prefix string, v any, s map[string]any)
	walk = func(prefix string, v any, s map[string]any) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		props, _ := s["properties"].(map[string]any)
		for k, child := range m {
			path := strings.TrimPrefix(prefix+"."+k, ".")
			cs, ok := props[k].(map[string]any)
			if !ok {
				t.Errorf("values key %s is not in the schema", path)
				continue
			}
			sub, isMap := child.(map[string]any)
			if isMap && len(sub) > 0 && cs["additionalProperties"] == false {
				walk(path, child, cs) // ours: each key below is documented
				continue
			}
			if !strings.Contains(string(doc), "`"+path+"`") {
				t.Errorf("values key %s is not in docs/helm.md", path)
			}
		}
	}
	walk("", values, schema)
	if req, _ := schema["required"].([]any); !slices.Contains(req, any("gateway")) {
		t.Errorf("schema root requires %v", req)
	}
}

// TestChartVersionsMatchTheBinary: the charts' default image is daskgate
// at the chart's appVersion, which is the binary's version.
func TestChartVersionsMatchTheBinary(t *testing.T) {
	out, err := exec.Command(binary, "version").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	chart := readYAML(t, "dask-gateway/Chart.yaml")
	if want := "daskgate " + chart["appVersion"].(string) + " "; !strings.HasPrefix(string(out), want) {
		t.Errorf("appVersion %v, binary %s", chart["appVersion"], out)
	}
	hub := readYAML(t, "daskhub/Chart.yaml")
	for _, d := range hub["dependencies"].([]any) {
		dep := d.(map[string]any)
		if dep["name"] == "dask-gateway" && dep["version"] != chart["version"] {
			t.Errorf("daskhub depends on dask-gateway %v, the chart is %v", dep["version"], chart["version"])
		}
	}
}

// TestNotesOnUpstreamValues: with upstream's own values file, NOTES says
// which keys no longer apply (its server image), and warns when simple
// auth has no password.
func TestNotesOnUpstreamValues(t *testing.T) {
	out := mustHelm(t, "helm", "install", "notes", "dask-gateway", "--dry-run=server", "--namespace", "default",
		"-f", "testdata/dask-gateway/good/upstream-default-values.yaml", "--set", "traefik.dashboard=true")
	for _, want := range []string{"NOTE: gateway.image.name names upstream's Python server (ghcr.io/dask/dask-gateway-server)",
		"Ignored:\n  - traefik.dashboard", "WARNING: gateway.auth.type simple without a password"} {
		if !strings.Contains(out, want) {
			t.Errorf("NOTES lack %q:\n%s", want, out)
		}
	}
}

// TestTwoReleasesNeverCollide: with ClusterRoles, two releases of one name
// in two namespaces get different role names; in one namespace, two
// release names give different object names.
func TestTwoReleasesNeverCollide(t *testing.T) {
	names := func(rel, ns string, set ...string) []string {
		args := append([]string{"template", rel, "dask-gateway", "--namespace", ns}, set...)
		var out []string
		for _, doc := range strings.Split(mustHelm(t, "helm", args...), "\n---") {
			var obj struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name, Namespace string
				} `json:"metadata"`
			}
			if yaml.Unmarshal([]byte(doc), &obj) == nil && obj.Kind != "" {
				ns := obj.Metadata.Namespace
				if strings.HasPrefix(obj.Kind, "Cluster") {
					ns = "" // cluster-wide
				} else if ns == "" {
					ns = "<release namespace>" // namespaced objects land in their release's
				}
				out = append(out, obj.Kind+"/"+ns+"/"+obj.Metadata.Name)
			}
		}
		return out
	}
	clash := func(a, b []string, sameNamespace bool) []string {
		var both []string
		for _, x := range a {
			if slices.Contains(b, x) && (sameNamespace || strings.Contains(x, "//")) {
				both = append(both, x)
			}
		}
		return both
	}
	if c := clash(names("dg", "team-a", "--set", "rbac.scope=cluster"), names("dg", "team-b", "--set", "rbac.scope=cluster"), false); len(c) > 0 {
		t.Errorf("one release name in two namespaces collides on %v", c)
	}
	if c := clash(names("one", "dask"), names("two", "dask"), true); len(c) > 0 {
		t.Errorf("two releases in one namespace collide on %v", c)
	}
}
