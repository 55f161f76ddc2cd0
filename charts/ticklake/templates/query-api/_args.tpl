{{/* Arguments to the shared workload templates for the query API: reads Redis
and the lake (read-only). */}}
{{- define "ticklake.queryApi.args" -}}
{{- /* uvicorn waits this long for open requests on SIGTERM; it must end
before the kubelet's SIGKILL, which comes terminationGracePeriodSeconds after
the preStop sleep began. */}}
{{- $grace := sub (sub (int .Values.queryApi.terminationGracePeriodSeconds) 5) (int .Values.queryApi.preStopSleepSeconds) }}
{{- $settings := printf "%s\n%s\n%s\nTICKLAKE_SHUTDOWN_GRACE_S: %s\n%s" (include "ticklake.redisSettings" .) (include "ticklake.lakeSettings" .) (include "ticklake.httpSettings" (list . .Values.queryApi.port)) ($grace | toString | quote) (include "ticklake.queryApi.authSettings" .) }}
{{- $secretEnv := list (include "ticklake.redisSecretEnv" (list . "query")) (include "ticklake.s3SecretEnv" .) | compact | join "\n" }}
{{- $args := dict "component" "query-api" "settings" $settings "secretEnv" $secretEnv "lake" (eq .Values.lake.mode "pvc") "lakeReadOnly" true "liveness" "/healthz" "readiness" "/readyz" }}
{{- $mounts := list }}
{{- if .Values.queryApi.auth.enabled }}
{{- $mounts = append $mounts (dict "name" "api-keys" "secretName" (include "ticklake.queryApi.keysSecretName" .) "mountPath" "/etc/ticklake/auth") }}
{{- end }}
{{- with include "ticklake.redisCaMount" . }}
{{- $mounts = append $mounts (fromYaml .) }}
{{- end }}
{{- if $mounts }}
{{- $_ := set $args "secretMounts" $mounts }}
{{- end }}
{{- $args | toYaml }}
{{- end }}

{{/* The Secret holding the API key file: the user's own, or the chart's. */}}
{{- define "ticklake.queryApi.keysSecretName" -}}
{{- default (include "ticklake.componentName" (list . "api-keys")) .Values.queryApi.auth.existingSecret }}
{{- end }}

{{/* Authentication settings. The key file is mounted from its Secret as a
directory, so an edited Secret reaches the pod (the API re-reads the file when
it changes); a subPath mount would never be updated. */}}
{{- define "ticklake.queryApi.authSettings" -}}
{{- $auth := .Values.queryApi.auth -}}
TICKLAKE_AUTH_ENABLED: {{ $auth.enabled | toString | quote }}
{{- if $auth.enabled }}
TICKLAKE_AUTH_KEYS_FILE: "/etc/ticklake/auth/keys.json"
{{- with $auth.jwt.jwksUrl }}
TICKLAKE_AUTH_JWKS_URL: {{ . | quote }}
{{- end }}
{{- with $auth.jwt.issuer }}
TICKLAKE_AUTH_JWT_ISSUER: {{ . | quote }}
{{- end }}
{{- with $auth.jwt.audience }}
TICKLAKE_AUTH_JWT_AUDIENCE: {{ . | quote }}
{{- end }}
TICKLAKE_AUTH_JWT_SYMBOLS_CLAIM: {{ $auth.jwt.symbolsClaim | quote }}
TICKLAKE_AUTH_RATE_PER_S: {{ $auth.rateLimitPerSecond | toString | quote }}
TICKLAKE_AUTH_BURST: {{ $auth.burst | toString | quote }}
{{- end }}
{{- end }}
