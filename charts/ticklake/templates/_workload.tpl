{{/*
The objects every ticklake HTTP service has, written once: ConfigMap,
Deployment, Service, PodDisruptionBudget, ServiceMonitor. Each component's
template file calls these with a dict:

  root       the top-level context ($)
  component  "producer" | "ingest" | "query-api" (label and name suffix)
  values     the component's values section
  settings   ConfigMap data (TICKLAKE_* variables) as a YAML string
  secretEnv  env entries from Secrets, as a YAML string (may be empty)
  lake       true to mount the lake PVC (lake.mode=pvc)
  lakeReadOnly  true to mount it read-only (the query API only reads)
  secretMounts  optional list of dicts (name, secretName, mountPath, and
             optionally items): Secrets mounted read-only as directories (the
             query API's key file, the Kafka cluster CA, Redis's CA)
  liveness / readiness  HTTP paths of the service's own health endpoints
*/}}

{{- define "ticklake.workload.configmap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "ticklake.componentName" (list .root .component) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "ticklake.componentLabels" (list .root .component) | nindent 4 }}
data:
  {{- .settings | nindent 2 }}
  {{- range $name, $value := .values.extraSettings }}
  {{ $name }}: {{ $value | toString | quote }}
  {{- end }}
{{- end }}

{{- define "ticklake.workload.deployment" -}}
{{- $root := .root }}{{- $v := .values }}
{{- $name := include "ticklake.componentName" (list $root .component) }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "ticklake.componentLabels" (list $root .component) | nindent 4 }}
spec:
  {{- if not .omitReplicas }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "ticklake.componentSelectorLabels" (list $root .component) | nindent 6 }}
  {{- with $v.strategy }}
  strategy:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "ticklake.componentLabels" (list $root .component) | nindent 8 }}
        {{- with $v.podLabels }}
        {{- include "ticklake.stringMap" . | indent 8 }}
        {{- end }}
      annotations:
        # Roll the pods when their settings change.
        checksum/config: {{ printf "%s\n%s" .settings (toJson $v.extraSettings) | sha256sum }}
        {{- with $v.podAnnotations }}
        {{- include "ticklake.stringMap" . | indent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $name }}
      # The services call no Kubernetes API; no token in their pods.
      automountServiceAccountToken: false
      {{- with $root.Values.image.pullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- include "ticklake.podSecurityContext" (list $root.Values.image.uid) | nindent 8 }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .component }}
          image: {{ include "ticklake.image" (list $root $v.image) | quote }}
          imagePullPolicy: {{ default $root.Values.image.pullPolicy $v.image.pullPolicy }}
          ports:
            - name: http
              containerPort: {{ $v.port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ $name }}
          {{- if or .secretEnv $v.extraEnv }}
          env:
            {{- with .secretEnv }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- end }}
          # startup gives the first Kafka/Redis connection time; liveness then
          # only restarts a process that stopped answering at all; readiness
          # takes the pod out of its Service while a dependency is down.
          startupProbe:
            httpGet:
              path: {{ .liveness }}
              port: http
            periodSeconds: 5
            failureThreshold: {{ $v.probes.startupFailureThreshold }}
          livenessProbe:
            httpGet:
              path: {{ .liveness }}
              port: http
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: {{ .readiness }}
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          {{- if $v.preStopSleepSeconds }}
          # Keep serving while the pod's removal from its Service's endpoints
          # reaches kube-proxy on every node: SIGTERM only comes after this
          # sleep (the kubelet's sleep action: Kubernetes 1.30 or later).
          lifecycle:
            preStop:
              sleep:
                seconds: {{ $v.preStopSleepSeconds }}
          {{- end }}
          {{- with $v.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            {{- include "ticklake.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            # Python and pyarrow write temporary files; the root is read-only.
            - name: tmp
              mountPath: /tmp
            {{- if .lake }}
            - name: lake
              mountPath: {{ $root.Values.lake.pvc.mountPath }}
              {{- if .lakeReadOnly }}
              readOnly: true
              {{- end }}
            {{- end }}
            {{- range .secretMounts }}
            - name: {{ .name }}
              mountPath: {{ .mountPath }}
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $v.tmpSizeLimit }}
        {{- range .secretMounts }}
        - name: {{ .name }}
          secret:
            secretName: {{ .secretName }}
            defaultMode: 0440
            {{- with .items }}
            items:
              {{- toYaml . | nindent 14 }}
            {{- end }}
        {{- end }}
        {{- if .lake }}
        - name: lake
          persistentVolumeClaim:
            claimName: {{ include "ticklake.lakeClaimName" $root }}
            {{- if .lakeReadOnly }}
            readOnly: true
            {{- end }}
        {{- end }}
      {{- if $v.topologySpread.enabled }}
      # Spread replicas over nodes and zones; ScheduleAnyway so a small cluster
      # (or a lake PVC pinned to one node) can still run them all.
      topologySpreadConstraints:
        {{- range $key := list "kubernetes.io/hostname" "topology.kubernetes.io/zone" }}
        - maxSkew: 1
          topologyKey: {{ $key }}
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "ticklake.componentSelectorLabels" (list $root $.component) | nindent 14 }}
          matchLabelKeys: [pod-template-hash]
        {{- end }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
{{- end }}

{{- define "ticklake.workload.serviceaccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "ticklake.componentName" (list .root .component) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "ticklake.componentLabels" (list .root .component) | nindent 4 }}
automountServiceAccountToken: false
{{- end }}

{{- define "ticklake.workload.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "ticklake.componentName" (list .root .component) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "ticklake.componentLabels" (list .root .component) | nindent 4 }}
  {{- with .values.service.annotations }}
  annotations:
    {{- include "ticklake.stringMap" . | indent 4 }}
  {{- end }}
spec:
  type: {{ .values.service.type }}
  selector:
    {{- include "ticklake.componentSelectorLabels" (list .root .component) | nindent 4 }}
  ports:
    - name: http
      port: {{ .values.service.port }}
      targetPort: http
      protocol: TCP
      {{- if and (eq .values.service.type "NodePort") .values.service.nodePort }}
      nodePort: {{ .values.service.nodePort }}
      {{- end }}
{{- end }}

{{- define "ticklake.workload.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "ticklake.componentName" (list .root .component) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "ticklake.componentLabels" (list .root .component) | nindent 4 }}
spec:
  # maxUnavailable (not minAvailable) so a single replica never blocks a
  # node drain, while several replicas are drained one at a time.
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "ticklake.componentSelectorLabels" (list .root .component) | nindent 6 }}
{{- end }}

{{- define "ticklake.workload.servicemonitor" -}}
{{- $m := .root.Values.monitoring }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "ticklake.componentName" (list .root .component) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "ticklake.componentLabels" (list .root .component) | nindent 4 }}
    {{- with $m.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "ticklake.componentSelectorLabels" (list .root .component) | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ .root.Release.Namespace }}]
  endpoints:
    - port: {{ default "http" .port }}
      path: /metrics
      interval: {{ $m.serviceMonitor.interval }}
      scrapeTimeout: {{ $m.serviceMonitor.scrapeTimeout }}
{{- end }}
