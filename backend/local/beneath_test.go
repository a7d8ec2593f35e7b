package local

import (
	"os"
	"path/filepath"
	"testing"
)

// A tenant who owns the work dir plants links where the gateway will open
// its log: the gateway refuses each instead of writing through it.
func TestOpenBeneathRefusesPlantedLinks(t *testing.T) {
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "logs"), 0o700)
	flags := os.O_CREATE | os.O_APPEND | os.O_WRONLY
	f, err := openBeneath(dir, "logs/scheduler.log", flags, 0o600)
	if err != nil {
		t.Fatalf("a plain new file: %v", err)
	}
	f.Close()
	for name, plant := range map[string]func(p string) error{
		"symlink":          func(p string) error { return os.Symlink(outside, p) },
		"hard link":        func(p string) error { return os.Link(outside, p) },
		"symlinked parent": nil,
	} {
		p := filepath.Join(dir, "logs", "worker-"+name+".log")
		rel := "logs/worker-" + name + ".log"
		if plant == nil {
			os.Symlink(filepath.Dir(outside), filepath.Join(dir, "elsewhere"))
			rel = "elsewhere/shadow"
		} else if err := plant(p); err != nil {
			t.Fatal(err)
		}
		if f, err := openBeneath(dir, rel, flags, 0o600); err == nil {
			f.Close()
			t.Errorf("%s: opened", name)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "secret" {
		t.Fatalf("the file outside changed: %q", b)
	}
}
