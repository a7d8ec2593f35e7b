package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/daskgate/daskgate/policy"
)

// policyCmd implements `daskgate policy eval|test`.
func policyCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: daskgate policy eval DECISION --policy PATH [--input x.json] | daskgate policy test PATH [PATH]")
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
	}
	return fmt.Errorf("unknown policy command %q (want eval or test)", args[0])
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
	e, err := policy.New(ctx, policy.Config{Paths: paths})
	if err != nil {
		return err
	}
	start := time.Now()
	out, err := e.Eval(ctx, decision, in)
	if err != nil {
		return err
	}
	b, _ := json.MarshalIndent(map[string]any{"decision": decision, "revision": e.Revision(),
		"result": out, "duration": time.Since(start).String()}, "", "  ")
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
