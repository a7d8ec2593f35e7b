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
// empty folder with nothing beside it, then from there run the test
// environment's install (cached by now: it builds nothing) and one test
// against a real API server. Nothing may need a shared folder beside it.
func TestFreshClone(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI runs in a git checkout, but git rev-parse failed: %v", err)
		}
		t.Skip("not a git checkout (a source archive): nothing to clone")
	}
	if _, err := Path("kube-apiserver"); err != nil {
		t.Fatalf("the control plane is not installed yet (make test installs it first): %v", err)
	}
	empty := t.TempDir()
	clone := filepath.Join(empty, "daskgate")
	run(t, empty, "git", "clone", "--quiet", "--no-hardlinks", strings.TrimSpace(string(top)), clone)
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
