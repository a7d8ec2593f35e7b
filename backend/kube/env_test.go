package kube_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The integration tests run against a real kube-apiserver, etcd,
// kube-controller-manager (garbage collection) and kwok (pods get
// scheduled and turn Running and Ready) from ../shared/tools/kube-testenv.
// `make test` runs `kube-testenv install` first; with CI=true a missing
// control plane fails the tests instead of skipping them.
var testEnv struct {
	kubeconfig string
	err        error
}

func TestMain(m *testing.M) {
	os.Exit(runWithKube(m))
}

func runWithKube(m *testing.M) int {
	script := os.Getenv("KUBE_TESTENV")
	if script == "" {
		script, _ = filepath.Abs("../../../shared/tools/kube-testenv")
	}
	dir, err := os.MkdirTemp("", "daskgate-kube-")
	if err != nil {
		testEnv.err = err
		return m.Run()
	}
	defer os.RemoveAll(dir)
	out, err := exec.Command(script, "start", "--kwok", dir).CombinedOutput()
	if err != nil {
		testEnv.err = fmt.Errorf("%s start --kwok: %v\n%s", script, err, out)
		return m.Run()
	}
	defer exec.Command(script, "stop", dir).Run()
	testEnv.kubeconfig = filepath.Join(dir, "kubeconfig")
	stop, err := startRunForeverKwok(script, dir)
	if err != nil {
		testEnv.err = err
		return m.Run()
	}
	defer stop()
	return m.Run()
}

// startRunForeverKwok works around one kube-testenv stage: it completes
// every Running pod whose restartPolicy is Never or OnFailure at once (so
// `helm test` hooks pass), which would make every scheduler exit. It
// taints kube-testenv's node and runs a second kwok, with the same stages
// but that one, for a node of our own where pods keep running until the
// test changes their status.
func startRunForeverKwok(script, dir string) (func(), error) {
	envOut, err := exec.Command(script, "env").Output()
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(envOut), "\n") {
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok {
			env[k] = v
		}
	}
	stages, err := os.ReadFile(env["KWOK_STAGES"])
	if err != nil {
		return nil, err
	}
	var keep []string
	for _, doc := range strings.Split(string(stages), "\n---\n") {
		if !strings.Contains(doc, "name: pod-complete-run-once") {
			keep = append(keep, doc)
		}
	}
	stagesFile := filepath.Join(dir, "daskgate-kwok-stages.yaml")
	if err := os.WriteFile(stagesFile, []byte(strings.Join(keep, "\n---\n")), 0o644); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	kubectl := func(args ...string) error {
		out, err := exec.Command(env["KUBECTL"], append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("kubectl %v: %v\n%s", args, err, out)
		}
		return nil
	}
	if err := kubectl("taint", "nodes", "-l", "type=kwok", "daskgate-test/unused=true:NoSchedule"); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "logs", "daskgate-kwok.log"))
	if err != nil {
		return nil, err
	}
	kwok := exec.Command(env["KWOK"], "--kubeconfig="+kubeconfig, "--config="+stagesFile, "--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=daskgate-test/node=fake", "--manage-nodes-with-label-selector=",
		"--cidr=10.245.0.0/16", "--node-ip=127.0.0.1", "--node-lease-duration-seconds=40")
	kwok.Stdout, kwok.Stderr = logf, logf
	if err := kwok.Start(); err != nil {
		return nil, err
	}
	stop := func() { kwok.Process.Kill(); kwok.Wait(); logf.Close() }
	node := `{"apiVersion":"v1","kind":"Node","metadata":{"name":"daskgate-node-0",
"annotations":{"node.alpha.kubernetes.io/ttl":"0","daskgate-test/node":"fake"},
"labels":{"kubernetes.io/os":"linux","kubernetes.io/hostname":"daskgate-node-0","type":"daskgate-kwok"}},
"status":{"allocatable":{"cpu":"2000","memory":"8Ti","pods":"10000"},"capacity":{"cpu":"2000","memory":"8Ti","pods":"10000"}}}`
	nodeFile := filepath.Join(dir, "daskgate-node.json")
	if err := os.WriteFile(nodeFile, []byte(node), 0o644); err != nil {
		stop()
		return nil, err
	}
	if err := kubectl("apply", "-f", nodeFile); err != nil {
		stop()
		return nil, err
	}
	if err := kubectl("wait", "--for=condition=Ready", "node/daskgate-node-0", "--timeout=60s"); err != nil {
		stop()
		return nil, err
	}
	return stop, nil
}

// requireKube returns admin clients, or skips (fails under CI=true) when
// no control plane could be started.
func requireKube(t *testing.T) *kube.Clients {
	t.Helper()
	if testEnv.err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kube-testenv is required in CI: %v", testEnv.err)
		}
		t.Skipf("no kube-testenv control plane (run `make kube-testenv`): %v", firstLine(testEnv.err.Error()))
	}
	cl, err := kube.NewClients(kube.ClientConfig{Kubeconfig: testEnv.kubeconfig, QPS: 500, Burst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func firstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Scan()
	return sc.Text()
}

// as returns clients that impersonate one of the RBAC service accounts.
func as(t *testing.T, ns, sa string) *kube.Clients {
	t.Helper()
	cl, err := kube.NewClients(kube.ClientConfig{Kubeconfig: testEnv.kubeconfig, QPS: 500, Burst: 1000,
		Impersonate: "system:serviceaccount:" + ns + ":" + sa})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func randomSuffix() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

var crdInstalled bool

// newNamespace makes a namespace with the CRD installed and the
// documented RBAC objects applied, and deletes it at the end.
func newNamespace(t *testing.T, admin *kube.Clients) string {
	t.Helper()
	ctx := context.Background()
	if !crdInstalled {
		if err := kube.InstallCRD(ctx, admin.Dynamic); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 30*time.Second, "CRD established", func() bool {
			_, err := admin.Dynamic.Resource(kube.GVR).Namespace("default").List(ctx, metav1.ListOptions{})
			return err == nil
		})
		crdInstalled = true
	}
	ns := "t-" + randomSuffix()
	_, err := admin.Core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Core.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	for _, obj := range kube.RBAC(ns) {
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			_, err = admin.Core.CoreV1().ServiceAccounts(ns).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.Role:
			_, err = admin.Core.RbacV1().Roles(ns).Create(ctx, o, metav1.CreateOptions{})
		case *rbacv1.RoleBinding:
			_, err = admin.Core.RbacV1().RoleBindings(ns).Create(ctx, o, metav1.CreateOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return ns
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
