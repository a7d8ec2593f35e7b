package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadOnlyPathsNeverHoldTheGatewaysFiles(t *testing.T) {
	root := t.TempDir()
	venv := filepath.Join(root, "env", ".venv")
	home := filepath.Join(root, "python", "bin")
	data := filepath.Join(root, "srv", "daskgate-data")
	for _, d := range []string{filepath.Join(venv, "bin"), home, data, filepath.Join(root, "srv", "bin")} {
		os.MkdirAll(d, 0o755)
	}
	os.WriteFile(filepath.Join(venv, "pyvenv.cfg"), []byte("home = "+home+"\nversion = 3.11\n"), 0o644)
	path := strings.Join([]string{filepath.Join(venv, "bin"), filepath.Join(root, "srv", "bin"), "relative/bin"}, ":")
	ro, dropped := ReadOnlyPaths(path, []string{"/usr"}, []string{data})
	for _, want := range []string{filepath.Join(venv, "bin"), venv, home, filepath.Dir(home), "/usr"} {
		if !slices.Contains(ro, want) {
			t.Errorf("%s not readable: %v", want, ro)
		}
	}
	// /srv/bin's prefix holds the data dir: dropped, and only that.
	if !slices.Equal(dropped, []string{filepath.Join(root, "srv")}) {
		t.Errorf("dropped %v", dropped)
	}
	for _, p := range ro {
		if within(data, p) || p == "/" || !filepath.IsAbs(p) || strings.HasPrefix(p, "/etc/daskgate") {
			t.Errorf("%s is readable but holds the gateway's files or is not absolute", p)
		}
		if p == "/etc" {
			t.Error("/etc is readable whole")
		}
	}
}

func TestCommand(t *testing.T) {
	got := strings.Join(Command("/bin/daskgate", "/w/c1", []string{"/usr", "/lib"}, []string{"dask", "worker", "--x"}), " ")
	if got != "/bin/daskgate sandbox-exec --rw /w/c1 --ro /usr --ro /lib -- dask worker --x" {
		t.Fatal(got)
	}
}
