package charts

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/daskgate/daskgate/backend/kube"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
)

// container is one container of an installed Deployment run as a local
// process, as the kubelet would run it, where there is no container
// runtime: the image's entrypoint (daskgate) with the container's args;
// exactly the container's env, every valueFrom resolved from the API
// server (a missing Secret, ConfigMap or key fails the test, where kwok
// would show the pod Running); each volume mounted under a root directory
// (ConfigMaps and Secrets in the kubelet's ..data layout, so an update is
// an atomic swap); and the pod's ServiceAccount as its identity (a
// kubeconfig impersonating it, so the chart's RBAC is what is tested).
// Paths in args and mounted files are the container's, mapped under root.
type container struct {
	t       *testing.T
	cl      *kube.Clients
	ns      string
	name    string // the Deployment's
	pod     corev1.PodSpec
	c       corev1.Container
	root    string
	cmd     *exec.Cmd
	exited  chan struct{}
	logPath string
}

// loadContainer reads the named container of Deployment deployment and
// lays out its volumes; start runs it.
func loadContainer(t *testing.T, cl *kube.Clients, ns, deployment, name string) *container {
	t.Helper()
	d, err := cl.Core.AppsV1().Deployments(ns).Get(context.Background(), deployment, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := d.Spec.Template.Spec
	var c *corev1.Container
	for i := range spec.Containers {
		if spec.Containers[i].Name == name {
			c = &spec.Containers[i]
		}
	}
	if c == nil {
		t.Fatalf("deployment %s has no container %s", deployment, name)
	}
	k := &container{t: t, cl: cl, ns: ns, name: deployment, pod: spec, c: *c, root: t.TempDir(), exited: make(chan struct{})}
	k.syncVolumes()
	return k
}

// runContainer starts the named container of Deployment deployment with
// the image's entrypoint (daskgate); extraEnv is what a pod gets from its
// node and not from its spec (the address it listens on here, the test
// dial map).
func runContainer(t *testing.T, cl *kube.Clients, ns, deployment, name string, extraEnv ...string) *container {
	t.Helper()
	k := loadContainer(t, cl, ns, deployment, name)
	args := []string{binary}
	for _, a := range k.c.Args {
		args = append(args, k.hostPath(a))
	}
	k.start(args, extraEnv...)
	return k
}

// environ is the container's environment as the kubelet makes it: the
// Services' links (enableServiceLinks), then the container's env with
// every valueFrom resolved, then the ServiceAccount's identity.
func (k *container) environ() []string {
	var env []string
	svcs, err := k.cl.Core.CoreV1().Services(k.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		k.t.Fatal(err)
	}
	for _, s := range svcs.Items {
		if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == "None" || len(s.Spec.Ports) == 0 {
			continue
		}
		n := strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
		env = append(env, n+"_SERVICE_HOST="+s.Spec.ClusterIP, n+"_SERVICE_PORT="+strconv.Itoa(int(s.Spec.Ports[0].Port)))
		for _, p := range s.Spec.Ports {
			if p.Name != "" {
				env = append(env, n+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))+"="+strconv.Itoa(int(p.Port)))
			}
		}
	}
	for _, e := range k.c.Env {
		env = append(env, e.Name+"="+k.envValue(e))
	}
	return append(env, "KUBECONFIG="+impersonating(k.t, k.ns, k.pod.ServiceAccountName))
}

// start runs argv with the container's environment plus extraEnv,
// stopped (SIGTERM) when the test ends.
func (k *container) start(argv []string, extraEnv ...string) {
	t := k.t
	k.logPath = filepath.Join(k.root, "log")
	logf, err := os.Create(k.logPath)
	if err != nil {
		t.Fatal(err)
	}
	k.cmd = exec.Command(argv[0], argv[1:]...)
	k.cmd.Env, k.cmd.Dir = append(k.environ(), extraEnv...), k.root
	k.cmd.Stdout, k.cmd.Stderr = logf, logf
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { k.cmd.Wait(); logf.Close(); close(k.exited) }()
	t.Cleanup(func() {
		k.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-k.exited:
		case <-time.After(20 * time.Second):
			k.cmd.Process.Kill()
			t.Errorf("%s did not exit on SIGTERM", k.name)
		}
		if t.Failed() {
			t.Logf("%s log:\n%s", k.name, k.log())
		}
	})
}

func (k *container) log() string {
	b, _ := os.ReadFile(k.logPath)
	return string(b)
}

// hostPath maps container paths at or under a mount to the local
// directory, in an argument or a mounted file's text.
func (k *container) hostPath(s string) string {
	for _, m := range k.c.VolumeMounts {
		mp := strings.TrimSuffix(m.MountPath, "/")
		re := regexp.MustCompile(`(?m)(^|[\s"'\[,:])` + regexp.QuoteMeta(mp) + `(/|$|[\s"'\],])`)
		s = re.ReplaceAllString(s, "${1}"+filepath.Join(k.root, mp)+"${2}")
	}
	return s
}

func (k *container) envValue(e corev1.EnvVar) string {
	ctx := context.Background()
	switch {
	case e.ValueFrom == nil:
		return e.Value
	case e.ValueFrom.SecretKeyRef != nil:
		r := e.ValueFrom.SecretKeyRef
		s, err := k.cl.Core.CoreV1().Secrets(k.ns).Get(ctx, r.Name, metav1.GetOptions{})
		if err != nil {
			k.t.Fatalf("env %s: secretKeyRef %s: %v", e.Name, r.Name, err)
		}
		v, ok := s.Data[r.Key]
		if !ok {
			k.t.Fatalf("env %s: Secret %s has no key %q", e.Name, r.Name, r.Key)
		}
		return string(v)
	case e.ValueFrom.ConfigMapKeyRef != nil:
		r := e.ValueFrom.ConfigMapKeyRef
		cm, err := k.cl.Core.CoreV1().ConfigMaps(k.ns).Get(ctx, r.Name, metav1.GetOptions{})
		if err != nil || cm.Data[r.Key] == "" {
			k.t.Fatalf("env %s: configMapKeyRef %s/%s: %v", e.Name, r.Name, r.Key, err)
		}
		return cm.Data[r.Key]
	case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
		return k.ns
	}
	k.t.Fatalf("env %s: unsupported valueFrom %+v", e.Name, e.ValueFrom)
	return ""
}

// syncVolumes writes every mounted volume as the kubelet keeps it; run
// again after an update, it swaps ..data to the new contents.
func (k *container) syncVolumes() {
	ctx := context.Background()
	vols := map[string]corev1.Volume{}
	for _, v := range k.pod.Volumes {
		vols[v.Name] = v
	}
	for _, m := range k.c.VolumeMounts {
		v, ok := vols[m.Name]
		if !ok {
			k.t.Fatalf("volumeMount %s names no volume", m.Name)
		}
		dir := filepath.Join(k.root, m.MountPath)
		files := map[string][]byte{}

		switch {
		case v.EmptyDir != nil:
			if err := os.MkdirAll(dir, 0o700); err != nil {
				k.t.Fatal(err)
			}
			continue
		case v.ConfigMap != nil:
			cm, err := k.cl.Core.CoreV1().ConfigMaps(k.ns).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				k.t.Fatalf("volume %s: ConfigMap %s: %v", m.Name, v.ConfigMap.Name, err)
			}
			for key, val := range cm.Data {
				files[key] = []byte(val)
			}
			files = pick(k.t, files, v.ConfigMap.Items)
		case v.Secret != nil:
			s, err := k.cl.Core.CoreV1().Secrets(k.ns).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				k.t.Fatalf("volume %s: Secret %s: %v", m.Name, v.Secret.SecretName, err)
			}
			files = pick(k.t, s.Data, v.Secret.Items)
		default:
			k.t.Fatalf("volume %s: only emptyDir, configMap and secret are run here", m.Name)
		}
		for name, b := range files {
			files[name] = []byte(k.hostPath(string(b)))
		}
		if m.SubPath != "" {
			// A subPath mount is one key, copied once (the kubelet does
			// not update it either).
			b, ok := files[m.SubPath]
			if !ok {
				k.t.Fatalf("volume %s has no key %s for subPath", m.Name, m.SubPath)
			}
			p := filepath.Join(k.root, m.MountPath)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				k.t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				k.t.Fatal(err)
			}
			continue
		}
		if err := atomicWrite(dir, files); err != nil {
			k.t.Fatal(err)
		}
	}
}

func pick(t *testing.T, data map[string][]byte, items []corev1.KeyToPath) map[string][]byte {
	if len(items) == 0 {
		return data
	}
	out := map[string][]byte{}
	for _, it := range items {
		b, ok := data[it.Key]
		if !ok {
			t.Fatalf("volume item: no key %q", it.Key)
		}
		out[it.Path] = b
	}
	return out
}

// atomicWrite is the kubelet's layout: files in ..<n>/, ..data linking to
// it (swapped by rename), and each name linking to ..data/<name>.
func atomicWrite(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ts := filepath.Join(dir, ".."+strconv.FormatInt(time.Now().UnixNano(), 10))
	if err := os.Mkdir(ts, 0o755); err != nil {
		return err
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(ts, name), b, 0o644); err != nil {
			return err
		}
	}
	tmp := filepath.Join(dir, "..data_tmp")
	if err := os.Symlink(filepath.Base(ts), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
		return err
	}
	for name := range files {
		link := filepath.Join(dir, name)
		if _, err := os.Lstat(link); err == nil {
			continue
		}
		if err := os.Symlink(filepath.Join("..data", name), link); err != nil {
			return err
		}
	}
	return nil
}

// impersonating writes a kubeconfig that acts as the ServiceAccount.
func impersonating(t *testing.T, ns, sa string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(env.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, ai := range cfg.AuthInfos {
		ai.Impersonate = "system:serviceaccount:" + ns + ":" + sa
	}
	p := filepath.Join(t.TempDir(), "kubeconfig-"+sa)
	if err := clientcmd.WriteToFile(*cfg, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// probe waits until the container's readiness probe (an httpGet on
// port) answers 200 at base.
func (k *container) waitReady(base string, timeout time.Duration) {
	k.t.Helper()
	p := k.c.ReadinessProbe
	if p == nil || p.HTTPGet == nil {
		k.t.Fatalf("container %s has no HTTP readiness probe", k.c.Name)
	}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(base + p.HTTPGet.Path)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-k.exited:
			k.t.Fatalf("%s exited:\n%s", k.c.Name, k.log())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			k.t.Fatalf("%s not ready at %s%s within %v: %v\n%s", k.c.Name, base, p.HTTPGet.Path, timeout, err, k.log())
		}
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// templateOf is a Deployment's pod template, for before/after compares.
func templateOf(t *testing.T, cl *kube.Clients, ns, name string) *appsv1.Deployment {
	d, err := cl.Core.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}
