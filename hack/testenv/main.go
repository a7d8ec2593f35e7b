// Command testenv builds, caches and runs the real Kubernetes components
// daskgate's tests use (see internal/testenv). Versions are pinned in
// internal/testenv/versions.go.
//
//	go run ./hack/testenv install          # build what is missing (cold ~15 min), print timings
//	go run ./hack/testenv env              # export lines: KUBE_APISERVER=..., HELM=..., HELM4=...
//	go run ./hack/testenv start [-no-kwok] DIR   # control plane on loopback; prints export KUBECONFIG=...
//	go run ./hack/testenv stop DIR         # stop exactly the processes start recorded under DIR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/daskgate/daskgate/internal/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
}

const usage = "usage: testenv install | env | start [-no-kwok] DIR | stop DIR"

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "install":
		return testenv.Install(ctx, os.Stderr)
	case "env":
		return printEnv()
	case "start":
		fs := flag.NewFlagSet("start", flag.ContinueOnError)
		noKwok := fs.Bool("no-kwok", false, "leave out kube-scheduler and kwok")
		if err := fs.Parse(args[1:]); err != nil || fs.NArg() != 1 {
			return errors.New(usage)
		}
		env, err := testenv.Start(ctx, testenv.Options{Dir: fs.Arg(0), NoKwok: *noKwok, Detach: true})
		if err != nil {
			return err
		}
		fmt.Printf("export KUBECONFIG=%s\n", env.Kubeconfig)
		return nil
	case "stop":
		if len(args) != 2 {
			return errors.New(usage)
		}
		return testenv.StopDir(args[1])
	}
	return errors.New(usage)
}

// printEnv prints NAME=path for every tool (KUBE_APISERVER, HELM4, ...).
func printEnv() error {
	for _, name := range testenv.Tools {
		p, err := testenv.Path(name)
		if err != nil {
			return err
		}
		fmt.Printf("export %s=%s\n", strings.ToUpper(strings.ReplaceAll(name, "-", "_")), p)
	}
	return nil
}
