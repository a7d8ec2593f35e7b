package charts

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/daskgate/daskgate/internal/testenv"
)

// One control plane and one test build of daskgate for the package.
var (
	env    *testenv.Env
	binary string // daskgate built with the daskgate_testdial tag
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "daskgate-charts-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "daskgate")
	build := exec.Command("go", "build", "-tags", "daskgate_testdial", "-o", binary, "../cmd/daskgate")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build daskgate: %v\n%s", err, out)
		return 1
	}
	env, err = testenv.Start(context.Background(), testenv.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "test environment (run `make testenv`):", err)
		return 1
	}
	defer env.Stop()
	return m.Run()
}

// tool is an installed testenv binary: helm, helm4, kubectl, kubeconform.
func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := testenv.Path(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// helm runs one helm (helm or helm4) against the control plane.
func helm(t testing.TB, which string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool(t, which), args...)
	home := filepath.Join(env.Dir, which+"-home")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig, "HELM_CACHE_HOME="+home+"/cache",
		"HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustHelm(t testing.TB, which string, args ...string) string {
	t.Helper()
	out, err := helm(t, which, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", which, strings.Join(args, " "), err, out)
	}
	return out
}

func kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(tool(t, "kubectl"), append([]string{"--kubeconfig", env.Kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
