package kube

import (
	"bytes"
	"os"
	"testing"
)

// The shipped manifests are generated; this keeps them in step with the Go
// types and rules (regenerate with `make manifests`).
func TestShippedManifestsAreGenerated(t *testing.T) {
	crd, err := CRDYAML()
	if err != nil {
		t.Fatal(err)
	}
	rbac, err := RBACYAML("dask")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string][]byte{"../../deploy/daskclusters.crd.yaml": crd, "../../charts/dask-gateway/crds/daskclusters.yaml": crd, "../../deploy/rbac.yaml": rbac} {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run `make manifests`", path)
		}
	}
}
