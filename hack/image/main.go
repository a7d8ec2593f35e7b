// Command image builds daskgate's container image without a container
// engine (make image), and pushes it.
//
//	go run ./hack/image build [-o out/image] [-platforms linux/amd64,linux/arm64]
//	go run ./hack/image push -ref ghcr.io/you/daskgate:0.1.0 [-o out/image]
//
// build cross-compiles a static binary per platform (CGO off, -trimpath,
// no build id, the version and commit stamped in), and writes an OCI
// layout (out/image/oci) and one `docker load` tarball per platform. Every
// timestamp is the commit's, so one commit gives one digest.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/daskgate/daskgate/internal/image"
)

const repository = "ghcr.io/daskgate/daskgate"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: image build|push [flags]")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	out := fs.String("o", "out/image", "output directory")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
	ref := fs.String("ref", "", "push: the image reference to push to")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "build":
		r, err := build(".", *out, strings.Split(*platforms, ","))
		if err != nil {
			return err
		}
		fmt.Printf("%s:%s %s\nOCI layout: %s\n", repository, r.version, r.digest, filepath.Join(*out, "oci"))
		for _, t := range r.tarballs {
			fmt.Printf("docker load -i %s\n", t)
		}
		return nil
	case "push":
		if *ref == "" {
			return errors.New("push: -ref is required, e.g. -ref ghcr.io/you/daskgate:0.1.0")
		}
		return image.PushLayout(filepath.Join(*out, "oci"), *ref)
	}
	return fmt.Errorf("unknown command %q (want build or push)", args[0])
}

type result struct {
	version, digest string
	tarballs        []string
}

// build makes the image of the source tree at src.
func build(src, out string, platforms []string) (*result, error) {
	version, err := goVar(src, "cmd/daskgate/main.go", "Version")
	if err != nil {
		return nil, err
	}
	rev, created := commit(src)
	bins := filepath.Join(out, "bin")
	spec := image.Spec{Binaries: map[string]string{}, Version: version, Revision: rev, Created: created,
		Source: "https://github.com/daskgate/daskgate"}
	for _, p := range platforms {
		goos, goarch, ok := strings.Cut(p, "/")
		if !ok {
			return nil, fmt.Errorf("platform %q is not os/arch", p)
		}
		bin := filepath.Join(bins, goos+"-"+goarch, "daskgate")
		abs, err := filepath.Abs(bin)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false",
			"-ldflags", "-s -w -buildid= -X main.Revision="+rev, "-o", abs, "./cmd/daskgate")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build for %s: %v\n%s", p, err, b)
		}
		spec.Binaries[p] = bin
	}
	idx, err := image.Build(spec)
	if err != nil {
		return nil, err
	}
	if err := image.WriteLayout(filepath.Join(out, "oci"), idx, version); err != nil {
		return nil, err
	}
	d, err := idx.Digest()
	if err != nil {
		return nil, err
	}
	r := &result{version: version, digest: d.String()}
	for _, p := range platforms {
		t := filepath.Join(out, "daskgate-"+version+"-"+strings.ReplaceAll(p, "/", "-")+".tar")
		if err := image.WriteTarball(t, idx, p, repository+":"+version); err != nil {
			return nil, err
		}
		r.tarballs = append(r.tarballs, t)
	}
	return r, nil
}

// commit is HEAD's hash and time, or "unknown" and SOURCE_DATE_EPOCH (0
// when unset) outside a git checkout.
func commit(src string) (string, time.Time) {
	epoch := func() time.Time {
		n, _ := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64)
		return time.Unix(n, 0).UTC()
	}
	cmd := exec.Command("git", "log", "-1", "--format=%H %ct")
	cmd.Dir = src
	b, err := cmd.Output()
	if err != nil {
		return "unknown", epoch()
	}
	h, ts, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return h, epoch()
	}
	dirty := exec.Command("git", "status", "--porcelain", "--untracked-files=no")
	dirty.Dir = src
	if o, err := dirty.Output(); err == nil && len(o) > 0 {
		h += "-dirty"
	}
	return h, time.Unix(n, 0).UTC()
}

// goVar reads `var name = "value"` from a Go file.
func goVar(src, file, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(src, file))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "var "+name+" = "); ok {
			return strconv.Unquote(strings.TrimSpace(v))
		}
	}
	return "", fmt.Errorf("%s: no var %s", file, name)
}
