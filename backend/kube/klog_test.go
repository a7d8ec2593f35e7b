package kube_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/daskgate/daskgate/backend/kube"
	"k8s.io/klog/v2"
)

// client-go's own logs reach the server's slog handler, in its format.
func TestKlogGoesToSlog(t *testing.T) {
	var buf bytes.Buffer
	kube.RouteKlog(slog.New(slog.NewJSONHandler(&buf, nil)))
	defer klog.ClearLogger()
	klog.InfoS("leader election lost", "lease", "dask/daskgate")
	klog.Flush()
	out := buf.String()
	for _, want := range []string{`"msg":"leader election lost"`, `"component":"client-go"`, `"lease":"dask/daskgate"`} {
		if !strings.Contains(out, want) {
			t.Fatalf("klog output %q lacks %s", out, want)
		}
	}
}
