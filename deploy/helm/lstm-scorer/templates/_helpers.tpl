{{/* The release's name for its objects: <release>-lstm-scorer, or the release name if it
already says lstm-scorer. */}}
{{- define "lstm-scorer.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "lstm-scorer.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lstm-scorer.labels" -}}
{{ include "lstm-scorer.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The label whose value Prometheus takes as the job name (jobLabel). */}}
{{- define "lstm-scorer.jobLabel" -}}
lstm-scorer.io/job
{{- end -}}

{{- define "lstm-scorer.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Required values, checked once. */}}
{{- define "lstm-scorer.partitions" -}}
{{- $n := required "kafka.inputPartitions is required: the input topic's partition count" .Values.kafka.inputPartitions | int -}}
{{- if lt $n 1 -}}{{- fail "kafka.inputPartitions must be at least 1" -}}{{- end -}}
{{- $n -}}
{{- end -}}

{{/* The worker's environment: the same for the workers and the topics job. */}}
{{- define "lstm-scorer.env" -}}
- name: KAFKA_BOOTSTRAP_SERVERS
  value: {{ required "kafka.bootstrapServers is required" .Values.kafka.bootstrapServers | quote }}
- name: MODEL_PATH
  value: {{ .Values.model.path | quote }}
- name: METRICS_ADDR
  value: "0.0.0.0"
- name: METRICS_PORT
  value: {{ .Values.metricsPort | quote }}
- name: CREATE_TOPICS
  value: "false"
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- range $name, $value := .Values.settings }}
{{- if has $name (list "MODEL_PATH" "INSTANCE_ID" "KAFKA_BOOTSTRAP_SERVERS" "METRICS_ADDR" "METRICS_PORT" "CREATE_TOPICS") }}
{{- fail (printf "settings.%s is set by the chart; use the value that sets it (docs/kubernetes.md)" $name) }}
{{- end }}
{{- if ne (toString $value) "" }}
- name: {{ $name }}
  value: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- range $prefix, $properties := dict "KAFKA_" .Values.kafka.properties "KAFKA_CONSUMER_" .Values.kafka.consumerProperties "KAFKA_PRODUCER_" .Values.kafka.producerProperties }}
{{- range $property, $value := $properties }}
- name: {{ printf "%s%s" $prefix ($property | upper | replace "." "_") }}
  value: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "lstm-scorer.envFrom" -}}
{{- if .Values.kafka.existingSecret }}
envFrom:
  - secretRef:
      name: {{ .Values.kafka.existingSecret }}
{{- end }}
{{- end -}}

{{/* Volumes of the model and of the TLS files, and their mounts. */}}
{{- define "lstm-scorer.volumes" -}}
- name: tmp
  emptyDir: {}
{{- if eq .Values.model.source "volume" }}
- name: model
  {{- required "model.volume is required with model.source volume" (.Values.model.volume | default nil) | toYaml | nindent 2 }}
{{- else if eq .Values.model.source "initContainer" }}
- name: model
  emptyDir: {}
{{- else if ne .Values.model.source "image" }}
{{- fail (printf "model.source must be image, volume or initContainer, not %q" .Values.model.source) }}
{{- end }}
{{- if .Values.kafka.tlsSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.tlsSecret }}
{{- end }}
{{- end -}}

{{- define "lstm-scorer.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if ne .Values.model.source "image" }}
- name: model
  mountPath: {{ .Values.model.mountPath }}
  readOnly: true
{{- end }}
{{- if .Values.kafka.tlsSecret }}
- name: kafka-tls
  mountPath: {{ .Values.kafka.tlsMountPath }}
  readOnly: true
{{- end }}
{{- end -}}
