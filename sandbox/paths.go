package sandbox

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// systemPaths are what any dask process reads: libraries, binaries,
// certificates, name resolution, /proc and /sys (which Landlock still
// guards against other sandboxes' processes). /etc is listed file by
// file: it may hold the gateway's own configuration and keytab.
var systemPaths = []string{
	"/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/opt", "/proc", "/sys",
	"/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/alternatives", "/etc/fonts", "/etc/matplotlibrc",
	"/etc/passwd", "/etc/group", "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf", "/etc/nsswitch.conf",
	"/etc/gai.conf", "/etc/localtime", "/etc/timezone", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
	"/etc/os-release", "/etc/mime.types", "/etc/services", "/etc/protocols", "/etc/debian_version",
}

// ReadOnlyPaths are the paths a cluster reads: the system's, the
// directories on the cluster's PATH and, for each .../bin among them, its
// prefix (a virtualenv or conda environment) and the interpreter a
// virtualenv points to (pyvenv.cfg's home), plus extra. A path that is
// or contains one of protect (the gateway's data and cluster
// directories, its config file and keys) is dropped and returned in
// dropped: Landlock grants whole trees, so it could not be excluded.
func ReadOnlyPaths(path string, extra, protect []string) (ro, dropped []string) {
	cands := append(slices.Clone(systemPaths), extra...)
	for _, d := range filepath.SplitList(path) {
		if !filepath.IsAbs(d) {
			continue
		}
		cands = append(cands, d)
		if filepath.Base(d) == "bin" {
			prefix := filepath.Dir(d)
			cands = append(cands, prefix)
			if home := venvHome(prefix); home != "" {
				cands = append(cands, home, filepath.Dir(home))
			}
		}
	}
	for _, c := range cands {
		c = filepath.Clean(c)
		if slices.Contains(ro, c) || slices.Contains(dropped, c) {
			continue
		}
		if c == "/" {
			continue // the prefix of /bin: never the whole tree
		}
		if slices.ContainsFunc(protect, func(p string) bool { return within(p, c) }) {
			dropped = append(dropped, c)
			continue
		}
		if _, err := os.Stat(c); err == nil {
			ro = append(ro, c)
		}
	}
	return ro, dropped
}

// within reports whether p is dir or lies under it.
func within(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	return p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) || dir == "/"
}

// venvHome is the interpreter directory a virtualenv was made from.
func venvHome(prefix string) string {
	f, err := os.Open(filepath.Join(prefix, "pyvenv.cfg"))
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), "="); ok && strings.TrimSpace(k) == "home" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
