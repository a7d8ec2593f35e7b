package daskgate_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// heavyOwners maps each heavy module (a path prefix) to the one package
// that may import it.
var heavyOwners = map[string]string{
	"github.com/open-policy-agent/opa":       "github.com/daskgate/daskgate/policy",
	"go.etcd.io/bbolt":                       "github.com/daskgate/daskgate/store",
	"github.com/tetratelabs/wazero":          "github.com/daskgate/daskgate/wasm",
	"k8s.io/client-go":                       "github.com/daskgate/daskgate/backend/kube",
	"github.com/jcmturner/":                  "github.com/daskgate/daskgate/auth/kerberos",
	"github.com/landlock-lsm/":               "github.com/daskgate/daskgate/sandbox",
	"github.com/google/go-containerregistry": "github.com/daskgate/daskgate/internal/image",
}

// TestHeavyDependenciesHaveOneImporter keeps OPA behind policy/, bbolt
// behind store/, wazero behind wasm/, client-go behind backend/kube/ and
// gokrb5 behind auth/kerberos/ and go-landlock behind sandbox/.
func TestHeavyDependenciesHaveOneImporter(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		for _, imp := range imports {
			for dep, owner := range heavyOwners {
				if strings.HasPrefix(imp, dep) && !strings.HasPrefix(pkg, owner) {
					t.Errorf("%s imports %s; only %s may", pkg, imp, owner)
				}
			}
		}
	}
}

// TestHeavyDependenciesComeOnlyThroughTheirOwner: a package that depends
// on a heavy module at all, however indirectly, does so through its
// owner; and the binary links no cgo WebAssembly runtime (OPA's own wasm
// engine, wasmtime): OPA's pure-Go wasm compiler is linked for
// `daskgate policy build`, see docs/RATIONALE.md.
func TestHeavyDependenciesComeOnlyThroughTheirOwner(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	// policy evaluates OPA wasm bundles with OPA's own evaluator, which
	// runs on wazero too: one pure-Go runtime in the binary, not two
	// (docs/RATIONALE.md).
	allowed := map[string]string{"github.com/daskgate/daskgate/policy": "github.com/tetratelabs/wazero"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, deps := fields[0], fields[1:]
		for dep, owner := range heavyOwners {
			if strings.HasPrefix(pkg, owner) || allowed[pkg] == dep {
				continue
			}
			usesHeavy := slices.ContainsFunc(deps, func(d string) bool { return strings.HasPrefix(d, dep) })
			if usesHeavy && !slices.Contains(deps, owner) {
				t.Errorf("%s depends on %s without going through %s", pkg, dep, owner)
			}
		}
		if strings.HasSuffix(pkg, "/cmd/daskgate") {
			for _, d := range deps {
				if strings.Contains(d, "wasmtime") || strings.Contains(d, "bytecodealliance") {
					t.Errorf("the binary links a cgo wasm runtime: %s", d)
				}
			}
		}
	}
}
