package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// kubernetes builds the missing ones of kube-apiserver,
// kube-controller-manager, kube-scheduler and kubectl from
// k8s.io/kubernetes. That module requires its staging modules
// (k8s.io/api, k8s.io/client-go, ...) at v0.0.0 and replaces them with
// ./staging, which the module zip cannot use: the scratch module maps
// each to its published tag v0.N.M instead.
func (in *installer) kubernetes(ctx context.Context) error {
	stamp := "k8s.io/kubernetes@" + Kubernetes + " tags=selinux,notest"
	bins := map[string]string{}
	for _, name := range kubernetesCommands {
		if !in.current(name, stamp) {
			bins[name] = "k8s.io/kubernetes/cmd/" + name
		}
	}
	if len(bins) == 0 {
		return nil
	}
	defer in.timed(fmt.Sprintf("building %d Kubernetes %s commands (cold ~8 min on 2 cores)", len(bins), Kubernetes))()
	_, upstream, err := in.download(ctx, "k8s.io/kubernetes@"+Kubernetes)
	if err != nil {
		return err
	}
	gomod, err := kubernetesScratchModule(upstream)
	if err != nil {
		return err
	}
	minor := strings.Split(Kubernetes, ".")[1]
	ld := "-s -w"
	date := time.Now().UTC().Format(time.RFC3339)
	for _, p := range []string{"k8s.io/client-go/pkg/version", "k8s.io/component-base/version"} {
		ld += fmt.Sprintf(" -X %[1]s.gitVersion=%[2]s -X %[1]s.gitMajor=1 -X %[1]s.gitMinor=%[3]s -X %[1]s.gitTreeState=clean -X %[1]s.buildDate=%[4]s",
			p, Kubernetes, minor, date)
	}
	return in.build(ctx, "k8s", gomod, stamp, []string{"-tags", "selinux,notest", "-ldflags", ld}, bins)
}

var stagingReplace = regexp.MustCompile(`(?m)^\s*(?:replace\s+)?(\S+)\s+=>\s+\./staging/`)

// kubernetesScratchModule writes the go.mod that builds k8s.io/kubernetes
// at Kubernetes from the module proxy, given that module's own go.mod.
func kubernetesScratchModule(upstream []byte) (string, error) {
	staging := stagingReplace.FindAllSubmatch(upstream, -1)
	if len(staging) == 0 {
		return "", fmt.Errorf("k8s.io/kubernetes@%s: no ./staging replacements in its go.mod", Kubernetes)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "module testenv/k8s\n\ngo %s\n\n", goVersionOf(upstream))
	for _, line := range strings.Split(string(upstream), "\n") {
		if strings.HasPrefix(line, "godebug") {
			b.WriteString(line + "\n")
		}
	}
	fmt.Fprintf(&b, "\nrequire k8s.io/kubernetes %s\n\nreplace (\n", Kubernetes)
	tag := "v0." + strings.TrimPrefix(Kubernetes, "v1.")
	for _, m := range staging {
		fmt.Fprintf(&b, "\t%s => %s %s\n", m[1], m[1], tag)
	}
	b.WriteString(")\n")
	return b.String(), nil
}

func (in *installer) etcd(ctx context.Context) error {
	const mod = "go.etcd.io/etcd/server/v3"
	stamp := mod + "@" + Etcd
	if in.current("etcd", stamp) {
		return nil
	}
	defer in.timed("building etcd " + Etcd)()
	_, upstream, err := in.download(ctx, mod+"@"+Etcd)
	if err != nil {
		return err
	}
	gomod := fmt.Sprintf("module testenv/etcd\n\ngo %s\n\nrequire %s %s\n", goVersionOf(upstream), mod, Etcd)
	return in.build(ctx, "etcd", gomod, stamp, []string{"-ldflags", "-s -w"}, map[string]string{"etcd": mod})
}

// kwokStageFiles are the stages of kwokctl's defaults: nodes become Ready
// and keep a lease, pods become Running and Ready at once, Job pods
// complete, deleted pods go away. Pods that are not a Job's keep running
// until a test changes their status, as a scheduler pod must.
var kwokStageFiles = []string{
	"node/fast/node-initialize",
	"node/heartbeat-with-lease/node-heartbeat-with-lease",
	"pod/fast/pod-ready",
	"pod/fast/pod-complete",
	"pod/fast/pod-delete",
}

func (in *installer) kwok(ctx context.Context) error {
	if err := in.goInstall(ctx, "kwok", "sigs.k8s.io/kwok/cmd/kwok@"+Kwok, "-s -w"); err != nil {
		return err
	}
	stagesPath := filepath.Join(in.dir, "share", "kwok-stages.yaml")
	if stamp, err := os.ReadFile(stagesPath + ".stamp"); err == nil && string(stamp) == Kwok {
		return nil
	}
	src, _, err := in.download(ctx, "sigs.k8s.io/kwok@"+Kwok)
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, s := range kwokStageFiles {
		stage, err := os.ReadFile(filepath.Join(src, "kustomize", "stage", s+".yaml"))
		if err != nil {
			return fmt.Errorf("kwok %s stages: %w", Kwok, err)
		}
		b.WriteString("---\n")
		b.Write(stage)
	}
	if err := os.WriteFile(stagesPath, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(stagesPath+".stamp", []byte(Kwok), 0o644)
}

// helm builds helm v3 (as helm) and v4 (as helm4). Helm v3 takes the
// Kubernetes version that `helm template` and `helm lint` assume from
// link-time variables, as its own Makefile sets them; without them it
// claims Kubernetes v1.20.
func (in *installer) helm(ctx context.Context) error {
	const h3, h4 = "helm.sh/helm/v3", "helm.sh/helm/v4"
	_, gomod, err := in.download(ctx, h3+"@"+Helm3)
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`(?m)^\s*k8s\.io/client-go v0\.(\d+)\.`).FindSubmatch(gomod)
	if m == nil {
		return fmt.Errorf("helm %s: no k8s.io/client-go in its go.mod", Helm3)
	}
	ld := "-s -w -X " + h3 + "/internal/version.version=" + Helm3 + " -X " + h3 + "/internal/version.gitTreeState=clean"
	for _, p := range []string{"pkg/lint/rules", "pkg/chartutil"} {
		ld += fmt.Sprintf(" -X %s/%s.k8sVersionMajor=1 -X %s/%s.k8sVersionMinor=%s", h3, p, h3, p, m[1])
	}
	if err := in.goInstall(ctx, "helm", h3+"/cmd/helm@"+Helm3, ld); err != nil {
		return err
	}
	return in.goInstall(ctx, "helm4", h4+"/cmd/helm@"+Helm4,
		"-s -w -X "+h4+"/internal/version.version="+Helm4+" -X "+h4+"/internal/version.gitTreeState=clean")
}

func (in *installer) kubeconform(ctx context.Context) error {
	return in.goInstall(ctx, "kubeconform", "github.com/yannh/kubeconform/cmd/kubeconform@"+Kubeconform, "-s -w -X main.version="+Kubeconform)
}
