package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFreshClone takes a new user's path: clone the repository into an
// empty folder with nothing beside it (from a source archive, copy the
// tree), then from there run the test environment's install (cached by
// now: it builds nothing) and one test against a real API server.
// Nothing may need a shared folder beside it.
func TestFreshClone(t *testing.T) {
	if _, err := Path("kube-apiserver"); err != nil {
		t.Fatalf("the control plane is not installed yet (make test installs it first): %v", err)
	}
	empty := t.TempDir()
	clone := filepath.Join(empty, "daskgate")
	if top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output(); err == nil {
		run(t, empty, "git", "clone", "--quiet", "--no-hardlinks", strings.TrimSpace(string(top)), clone)
	} else if err := copySources("../..", clone); err != nil {
		t.Fatalf("not a git checkout, and copying the source tree failed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(empty, "shared")); err == nil {
		t.Fatal("the clone has a shared folder beside it")
	}
	out := run(t, clone, "go", "run", "./hack/testenv", "install")
	if !strings.Contains(out, "all tools ready") || strings.Contains(out, "building") {
		t.Errorf("install in the clone did not find every tool cached:\n%s", out)
	}
	out = run(t, clone, "go", "test", "-count=1", "-v", "-run", "^TestBadConfigIsA422$", "./backend/kube/")
	if !strings.Contains(out, "--- PASS: TestBadConfigIsA422") {
		t.Errorf("the real API-server test did not pass in the clone:\n%s", out)
	}
}

// run runs a command in dir and returns its combined output; it fails
// the test with that output on error.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	t0 := time.Now()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s in %s: %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
	t.Logf("%s %s: %.1fs", name, strings.Join(args, " "), time.Since(t0).Seconds())
	return string(out)
}

// copySources copies a source tree without its build outputs and
// environments (what a fresh clone would not have).
func copySources(src, dst string) error {
	skip := map[string]bool{".git": true, "bin": true, ".venv": true, "node_modules": true, "daskgate-data": true}
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() && skip[d.Name()] {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		}
		return nil
	})
}
