package testenv

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestHelmRendersWhatTheAPIServerAccepts proves the installed helm v3 and
// v4 and kubeconform run, and that the JupyterHub chart the daskhub tests
// depend on renders (with each helm) into objects the real API server
// accepts in a server-side dry run.
func TestHelmRendersWhatTheAPIServerAccepts(t *testing.T) {
	chart, err := JupyterHubChart()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("%v: the chart test needs it", err)
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
		manifests := output(t, tool(name), "template", "hub", chart, "--namespace", "default", "--kube-version", Kubernetes)
		if !strings.Contains(manifests, "kind: Deployment") {
			t.Fatalf("%s template rendered no Deployment:\n%.2000s", name, manifests)
		}
		cmd := exec.Command(tool("kubectl"), "--kubeconfig", env.Kubeconfig, "apply", "--dry-run=server", "-f", "-")
		cmd.Stdin = strings.NewReader(manifests)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("the API server refuses what %s rendered: %v\n%s", name, err, out)
		}
	}
}

func output(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}
