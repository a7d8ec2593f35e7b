package kube

import (
	"bytes"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// GatewayRules are all the gateway (`daskgate serve`) needs, in each
// namespace that holds clusters: no pods, and secrets only by name.
func GatewayRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{Group}, Resources: []string{Plural}, Verbs: []string{"get", "list", "watch", "create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
	}
}

// ControllerRules are all the controller needs, in each namespace that
// holds clusters (the Lease lives in the first). Secrets are created and
// deleted but never read or listed.
func ControllerRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{Group}, Resources: []string{Plural}, Verbs: []string{"get", "list", "watch", "delete"}},
		{APIGroups: []string{Group}, Resources: []string{Plural + "/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "list", "watch", "create"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
	}
}

// RBAC returns a ServiceAccount, Role and RoleBinding for each component
// in namespace, named daskgate-gateway and daskgate-controller.
func RBAC(namespace string) []any {
	var out []any
	for _, c := range []struct {
		name  string
		rules []rbacv1.PolicyRule
	}{{"daskgate-gateway", GatewayRules()}, {"daskgate-controller", ControllerRules()}} {
		meta := metav1.ObjectMeta{Name: c.name, Namespace: namespace}
		out = append(out,
			&corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"}, ObjectMeta: meta},
			&rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"}, ObjectMeta: meta, Rules: c.rules},
			&rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"}, ObjectMeta: meta,
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: c.name},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: c.name, Namespace: namespace}}},
		)
	}
	return out
}

// RBACYAML is RBAC as a multi-document manifest.
func RBACYAML(namespace string) ([]byte, error) {
	var buf bytes.Buffer
	for i, obj := range RBAC(namespace) {
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		buf.Write(bytes.ReplaceAll(b, []byte("  creationTimestamp: null\n"), nil))
	}
	return buf.Bytes(), nil
}
