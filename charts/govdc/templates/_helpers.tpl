{{/* The release's resource name prefix. */}}
{{- define "govdc.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on everything the chart makes. */}}
{{- define "govdc.labels" -}}
app.kubernetes.io/name: govdc-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Labels that select the operator's pods. */}}
{{- define "govdc.selectorLabels" -}}
app.kubernetes.io/name: govdc-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The capacity flag: resource=quantity pairs, sorted. */}}
{{- define "govdc.capacity" -}}
{{- $pairs := list -}}
{{- range $resource, $amount := .Values.capacity -}}
{{- $pairs = append $pairs (printf "%s=%v" $resource $amount) -}}
{{- end -}}
{{- join "," (sortAlpha $pairs) -}}
{{- end -}}
