// Package kube is the Kubernetes backend: the gateway side turns API calls
// into DaskCluster objects and serves reads from an informer cache; the
// controller turns DaskCluster objects into a Secret, a scheduler pod, a
// headless Service and worker pods. client-go is imported only here.
//
// Typical use (the package Example, which compiles with the code):
//
//	cl, err := kube.NewClients(kube.ClientConfig{Kubeconfig: path})
//	gw, err := kube.NewGateway(kube.GatewayConfig{Clients: cl, Instance: "dask-gateway", Namespaces: []string{"dask"}})
//	go gw.Run(ctx) // then gw is the server's Backend
//	ctl, err := kube.NewController(kube.ControllerConfig{Clients: cl, Instance: "dask-gateway", APIURL: url})
//	go kube.RunCampaigning(ctx, ctl) // leader-elected
package kube

import (
	"encoding/json"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// The DaskCluster resource, kept identical to upstream's CRD.
const (
	Group   = "gateway.dask.org"
	Version = "v1alpha1"
	Kind    = "DaskCluster"
	Plural  = "daskclusters"
)

// GVR is the DaskCluster resource for the dynamic client.
var GVR = schema.GroupVersionResource{Group: Group, Version: Version, Resource: Plural}

// Labels every object carries, and their fixed values.
const (
	LabelInstance = "gateway.dask.org/instance"
	LabelCluster  = "gateway.dask.org/cluster"
	// AnnotationStopReason records why the gateway stopped a cluster (a
	// user, the web page, a lifecycle rule), shown with its status.
	AnnotationStopReason = "gateway.dask.org/stop-reason"
	LabelComponent       = "app.kubernetes.io/component"
	LabelName            = "app.kubernetes.io/name"
	LabelVersion         = "app.kubernetes.io/version"

	ComponentScheduler   = "dask-scheduler"
	ComponentWorker      = "dask-worker"
	ComponentCredentials = "credentials"
)

// Phases of status.phase, one for each public status but STOPPING.
const (
	PhasePending = "Pending"
	PhaseRunning = "Running"
	PhaseStopped = "Stopped"
	PhaseFailed  = "Failed"
)

// Ports of the scheduler pod and Service.
const (
	PortScheduler = 8786
	PortDashboard = 8787
	PortAPI       = 8788
)

// DaskCluster is the custom resource. Options and Config stay generic
// maps so objects written by upstream (or a newer daskgate) round-trip.
type DaskCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              Spec   `json:"spec"`
	Status            Status `json:"status,omitempty"`
}

// Spec is written by the gateway only.
type Spec struct {
	// Username owns the cluster.
	Username string `json:"username"`
	// Options are the validated user options.
	Options map[string]any `json:"options" kube:"preserve"`
	// Config is the resolved cluster configuration; pods are built from it alone.
	Config map[string]any `json:"config" kube:"preserve"`
	// Replicas is the requested worker count (absent = 0).
	Replicas *int64 `json:"replicas,omitempty"`
	// Active false asks the controller to stop the cluster (absent = true).
	Active *bool `json:"active,omitempty"`
}

// Status is written by the controller only, as one patch.
type Status struct {
	// Phase is Pending (also when empty), Running, Stopped or Failed.
	Phase string `json:"phase,omitempty"`
	// Credentials, SchedulerPod and Service name the cluster's objects.
	Credentials  string `json:"credentials,omitempty"`
	SchedulerPod string `json:"schedulerPod,omitempty"`
	Service      string `json:"service,omitempty"`
	// Ingressroute and Ingressroutetcp are upstream's Traefik objects, kept
	// so clusters adopted from upstream round-trip; daskgate never sets them.
	Ingressroute    string `json:"ingressroute,omitempty"`
	Ingressroutetcp string `json:"ingressroutetcp,omitempty"`
	// CompletionTime is when the cluster stopped or failed (RFC 3339, seconds).
	CompletionTime string `json:"completionTime,omitempty"`
	// Reason and Message say why a cluster failed or is still pending
	// (ImagePullBackOff, Unschedulable, StartTimeout, exit codes).
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Unscheduled counts worker pods no node can take (yet): a cluster
	// waiting for node autoscaling, or asking for more than fits.
	Unscheduled int64 `json:"unscheduledWorkers,omitempty"`
}

// replicas is spec.replicas with its default.
func (s Spec) replicas() int64 {
	if s.Replicas == nil {
		return 0
	}
	return max(*s.Replicas, 0)
}

// active is spec.active with its default.
func (s Spec) active() bool { return s.Active == nil || *s.Active }

// phase is status.phase with its default.
func (s Status) phase() string {
	if s.Phase == "" {
		return PhasePending
	}
	return s.Phase
}

// fromUnstructured decodes an informer object.
func fromUnstructured(obj any) (*DaskCluster, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil, fmt.Errorf("unexpected object %T", obj)
	}
	b, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	dc := &DaskCluster{}
	if err := json.Unmarshal(b, dc); err != nil {
		return nil, fmt.Errorf("DaskCluster %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return dc, nil
}

// toUnstructured encodes dc for the dynamic client.
func toUnstructured(dc *DaskCluster) (*unstructured.Unstructured, error) {
	dc.APIVersion, dc.Kind = Group+"/"+Version, Kind
	b, err := json.Marshal(dc)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{}
	return u, u.UnmarshalJSON(b)
}

// PublicName is the API's cluster name, <namespace>.<hex>.
func PublicName(namespace, hex string) string { return namespace + "." + hex }

// SplitName splits a public name; namespaces cannot contain dots.
func SplitName(name string) (namespace, hex string, ok bool) {
	namespace, hex, ok = strings.Cut(name, ".")
	return namespace, hex, ok && namespace != "" && hex != "" && !strings.Contains(hex, ".")
}

// Object names derived from the cluster's hex name.
func secretName(hex string) string    { return "dask-credentials-" + hex }
func schedulerName(hex string) string { return "dask-scheduler-" + hex }
func serviceName(hex string) string   { return "dask-" + hex }
func workerPrefix(hex string) string  { return "dask-worker-" + hex + "-" }
