{{/* Arguments to the shared workload templates for the query API: reads Redis
and the lake (read-only). */}}
{{- define "ticklake.queryApi.args" -}}
{{- /* uvicorn waits this long for open requests on SIGTERM; it must end
before the kubelet's SIGKILL, which comes terminationGracePeriodSeconds after
the preStop sleep began. */}}
{{- $grace := sub (sub (int .Values.queryApi.terminationGracePeriodSeconds) 5) (int .Values.queryApi.preStopSleepSeconds) }}
{{- $settings := printf "%s\n%s\n%s\nTICKLAKE_SHUTDOWN_GRACE_S: %s" (include "ticklake.redisSettings" .) (include "ticklake.lakeSettings" .) (include "ticklake.httpSettings" (list . .Values.queryApi.port)) ($grace | toString | quote) }}
{{- $secretEnv := list (include "ticklake.redisSecretEnv" .) (include "ticklake.s3SecretEnv" .) | compact | join "\n" }}
{{- dict "component" "query-api" "settings" $settings "secretEnv" $secretEnv "lake" (eq .Values.lake.mode "pvc") "lakeReadOnly" true "liveness" "/healthz" "readiness" "/readyz" | toYaml }}
{{- end }}
