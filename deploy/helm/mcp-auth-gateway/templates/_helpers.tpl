{{/* The chart name, or nameOverride. */}}
{{- define "mcp-auth-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or fullnameOverride; Kubernetes names are at most 63 characters. */}}
{{- define "mcp-auth-gateway.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mcp-auth-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mcp-auth-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mcp-auth-gateway.labels" -}}
{{ include "mcp-auth-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The headless Service a ServiceMonitor scrapes through: <fullname>-metrics, within 63 characters. */}}
{{- define "mcp-auth-gateway.metricsName" -}}
{{- printf "%s-metrics" (include "mcp-auth-gateway.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{/* The Secret whose keys become the gateway's environment (secretEnv or existingSecret). */}}
{{- define "mcp-auth-gateway.secretName" -}}
{{- default (include "mcp-auth-gateway.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* Where the gateway proxies to: the MCP server over the pod's loopback (sidecar) or upstreamUrl (standalone). */}}
{{- define "mcp-auth-gateway.upstream" -}}
{{- if eq .Values.mode "sidecar" -}}
http://127.0.0.1:{{ .Values.mcpServer.port }}{{ .Values.mcpServer.path }}
{{- else if eq .Values.mode "standalone" -}}
{{- required "upstreamUrl is required when mode is standalone" .Values.upstreamUrl -}}
{{- else -}}
{{- fail "mode must be sidecar or standalone" -}}
{{- end -}}
{{- end -}}

{{/*
The gateway's configuration file. `gateway` must not hold listen, metrics or routes:
the gateway refuses duplicate keys, so a clash is a startup error, never silently
merged. The metrics get a listener of their own (never the Service's port): /metrics
has no authentication.
*/}}
{{- define "mcp-auth-gateway.config" -}}
listen:
  host: 0.0.0.0
  port: {{ .Values.gatewayPort }}
{{- if .Values.metrics.enabled }}
metrics:
  path: {{ .Values.metrics.path | quote }}
  listen:
    host: 0.0.0.0
    port: {{ .Values.metrics.port }}
{{- else }}
metrics:
  enabled: false
{{- end }}
{{ toYaml .Values.gateway }}
routes:
  - upstream: {{ include "mcp-auth-gateway.upstream" . | quote }}
    {{- toYaml .Values.route | nindent 4 }}
{{- end -}}
