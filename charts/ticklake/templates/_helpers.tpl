{{/*
Names, labels and the settings every ticklake pod shares.
Component templates stay thin: they call the "ticklake.workload.*" defines in
_workload.tpl with their component name and values section.
*/}}

{{/* The chart name, or nameOverride. Truncated to 63 characters because
Kubernetes label values and DNS-1123 names may not be longer. */}}
{{- define "ticklake.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name. Truncated to 63 characters (DNS-1123 label limit;
several objects are Services whose names become DNS labels). If the release
name already contains the chart name it is not repeated. */}}
{{- define "ticklake.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of an object of a component: <fullname>-<component>, with the
fullname cut so that the whole still fits the 63-character DNS label limit. */}}
{{- define "ticklake.componentName" -}}
{{- $root := index . 0 }}{{- $suffix := printf "-%s" (index . 1) }}
{{- $room := sub 63 (len $suffix) | int }}
{{- printf "%s%s" (include "ticklake.fullname" $root | trunc $room | trimSuffix "-") $suffix }}
{{- end }}

{{- define "ticklake.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object the chart owns. */}}
{{- define "ticklake.labels" -}}
helm.sh/chart: {{ include "ticklake.chart" . }}
{{ include "ticklake.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ticklake
{{- end }}

{{/* Selector labels: only name and instance, because a selector is immutable
and must not contain anything that changes between upgrades. */}}
{{- define "ticklake.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ticklake.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of a component's objects; list: [root, component]. */}}
{{- define "ticklake.componentLabels" -}}
{{- $root := index . 0 }}{{- $component := index . 1 }}
{{- include "ticklake.labels" $root }}
app.kubernetes.io/component: {{ $component }}
{{- end }}

{{- define "ticklake.componentSelectorLabels" -}}
{{- $root := index . 0 }}{{- $component := index . 1 }}
{{- include "ticklake.selectorLabels" $root }}
app.kubernetes.io/component: {{ $component }}
{{- end }}

{{/* Labels for Strimzi custom resources. Strimzi copies a Kafka resource's
labels onto the pods it creates; leaving out name/instance keeps those broker
pods out of the chart's selectors (Services, PDBs, NetworkPolicies). */}}
{{- define "ticklake.strimziLabels" -}}
helm.sh/chart: {{ include "ticklake.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ticklake
strimzi.io/cluster: {{ include "ticklake.kafkaClusterName" . }}
{{- end }}

{{/* Image reference for one of the four ticklake images; list: [root, image]. */}}
{{- define "ticklake.image" -}}
{{- $root := index . 0 }}{{- $image := index . 1 }}
{{- $registry := default $root.Values.image.registry $image.registry }}
{{- $tag := default (default $root.Chart.AppVersion $root.Values.image.tag) $image.tag }}
{{- $repository := $image.repository }}
{{- if $registry }}{{ $repository = printf "%s/%s" $registry $image.repository }}{{ end }}
{{- if $image.digest }}
{{- printf "%s@%s" $repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{/* ---------------------------------------------------------------- Kafka */}}

{{- define "ticklake.kafkaClusterName" -}}
{{- default (include "ticklake.fullname" . | trunc 40 | trimSuffix "-") .Values.kafka.strimzi.clusterName }}
{{- end }}

{{/* host:port list the services connect to. Strimzi names the bootstrap
Service <cluster>-kafka-bootstrap. */}}
{{- define "ticklake.kafkaBootstrapServers" -}}
{{- if .Values.kafka.strimzi.enabled }}
{{- printf "%s-kafka-bootstrap:%d" (include "ticklake.kafkaClusterName" .) (int .Values.kafka.strimzi.listenerPort) }}
{{- else }}
{{- required "kafka.external.bootstrapServers is required when kafka.strimzi.enabled=false" .Values.kafka.external.bootstrapServers }}
{{- end }}
{{- end }}

{{/* Replication factor for topics and internal topics: 3 where there are
enough brokers, else the broker count. */}}
{{- define "ticklake.kafkaReplicationFactor" -}}
{{- $brokers := int .Values.kafka.strimzi.nodePool.replicas }}
{{- min 3 $brokers }}
{{- end }}

{{/* ---------------------------------------------------------------- Redis */}}

{{- define "ticklake.redisName" -}}
{{- include "ticklake.componentName" (list . "redis") }}
{{- end }}

{{- define "ticklake.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "redis://%s:%d/0" (include "ticklake.redisName" .) (int .Values.redis.service.port) }}
{{- else }}
{{- required "redis.external.url is required when redis.enabled=false" .Values.redis.external.url }}
{{- end }}
{{- end }}

{{/* The Secret holding the Redis password: an existing one, or the chart's. */}}
{{- define "ticklake.redisSecretName" -}}
{{- default (include "ticklake.redisName" .) .Values.redis.auth.existingSecret }}
{{- end }}

{{- define "ticklake.redisSecretKey" -}}
{{- if .Values.redis.auth.existingSecret }}
{{- .Values.redis.auth.existingSecretPasswordKey }}
{{- else }}
{{- "redis-password" }}
{{- end }}
{{- end }}

{{/* Whether the services get a Redis password at all (an external Redis may
have none). */}}
{{- define "ticklake.redisAuth" -}}
{{- if or .Values.redis.enabled .Values.redis.auth.existingSecret }}true{{ end }}
{{- end }}

{{/* ----------------------------------------------------------------- Lake */}}

{{- define "ticklake.lakeClaimName" -}}
{{- default (include "ticklake.componentName" (list . "lake")) .Values.lake.pvc.existingClaim }}
{{- end }}

{{- define "ticklake.lakeUri" -}}
{{- if eq .Values.lake.mode "s3" }}
{{- required "lake.s3.uri (s3://bucket/prefix) is required when lake.mode=s3" .Values.lake.s3.uri }}
{{- else }}
{{- .Values.lake.pvc.mountPath }}
{{- end }}
{{- end }}

{{- define "ticklake.s3SecretName" -}}
{{- default (include "ticklake.componentName" (list . "s3")) .Values.lake.s3.existingSecret }}
{{- end }}

{{/* ------------------------------------------------------------- Settings */}}

{{/* Settings every service reads (ticklake.core.settings mixins), as
ConfigMap data. Component-specific ones are added by the component. */}}
{{- define "ticklake.kafkaSettings" -}}
TICKLAKE_KAFKA_BOOTSTRAP_SERVERS: {{ include "ticklake.kafkaBootstrapServers" . | quote }}
TICKLAKE_TICKS_TOPIC: {{ .Values.topics.ticks | quote }}
TICKLAKE_DEAD_LETTER_TOPIC: {{ .Values.topics.deadLetter | quote }}
{{- end }}

{{- define "ticklake.redisSettings" -}}
TICKLAKE_REDIS_URL: {{ include "ticklake.redisUrl" . | quote }}
{{- end }}

{{- define "ticklake.lakeSettings" -}}
TICKLAKE_LAKE_URI: {{ include "ticklake.lakeUri" . | quote }}
{{- if eq .Values.lake.mode "s3" }}
TICKLAKE_S3_REGION: {{ .Values.lake.s3.region | quote }}
{{- with .Values.lake.s3.endpointUrl }}
TICKLAKE_S3_ENDPOINT_URL: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ticklake.httpSettings" -}}
{{- $root := index . 0 }}{{- $port := index . 1 -}}
TICKLAKE_HTTP_HOST: "0.0.0.0"
TICKLAKE_HTTP_PORT: {{ $port | quote }}
TICKLAKE_LOG_LEVEL: {{ $root.Values.logLevel | quote }}
{{- end }}

{{/* Secret-backed env entries (env:, not envFrom, so each names its key). */}}
{{- define "ticklake.redisSecretEnv" -}}
{{- if include "ticklake.redisAuth" . -}}
- name: TICKLAKE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ticklake.redisSecretName" . }}
      key: {{ include "ticklake.redisSecretKey" . }}
{{- end }}
{{- end }}

{{- define "ticklake.s3SecretEnv" -}}
{{- if and (eq .Values.lake.mode "s3") (or .Values.lake.s3.existingSecret .Values.lake.s3.accessKeyId) -}}
- name: TICKLAKE_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "ticklake.s3SecretName" . }}
      key: {{ .Values.lake.s3.accessKeyIdKey }}
- name: TICKLAKE_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "ticklake.s3SecretName" . }}
      key: {{ .Values.lake.s3.secretAccessKeyKey }}
{{- end }}
{{- end }}

{{/* Container securityContext shared by every ticklake container (and Redis):
the restricted Pod Security Standard plus a read-only root filesystem. */}}
{{- define "ticklake.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "ticklake.podSecurityContext" -}}
{{- $uid := index . 0 -}}
runAsNonRoot: true
runAsUser: {{ $uid }}
runAsGroup: {{ $uid }}
fsGroup: {{ $uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}
