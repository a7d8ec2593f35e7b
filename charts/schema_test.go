package charts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

// schemaDir holds JSON schemas kubeconform reads, made from the running
// API server's own OpenAPI document (no download): one file per kind,
// named as kubeconform's -schema-location template below expects.
type schemaDir struct {
	dir  string
	defs map[string]any
	mu   sync.Mutex
}

const schemaTemplate = "{{ .Group }}-{{ .ResourceAPIVersion }}-{{ .ResourceKind }}.json"

func newSchemaDir(t *testing.T) *schemaDir {
	t.Helper()
	raw := kubectl(t, "get", "--raw", "/openapi/v2")
	var doc struct {
		Definitions map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatal(err)
	}
	for name, d := range doc.Definitions {
		doc.Definitions[name] = strict(d)
	}
	// The wire forms OpenAPI v2 writes as strings with a format.
	doc.Definitions["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}
	doc.Definitions["io.k8s.apimachinery.pkg.api.resource.Quantity"] = map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}
	return &schemaDir{dir: t.TempDir(), defs: doc.Definitions}
}

// strict forbids unknown fields in every object with declared properties
// (kubeconform -strict's meaning), except where Kubernetes keeps them.
func strict(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			x[k] = strict(c)
		}
		props, hasProps := x["properties"].(map[string]any)
		_, addl := x["additionalProperties"]
		if hasProps && !addl && x["x-kubernetes-preserve-unknown-fields"] != true {
			x["additionalProperties"] = false
		}
		// An optional field may be null (the API server drops it), as in
		// kubeconform's own schemas.
		required := map[string]bool{}
		req, _ := x["required"].([]any)
		for _, r := range req {
			required[r.(string)] = true
		}
		for name, p := range props {
			pm, _ := p.(map[string]any)
			if required[name] || pm == nil {
				continue
			}
			if t, ok := pm["type"].(string); ok {
				pm["type"] = []any{t, "null"}
			} else if _, ok := pm["$ref"]; ok {
				props[name] = map[string]any{"anyOf": []any{pm, map[string]any{"type": "null"}}}
			}
		}
	case []any:
		for i, c := range x {
			x[i] = strict(c)
		}
	}
	return v
}

// validate runs kubeconform on manifests (a multi-document YAML stream).
// A kind the API server does not serve (a ServiceMonitor without the
// Prometheus operator) is reported and skipped.
func (s *schemaDir) validate(t *testing.T, manifests string) {
	t.Helper()
	if err := s.check(t, manifests); err != nil {
		t.Fatal(err)
	}
}

func (s *schemaDir) check(t *testing.T, manifests string) error {
	var skipped []string
	for _, docText := range strings.Split(manifests, "\n---") {
		var obj struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(docText), &obj); err != nil {
			return fmt.Errorf("rendered YAML does not parse: %v\n%s", err, docText)
		}
		if obj.Kind == "" {
			continue
		}
		ok, err := s.write(obj.APIVersion, obj.Kind)
		if err != nil {
			return err
		}
		if !ok {
			skipped = append(skipped, obj.Kind)
		}
	}
	args := []string{"-strict", "-summary", "-schema-location", filepath.Join(s.dir, schemaTemplate)}
	if len(skipped) > 0 {
		t.Logf("kinds the API server does not serve, not validated: %v", skipped)
		args = append(args, "-skip", strings.Join(skipped, ","))
	}
	cmd := exec.Command(tool(t, "kubeconform"), append(args, "-")...)
	cmd.Stdin = strings.NewReader(manifests)
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Invalid: 0, Errors: 0")) {
		return fmt.Errorf("kubeconform: %v\n%s", err, out)
	}
	return nil
}

// write makes the schema file for one kind; false if the API server has
// no such kind.
func (s *schemaDir) write(apiVersion, kind string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	group, version := "", apiVersion
	if g, v, ok := strings.Cut(apiVersion, "/"); ok {
		group, version = g, v
	}
	var root string
	for name, d := range s.defs {
		gvks, _ := d.(map[string]any)["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			m := g.(map[string]any)
			if m["group"] == group && m["version"] == version && m["kind"] == kind {
				root = name
			}
		}
	}
	if root == "" {
		return false, nil
	}
	first := strings.Split(apiVersion, "/")[0]
	path := filepath.Join(s.dir, fmt.Sprintf("%s-%s-%s.json", first, version, strings.ToLower(kind)))
	if _, err := os.Stat(path); err == nil {
		return true, nil
	}
	// The root and the definitions it reaches, as one document.
	used := map[string]any{}
	var reach func(v any)
	reach = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				name := strings.TrimPrefix(ref, "#/definitions/")
				if _, seen := used[name]; !seen {
					used[name] = s.defs[name]
					reach(s.defs[name])
				}
			}
			for _, c := range x {
				reach(c)
			}
		case []any:
			for _, c := range x {
				reach(c)
			}
		}
	}
	reach(map[string]any{"$ref": "#/definitions/" + root})
	b, err := json.Marshal(map[string]any{"$ref": "#/definitions/" + root, "definitions": used})
	if err != nil {
		return false, err
	}
	return true, os.WriteFile(path, b, 0o644)
}

func readYAML(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}
