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
fullname cut so that the whole still fits the 63-character DNS label limit,
or the tighter limit given as a third element (a StatefulSet's name must
leave room for the controller-revision-hash label, see redisName). */}}
{{- define "ticklake.componentName" -}}
{{- $root := index . 0 }}{{- $suffix := printf "-%s" (index . 1) }}
{{- $limit := 63 }}{{- if gt (len .) 2 }}{{ $limit = index . 2 | int }}{{ end }}
{{- $room := sub $limit (len $suffix) | int }}
{{- printf "%s%s" (include "ticklake.fit" (list (include "ticklake.fullname" $root) $room)) $suffix }}
{{- end }}

{{/* A name cut to at most N characters; list: [name, N]. A cut name ends in
six characters of its SHA-256, so two long names that share a prefix stay
distinct (plain truncation would give both the same object). */}}
{{- define "ticklake.fit" -}}
{{- $name := index . 0 }}{{- $max := index . 1 | int }}
{{- if le (len $name) $max }}
{{- $name }}
{{- else }}
{{- printf "%s-%s" ($name | trunc (sub $max 7 | int) | trimSuffix "-") ($name | sha256sum | trunc 6) }}
{{- end }}
{{- end }}

{{/* Who reconciles an IngestScaler: the value of the ticklake.dev/operator
label on the IngestScalers of this release, and the only value the release's
operator watches. Namespace and release together, because release names
repeat across namespaces and an operator with watchAllNamespaces sees them
all. Label values are limited to 63 characters. */}}
{{- define "ticklake.operatorId" -}}
{{- include "ticklake.fit" (list (printf "%s.%s" .Release.Namespace .Release.Name) 63) }}
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

{{/* The Kafka cluster's name, at most 32 characters: Strimzi names broker
pods <cluster>-<node pool>-<node id>, and a pod name is its hostname, a
63-character DNS label (see kafkaNodePoolName). */}}
{{- define "ticklake.kafkaClusterName" -}}
{{- default (include "ticklake.fit" (list (include "ticklake.fullname" .) 32)) .Values.kafka.strimzi.clusterName }}
{{- end }}

{{/* The KafkaNodePool's name: <fullname>-<nodePool.name>, release-scoped so
two releases in one namespace do not share a pool. The fullname part is cut
so that a broker pod's name, <cluster>-<pool>-<node id up to 5 digits>,
stays within 63 characters (clusterName <= 32 and nodePool.name <= 12 leave
at least 11 for it). A pool made by chart 0.1.0 was named nodePool.name
alone; an upgrade keeps that name (renaming a pool deletes its brokers). */}}
{{- define "ticklake.kafkaNodePoolName" -}}
{{- $pool := .Values.kafka.strimzi.nodePool.name }}
{{- $cluster := include "ticklake.kafkaClusterName" . }}
{{- $legacy := lookup "kafka.strimzi.io/v1" "KafkaNodePool" .Release.Namespace $pool }}
{{- if and $legacy (eq (dig "metadata" "annotations" "meta.helm.sh/release-name" "" $legacy) .Release.Name) }}
{{- $pool }}
{{- else }}
{{- $room := sub (sub (sub 56 (len $cluster)) 1) (len $pool) | int }}
{{- printf "%s-%s" (include "ticklake.fit" (list (include "ticklake.fullname" .) $room)) $pool }}
{{- end }}
{{- end }}

{{/* Ports the services reach Kafka on, derived (a JSON list): the Strimzi
listener, or every port of kafka.external.bootstrapServers. */}}
{{- define "ticklake.kafkaPorts" -}}
{{- $ports := list }}
{{- if .Values.kafka.strimzi.enabled }}
{{- $ports = list (int (include "ticklake.kafkaClientPort" .)) }}
{{- else }}
{{- range splitList "," .Values.kafka.external.bootstrapServers }}
{{- $ports = append $ports (regexFind "[0-9]+$" (trim .) | int) }}
{{- end }}
{{- end }}
{{- $ports | uniq | toJson }}
{{- end }}

{{/* host:port list the services connect to. Strimzi names the bootstrap
Service <cluster>-kafka-bootstrap. */}}
{{- define "ticklake.kafkaBootstrapServers" -}}
{{- if .Values.kafka.strimzi.enabled }}
{{- printf "%s-kafka-bootstrap:%d" (include "ticklake.kafkaClusterName" .) (int (include "ticklake.kafkaClientPort" .)) }}
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

{{/* Also the StatefulSet's name: at most 52 characters, because the
StatefulSet controller labels each pod controller-revision-hash:
<name>-<10-character hash>, and a label value over 63 characters means no
pod is ever created. */}}
{{- define "ticklake.redisName" -}}
{{- include "ticklake.componentName" (list . "redis" 52) }}
{{- end }}

{{/* The port of the external Redis URL (6379 when it has none). */}}
{{- define "ticklake.redisPort" -}}
{{- if .Values.redis.enabled }}
{{- .Values.redis.service.port }}
{{- else }}
{{- $host := (urlParse .Values.redis.external.url).host }}
{{- default "6379" (regexFind "[0-9]+$" (regexFind ":[0-9]+$" $host)) }}
{{- end }}
{{- end }}

{{- define "ticklake.redisUrl" -}}
{{- if .Values.redis.enabled }}
{{- printf "%s://%s:%d/0" (ternary "rediss" "redis" .Values.redis.tls.enabled) (include "ticklake.redisName" .) (int .Values.redis.service.port) }}
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

{{/* The port of the S3 endpoint: its own, else the scheme's (AWS: 443). */}}
{{- define "ticklake.s3Port" -}}
{{- with .Values.lake.s3.endpointUrl }}
{{- $url := urlParse . }}
{{- default (ternary "80" "443" (eq $url.scheme "http")) (regexFind "[0-9]+$" (regexFind ":[0-9]+$" $url.host)) }}
{{- else }}
{{- "443" }}
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
{{- if include "ticklake.kafkaAuth" . }}
{{ include "ticklake.kafkaSecuritySettings" (list . "TICKLAKE_") }}
{{- end }}
{{- end }}

{{/* ------------------------------------------------- Kafka authentication */}}

{{/* The clients authenticate or encrypt: kafka.strimzi.auth (SCRAM over TLS,
simple ACLs) in Strimzi mode, kafka.external.auth.securityProtocol otherwise. */}}
{{- define "ticklake.kafkaAuth" -}}
{{- if .Values.kafka.strimzi.enabled }}
{{- if .Values.kafka.strimzi.auth.enabled }}true{{ end }}
{{- else if ne .Values.kafka.external.auth.securityProtocol "PLAINTEXT" }}true{{ end }}
{{- end }}

{{- define "ticklake.kafkaProtocol" -}}
{{- ternary "SASL_SSL" .Values.kafka.external.auth.securityProtocol .Values.kafka.strimzi.enabled }}
{{- end }}

{{- define "ticklake.kafkaClientPort" -}}
{{- ternary .Values.kafka.strimzi.auth.tlsListenerPort .Values.kafka.strimzi.listenerPort (and .Values.kafka.strimzi.enabled .Values.kafka.strimzi.auth.enabled) }}
{{- end }}

{{/* The KafkaUser (and SASL user name, and Secret Strimzi makes) of a client. */}}
{{- define "ticklake.kafkaUserName" -}}
{{- $root := index . 0 }}
{{- include "ticklake.componentName" (list $root (printf "%s-kafka" (index . 1))) }}
{{- end }}

{{- define "ticklake.kafkaCaMountPath" -}}/etc/ticklake/kafka-ca{{- end }}

{{/* Settings of a Kafka client with authentication: (list $ prefix). */}}
{{- define "ticklake.kafkaSecuritySettings" -}}
{{- $root := index . 0 }}{{- $prefix := index . 1 }}
{{- $protocol := include "ticklake.kafkaProtocol" $root -}}
{{ $prefix }}KAFKA_SECURITY_PROTOCOL: {{ $protocol | quote }}
{{- if hasPrefix "SASL" $protocol }}
{{ $prefix }}KAFKA_SASL_MECHANISM: {{ ternary "SCRAM-SHA-512" $root.Values.kafka.external.auth.saslMechanism $root.Values.kafka.strimzi.enabled | quote }}
{{- end }}
{{- if include "ticklake.kafkaCaMount" $root }}
{{ $prefix }}KAFKA_TLS_CA_FILE: {{ printf "%s/ca.crt" (include "ticklake.kafkaCaMountPath" $root) | quote }}
{{- end }}
{{- end }}

{{- define "ticklake.kafkaClientCertMountPath" -}}/etc/ticklake/kafka-client{{- end }}

{{/* A client's own certificate as a secretMount, for mutual TLS with an external
Kafka (securityProtocol SSL and kafka.external.auth.users.<role>: a Secret with
tls.crt and tls.key): (list $ role). */}}
{{- define "ticklake.kafkaClientCertMount" -}}
{{- $root := index . 0 }}{{- $role := index . 1 }}
{{- $auth := $root.Values.kafka.external.auth }}
{{- if and (not $root.Values.kafka.strimzi.enabled) (eq $auth.securityProtocol "SSL") (index $auth.users $role) -}}
name: kafka-client-cert
secretName: {{ index $auth.users $role }}
mountPath: {{ include "ticklake.kafkaClientCertMountPath" $root }}
items:
  - {key: tls.crt, path: tls.crt}
  - {key: tls.key, path: tls.key}
{{- end }}
{{- end }}

{{/* Env entries with a client's credentials: (list $ role prefix). SASL: its user
and password; Strimzi mode: its KafkaUser and the Secret Strimzi makes; external:
the Secret named in kafka.external.auth.users.<role> (keys username, password).
External SSL with that Secret: its certificate and key (mutual TLS). */}}
{{- define "ticklake.kafkaSecretEnv" -}}
{{- $root := index . 0 }}{{- $role := index . 1 }}{{- $prefix := index . 2 }}
{{- if include "ticklake.kafkaClientCertMount" (list $root $role) -}}
{{- $dir := include "ticklake.kafkaClientCertMountPath" $root -}}
- name: {{ $prefix }}KAFKA_TLS_CERT_FILE
  value: {{ printf "%s/tls.crt" $dir }}
- name: {{ $prefix }}KAFKA_TLS_KEY_FILE
  value: {{ printf "%s/tls.key" $dir }}
{{- end }}
{{- if and (include "ticklake.kafkaAuth" $root) (hasPrefix "SASL" (include "ticklake.kafkaProtocol" $root)) -}}
{{- if $root.Values.kafka.strimzi.enabled -}}
{{- $user := include "ticklake.kafkaUserName" (list $root $role) -}}
- name: {{ $prefix }}KAFKA_SASL_USERNAME
  value: {{ $user }}
- name: {{ $prefix }}KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      # Made by Strimzi's user operator for the KafkaUser of the same name.
      name: {{ $user }}
      key: password
{{- else -}}
{{- $secret := required (printf "kafka.external.auth.users.%s: a Secret with username and password is required for %s" $role (include "ticklake.kafkaProtocol" $root)) (index $root.Values.kafka.external.auth.users $role) -}}
- name: {{ $prefix }}KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: username}
- name: {{ $prefix }}KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: password}
{{- end }}
{{- end }}
{{- end }}

{{/* The brokers' CA as a secretMount: Strimzi's cluster CA, or kafka.external.auth.caSecret. */}}
{{- define "ticklake.kafkaCaMount" -}}
{{- if include "ticklake.kafkaAuth" . -}}
{{- $secret := ternary (printf "%s-cluster-ca-cert" (include "ticklake.kafkaClusterName" .)) .Values.kafka.external.auth.caSecret .Values.kafka.strimzi.enabled -}}
{{- if and $secret (hasSuffix "SSL" (include "ticklake.kafkaProtocol" .)) -}}
name: kafka-ca
secretName: {{ $secret }}
mountPath: {{ include "ticklake.kafkaCaMountPath" . }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ticklake.redisSettings" -}}
TICKLAKE_REDIS_URL: {{ include "ticklake.redisUrl" . | quote }}
{{- if include "ticklake.redisCaMount" . }}
TICKLAKE_REDIS_TLS_CA_FILE: {{ printf "%s/ca.crt" (include "ticklake.redisCaMountPath" .) | quote }}
{{- end }}
{{- end }}

{{/* The Secret with Redis's certificate (tls.crt, tls.key) and its CA (ca.crt):
redis.tls.existingSecret (cert-manager makes this shape), or the chart's. */}}
{{- define "ticklake.redisTlsSecretName" -}}
{{- default (printf "%s-tls" (include "ticklake.redisName" .)) .Values.redis.tls.existingSecret }}
{{- end }}

{{- define "ticklake.redisCaMountPath" -}}/etc/ticklake/redis-ca{{- end }}

{{/* Redis's CA in a service (secretMounts entry), when Redis speaks TLS: the
chart's Redis with redis.tls.enabled, or an external rediss:// one whose CA is in
redis.tls.existingSecret (without it the system's CAs verify). Only ca.crt is
mounted: the services never see Redis's key. */}}
{{- define "ticklake.redisCaMount" -}}
{{- $tls := ternary .Values.redis.tls.enabled (hasPrefix "rediss://" .Values.redis.external.url) .Values.redis.enabled }}
{{- if and $tls (or .Values.redis.enabled .Values.redis.tls.existingSecret) -}}
name: redis-ca
secretName: {{ include "ticklake.redisTlsSecretName" . }}
mountPath: {{ include "ticklake.redisCaMountPath" . }}
items:
  - {key: ca.crt, path: ca.crt}
{{- end }}
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
{{/* Per-service Redis users (redis.acl.enabled, the chart's Redis only). */}}
{{- define "ticklake.redisAcl" -}}
{{- if and .Values.redis.enabled .Values.redis.acl.enabled }}true{{ end }}
{{- end }}

{{/* The ACL rules of each role: a copy of ticklake.core.hot_cache.acl_rules(role),
the owner of the Redis layout; tests/charts/test_chart_redis_acl.py fails when they
differ. */}}
{{- define "ticklake.redisAclRules" -}}
{{- $rules := dict
  "writer" "resetkeys resetchannels &ticklake:ticks -@all +@connection ~sym:* ~ticklake:symbols +@read +@write +evalsha +eval +script|load +publish -@dangerous"
  "reader" "resetkeys resetchannels &ticklake:ticks -@all +@connection %R~sym:* %R~ticklake:symbols +@read +subscribe +unsubscribe -@dangerous" }}
{{- index $rules . }}
{{- end }}

{{/* TICKLAKE_REDIS_* credentials of a service: (list $ "ingest"|"query"). With
per-service users, its own user and password; else the main password. */}}
{{- define "ticklake.redisSecretEnv" -}}
{{- $root := index . 0 }}{{- $user := index . 1 }}
{{- if include "ticklake.redisAcl" $root -}}
- name: TICKLAKE_REDIS_USERNAME
  value: {{ $user }}
- name: TICKLAKE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ticklake.redisSecretName" $root }}
      key: {{ $user }}-password
{{- else if include "ticklake.redisAuth" $root -}}
- name: TICKLAKE_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ticklake.redisSecretName" $root }}
      key: {{ include "ticklake.redisSecretKey" $root }}
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

{{/* A user map (labels, annotations) as YAML with every value a quoted
string: Kubernetes wants strings there, and YAML would read 1, true or 1e3
as a number or a boolean. */}}
{{- define "ticklake.stringMap" -}}
{{- range $key, $value := . }}
{{ $key | quote }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* A Prometheus duration like 15s, 1m or 500ms in milliseconds (the values
schema allows one number and one unit). */}}
{{- define "ticklake.durationMs" -}}
{{- $n := regexFind "^[0-9]+" . | int }}
{{- $unit := regexFind "[a-z]+$" . }}
{{- mul $n (get (dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000) $unit) }}
{{- end }}

{{/* Rules that no schema can state: each fails the install with a message
that says what to set instead. The checks the operators themselves make
(Strimzi, prometheus-operator) are named with where upstream enforces them;
tests/charts/test_chart_admission.py repeats them on the rendered objects. */}}
{{- define "ticklake.validate" -}}
{{- /* As ingest's settings refuse it (LakeFields): a KMS key means aws:kms. */}}
{{- if and .Values.lake.s3.sseKmsKeyId (ne .Values.lake.s3.sse "aws:kms") }}
{{- fail (printf "lake.s3.sseKmsKeyId is set but lake.s3.sse is %q: set lake.s3.sse=aws:kms" .Values.lake.s3.sse) }}
{{- end }}
{{- $k := .Values.kafka.strimzi }}
{{- if $k.enabled }}
{{- /* Strimzi ListenersValidator.validatePortNumbers: 9404 (metrics) and 9999
(JMX) are its own ports. Ports below 9092 the values schema refuses. */}}
{{- if has (int $k.listenerPort) (list 9404 9999) }}
{{- fail (printf "kafka.strimzi.listenerPort %d is reserved by Strimzi (9404 metrics, 9999 JMX): use 9092 or another port from 9093 up" (int $k.listenerPort)) }}
{{- end }}
{{- /* Strimzi NodePoolUtils.validateKRaftProcessRoles: a KRaft cluster needs a
pool with the broker role and one with the controller role; the chart makes
exactly one pool. */}}
{{- if not (and (has "broker" $k.nodePool.roles) (has "controller" $k.nodePool.roles)) }}
{{- fail (printf "kafka.strimzi.nodePool.roles %v: the chart makes one KafkaNodePool, so it needs both roles: set roles to [controller, broker]" $k.nodePool.roles) }}
{{- end }}
{{- if $k.topics.create }}
{{- $topics := dict "ticks" $k.topics.ticks "deadLetter" $k.topics.deadLetter }}
{{- if eq .Values.ingest.ordering "sequence" }}{{ $_ := set $topics "sequenced" $k.topics.sequenced }}{{ end }}
{{- range $name, $t := $topics }}
{{- if gt (int $t.replicas) (int $k.nodePool.replicas) }}
{{- fail (printf "kafka.strimzi.topics.%s.replicas %d is more than the %d broker(s) of kafka.strimzi.nodePool.replicas: lower it, set 0 (min(3, brokers)), or raise nodePool.replicas" $name (int $t.replicas) (int $k.nodePool.replicas)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $s := .Values.operator.ingestScaler }}
{{- if and .Values.operator.enabled $s.create (gt (int $s.minReplicas) (int $s.maxReplicas)) }}
{{- fail (printf "operator.ingestScaler.minReplicas %d is above maxReplicas %d: raise maxReplicas or lower minReplicas" (int $s.minReplicas) (int $s.maxReplicas)) }}
{{- end }}
{{- /* The kubelet counts the preStop sleep inside the grace period; the
service's own shutdown gets what is left minus 5 s. */}}
{{- range $key := list "producer" "ingest" "queryApi" }}
{{- $w := index $.Values $key }}
{{- if lt (sub (int $w.terminationGracePeriodSeconds) (int $w.preStopSleepSeconds)) 6 }}
{{- fail (printf "%s.preStopSleepSeconds %d leaves less than 6 s of %s.terminationGracePeriodSeconds %d for the service's shutdown: raise terminationGracePeriodSeconds or lower preStopSleepSeconds" $key (int $w.preStopSleepSeconds) $key (int $w.terminationGracePeriodSeconds)) }}
{{- end }}
{{- end }}
{{- $m := .Values.monitoring.serviceMonitor }}
{{- /* prometheus-operator CompareScrapeTimeoutToScrapeInterval
(pkg/prometheus/promcfg.go): a ServiceMonitor whose scrapeTimeout exceeds
its interval is rejected and nothing is scraped. */}}
{{- if and .Values.monitoring.enabled (gt (include "ticklake.durationMs" $m.scrapeTimeout | int) (include "ticklake.durationMs" $m.interval | int)) }}
{{- fail (printf "monitoring.serviceMonitor.scrapeTimeout %s is longer than interval %s (prometheus-operator refuses the ServiceMonitor): set scrapeTimeout to %s or less" $m.scrapeTimeout $m.interval $m.interval) }}
{{- end }}
{{- end }}
