{{/* Arguments to the shared workload templates for the producer: it only
publishes to Kafka. It has no /readyz: /healthz answers 503 until it is
connected and publishing, so it serves every probe. */}}
{{- define "ticklake.producer.args" -}}
{{- $grace := sub (sub (int .Values.producer.terminationGracePeriodSeconds) 5) (int .Values.producer.preStopSleepSeconds) }}
{{- $t := .Values.kafka.strimzi.topics }}
{{- $settings := list (include "ticklake.kafkaSettings" .) (include "ticklake.httpSettings" (list . .Values.producer.port)) }}
{{- /* If the topics are missing (an external Kafka) the producer creates
them; with the same shape the KafkaTopics would have. */}}
{{- $settings = append $settings (printf "TICKLAKE_TOPIC_PARTITIONS: %s" ($t.ticks.partitions | toString | quote)) }}
{{- $settings = append $settings (printf "TICKLAKE_DEAD_LETTER_PARTITIONS: %s" ($t.deadLetter.partitions | toString | quote)) }}
{{- $rf := int $t.ticks.replicas }}
{{- if eq $rf 0 }}{{ $rf = include "ticklake.kafkaReplicationFactor" . | int }}{{ end }}
{{- $settings = append $settings (printf "TICKLAKE_TOPIC_REPLICATION_FACTOR: %s" ($rf | toString | quote)) }}
{{- /* Flush before the kubelet's SIGKILL: the grace period less 5 s. */}}
{{- $settings = append $settings (printf "TICKLAKE_SHUTDOWN_TIMEOUT_S: %s" ($grace | toString | quote)) }}
{{- $args := dict "component" "producer" "settings" (join "\n" $settings) "secretEnv" (include "ticklake.kafkaSecretEnv" (list . "producer" "TICKLAKE_")) "lake" false "liveness" "/healthz" "readiness" "/healthz" }}
{{- $mounts := list }}
{{- with include "ticklake.kafkaCaMount" . }}
{{- $mounts = append $mounts (fromYaml .) }}
{{- end }}
{{- with include "ticklake.kafkaClientCertMount" (list . "producer") }}
{{- $mounts = append $mounts (fromYaml .) }}
{{- end }}
{{- if $mounts }}
{{- $_ := set $args "secretMounts" $mounts }}
{{- end }}
{{- $args | toYaml }}
{{- end }}
