package testenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Dir is the binary cache: $DASKGATE_TESTENV_DIR, else
// <user cache dir>/daskgate-testenv/<Kubernetes version>.
func Dir() (string, error) {
	if d := os.Getenv("DASKGATE_TESTENV_DIR"); d != "" {
		return filepath.Abs(d)
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the cache directory (set DASKGATE_TESTENV_DIR): %w", err)
	}
	return filepath.Join(c, "daskgate-testenv", Kubernetes), nil
}

// ErrNotInstalled means a tool is neither under $KUBEBUILDER_ASSETS nor
// in the cache: run `make testenv` (go run ./hack/testenv install).
var ErrNotInstalled = errors.New("not installed (run `make testenv`)")

// Path returns the binary for a tool: from $KUBEBUILDER_ASSETS when that
// directory has it (controller-runtime envtest's convention, which holds
// kube-apiserver, etcd and kubectl), else from the cache.
func Path(name string) (string, error) {
	if assets := os.Getenv("KUBEBUILDER_ASSETS"); assets != "" {
		if p := filepath.Join(assets, name); executable(p) {
			return p, nil
		}
	}
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "bin", name)
	if !executable(p) {
		return "", fmt.Errorf("%s: %w", name, ErrNotInstalled)
	}
	return p, nil
}

func executable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// kwokStages is the kwok stage file Install writes beside the binaries.
func kwokStages() (string, error) {
	dir, err := Dir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "share", "kwok-stages.yaml")
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("kwok stages: %w", ErrNotInstalled)
	}
	return p, nil
}

// JupyterHubChart returns the JupyterHub Helm chart directory that tests
// use where `helm dependency build` cannot reach the chart repository:
// $DASKGATE_JUPYTERHUB_CHART (.ci/run sets it to
// ../shared/vendor/zero-to-jupyterhub-k8s/jupyterhub when that exists).
func JupyterHubChart() (string, error) {
	dir := os.Getenv("DASKGATE_JUPYTERHUB_CHART")
	if dir == "" {
		return "", errors.New("DASKGATE_JUPYTERHUB_CHART is not set (a local copy of the JupyterHub chart)")
	}
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		return "", fmt.Errorf("DASKGATE_JUPYTERHUB_CHART: %w", err)
	}
	return dir, nil
}
