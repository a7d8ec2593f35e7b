package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Install builds every tool that is not cached yet (or not at the pinned
// version) and prints what it does and how long each step took to log.
// Tools found under $KUBEBUILDER_ASSETS are not built. Concurrent
// installs into one cache wait for each other. A cold install takes
// about 15 minutes on 2 cores and needs ~3 GiB of memory for
// kube-apiserver; its private Go build cache is removed afterwards.
func Install(ctx context.Context, log io.Writer) error {
	dir, err := Dir()
	if err != nil {
		return err
	}
	for _, d := range []string{"bin", "share", "src"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	in := &installer{dir: dir, log: log}
	t0 := time.Now()
	steps := []func(context.Context) error{in.kubernetes, in.etcd, in.kwok, in.helm, in.kubeconform}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(in.goCache()); err != nil {
		fmt.Fprintf(log, "testenv: could not remove %s: %v\n", in.goCache(), err)
	}
	fmt.Fprintf(log, "testenv: all tools ready in %s (%.1fs)\n", filepath.Join(dir, "bin"), time.Since(t0).Seconds())
	return nil
}

type installer struct {
	dir string
	log io.Writer
}

func (in *installer) goCache() string { return filepath.Join(in.dir, "gocache") }

// current reports whether name needs no build: provided by
// $KUBEBUILDER_ASSETS, or cached with the same stamp.
func (in *installer) current(name, stamp string) bool {
	if assets := os.Getenv("KUBEBUILDER_ASSETS"); assets != "" && executable(filepath.Join(assets, name)) {
		return true
	}
	got, err := os.ReadFile(filepath.Join(in.dir, "bin", "."+name+".stamp"))
	return err == nil && string(got) == stamp && executable(filepath.Join(in.dir, "bin", name))
}

// put moves a built binary into the cache and records its stamp.
func (in *installer) put(name, built, stamp string) error {
	dst := filepath.Join(in.dir, "bin", name)
	if err := os.Rename(built, dst); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(in.dir, "bin", "."+name+".stamp"), []byte(stamp), 0o644)
}

// goCmd runs go in dir: module mode, no workspace, no cgo, and a private
// build cache (kube-apiserver alone fills gigabytes of it).
func (in *installer) goCmd(ctx context.Context, dir string, extraEnv []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "CGO_ENABLED=0", "GOCACHE="+in.goCache())
	cmd.Env = append(cmd.Env, extraEnv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out.Bytes())
	}
	return out.Bytes(), nil
}

// download fetches module@version and returns its source directory and
// its go.mod's contents. A version the proxy does not serve is a clear
// error.
func (in *installer) download(ctx context.Context, modVersion string) (dir string, gomod []byte, err error) {
	dl := filepath.Join(in.dir, "src", "dl")
	if _, err := writeIfChanged(filepath.Join(dl, "go.mod"), "module testenv/dl\n\ngo 1.22\n"); err != nil {
		return "", nil, err
	}
	out, err := in.goCmd(ctx, dl, nil, "mod", "download", "-json", modVersion)
	if err != nil {
		return "", nil, fmt.Errorf("module proxy refused %s (pick another version in internal/testenv/versions.go): %w", modVersion, err)
	}
	var m struct{ Dir, GoMod string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", nil, fmt.Errorf("go mod download %s: unexpected output %q", modVersion, out)
	}
	gomod, err = os.ReadFile(m.GoMod)
	return m.Dir, gomod, err
}

// build runs `go build` of the main packages bins (cache name → package)
// in a scratch module whose go.mod is gomod, and caches each binary with
// stamp.
func (in *installer) build(ctx context.Context, module, gomod, stamp string, flags []string, bins map[string]string) error {
	src := filepath.Join(in.dir, "src", module)
	changed, err := writeIfChanged(filepath.Join(src, "go.mod"), gomod)
	if err != nil {
		return err
	}
	if changed {
		os.Remove(filepath.Join(src, "go.sum"))
	}
	out := filepath.Join(in.dir, "build.tmp")
	os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(out)
	args := append(append([]string{"build", "-trimpath"}, flags...), "-o", out+"/")
	for _, pkg := range bins {
		args = append(args, pkg)
	}
	if _, err := in.goCmd(ctx, src, nil, args...); err != nil {
		return err
	}
	for name, pkg := range bins {
		if err := in.put(name, filepath.Join(out, goBinName(pkg)), stamp); err != nil {
			return err
		}
	}
	return nil
}

// goBinName is the file go build -o DIR/ writes for a main package: its
// last path element, or the one before a major version suffix (/v3).
func goBinName(pkg string) string {
	elems := strings.Split(pkg, "/")
	last := elems[len(elems)-1]
	if len(elems) > 1 && regexp.MustCompile(`^v[0-9]+$`).MatchString(last) {
		return elems[len(elems)-2]
	}
	return last
}

// goInstall runs `go install pkg@version` into a scratch GOBIN and caches
// the binary as name.
func (in *installer) goInstall(ctx context.Context, name, pkgVersion, ldflags string) error {
	stamp := pkgVersion + " " + ldflags
	if in.current(name, stamp) {
		return nil
	}
	defer in.timed("building " + name + " (" + pkgVersion + ")")()
	gobin := filepath.Join(in.dir, "gobin.tmp")
	os.RemoveAll(gobin)
	defer os.RemoveAll(gobin)
	if _, err := in.goCmd(ctx, in.dir, []string{"GOBIN=" + gobin, "GOFLAGS="}, "install", "-trimpath", "-ldflags", ldflags, pkgVersion); err != nil {
		return err
	}
	built, err := filepath.Glob(filepath.Join(gobin, "*"))
	if err != nil || len(built) != 1 {
		return fmt.Errorf("go install %s left %d files in %s", pkgVersion, len(built), gobin)
	}
	return in.put(name, built[0], stamp)
}

// timed logs the start of a step and returns the function that logs its
// duration.
func (in *installer) timed(what string) func() {
	fmt.Fprintf(in.log, "testenv: %s\n", what)
	t0 := time.Now()
	return func() { fmt.Fprintf(in.log, "testenv: %s: done in %.1fs\n", what, time.Since(t0).Seconds()) }
}

var goDirective = regexp.MustCompile(`(?m)^go (\S+)$`)

// goVersionOf returns the go directive of a go.mod file's contents.
func goVersionOf(gomod []byte) string {
	if m := goDirective.FindSubmatch(gomod); m != nil {
		return string(m[1])
	}
	return "1.22"
}

// writeIfChanged writes content to path unless it is there already, and
// says whether it wrote.
func writeIfChanged(path, content string) (bool, error) {
	if old, err := os.ReadFile(path); err == nil && string(old) == content {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return false, err
	}
	return true, os.WriteFile(path, []byte(content), 0o644)
}
