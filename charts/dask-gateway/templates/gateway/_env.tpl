{{/* The gateway container's secrets as environment: values from Secrets,
never from the ConfigMap. */}}
{{- define "dask-gateway.gatewayEnv" -}}
{{- $a := .Values.gateway.auth -}}
{{- with .Values.gateway.env }}
{{ toYaml . }}
{{- end }}
{{- if eq $a.type "simple" }}
{{- if $a.simple.passwordFromSecretName }}
- name: DASKGATE_AUTH__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $a.simple.passwordFromSecretName }}
      key: {{ $a.simple.passwordFromSecretKey }}
{{- else if $a.simple.password }}
- name: DASKGATE_AUTH__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "dask-gateway.apiName" . }}
      key: simple-password
{{- end }}
{{- end }}
{{- if eq $a.type "jupyterhub" }}
- name: JUPYTERHUB_API_TOKEN
  valueFrom:
    secretKeyRef:
      {{- if $a.jupyterhub.apiToken }}
      name: {{ include "dask-gateway.apiName" . }}
      key: jupyterhub-api-token
      {{- else }}
      name: {{ $a.jupyterhub.apiTokenFromSecretName }}
      key: {{ $a.jupyterhub.apiTokenFromSecretKey }}
      {{- end }}
{{- end }}
{{- end -}}
