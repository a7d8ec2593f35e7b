// Package image builds daskgate's OCI image without a container engine:
// one layer with the static binary, CA certificates and a non-root user,
// every timestamp and owner fixed, so one commit always gives one digest.
// It is the only package that imports go-containerregistry.
//
//	idx, err := image.Build(image.Spec{Binaries: map[string]string{"linux/amd64": "bin/daskgate"}, Version: "0.1.0", ...})
//	err = image.WriteLayout("out/oci", idx, "0.1.0")
package image

import (
	"archive/tar"
	"bytes"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// UID and GID the gateway runs as (the chart's runAsUser).
const UID, GID = 65532, 65532

// Spec says what goes into the image.
type Spec struct {
	// Binaries maps a platform ("linux/amd64") to a static daskgate binary.
	Binaries map[string]string
	// Version, Revision and Source become OCI labels.
	Version, Revision, Source string
	// Created is every timestamp in the image (the commit's time).
	Created time.Time
}

// Build makes one image per platform and an index over them.
func Build(s Spec) (v1.ImageIndex, error) {
	platforms := make([]string, 0, len(s.Binaries))
	for p := range s.Binaries {
		platforms = append(platforms, p)
	}
	sort.Strings(platforms)
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img, err := buildOne(s, p, s.Binaries[p])
		if err != nil {
			return nil, fmt.Errorf("image for %s: %w", p, err)
		}
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: plat}})
	}
	return idx, nil
}

func buildOne(s Spec, platform, binary string) (v1.Image, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	rootfs, err := rootFS(bin, s.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(rootfs)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	plat, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: s.Created}, CreatedBy: "daskgate internal/image", Comment: "daskgate " + s.Version}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	cf.Created = v1.Time{Time: s.Created}
	cf.Config = v1.Config{
		Entrypoint:   []string{"/usr/local/bin/daskgate"},
		Cmd:          []string{"serve"},
		User:         fmt.Sprintf("%d:%d", UID, GID),
		WorkingDir:   "/",
		Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		ExposedPorts: map[string]struct{}{"8000/tcp": {}, "8786/tcp": {}},
		Labels: map[string]string{
			"org.opencontainers.image.title":    "daskgate",
			"org.opencontainers.image.source":   s.Source,
			"org.opencontainers.image.version":  s.Version,
			"org.opencontainers.image.revision": s.Revision,
			"org.opencontainers.image.created":  s.Created.UTC().Format(time.RFC3339),
			"org.opencontainers.image.licenses": "BSD-3-Clause",
		},
	}
	return mutate.ConfigFile(img, cf)
}

// rootFS is the layer's tar: sorted, owned by root (the binary too, so
// the user cannot replace it), all times s.Created.
func rootFS(bin []byte, created time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: created, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(b)), ModTime: created, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\ndaskgate:x:%d:%d:daskgate:/home/daskgate:/sbin/nologin\n", UID, GID)
	group := fmt.Sprintf("root:x:0:\ndaskgate:x:%d:\n", GID)
	steps := []func() error{
		func() error { return dir("etc", 0o755) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return dir("etc/ssl", 0o755) },
		func() error { return dir("etc/ssl/certs", 0o755) },
		func() error { return file("etc/ssl/certs/ca-certificates.crt", 0o644, caBundle()) },
		func() error {
			if err := dir("home", 0o755); err != nil {
				return err
			}
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "home/daskgate/", Mode: 0o700, Uid: UID, Gid: GID, ModTime: created, Format: tar.FormatPAX})
		},
		func() error { return dir("tmp", 0o1777) },
		func() error { return dir("usr", 0o755) },
		func() error { return dir("usr/local", 0o755) },
		func() error { return dir("usr/local/bin", 0o755) },
		func() error { return file("usr/local/bin/daskgate", 0o755, bin) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// caBundle is the Mozilla root store pinned by go.mod
// (golang.org/x/crypto/x509roots/fallback), unconstrained roots only: the
// same bytes on every machine.
func caBundle() []byte {
	var b bytes.Buffer
	for r := range bundle.Roots() {
		if r.Constraint != nil {
			continue
		}
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: r.Certificate})
	}
	return b.Bytes()
}

// WriteLayout writes idx as an OCI image layout directory (what skopeo
// oci:, crane and podman read), its one manifest named tag.
func WriteLayout(dir string, idx v1.ImageIndex, tag string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	return p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
}

// WriteTarball writes the image for platform as a `docker load` /
// skopeo docker-archive: tarball tagged ref.
func WriteTarball(path string, idx v1.ImageIndex, platform, ref string) error {
	img, err := ForPlatform(idx, platform)
	if err != nil {
		return err
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(path, tag, img)
}

// ForPlatform picks one platform's image from idx.
func ForPlatform(idx v1.ImageIndex, platform string) (v1.Image, error) {
	want, err := v1.ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Satisfies(*want) {
			return idx.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no image for %s", platform)
}

// PushLayout uploads the image index WriteLayout wrote in dir to ref,
// with the credentials docker/podman logins keep (~/.docker/config.json,
// $REGISTRY_AUTH_FILE).
func PushLayout(dir, ref string) error {
	idx, err := ReadLayout(dir)
	if err != nil {
		return err
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	return remote.WriteIndex(r, idx, remote.WithAuthFromKeychain(authn.DefaultKeychain))
}

// ReadLayout reads back the image index WriteLayout wrote.
func ReadLayout(dir string) (v1.ImageIndex, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read %s (run make image first): %w", dir, err)
	}
	outer, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := outer.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 {
		return nil, fmt.Errorf("%s holds %d entries, want one image index", dir, len(m.Manifests))
	}
	return outer.ImageIndex(m.Manifests[0].Digest)
}

// Contents is what a tarball's image holds, for tests and inspection.
type Contents struct {
	Digest string
	Config v1.Config
	// Files maps each path to its header; Data holds the regular files.
	Files map[string]*tar.Header
	Data  map[string][]byte
}

// ReadTarball opens a tarball WriteTarball wrote (as docker load would)
// and lists its files.
func ReadTarball(path string) (*Contents, error) {
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	c := &Contents{Digest: d.String(), Config: cf.Config, Files: map[string]*tar.Header{}, Data: map[string][]byte{}}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return c, nil
		}
		if err != nil {
			return nil, err
		}
		c.Files[h.Name] = h
		if h.Typeflag == tar.TypeReg {
			if c.Data[h.Name], err = io.ReadAll(tr); err != nil {
				return nil, err
			}
		}
	}
}
