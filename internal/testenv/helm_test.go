package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelmRendersWhatTheAPIServerAccepts proves the installed helm v3 and
// v4 and kubeconform run, and that charts render (with each helm) into
// objects the real API server accepts in a server-side dry run: a chart of
// the test's own, and the JupyterHub chart the daskhub tests depend on
// (required in CI; elsewhere only when DASKGATE_JUPYTERHUB_CHART is set).
func TestHelmRendersWhatTheAPIServerAccepts(t *testing.T) {
	charts := map[string]string{"own": ownChart(t)}
	switch chart, err := JupyterHubChart(); {
	case err == nil:
		charts["jupyterhub"] = chart
	case os.Getenv("CI") == "true":
		t.Fatal(err)
	default:
		t.Logf("%v: the JupyterHub chart is not rendered here", err)
	}
	tool := func(name string) string {
		p, err := Path(name)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if out := output(t, tool("kubeconform"), "-v"); !strings.Contains(out, strings.TrimPrefix(Kubeconform, "v")) {
		t.Errorf("kubeconform -v = %q, want %s", out, Kubeconform)
	}
	env, err := Start(context.Background(), Options{NoKwok: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	for name, version := range map[string]string{"helm": Helm3, "helm4": Helm4} {
		if out := output(t, tool(name), "version", "--short"); !strings.HasPrefix(out, version) {
			t.Errorf("%s version = %q, want %s", name, out, version)
		}
		for which, chart := range charts {
			manifests := output(t, tool(name), "template", "rel", chart, "--namespace", "default", "--kube-version", Kubernetes)
			if !strings.Contains(manifests, "kind: Deployment") {
				t.Fatalf("%s template of the %s chart rendered no Deployment:\n%.2000s", name, which, manifests)
			}
			cmd := exec.Command(tool("kubectl"), "--kubeconfig", env.Kubeconfig, "apply", "--dry-run=server", "-f", "-")
			cmd.Stdin = strings.NewReader(manifests)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("the API server refuses what %s rendered of the %s chart: %v\n%s", name, which, err, out)
			}
		}
	}
}

// ownChart writes a minimal chart: a Deployment named by the release.
func ownChart(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "own")
	os.MkdirAll(filepath.Join(dir, "templates"), 0o755)
	os.WriteFile(filepath.Join(dir, "Chart.yaml"), []byte("apiVersion: v2\nname: own\nversion: 0.1.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "values.yaml"), []byte("image: busybox:1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "templates", "deployment.yaml"), []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: "{{ .Release.Name }}-own"}
spec:
  selector: {matchLabels: {app: own}}
  template:
    metadata: {labels: {app: own}}
    spec: {containers: [{name: c, image: "{{ .Values.image }}"}]}
`), 0o644)
	return dir
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
