package main

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/daskgate/daskgate/internal/image"
)

// TestImageIsReproducibleAndRuns builds the image of this commit twice,
// from scratch into two directories: both give one digest. The tarball
// loads as `docker load` reads it, runs as the non-root user, carries the
// OCI labels and CA certificates, and its binary is static and runs.
func TestImageIsReproducibleAndRuns(t *testing.T) {
	platform := "linux/" + runtime.GOARCH
	src, _ := filepath.Abs("../..")
	a, err := build(src, t.TempDir(), []string{platform})
	if err != nil {
		t.Fatal(err)
	}
	b, err := build(src, t.TempDir(), []string{platform})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("image %s, again %s", a.digest, b.digest)
	if a.digest != b.digest {
		t.Fatalf("two builds of one commit differ: %s and %s", a.digest, b.digest)
	}
	idx, err := image.ReadLayout(filepath.Join(filepath.Dir(a.tarballs[0]), "oci"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := idx.Digest(); d.String() != a.digest {
		t.Fatalf("OCI layout holds %s, built %s", d, a.digest)
	}
	c, err := image.ReadTarball(a.tarballs[0])
	if err != nil {
		t.Fatalf("the tarball does not load: %v", err)
	}
	if c.Config.User != "65532:65532" || c.Config.Entrypoint[0] != "/usr/local/bin/daskgate" {
		t.Errorf("user %q entrypoint %v", c.Config.User, c.Config.Entrypoint)
	}
	rev, _ := commit(src)
	for k, want := range map[string]string{"org.opencontainers.image.version": a.version, "org.opencontainers.image.revision": rev,
		"org.opencontainers.image.source": "https://github.com/daskgate/daskgate"} {
		if c.Config.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, c.Config.Labels[k], want)
		}
	}
	if h := c.Files["usr/local/bin/daskgate"]; h == nil || h.Mode&0o111 == 0 || h.Uid != 0 {
		t.Fatalf("binary header %+v", h)
	}
	if n := strings.Count(string(c.Data["etc/ssl/certs/ca-certificates.crt"]), "BEGIN CERTIFICATE"); n < 100 {
		t.Errorf("%d CA certificates", n)
	}
	if !strings.Contains(string(c.Data["etc/passwd"]), ":65532:65532:") {
		t.Errorf("no user 65532 in /etc/passwd")
	}
	bin := filepath.Join(t.TempDir(), "daskgate")
	if err := os.WriteFile(bin, c.Data["usr/local/bin/daskgate"], 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "daskgate "+a.version) || !strings.Contains(string(out), "commit "+rev) {
		t.Fatalf("the image's binary: %s %v", out, err)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("the binary needs a dynamic loader; the image has none")
		}
	}
}
