{{/* Names and labels shared by PyFlare's objects. */}}

{{- define "pyflare.fullname" -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pyflare.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "pyflare.image" -}}
{{- $image := .Values.global.image -}}
{{- printf "%s/%s:%s" $image.registry $image.repository $image.tag -}}
{{- end -}}

{{/* The components: values key -> Kubernetes name. */}}
{{- define "pyflare.components" -}}
receiver: receiver
worker: worker
queryApi: query-api
{{- end -}}
