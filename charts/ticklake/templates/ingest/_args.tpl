{{/* Arguments to the shared workload templates for ingest: Kafka in, the lake
and Redis out. */}}
{{- define "ticklake.ingest.args" -}}
{{- /* Ingest must have flushed and committed before the kubelet's SIGKILL:
its own shutdown deadline is the pod's grace period less 5 s and less the
preStop sleep (the kubelet counts that sleep inside the grace period). */}}
{{- $grace := sub (sub (int .Values.ingest.terminationGracePeriodSeconds) 5) (int .Values.ingest.preStopSleepSeconds) }}
{{- $settings := printf "%s\n%s\n%s\n%s\nTICKLAKE_CONSUMER_GROUP: %s\nTICKLAKE_SHUTDOWN_GRACE_SECONDS: %s\nTICKLAKE_ORDERING: %s\nTICKLAKE_SEQUENCED_TOPIC: %s" (include "ticklake.kafkaSettings" .) (include "ticklake.redisSettings" .) (include "ticklake.lakeSettings" .) (include "ticklake.httpSettings" (list . .Values.ingest.port)) (.Values.ingest.consumerGroup | quote) ($grace | quote) (.Values.ingest.ordering | quote) (.Values.topics.sequenced | quote) }}
{{- /* Only ingest writes the lake, so only it gets the encryption settings. */}}
{{- if and (eq .Values.lake.mode "s3") (ne .Values.lake.s3.sse "none") }}
{{- $settings = printf "%s\nTICKLAKE_S3_SSE: %s" $settings (.Values.lake.s3.sse | quote) }}
{{- with .Values.lake.s3.sseKmsKeyId }}
{{- $settings = printf "%s\nTICKLAKE_S3_SSE_KMS_KEY_ID: %s" $settings (. | quote) }}
{{- end }}
{{- end }}
{{- /* The pod name as Kafka client id: broker logs and group listings then
say which replica a consumer is. */}}
{{- $clientId := "- name: TICKLAKE_CLIENT_ID\n  valueFrom:\n    fieldRef:\n      fieldPath: metadata.name" }}
{{- /* The pod name as static group member id too: it survives container
restarts, so a crashed replica's partitions come back to it without a
rebalance (docs/ingest.md). */}}
{{- $instanceId := "" }}
{{- if .Values.ingest.staticMembership }}
{{- $instanceId = "- name: TICKLAKE_GROUP_INSTANCE_ID\n  valueFrom:\n    fieldRef:\n      fieldPath: metadata.name" }}
{{- end }}
{{- $secretEnv := list $clientId $instanceId (include "ticklake.kafkaSecretEnv" (list . "ingest" "TICKLAKE_")) (include "ticklake.redisSecretEnv" (list . "ingest")) (include "ticklake.s3SecretEnv" .) | compact | join "\n" }}
{{- $omitReplicas := and .Values.operator.enabled .Values.operator.ingestScaler.create }}
{{- $args := dict "component" "ingest" "settings" $settings "secretEnv" $secretEnv "lake" (eq .Values.lake.mode "pvc") "lakeReadOnly" false "omitReplicas" $omitReplicas "liveness" "/healthz" "readiness" "/readyz" }}
{{- $mounts := list }}
{{- with include "ticklake.kafkaCaMount" . }}
{{- $mounts = append $mounts (fromYaml .) }}
{{- end }}
{{- with include "ticklake.kafkaClientCertMount" (list . "ingest") }}
{{- $mounts = append $mounts (fromYaml .) }}
{{- end }}
{{- with include "ticklake.redisCaMount" . }}
{{- $mounts = append $mounts (fromYaml .) }}
{{- end }}
{{- if $mounts }}
{{- $_ := set $args "secretMounts" $mounts }}
{{- end }}
{{- $args | toYaml }}
{{- end }}
