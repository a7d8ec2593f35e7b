{{/* The dask-gateway subchart's context, so its own name helpers compute
the Service names and ports here (nothing hard-coded). */}}
{{- define "daskhub.gatewayContext" -}}
{{- $values := index .Values "dask-gateway" -}}
{{- toJson (dict "Values" $values "Release" .Release "Chart" (dict "Name" "dask-gateway" "Version" "0.1.0" "AppVersion" .Chart.AppVersion)) -}}
{{- end -}}
