package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStopDirStopsOnlyWhatItStarted(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"pids", "logs"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	// Ours: started through launch, so recorded with its start time.
	if err := launch(dir, "kwok", false, "sleep", "60"); err != nil {
		t.Fatal(err)
	}
	ours, ok := recorded(dir, "kwok")
	if !ok {
		t.Fatal("launched process not recorded as running")
	}
	// Not ours: a live process whose PID sits in a pid file with another
	// start time, as after PID reuse.
	stranger := exec.Command("sleep", "60")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	defer stranger.Process.Kill()
	rec := fmt.Sprintf("%d 1\n", stranger.Process.Pid)
	os.WriteFile(filepath.Join(dir, "pids", "etcd.pid"), []byte(rec), 0o644)

	if err := StopDir(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := startTime(ours); err == nil {
		t.Errorf("our process %d still runs after StopDir", ours)
	}
	if _, err := startTime(stranger.Process.Pid); err != nil {
		t.Errorf("StopDir signalled a process it did not start: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "pids")); len(entries) != 0 {
		t.Errorf("pid files left: %v", entries)
	}
}

func TestStartWithoutBinariesSaysHowToInstall(t *testing.T) {
	t.Setenv("DASKGATE_TESTENV_DIR", t.TempDir())
	t.Setenv("KUBEBUILDER_ASSETS", "")
	_, err := Start(context.Background(), Options{Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "make testenv") {
		t.Fatalf("Start without binaries: %v, want an error naming `make testenv`", err)
	}
}

func TestKubebuilderAssetsWin(t *testing.T) {
	assets := t.TempDir()
	fake := filepath.Join(assets, "kube-apiserver")
	os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755)
	t.Setenv("KUBEBUILDER_ASSETS", assets)
	t.Setenv("DASKGATE_TESTENV_DIR", t.TempDir())
	if p, err := Path("kube-apiserver"); err != nil || p != fake {
		t.Fatalf("Path(kube-apiserver) = %q, %v; want %q", p, err, fake)
	}
	if _, err := Path("kwok"); err == nil {
		t.Fatal("kwok found though neither the assets nor the cache have it")
	}
	in := &installer{dir: t.TempDir()}
	if !in.current("kube-apiserver", "any stamp") {
		t.Error("install would build kube-apiserver that KUBEBUILDER_ASSETS provides")
	}
}

func TestKubernetesScratchModule(t *testing.T) {
	upstream := []byte(`module k8s.io/kubernetes

go 1.25.0

godebug default=go1.25

require (
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	github.com/other/mod => github.com/fork/mod v1.0.0
)
`)
	got, err := kubernetesScratchModule(upstream)
	if err != nil {
		t.Fatal(err)
	}
	tag := "v0." + strings.TrimPrefix(Kubernetes, "v1.")
	for _, want := range []string{"go 1.25.0\n", "godebug default=go1.25\n", "require k8s.io/kubernetes " + Kubernetes,
		"\tk8s.io/api => k8s.io/api " + tag + "\n", "\tk8s.io/client-go => k8s.io/client-go " + tag + "\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("scratch go.mod lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "fork") {
		t.Errorf("non-staging replacement copied:\n%s", got)
	}
	if _, err := kubernetesScratchModule([]byte("module x\n")); err == nil {
		t.Error("a go.mod without staging replacements accepted")
	}
}

func TestGoBinName(t *testing.T) {
	for pkg, want := range map[string]string{
		"k8s.io/kubernetes/cmd/kubectl": "kubectl",
		"go.etcd.io/etcd/server/v3":     "server",
		"example.com/v2tool":            "v2tool",
	} {
		if got := goBinName(pkg); got != want {
			t.Errorf("goBinName(%s) = %s, want %s", pkg, got, want)
		}
	}
}

// A control plane started by a test dies with the test binary, even one
// killed by a timeout: nothing is left running.
func TestProcessesDieWithTheirStarter(t *testing.T) {
	if dir := os.Getenv("TESTENV_LAUNCHER_DIR"); dir != "" {
		if err := launch(dir, "etcd", false, "sleep", "60"); err != nil {
			os.Exit(2)
		}
		os.Exit(0) // as a killed test binary would, without Stop
	}
	dir := t.TempDir()
	for _, d := range []string{"pids", "logs"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestProcessesDieWithTheirStarter$")
	cmd.Env = append(os.Environ(), "TESTENV_LAUNCHER_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("launcher: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pids", "etcd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := startTime(pid); err != nil {
			return // gone (or a zombie)
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("process %d outlived the test binary that started it", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
