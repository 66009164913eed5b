{{/* Names and labels. */}}
{{- define "kgo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kgo.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "kgo.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "kgo.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "kgo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kgo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kgo.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kgo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "kgo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kgo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Leader election: asked for, or implied by more than one replica. */}}
{{- define "kgo.leaderElect" -}}
{{- if and (not .Values.sharding.enabled) (or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1)) }}true{{- end }}
{{- end }}

{{/* Sharding (docs/sharding.md) replaces leader election: every replica works on the shards it holds. */}}
{{- define "kgo.sharded" -}}
{{- if .Values.sharding.enabled }}true{{- end }}
{{- end }}

{{- define "kgo.leaseName" -}}
{{- default (include "kgo.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The Service of the embedded broker, and the host name clients are told to connect to. */}}
{{- define "kgo.brokerServiceName" -}}
{{- printf "%s-broker" (include "kgo.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kgo.brokerHost" -}}
{{- printf "%s.%s.svc" (include "kgo.brokerServiceName" .) .Release.Namespace }}
{{- end }}

{{/* Checks that the schema cannot express on its own, with a message a user can act on. */}}
{{- define "kgo.validate" -}}
{{- if and .Values.embedded.enabled (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount is %d but embedded.enabled is true: the embedded broker keeps its log in one operator process, so run 1 replica (or turn embedded off and use an external Kafka)" (int .Values.replicaCount)) }}
{{- end }}
{{- end }}
