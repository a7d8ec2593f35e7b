package kube_test

import (
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/daskgate/daskgate/backend/kube"
	"k8s.io/klog/v2"
)

// klogChildEnv makes the test binary route klog and log one line, in a
// process of its own: klog's logger is global, and the other tests'
// informers log through it concurrently.
const klogChildEnv = "DASKGATE_KLOG_CHILD"

func klogChild() {
	kube.RouteKlog(slog.New(slog.NewJSONHandler(os.Stdout, nil)))
	klog.InfoS("leader election lost", "lease", "dask/daskgate")
	klog.Flush()
}

// client-go's own logs reach the server's slog handler, in its format.
func TestKlogGoesToSlog(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), klogChildEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"msg":"leader election lost"`, `"component":"client-go"`, `"lease":"dask/daskgate"`} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("klog output %q lacks %s", out, want)
		}
	}
}
