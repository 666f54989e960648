{{/* Base name of every object: the release name, or "<release>-tokengate" when it does not say tokengate. */}}
{{- define "tokengate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; call with (dict "ctx" $ "component" "proxy"). */}}
{{- define "tokengate.labels" -}}
{{ include "tokengate.selectorLabels" . }}
app.kubernetes.io/part-of: tokengate
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version }}
{{- end -}}

{{- define "tokengate.selectorLabels" -}}
app.kubernetes.io/name: tokengate-{{ .component }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Image of a component; call with (dict "ctx" $ "component" "proxy"). */}}
{{- define "tokengate.image" -}}
{{- printf "%s/%s:%s" .ctx.Values.image.registry .component (.ctx.Values.image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}

{{- define "tokengate.pepperSecretName" -}}
{{- .Values.pepper.existingSecret | default (printf "%s-pepper" (include "tokengate.fullname" .)) -}}
{{- end -}}

{{/* The proxy URL written into issued key Secrets. */}}
{{- define "tokengate.publicBaseUrl" -}}
{{- .Values.publicBaseUrl | default (printf "http://%s-proxy.%s.svc:%d" (include "tokengate.fullname" .) .Release.Namespace (int .Values.proxy.port)) -}}
{{- end -}}

{{/* The portal URL used in invite links: explicit, else the Ingress host, else the in-cluster Service. */}}
{{- define "tokengate.portalBaseUrl" -}}
{{- if .Values.portalBaseUrl -}}
{{- .Values.portalBaseUrl -}}
{{- else if .Values.portal.ingress.enabled -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.portal.ingress.tls.enabled) .Values.portal.ingress.host -}}
{{- else -}}
{{- printf "http://%s-portal.%s.svc:%d" (include "tokengate.fullname" .) .Release.Namespace (int .Values.portal.port) -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by the processes that talk to Redis. */}}
{{- define "tokengate.redisEnv" -}}
- name: ConnectionStrings__Redis
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret }}
      key: {{ .Values.redis.key }}
- name: TokenGate__Redis__KeyPrefix
  value: {{ .Values.redis.keyPrefix | quote }}
{{- end -}}

{{- define "tokengate.postgresEnv" -}}
- name: ConnectionStrings__Postgres
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgresql.existingSecret }}
      key: {{ .Values.postgresql.key }}
{{- end -}}

{{/* Env every process gets: the log format, and TMPDIR (.NET's temp files and diagnostics socket; the only
     writable path in the pod). */}}
{{- define "tokengate.commonEnv" -}}
- name: TokenGate__LogFormat
  value: {{ .Values.logFormat | quote }}
- name: TMPDIR
  value: /tmp
{{- end -}}

{{- define "tokengate.credentialKeysSecretName" -}}
{{- .Values.credentialKeys.existingSecret | default (printf "%s-credential-keys" (include "tokengate.fullname" .)) -}}
{{- end -}}

{{/* The whole credential keys Secret as a folder (one file per key id, and "active"): a rotation adds items. */}}
{{- define "tokengate.credentialKeysVolume" -}}
- name: credential-keys
  secret:
    secretName: {{ include "tokengate.credentialKeysSecretName" . }}
{{- end -}}

{{- define "tokengate.pepperVolume" -}}
- name: pepper
  secret:
    secretName: {{ include "tokengate.pepperSecretName" . }}
    items:
    - key: {{ .Values.pepper.key }}
      path: pepper
{{- end -}}

{{/* Pod labels: selector labels plus what does not change with every chart release (no rollout on chart bumps). */}}
{{- define "tokengate.podLabels" -}}
{{ include "tokengate.selectorLabels" . }}
app.kubernetes.io/part-of: tokengate
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
{{- end -}}
