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

{{/* The user name the API server gives the operator's ServiceAccount. */}}
{{- define "govdc.serviceAccountUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "govdc.fullname" . }}
{{- end -}}

{{/* The ClusterRole the operator binds to itself in each tenant namespace (Secrets, deletion). */}}
{{- define "govdc.tenantRole" -}}
{{ include "govdc.fullname" . }}-tenant
{{- end -}}

{{/* Admission policy variables: whether the object before and after the request carries govdc's
mark (managed by the operator) or was retained from a deleted DepartmentCloud. */}}
{{- define "govdc.admissionMarks" -}}
- name: oldManaged
  expression: >-
    oldObject != null && has(oldObject.metadata.labels) &&
    'app.kubernetes.io/managed-by' in oldObject.metadata.labels &&
    oldObject.metadata.labels['app.kubernetes.io/managed-by'] == 'govdc-operator'
- name: oldRetained
  expression: >-
    oldObject != null && has(oldObject.metadata.labels) &&
    'govdc.io/retained-from' in oldObject.metadata.labels
- name: newManaged
  expression: >-
    object != null && has(object.metadata.labels) &&
    'app.kubernetes.io/managed-by' in object.metadata.labels &&
    object.metadata.labels['app.kubernetes.io/managed-by'] == 'govdc-operator'
{{- end -}}
