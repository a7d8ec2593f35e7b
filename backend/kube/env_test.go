package kube_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	"github.com/daskgate/daskgate/internal/testenv"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The integration tests run against a real kube-apiserver, etcd,
// kube-controller-manager (garbage collection) and kwok (pods get
// scheduled and turn Running and Ready) from internal/testenv.
// `make test` runs `make testenv` (the install) first; a missing control
// plane fails the tests (never a skip).
var testEnv struct {
	kubeconfig string
	err        error
}

func TestMain(m *testing.M) {
	if os.Getenv(klogChildEnv) != "" {
		klogChild() // TestKlogGoesToSlog's child: klog is process-wide
		return
	}
	os.Exit(runWithKube(m))
}

func runWithKube(m *testing.M) int {
	env, err := testenv.Start(context.Background(), testenv.Options{})
	if err != nil {
		testEnv.err = err
		return m.Run()
	}
	defer env.Stop()
	testEnv.kubeconfig = env.Kubeconfig
	return m.Run()
}

// requireKube returns admin clients. Without a control plane the test
// fails: `make test` installs the control plane first (`make testenv`).
func requireKube(t *testing.T) *kube.Clients {
	t.Helper()
	if testEnv.err != nil {
		t.Fatalf("test control plane unavailable (run `make testenv`): %v", testEnv.err)
	}
	cl, err := kube.NewClients(kube.ClientConfig{Kubeconfig: testEnv.kubeconfig, QPS: 500, Burst: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return cl
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
