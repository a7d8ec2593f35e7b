{{/* The rules are backend/kube's GatewayRules and ControllerRules (a Go
test keeps them equal). */}}
{{- define "dask-gateway.gatewayRules" -}}
- apiGroups: [gateway.dask.org]
  resources: [daskclusters]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end -}}

{{- define "dask-gateway.controllerRules" -}}
- apiGroups: [gateway.dask.org]
  resources: [daskclusters]
  verbs: [get, list, watch, delete]
- apiGroups: [gateway.dask.org]
  resources: [daskclusters/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create]
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end -}}

{{/* A ServiceAccount, its (Cluster)Role and binding. Roles live in the
clusters' namespace, where the objects are. */}}
{{- define "dask-gateway.rbac" -}}
{{- $root := .root -}}
{{- $cluster := eq $root.Values.rbac.scope "cluster" -}}
{{- $role := ternary (include "dask-gateway.clusterRoleName" (dict "root" $root "name" .name)) .name $cluster -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ .name }}
  labels:
    {{- include "dask-gateway.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ ternary "ClusterRole" "Role" $cluster }}
metadata:
  name: {{ $role }}
  {{- if not $cluster }}
  namespace: {{ include "dask-gateway.clusterNamespace" $root }}
  {{- end }}
  labels:
    {{- include "dask-gateway.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
rules:
  {{- include .rules $root | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: {{ ternary "ClusterRoleBinding" "RoleBinding" $cluster }}
metadata:
  name: {{ $role }}
  {{- if not $cluster }}
  namespace: {{ include "dask-gateway.clusterNamespace" $root }}
  {{- end }}
  labels:
    {{- include "dask-gateway.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: {{ ternary "ClusterRole" "Role" $cluster }}
  name: {{ $role }}
subjects:
  - kind: ServiceAccount
    name: {{ .name }}
    namespace: {{ $root.Release.Namespace }}
{{- end -}}
