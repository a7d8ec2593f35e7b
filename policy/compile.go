package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// compiled is one load of the policy files with a prepared query per
// decision output.
type compiled struct {
	files     []string
	signature string // paths, sizes and mtimes: cheap change detection
	revision  string // hash of the sources
	queries   map[string]*rego.PreparedEvalQuery
	// defines says which decision rules the loaded files define (the
	// built-in authz does not count).
	defines map[string]bool
}

// The queries prepared at load, by output name.
var queries = map[string]string{
	"fields":         "data.daskgate.options.fields",
	"options.config": "data.daskgate.options.config",
	"options.errors": "data.daskgate.options.errors",
	"authz.allow":    "data.daskgate.authz.allow",
	"authz.reason":   "data.daskgate.authz.reason",
	"authz.quota":    "data.daskgate.authz.quota",
}

// regoFiles lists the .rego files under paths, tests excluded, sorted.
func regoFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		err := filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if path != p && strings.HasPrefix(d.Name(), "..") {
				// A mounted ConfigMap's kubelet layout: foo.rego links to
				// ..data/foo.rego, ..data to a ..<timestamp> directory that an
				// update replaces. The links are read, never those twice.
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if !d.IsDir() && (isBundle(path) || strings.HasSuffix(path, ".rego") && !strings.HasSuffix(path, "_test.rego")) {
				out = append(out, path)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("policy path %s: %w", p, err)
		}
	}
	sort.Strings(out)
	return out, nil
}

func signature(paths []string) (string, error) {
	files, err := regoFiles(paths)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s %d %d\n", f, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

// compile parses every file (Rego v1), adds the built-in owner-only authz
// when no file declares package daskgate.authz, compiles, and prepares the
// decision queries. Errors carry file:line:col.
// deniedBuiltins reach outside the gateway: the network (http.send,
// net.lookup_ip_addr) or the gateway's own process (opa.runtime, which
// exposes its environment and with it the gateway's secrets). A policy
// that calls one fails to load, unless the operator allows it by name.
var deniedBuiltins = []string{"http.send", "net.lookup_ip_addr", "opa.runtime"}

// capabilities are OPA's built-ins minus the denied ones not in allow.
func capabilities(allow []string) *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	var kept []*ast.Builtin
	for _, b := range caps.Builtins {
		if !slices.Contains(deniedBuiltins, b.Name) || slices.Contains(allow, b.Name) {
			kept = append(kept, b)
		}
	}
	caps.Builtins = kept
	return caps
}

func compile(ctx context.Context, paths, allowBuiltins []string) (*compiled, error) {
	sig, err := signature(paths)
	if err != nil {
		return nil, err
	}
	files, _ := regoFiles(paths)
	if len(files) == 1 && isBundle(files[0]) {
		return compileBundle(ctx, files[0], sig)
	}
	for _, f := range files {
		if isBundle(f) {
			return nil, fmt.Errorf("%s: an OPA wasm bundle must be the only policy path", f)
		}
	}
	modules := map[string]*ast.Module{}
	h := sha256.New()
	hasAuthz := false
	defines := map[string]bool{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		h.Write(src)
		m, err := ast.ParseModuleWithOpts(f, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, err
		}
		modules[f] = m
		hasAuthz = hasAuthz || m.Package.Path.String() == "data.daskgate.authz"
		for _, r := range m.Rules {
			defines[strings.TrimPrefix(m.Package.Path.String(), "data.daskgate.")+"."+r.Head.Ref().String()] = true
		}
	}
	if !hasAuthz {
		modules["(built-in)/default_authz.rego"] = ast.MustParseModuleWithOpts(defaultAuthz, ast.ParserOptions{RegoVersion: ast.RegoV1})
	}
	compiler := ast.NewCompiler().WithCapabilities(capabilities(allowBuiltins))
	if compiler.Compile(modules); compiler.Failed() {
		return nil, compiler.Errors
	}
	c := &compiled{files: files, signature: sig, revision: hex.EncodeToString(h.Sum(nil))[:12],
		queries: map[string]*rego.PreparedEvalQuery{}, defines: map[string]bool{}}
	for name, q := range queries {
		c.defines[name] = defines[strings.TrimPrefix(q, "data.daskgate.")]
	}
	for name, q := range queries {
		// Strict builtin errors: a runtime error (1/0, bad types) is an error for
		// that request, never a silently undefined rule.
		pq, err := rego.New(rego.Query(q), rego.Compiler(compiler), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("prepare %s: %w", name, err)
		}
		c.queries[name] = &pq
	}
	return c, nil
}

func isBundle(path string) bool { return strings.HasSuffix(path, ".tar.gz") }

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:12]
}
