{{/* Where the keytab is: gateway.auth.kerberos.keytab, else where the
chart mounts the Secret's key. */}}
{{- define "dask-gateway.keytabPath" -}}
{{- .Values.gateway.auth.kerberos.keytab | default "/etc/daskgate/keytab/dask_gateway.keytab" -}}
{{- end -}}

{{/* The cluster config from gateway.backend.*: every non-null value, as
upstream's chart maps them onto KubeClusterConfig. */}}
{{- define "dask-gateway.clusterConfig" -}}
{{- $b := .Values.gateway.backend -}}
{{- $c := dict -}}
{{- if $b.image.name -}}
{{- $_ := set $c "image" (ternary (printf "%s:%s" $b.image.name (toString $b.image.tag)) $b.image.name (ne (toString ($b.image.tag | default "")) "")) -}}
{{- with $b.image.pullPolicy }}{{ $_ := set $c "image_pull_policy" . }}{{ end -}}
{{- with $b.imagePullSecrets }}{{ $_ := set $c "image_pull_secrets" . }}{{ end -}}
{{- end -}}
{{- with $b.namespace }}{{ $_ := set $c "namespace" . }}{{ end -}}
{{- with $b.environment }}{{ $_ := set $c "environment" . }}{{ end -}}
{{- range $role := list "scheduler" "worker" -}}
{{- $r := index $b $role -}}
{{- with $r.extraPodConfig }}{{ $_ := set $c (printf "%s_extra_pod_config" $role) . }}{{ end -}}
{{- with $r.extraContainerConfig }}{{ $_ := set $c (printf "%s_extra_container_config" $role) . }}{{ end -}}
{{- if not (kindIs "invalid" $r.cores.request) }}{{ $_ := set $c (printf "%s_cores" $role) $r.cores.request }}{{ end -}}
{{- if not (kindIs "invalid" $r.cores.limit) }}{{ $_ := set $c (printf "%s_cores_limit" $role) $r.cores.limit }}{{ end -}}
{{- if not (kindIs "invalid" $r.memory.request) }}{{ $_ := set $c (printf "%s_memory" $role) $r.memory.request }}{{ end -}}
{{- if not (kindIs "invalid" $r.memory.limit) }}{{ $_ := set $c (printf "%s_memory_limit" $role) $r.memory.limit }}{{ end -}}
{{- end -}}
{{- if not (kindIs "invalid" $b.worker.threads) }}{{ $_ := set $c "worker_threads" $b.worker.threads }}{{ end -}}
{{- if not (kindIs "invalid" $b.idleTimeout) }}{{ $_ := set $c "idle_timeout" $b.idleTimeout }}{{ end -}}
{{- if not (kindIs "invalid" $b.lastClientTimeout) }}{{ $_ := set $c "last_client_timeout" $b.lastClientTimeout }}{{ end -}}
{{- if not (kindIs "invalid" $b.clusterMaxWorkers) }}{{ $_ := set $c "cluster_max_workers" $b.clusterMaxWorkers }}{{ end -}}
{{- if not (kindIs "invalid" $b.clusterMaxCores) }}{{ $_ := set $c "cluster_max_cores" $b.clusterMaxCores }}{{ end -}}
{{- if not (kindIs "invalid" $b.clusterMaxMemory) }}{{ $_ := set $c "cluster_max_memory" $b.clusterMaxMemory }}{{ end -}}
{{- toYaml $c -}}
{{- end -}}

{{/* What gateway and controller share: the Kubernetes backend. */}}
{{- define "dask-gateway.kubernetesConfig" -}}
instance: {{ include "dask-gateway.fullname" . | quote }}
namespaces: [{{ include "dask-gateway.clusterNamespace" . | quote }}]
{{- end -}}

{{/* daskgate.yaml of the gateway (daskgate serve). */}}
{{- define "dask-gateway.gatewayConfig" -}}
{{- $g := .Values.gateway -}}
{{- $a := $g.auth -}}
{{- $cfg := dict -}}
{{- $_ := set $cfg "address" ":8000" -}}
{{- $_ := set $cfg "prefix" (include "dask-gateway.prefix" .) -}}
{{- $_ := set $cfg "data_dir" "/var/lib/daskgate/data" -}}
{{- $_ := set $cfg "api_url" (include "dask-gateway.apiURL" .) -}}
{{- /* A rolling update: keep serving while the endpoints controller takes
the pod out (readiness fails at once: /api/health answers 503). */ -}}
{{- $_ := set $cfg "shutdown_delay" "5s" -}}
{{- $_ := set $cfg "log" (dict "level" (include "dask-gateway.loglevel" $g.loglevel) "format" "json") -}}
{{- $auth := dict "type" $a.type -}}
{{- if eq $a.type "kerberos" -}}
{{- $_ := set $auth "keytab" (include "dask-gateway.keytabPath" .) -}}
{{- $_ := set $auth "service_name" $a.kerberos.serviceName -}}
{{- else if eq $a.type "jupyterhub" -}}
{{- with $a.jupyterhub.apiUrl }}{{ $_ := set $auth "jupyterhub_api_url" . }}{{ end -}}
{{- with $a.jupyterhub.jupyterhubServiceName }}{{ $_ := set $auth "jupyterhub_service_name" . }}{{ end -}}
{{- $_ := set $auth "dashboard_login" $a.jupyterhub.dashboardLogin -}}
{{- end -}}
{{- $_ := set $cfg "auth" $auth -}}
{{- $policies := list -}}
{{- if $g.policies }}{{ $policies = append $policies "/etc/daskgate/policies" }}{{ end -}}
{{- if or $g.wasm.configMapName $g.wasm.secretName -}}
{{- $policies = append $policies (printf "/etc/daskgate/wasm/%s" $g.wasm.key) -}}
{{- $_ := set $cfg "wasm" (dict "sha256" $g.wasm.sha256) -}}
{{- end -}}
{{- with $policies }}{{ $_ := set $cfg "policies" . }}{{ end -}}
{{- with $g.clusterOptions }}{{ $_ := set $cfg "options" (dict "fields" .) }}{{ end -}}
{{- $_ := set $cfg "ui" (dict "enabled" $g.ui.enabled) -}}
{{- $l := $g.lifecycle -}}
{{- $_ := set $cfg "lifecycle" (dict "check_period" $l.checkPeriod "stop_with_hub_server" $l.stopWithHubServer "hub_server_grace" $l.hubServerGrace) -}}
{{- $_ := set $cfg "cluster" (include "dask-gateway.clusterConfig" . | fromYaml) -}}
{{- $k := include "dask-gateway.kubernetesConfig" . | fromYaml -}}
{{- $_ := set $k "controller" (dict "enabled" false) -}}
{{- $_ := set $cfg "backend" (dict "type" "kubernetes" "kubernetes" $k) -}}
{{- if include "dask-gateway.separateTCP" . -}}
{{- $_ := set $cfg "proxy" (dict "tcp_address" ":8786") -}}
{{- end -}}
{{- toYaml (mergeOverwrite $cfg (deepCopy $g.extraSettings)) -}}
{{- end -}}

{{/* daskgate.yaml of the controller (daskgate controller). */}}
{{- define "dask-gateway.controllerConfig" -}}
{{- $c := .Values.controller -}}
{{- $k := include "dask-gateway.kubernetesConfig" . | fromYaml -}}
{{- $_ := set $k "qps" $c.k8sApiRateLimit -}}
{{- $_ := set $k "burst" $c.k8sApiRateLimitBurst -}}
{{- $_ := set $k "controller" (dict "completed_cluster_max_age" $c.completedClusterMaxAge "completed_cluster_cleanup_period" $c.completedClusterCleanupPeriod "backoff_base_delay" $c.backoffBaseDelay "backoff_max_delay" $c.backoffMaxDelay) -}}
{{- $cfg := dict "api_url" (include "dask-gateway.apiURL" .) "log" (dict "level" (include "dask-gateway.loglevel" $c.loglevel) "format" "json") "backend" (dict "type" "kubernetes" "kubernetes" $k) -}}
{{- toYaml $cfg -}}
{{- end -}}
