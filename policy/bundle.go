package policy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	opacompile "github.com/open-policy-agent/opa/v1/compile"
	"github.com/open-policy-agent/opa/v1/rego"

	// OPA's wasm evaluator (it runs on wazero, in pure Go).
	_ "github.com/open-policy-agent/opa/v1/features/wasm"
)

// entrypoint is the OPA wasm entrypoint of a decision query.
func entrypoint(query string) string {
	return strings.ReplaceAll(strings.TrimPrefix(query, "data."), ".", "/")
}

// BuildWASMBundle compiles the Rego policies under paths into an OPA wasm
// bundle (what `opa build -t wasm` makes), with an entrypoint for every
// decision rule the policies define, so a team can ship its Rego as one
// compiled, pinned artifact.
func BuildWASMBundle(ctx context.Context, out io.Writer, paths ...string) error {
	c, err := compile(ctx, paths, nil)
	if err != nil {
		return err
	}
	var eps []string
	for name, q := range queries {
		if c.defines[name] {
			eps = append(eps, entrypoint(q))
		}
	}
	if len(eps) == 0 {
		return fmt.Errorf("no decision rules (daskgate.options fields/config/errors, daskgate.authz allow/reason) under %v", paths)
	}
	files, err := regoFiles(paths)
	if err != nil {
		return err
	}
	return opacompile.New().WithTarget(opacompile.TargetWasm).WithEntrypoints(eps...).WithPaths(files...).
		WithRegoVersion(ast.RegoV1).WithOutput(out).Build(ctx)
}

// compileBundle prepares the decision queries from an OPA wasm bundle:
// the entrypoints it has are evaluated by OPA's wasm engine; a bundle
// without authz rules gets the built-in owner-only authz.
func compileBundle(ctx context.Context, path, sig string) (*compiled, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := bundle.NewReader(bytes.NewReader(raw)).Read()
	if err != nil {
		return nil, fmt.Errorf("read bundle %s: %w", path, err)
	}
	if len(b.WasmModules) == 0 {
		return nil, fmt.Errorf("bundle %s has no wasm module (build it with `daskgate policy build` or `opa build -t wasm`)", path)
	}
	have := map[string]bool{}
	for _, r := range b.Manifest.WasmResolvers {
		have[r.Entrypoint] = true
	}
	c := &compiled{files: []string{path}, signature: sig, revision: digest(raw), queries: map[string]*rego.PreparedEvalQuery{},
		defines: map[string]bool{}}
	for name, q := range queries {
		if !have[entrypoint(q)] {
			continue
		}
		// The bundle's wasm entrypoints are evaluated by OPA's wasm SDK (its
		// resolvers), not by the Rego interpreter.
		pq, err := rego.New(rego.Query(q), rego.ParsedBundle("policy", &b)).PrepareForEval(ctx)
		if err != nil {
			return nil, fmt.Errorf("prepare %s from bundle: %w", name, err)
		}
		c.queries[name], c.defines[name] = &pq, true
	}
	if !c.defines["authz.allow"] {
		def, err := compile(ctx, nil, nil)
		if err != nil {
			return nil, err
		}
		c.queries["authz.allow"], c.queries["authz.reason"] = def.queries["authz.allow"], def.queries["authz.reason"]
	}
	return c, nil
}
