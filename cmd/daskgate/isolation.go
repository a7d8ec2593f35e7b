package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/daskgate/daskgate/backend/local"
	"github.com/daskgate/daskgate/config"
	"github.com/daskgate/daskgate/sandbox"
)

// isolation sets up backend.isolation for the local backend and returns
// how to wrap a cluster process's argv (nil: run it as it is). A mode
// this machine cannot provide is a startup error, never a silent
// downgrade.
func isolation(cfg *config.Config, clustersDir string, log *slog.Logger) (func(workdir string, argv []string) ([]string, *syscall.SysProcAttr), *local.Accounts, error) {
	mode := cfg.Backend.Isolation
	if mode == "user" {
		accounts, err := userIsolation(cfg, clustersDir, log)
		return nil, accounts, err
	}
	wrap, err := sandboxIsolation(cfg, clustersDir, log)
	return wrap, nil, err
}

// userIsolation runs each user's clusters as that user's OS account, as
// upstream's LocalBackend does: only root may.
func userIsolation(cfg *config.Config, clustersDir string, log *slog.Logger) (*local.Accounts, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New(`backend.isolation "user" runs clusters as each user's OS account, which needs the gateway to run as root; use "sandbox" (the default, no root needed)`)
	}
	// Each user may enter their own work dir, and list no one's.
	if err := os.Chmod(clustersDir, 0o711); err != nil {
		return nil, fmt.Errorf("backend.isolation user: %w", err)
	}
	r := cfg.Backend.UserUIDRange
	accounts, err := local.NewAccounts(filepath.Join(cfg.DataDir, "accounts.json"), r[0], r[1])
	if err != nil {
		return nil, fmt.Errorf("backend.isolation user: %w", err)
	}
	accounts.UseExisting = cfg.Backend.UserExistingAccounts
	log.Info("cluster isolation: user (each user's OS account)", "uid_range", r, "existing_accounts", accounts.UseExisting,
		"clusters_directory", clustersDir)
	return accounts, nil
}

func sandboxIsolation(cfg *config.Config, clustersDir string, log *slog.Logger) (func(workdir string, argv []string) ([]string, *syscall.SysProcAttr), error) {
	if cfg.Backend.Isolation == "none" {
		log.Warn("cluster isolation is OFF (backend.isolation: none): every tenant's code can read every other tenant's " +
			"cluster keys and tokens and the gateway's own files; use this on a single-user machine only")
		return nil, nil
	}
	abi, err := sandbox.Check()
	if err != nil {
		return nil, fmt.Errorf("backend.isolation %q: %w; set backend.isolation: none only on a single-user machine", "sandbox", err)
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("backend.isolation: find this binary for the sandbox launcher: %w", err)
	}
	protect := []string{cfg.DataDir, clustersDir, cfg.File, cfg.Auth.Keytab, cfg.Auth.TLSKey, cfg.Auth.TLSCert,
		cfg.Proxy.TLSKey, cfg.Proxy.TLSCert, self}
	for i, p := range protect {
		if p != "" {
			protect[i], _ = filepath.Abs(p)
		}
	}
	for _, p := range cfg.Backend.SandboxReadOnlyPaths {
		if _, dropped := sandbox.ReadOnlyPaths("", []string{p}, protect); len(dropped) > 0 {
			return nil, fmt.Errorf("backend.sandbox_read_only_paths: %s holds the gateway's own files", p)
		}
	}
	path := os.Getenv("PATH")
	ro, dropped := sandbox.ReadOnlyPaths(path, cfg.Backend.SandboxReadOnlyPaths, protect)
	log.Info("cluster isolation: sandbox (Landlock)", "landlock_abi", abi, "signals_scoped", abi >= 6,
		"read_only_paths", len(ro), "clusters_directory", clustersDir)
	if len(dropped) > 0 {
		log.Warn("sandbox: paths on PATH hold the gateway's files and are not readable by clusters", "paths", dropped)
	}
	if len(ro) == 0 {
		return nil, errors.New("backend.isolation: no readable paths for clusters")
	}
	if err := probeSandbox(self, clustersDir, ro); err != nil {
		return nil, fmt.Errorf("backend.isolation %q: a sandboxed process cannot start here: %w; "+
			"set backend.isolation: none only on a single-user machine", "sandbox", err)
	}
	return func(workdir string, argv []string) ([]string, *syscall.SysProcAttr) {
		return sandbox.Command(self, workdir, ro, argv), sandbox.SysProcAttr()
	}, nil
}

// probeSandbox starts `true` in the sandbox, with the namespaces a
// cluster gets, so that a kernel or policy refusing them (unprivileged
// user namespaces switched off, say) fails at startup, not per cluster.
func probeSandbox(self, clustersDir string, ro []string) error {
	dir, err := os.MkdirTemp(clustersDir, ".probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cmd := exec.Command(self, sandbox.Command(self, dir, ro, []string{"true"})[1:]...)
	cmd.SysProcAttr = sandbox.SysProcAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}
