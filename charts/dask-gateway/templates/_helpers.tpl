{{/* Names: upstream's rules, so Services and labels keep their names. */}}
{{- define "dask-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dask-gateway.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "dask-gateway.apiName" -}}{{ printf "api-%s" (include "dask-gateway.fullname" .) | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "dask-gateway.controllerName" -}}{{ printf "controller-%s" (include "dask-gateway.fullname" .) | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "dask-gateway.proxyName" -}}{{ printf "traefik-%s" (include "dask-gateway.fullname" .) | trunc 63 | trimSuffix "-" }}{{- end -}}

{{/* ClusterRoles are not namespaced: the release's namespace keeps two
releases of one name apart. */}}
{{- define "dask-gateway.clusterRoleName" -}}
{{- printf "%s-%s" .root.Release.Namespace .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dask-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dask-gateway.labels" -}}
app.kubernetes.io/name: {{ include "dask-gateway.name" . }}
helm.sh/chart: {{ include "dask-gateway.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
gateway.dask.org/instance: {{ include "dask-gateway.fullname" . }}
{{- end -}}

{{- define "dask-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dask-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The namespace clusters run in. */}}
{{- define "dask-gateway.clusterNamespace" -}}
{{- .Values.gateway.backend.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* The un-prefixed path prefix: "" or "/x/y". */}}
{{- define "dask-gateway.prefix" -}}
{{- trimSuffix "/" .Values.gateway.prefix -}}
{{- end -}}

{{- define "dask-gateway.apiURL" -}}
{{- printf "http://%s.%s:8000%s/api" (include "dask-gateway.apiName" .) .Release.Namespace (include "dask-gateway.prefix" .) -}}
{{- end -}}

{{/* name:tag. Upstream's Python server image (a values file copied from
upstream's chart names it) means this chart's own image. */}}
{{- define "dask-gateway.image" -}}
{{- if contains "dask-gateway-server" .image.name -}}
{{- printf "ghcr.io/daskgate/daskgate:%s" .root.Chart.AppVersion -}}
{{- else -}}
{{- printf "%s:%s" .image.name (.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* proxy.<path> if set, else traefik.<path> (upstream's key). */}}
{{- define "dask-gateway.proxyService" -}}
{{- $p := .Values.proxy.service -}}
{{- $t := .Values.traefik.service -}}
{{- $tcp := $p.ports.tcp.port | default $t.ports.tcp.port | default "web" -}}
type: {{ $p.type | default $t.type | default "LoadBalancer" }}
annotations: {{ $p.annotations | default $t.annotations | default dict | toJson }}
spec: {{ $p.spec | default $t.spec | default dict | toJson }}
webPort: {{ $p.ports.web.port | default $t.ports.web.port | default 80 }}
webNodePort: {{ $p.ports.web.nodePort | default $t.ports.web.nodePort | toJson }}
tcpPort: {{ $tcp | toJson }}
tcpNodePort: {{ $p.ports.tcp.nodePort | default $t.ports.tcp.nodePort | toJson }}
{{- end -}}

{{- define "dask-gateway.separateTCP" -}}
{{- $svc := include "dask-gateway.proxyService" . | fromYaml -}}
{{- if ne (toString $svc.tcpPort) "web" }}true{{ end -}}
{{- end -}}

{{- define "dask-gateway.gatewaySA" -}}
{{- if .Values.rbac.enabled -}}
{{- .Values.rbac.gateway.serviceAccountName | default (include "dask-gateway.apiName" .) -}}
{{- else -}}default{{- end -}}
{{- end -}}

{{- define "dask-gateway.controllerSA" -}}
{{- if .Values.rbac.enabled -}}
{{- .Values.rbac.controller.serviceAccountName | default (include "dask-gateway.controllerName" .) -}}
{{- else -}}default{{- end -}}
{{- end -}}

{{- define "dask-gateway.loglevel" -}}
{{- $l := lower . -}}
{{- if eq $l "warning" }}warn{{ else }}{{ $l }}{{ end -}}
{{- end -}}

{{- define "dask-gateway.podSecurity" -}}
{{- with .Values.gateway.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
