{{/* Egress rule fragments shared by the NetworkPolicies. */}}
{{- define "ticklake.np.dns" -}}
# DNS: every pod resolves Service names.
- to:
    - namespaceSelector: {}
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}
{{- define "ticklake.np.kafka" -}}
{{- if .Values.kafka.strimzi.enabled -}}
# Kafka brokers (Strimzi labels its pods with the cluster name).
- to:
    - podSelector:
        matchLabels:
          strimzi.io/cluster: {{ include "ticklake.kafkaClusterName" . }}
          strimzi.io/kind: Kafka
  ports:
    - {port: {{ .Values.kafka.strimzi.listenerPort }}, protocol: TCP}
{{- else -}}
# External Kafka: every port of bootstrapServers (brokers are expected to
# advertise the same ports).
- to:
    {{- range .Values.kafka.external.cidrs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    {{- range include "ticklake.kafkaPorts" . | fromJsonArray }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end }}
{{- end }}
{{- define "ticklake.np.redis" -}}
{{- if .Values.redis.enabled -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "ticklake.componentSelectorLabels" (list . "redis") | nindent 10 }}
  ports:
    - {port: {{ .Values.redis.service.port }}, protocol: TCP}
{{- else -}}
- to:
    {{- range .Values.redis.external.cidrs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    # The port of redis.external.url.
    - {port: {{ include "ticklake.redisPort" . }}, protocol: TCP}
{{- end }}
{{- end }}
{{- define "ticklake.np.s3" -}}
{{- if eq .Values.lake.mode "s3" -}}
# The S3 lake.
- to:
    {{- range .Values.lake.s3.cidrs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    # The port of lake.s3.endpointUrl (443 for AWS).
    - {port: {{ include "ticklake.s3Port" . }}, protocol: TCP}
{{- end }}
{{- end }}
{{- define "ticklake.np.jwks" -}}
{{- $jwt := .Values.queryApi.auth.jwt -}}
{{- if and .Values.queryApi.auth.enabled $jwt.jwksUrl -}}
{{- $url := urlParse $jwt.jwksUrl }}
# The identity provider's JWKS (OIDC/JWT tokens).
- to:
    {{- range $jwt.cidrs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    # The port of queryApi.auth.jwt.jwksUrl.
    - {port: {{ default (ternary "80" "443" (eq $url.scheme "http")) (regexFind "[0-9]+$" (regexFind ":[0-9]+$" $url.host)) }}, protocol: TCP}
{{- end }}
{{- end }}
