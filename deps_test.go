package daskgate_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestHeavyDependenciesHaveOneImporter keeps OPA behind policy/, bbolt
// behind store/, wazero behind wasm/, client-go behind backend/kube/ and
// gokrb5 behind auth/kerberos/ and go-landlock behind sandbox/.
func TestHeavyDependenciesHaveOneImporter(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]string{
		"github.com/open-policy-agent/opa": "github.com/daskgate/daskgate/policy",
		"go.etcd.io/bbolt":                 "github.com/daskgate/daskgate/store",
		"github.com/tetratelabs/wazero":    "github.com/daskgate/daskgate/wasm",
		"k8s.io/client-go":                 "github.com/daskgate/daskgate/backend/kube",
		"github.com/jcmturner/":            "github.com/daskgate/daskgate/auth/kerberos",
		"github.com/landlock-lsm/":         "github.com/daskgate/daskgate/sandbox",
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		for _, imp := range imports {
			for dep, owner := range owners {
				if strings.HasPrefix(imp, dep) && !strings.HasPrefix(pkg, owner) {
					t.Errorf("%s imports %s; only %s may", pkg, imp, owner)
				}
			}
		}
	}
}
