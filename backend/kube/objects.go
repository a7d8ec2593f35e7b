package kube

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/daskgate/daskgate/cluster"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Paths inside scheduler and worker containers.
const (
	credentialsVolume = "dask-credentials"
	credentialsDir    = "/etc/dask-credentials/"
)

// DefaultImage is the cluster image when neither config nor policy sets one.
const DefaultImage = "ghcr.io/dask/dask-gateway:2026.3.0"

// builder makes the objects of one cluster from its resolved config. The
// gateway uses it to validate a config at request time, the controller to
// create the objects, so what passes the first never fails the second.
type builder struct {
	instance    string
	apiURL      string
	labels      map[string]string // common labels
	annotations map[string]string // common annotations
}

// merge deep-merges b into a copy of a (upstream's rules, spec §6):
// objects merge recursively, lists concatenate, anything else in b wins.
func merge(a, b map[string]any) map[string]any {
	out := maps.Clone(a)
	if out == nil {
		out = map[string]any{}
	}
	for k, bv := range b {
		av, ok := out[k]
		if !ok {
			out[k] = bv
			continue
		}
		am, aIsMap := av.(map[string]any)
		bm, bIsMap := bv.(map[string]any)
		al, aIsList := av.([]any)
		bl, bIsList := bv.([]any)
		switch {
		case aIsMap && bIsMap:
			out[k] = merge(am, bm)
		case aIsList && bIsList:
			out[k] = append(slices.Clone(al), bl...)
		default:
			out[k] = bv
		}
	}
	return out
}

// toMap turns a typed object into its JSON object form.
func toMap(v any) (map[string]any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m)
}

// fromMap decodes a pod's JSON form m into out. Type errors fail; unknown
// fields (which the API server would drop) are returned as warnings naming
// what, as upstream accepts them.
func fromMap(m map[string]any, out *corev1.Pod, what string) (warnings []string, err error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(new(corev1.Pod)); err != nil {
		warnings = append(warnings, fmt.Sprintf("%s: %v (dropped by the API server)", what, err))
	}
	return warnings, nil
}

func (b *builder) meta(ns, hex, component string, extraLabels, extraAnnotations map[string]string) metav1.ObjectMeta {
	labels := maps.Clone(b.labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, extraLabels)
	// Reserved labels go last so extra labels cannot hijack selectors.
	labels[LabelInstance] = b.instance
	labels[LabelCluster] = hex
	if component != "" {
		labels[LabelComponent] = component
	}
	annotations := maps.Clone(b.annotations)
	if len(extraAnnotations) > 0 && annotations == nil {
		annotations = map[string]string{}
	}
	maps.Copy(annotations, extraAnnotations)
	return metav1.ObjectMeta{Namespace: ns, Labels: labels, Annotations: annotations}
}

func ownerRef(apiVersion, kind, name string, uid types.UID) metav1.OwnerReference {
	t := true
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid,
		Controller: &t, BlockOwnerDeletion: &t}
}

// secret makes fresh credentials: certificate, key and API token.
func (b *builder) secret(ns, hex string) (*corev1.Secret, error) {
	cert, key, err := cluster.NewECKeypair(hex)
	if err != nil {
		return nil, err
	}
	s := &corev1.Secret{ObjectMeta: b.meta(ns, hex, ComponentCredentials, nil, nil), Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"dask.crt": cert, "dask.pem": key, "api-token": []byte(cluster.NewName())}}
	s.Name = secretName(hex)
	return s, nil
}

// service is the headless Service dask-<hex> in front of the scheduler.
func (b *builder) service(ns, hex string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: b.meta(ns, hex, ComponentScheduler, nil, nil)}
	s.Name = serviceName(hex)
	s.Spec = corev1.ServiceSpec{
		ClusterIP: corev1.ClusterIPNone,
		Selector:  map[string]string{LabelCluster: hex, LabelInstance: b.instance, LabelComponent: ComponentScheduler},
		Ports: []corev1.ServicePort{
			{Name: "scheduler", Port: PortScheduler, TargetPort: intstr.FromString("scheduler")},
			{Name: "dashboard", Port: PortDashboard, TargetPort: intstr.FromString("dashboard")},
			{Name: "api", Port: PortAPI, TargetPort: intstr.FromString("api")},
		},
	}
	return s
}

// pod builds the scheduler (scheduler true) or a worker pod template.
// Warnings list unknown fields in extra configs.
func (b *builder) pod(ns, hex string, cfg cluster.Config, scheduler bool) (*corev1.Pod, []string, error) {
	name := PublicName(ns, hex)
	cores, coresLimit, mem, memLimit := cfg.WorkerCores, cfg.WorkerCoresLimit, cfg.WorkerMemory, cfg.WorkerMemoryLimit
	component, container := ComponentWorker, "dask-worker"
	extraContainer, extraPod := cfg.WorkerExtraContainerConfig, cfg.WorkerExtraPodConfig
	extraLabels, extraAnnotations := cfg.WorkerExtraPodLabels, cfg.WorkerExtraPodAnnotations
	if scheduler {
		cores, coresLimit, mem, memLimit = cfg.SchedulerCores, cfg.SchedulerCoresLimit, cfg.SchedulerMemory, cfg.SchedulerMemoryLimit
		component, container = ComponentScheduler, "dask-scheduler"
		extraContainer, extraPod = cfg.SchedulerExtraContainerConfig, cfg.SchedulerExtraPodConfig
		extraLabels, extraAnnotations = cfg.SchedulerExtraPodLabels, cfg.SchedulerExtraPodAnnotations
	}
	if coresLimit == 0 {
		coresLimit = cores
	}
	if memLimit == 0 {
		memLimit = mem
	}
	res := func(c float64, m cluster.Memory) corev1.ResourceList {
		return corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse(strconv.FormatFloat(c, 'f', 3, 64)),
			corev1.ResourceMemory: *resource.NewQuantity(int64(m), resource.DecimalSI),
		}
	}
	role := cluster.RoleWorker
	if scheduler {
		role = cluster.RoleScheduler
	}
	l := cluster.NewLaunch(cfg, role, cluster.Placement{ClusterName: name, APIURL: b.apiURL,
		Token: credentialsDir + "api-token", CredentialsDir: credentialsDir, SchedulerPort: PortScheduler,
		DashboardAddress: ":" + strconv.Itoa(PortDashboard), APIAddress: ":" + strconv.Itoa(PortAPI),
		SchedulerAddress: fmt.Sprintf("tls://%s.%s:%d", serviceName(hex), ns, PortScheduler),
		WorkerName:       "$(DASK_GATEWAY_WORKER_NAME)"})
	args := l.Argv
	env := make([]corev1.EnvVar, len(l.Env))
	for i, e := range l.Env {
		env[i] = corev1.EnvVar{Name: e.Name, Value: e.Value}
	}
	if !scheduler {
		env = append(env, corev1.EnvVar{Name: "DASK_GATEWAY_WORKER_NAME",
			ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}})
	}
	image := cfg.Image
	if image == "" {
		image = DefaultImage
	}
	c := corev1.Container{
		Name: container, Image: image, ImagePullPolicy: corev1.PullPolicy(cfg.ImagePullPolicy), Args: args, Env: env,
		Resources: corev1.ResourceRequirements{Requests: res(cores, mem), Limits: res(coresLimit, memLimit)},
		Ports: []corev1.ContainerPort{
			{Name: "scheduler", ContainerPort: PortScheduler}, {Name: "dashboard", ContainerPort: PortDashboard},
			{Name: "api", ContainerPort: PortAPI},
		},
		VolumeMounts: []corev1.VolumeMount{{Name: credentialsVolume, MountPath: credentialsDir, ReadOnly: true}},
	}
	if scheduler {
		c.ReadinessProbe = &corev1.Probe{PeriodSeconds: 5, FailureThreshold: 3, ProbeHandler: corev1.ProbeHandler{
			HTTPGet: &corev1.HTTPGetAction{Path: "/api/health", Port: intstr.FromString("api")}}}
	}
	no := false
	spec := corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyOnFailure,
		AutomountServiceAccountToken: &no,
		Volumes: []corev1.Volume{{Name: credentialsVolume, VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: secretName(hex)}}}},
		NodeSelector:       cfg.NodeSelector,
		ServiceAccountName: cfg.ServiceAccount,
		PriorityClassName:  cfg.PriorityClassName,
	}
	if scheduler {
		spec.RestartPolicy = corev1.RestartPolicyNever
	}
	for _, s := range cfg.ImagePullSecrets {
		spec.ImagePullSecrets = append(spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s.Name})
	}
	if len(cfg.Tolerations) > 0 {
		b, err := json.Marshal(cfg.Tolerations)
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, &spec.Tolerations); err != nil {
			return nil, nil, fmt.Errorf("tolerations: %w", err)
		}
	}
	cm, err := toMap(c)
	if err != nil {
		return nil, nil, err
	}
	sm, err := toMap(spec)
	if err != nil {
		return nil, nil, err
	}
	sm["containers"] = []any{merge(cm, extraContainer)}
	sm = merge(sm, extraPod)
	pod := &corev1.Pod{ObjectMeta: b.meta(ns, hex, component, extraLabels, extraAnnotations)}
	warnings, err := fromMap(map[string]any{"spec": sm}, pod, prefixFor(scheduler)+"extra_pod_config/extra_container_config")
	if err != nil {
		return nil, nil, err
	}
	if scheduler {
		pod.Name = schedulerName(hex)
	} else {
		pod.GenerateName = workerPrefix(hex)
	}
	return pod, warnings, nil
}

func prefixFor(scheduler bool) string {
	if scheduler {
		return "scheduler_"
	}
	return "worker_"
}

// validate checks what the API server would reject in the objects built
// from cfg, so a bad config is a 422 at request time, never a pod that
// cannot be created. It returns warnings for fields the API would drop.
func (b *builder) validate(ns string, cfg cluster.Config) ([]string, error) {
	var errs []error
	for _, m := range validation.IsDNS1123Label(ns) {
		errs = append(errs, fmt.Errorf("namespace %q: %s", ns, m))
	}
	if cfg.ServiceAccount != "" {
		for _, m := range validation.IsDNS1123Subdomain(cfg.ServiceAccount) {
			errs = append(errs, fmt.Errorf("service_account %q: %s", cfg.ServiceAccount, m))
		}
	}
	if cfg.PriorityClassName != "" {
		for _, m := range validation.IsDNS1123Subdomain(cfg.PriorityClassName) {
			errs = append(errs, fmt.Errorf("priority_class_name %q: %s", cfg.PriorityClassName, m))
		}
	}
	labelSets := map[string]map[string]string{"node_selector": cfg.NodeSelector,
		"worker_extra_pod_labels": cfg.WorkerExtraPodLabels, "scheduler_extra_pod_labels": cfg.SchedulerExtraPodLabels}
	for _, key := range slices.Sorted(maps.Keys(labelSets)) {
		for k, v := range labelSets[key] {
			for _, m := range validation.IsQualifiedName(k) {
				errs = append(errs, fmt.Errorf("%s key %q: %s", key, k, m))
			}
			for _, m := range validation.IsValidLabelValue(v) {
				errs = append(errs, fmt.Errorf("%s[%q] value %q: %s", key, k, v, m))
			}
		}
	}
	for k := range cfg.Environment {
		if len(validation.IsEnvVarName(k)) > 0 {
			errs = append(errs, fmt.Errorf("environment key %q is not a valid variable name", k))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	var warnings []string
	for _, scheduler := range []bool{true, false} {
		p, w, err := b.pod(ns, "0123456789abcdef0123456789abcdef", cfg, scheduler)
		if err != nil {
			return nil, err
		}
		warnings = append(warnings, w...)
		if len(p.Spec.Containers) == 0 || p.Spec.Containers[0].Image == "" {
			return nil, errors.New("image must not be empty")
		}
	}
	return warnings, nil
}
