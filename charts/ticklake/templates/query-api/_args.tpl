{{/* Arguments to the shared workload templates for the query API: reads Redis
and the lake (read-only). */}}
{{- define "ticklake.queryApi.args" -}}
{{- $settings := printf "%s\n%s\n%s" (include "ticklake.redisSettings" .) (include "ticklake.lakeSettings" .) (include "ticklake.httpSettings" (list . .Values.queryApi.port)) }}
{{- $secretEnv := printf "%s\n%s" (include "ticklake.redisSecretEnv" .) (include "ticklake.s3SecretEnv" .) | trim }}
{{- dict "component" "query-api" "values" .Values.queryApi "settings" $settings "secretEnv" $secretEnv "lake" (eq .Values.lake.mode "pvc") "lakeReadOnly" true "liveness" "/healthz" "readiness" "/readyz" | toYaml }}
{{- end }}
