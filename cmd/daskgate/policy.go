package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/daskgate/daskgate/policy"
	"github.com/daskgate/daskgate/wasm"
)

// policyCmd implements `daskgate policy eval|test`.
func policyCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: daskgate policy eval|test|check (see docs/policies.md)")
	}
	ctx := context.Background()
	switch args[0] {
	case "test":
		if len(args) < 2 {
			return errors.New("usage: daskgate policy test PATH [PATH]")
		}
		passed, failed, err := policy.RunTests(ctx, stdout, args[1:]...)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
		if failed > 0 {
			return fmt.Errorf("%d policy test(s) failed", failed)
		}
		return nil
	case "eval":
		return policyEval(ctx, args[1:], stdout)
	case "check":
		return policyCheck(ctx, args[1:], stdout)
	case "build":
		return policyBuild(ctx, args[1:])
	}
	return fmt.Errorf("unknown policy command %q (want eval, test, check or build)", args[0])
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func policyEval(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: daskgate policy eval DECISION --policy PATH [--input x.json] [--user NAME --groups a,b --admin]")
	}
	decision := args[0]
	fs := flag.NewFlagSet("policy eval", flag.ContinueOnError)
	var paths listFlag
	fs.Var(&paths, "policy", "policy file or directory (repeatable)")
	inputFile := fs.String("input", "", "JSON input document (default: {})")
	user := fs.String("user", "", "set input.user.name")
	groups := fs.String("groups", "", "set input.user.groups (comma-separated)")
	admin := fs.Bool("admin", false, "set input.user.admin")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	in, err := readInput(*inputFile)
	if err != nil {
		return err
	}
	if *user != "" || *groups != "" || *admin {
		in["user"] = map[string]any{"name": *user, "groups": splitList(*groups), "admin": *admin}
	}
	var out any
	var revision string
	var took time.Duration
	if len(paths) == 1 && strings.HasSuffix(paths[0], ".wasm") {
		out, revision, took, err = evalWASM(ctx, paths[0], decision, in)
	} else {
		out, revision, took, err = evalRego(ctx, paths, decision, in)
	}
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(map[string]any{"decision": decision, "revision": revision,
		"result": out, "duration": took.String()}, "", "  ")
	fmt.Fprintln(stdout, string(b))
	return nil
}

func readInput(file string) (map[string]any, error) {
	if file == "" {
		return map[string]any{}, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return policy.DecodeInput(f)
}

func splitList(s string) []any {
	out := []any{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func evalRego(ctx context.Context, paths []string, decision string, in map[string]any) (any, string, time.Duration, error) {
	e, err := policy.New(ctx, policy.Config{Paths: paths})
	if err != nil {
		return nil, "", 0, err
	}
	start := time.Now()
	out, err := e.Eval(ctx, decision, in)
	return out, e.Revision(), time.Since(start), err
}

func evalWASM(ctx context.Context, path, decision string, in map[string]any) (any, string, time.Duration, error) {
	m, err := wasm.Load(ctx, wasm.Config{Path: path})
	if err != nil {
		return nil, "", 0, err
	}
	defer m.Close(ctx)
	b, _ := json.Marshal(in)
	start := time.Now()
	raw, err := m.Call(ctx, decision, b)
	took := time.Since(start)
	if err != nil {
		return nil, "", 0, err
	}
	var out any
	err = json.Unmarshal(raw, &out)
	return out, m.Digest()[:12], took, err
}

// policyCheck loads a .wasm module and reports its ABI, exports and the
// decisions it implements.
func policyCheck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("policy check", flag.ContinueOnError)
	cacheDir := fs.String("cache-dir", "", "wazero compilation cache directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: daskgate policy check [--cache-dir DIR] module.wasm")
	}
	start := time.Now()
	m, err := wasm.Load(ctx, wasm.Config{Path: fs.Arg(0), CacheDir: *cacheDir})
	if err != nil {
		return err
	}
	defer m.Close(ctx)
	var decisions []string
	for _, d := range wasm.Decisions {
		if m.Implements(d) {
			decisions = append(decisions, d)
		}
	}
	exports := m.Exports()
	slices.Sort(exports)
	fmt.Fprintf(stdout, "module:    %s\nsha256:    %s\nabi:       daskgate-abi/%d\nexports:   %s\ndecisions: %s\nload:      %v\n",
		m.Name(), m.Digest(), wasm.ABIVersion, strings.Join(exports, ", "), strings.Join(decisions, ", "), time.Since(start).Round(time.Millisecond))
	return nil
}

// policyBuild compiles Rego to an OPA wasm bundle (like `opa build -t wasm`).
func policyBuild(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("policy build", flag.ContinueOnError)
	out := fs.String("o", "bundle.tar.gz", "output bundle")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: daskgate policy build [-o bundle.tar.gz] PATH [PATH]")
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := policy.BuildWASMBundle(ctx, f, fs.Args()...); err != nil {
		f.Close()
		os.Remove(*out)
		return err
	}
	return f.Close()
}
