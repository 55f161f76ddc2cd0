{{/* Arguments to the shared workload templates for the producer: it only
publishes to Kafka. */}}
{{- define "ticklake.producer.args" -}}
{{- $settings := printf "%s\n%s" (include "ticklake.kafkaSettings" .) (include "ticklake.httpSettings" (list . .Values.producer.port)) }}
{{- dict "component" "producer" "values" .Values.producer "settings" $settings "secretEnv" "" "lake" false "liveness" "/healthz" "readiness" "/readyz" | toYaml }}
{{- end }}
