{{/* Names: release-scoped, at most 63 characters. */}}
{{- define "isthmus.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "isthmus.componentName" -}}
{{- printf "%s-%s" (include "isthmus.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "isthmus.keySecretName" -}}
{{- .Values.keys.existingSecret | default (printf "%s-cluster-key" (include "isthmus.fullname" .)) -}}
{{- end -}}

{{/* The trusted peers file ({"<uuid>": {...}}), maintained by the controller. */}}
{{- define "isthmus.peersSecretName" -}}
{{- printf "%s-trusted-peers" (include "isthmus.fullname" .) -}}
{{- end -}}

{{- define "isthmus.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "isthmus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "isthmus.selectorLabels" . }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "isthmus.image" -}}
{{- $image := .Values.image -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository ($image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The cluster values every component needs. Checked once, here, so a missing
one fails the install with a message naming the value.
*/}}
{{- define "isthmus.checkCluster" -}}
{{- $c := .Values.cluster -}}
{{- $_ := required "cluster.uuid is required: this cluster's UUID, e.g. --set cluster.uuid=$(uuidgen | tr A-Z a-z); keep it forever, peers trust it" $c.uuid -}}
{{- if not (regexMatch "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$" $c.uuid) -}}
{{- fail (printf "cluster.uuid must be a lowercase UUID like 8d5f5d2e-0b6c-4f5e-9a1d-3c2b1a0f9e8d, got %q" $c.uuid) -}}
{{- end -}}
{{- $_ := required "cluster.networkName is required: this cluster's Istio network name, e.g. network-a" $c.networkName -}}
{{- $_ := required "cluster.apiHost is required: host[:port] where peers reach this cluster's API proxy, e.g. istio-api.k8s-a.example.com" $c.apiHost -}}
{{- $_ := required "cluster.podCIDR is required: this cluster's pod CIDR(s), comma-separated, e.g. 10.111.0.0/16" $c.podCIDR -}}
{{- $_ := required "cluster.serviceCIDR is required: this cluster's service CIDR(s), comma-separated, e.g. 10.222.0.0/16" $c.serviceCIDR -}}
{{- end -}}

{{/* Host part of cluster.apiHost (host[:port], IPv6 in brackets). */}}
{{- define "isthmus.apiHostName" -}}
{{- $h := .Values.cluster.apiHost -}}
{{- if hasPrefix "[" $h -}}
{{- regexReplaceAll "^\\[([^\\]]*)\\].*$" $h "${1}" -}}
{{- else -}}
{{- regexReplaceAll ":[0-9]+$" $h "" -}}
{{- end -}}
{{- end -}}

{{/*
Command-line flags from an args map (flag name without dashes -> value, each
value rendered with tpl; null drops the flag; a list repeats it), then extraArgs.
*/}}
{{- define "isthmus.args" -}}
{{- $root := .root -}}
{{- range $flag, $value := .args }}
{{- if kindIs "slice" $value }}
{{- range $value }}
- {{ printf "--%s=%s" $flag (tpl (toString .) $root) | quote }}
{{- end }}
{{- else if not (kindIs "invalid" $value) }}
- {{ printf "--%s=%s" $flag (tpl (toString $value) $root) | quote }}
{{- end }}
{{- end }}
{{- range .extra }}
- {{ tpl (toString .) $root | quote }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every component. */}}
{{- define "isthmus.podSpecCommon" -}}
{{- $values := index .root.Values .component -}}
serviceAccountName: {{ include "isthmus.componentName" . }}
automountServiceAccountToken: true
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
affinity:
{{- if $values.affinity }}
  {{- toYaml $values.affinity | nindent 2 }}
{{- else if eq .root.Values.podAntiAffinity "hard" }}
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "isthmus.selectorLabels" . | nindent 12 }}
{{- else }}
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "isthmus.selectorLabels" . | nindent 14 }}
{{- end }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "isthmus.selectorLabels" . | nindent 8 }}
{{- end -}}

{{- define "isthmus.containerSecurity" -}}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end -}}

{{/*
The policy files: the preset's copy in the chart, then policies.files on top
(a file set to "" is removed). Rendered as YAML name -> text.
*/}}
{{- define "isthmus.policyFiles" -}}
{{- $files := dict -}}
{{- $preset := .Values.policies.preset -}}
{{- $glob := "" -}}
{{- if eq $preset "default" }}{{ $glob = "policies/*.yaml" }}
{{- else if eq $preset "strict" }}{{ $glob = "policies/strict/*.yaml" }}
{{- else if ne $preset "none" }}
{{- fail (printf "policies.preset must be default, strict or none, got %q" $preset) }}
{{- end }}
{{- if $glob }}
{{- range $path, $_ := .Files.Glob $glob }}
{{- $_ := set $files (base $path) ($.Files.Get $path) }}
{{- end }}
{{- end }}
{{- range $name, $text := .Values.policies.files }}
{{- if not (regexMatch "^[A-Za-z0-9][-_A-Za-z0-9]*\\.ya?ml$" $name) }}
{{- fail (printf "policies.files: %q must be a file name ending in .yaml or .yml (letters, digits, - and _)" $name) }}
{{- end }}
{{- if $text }}{{ $_ := set $files $name $text }}{{ else }}{{ $_ := unset $files $name }}{{ end }}
{{- end }}
{{- if not $files }}
{{- fail "policies: no policy file left; the proxy would deny everything. Set policies.preset or add policies.files" }}
{{- end }}
{{- toYaml $files -}}
{{- end -}}

{{/*
RBAC rules equal to what the policy files allow: {cluster: [rules], namespaced:
{ns: [rules]}}. A policy `*` verb means get, list and watch; `peers` narrows
per peer, which RBAC cannot: the proxy's account serves all peers.
*/}}
{{- define "isthmus.policyRBAC" -}}
{{- $cluster := list -}}
{{- $namespaced := dict -}}
{{- $files := include "isthmus.policyFiles" . | fromYaml -}}
{{- range $name := keys $files | sortAlpha }}
{{- $doc := index $files $name | fromYaml }}
{{- if hasKey $doc "Error" }}
{{- fail (printf "policies: %s is not valid YAML: %s" $name (index $doc "Error")) }}
{{- end }}
{{- range $i, $rule := $doc.rules | default list }}
{{- $verbs := list }}
{{- range $rule.verbs }}
{{- if eq . "*" }}{{ $verbs = concat $verbs (list "get" "list" "watch") }}{{ else }}{{ $verbs = append $verbs . }}{{ end }}
{{- end }}
{{- $verbs = uniq $verbs }}
{{- if $rule.nonResourceURLs }}
{{- $cluster = append $cluster (dict "nonResourceURLs" $rule.nonResourceURLs "verbs" $verbs) }}
{{- else }}
{{- $r := dict "apiGroups" $rule.apiGroups "resources" $rule.resources "verbs" $verbs }}
{{- with $rule.resourceNames }}{{ $_ := set $r "resourceNames" . }}{{ end }}
{{- if $rule.namespaces }}
{{- range $ns := $rule.namespaces }}
{{- $_ := set $namespaced $ns (append (get $namespaced $ns | default list) $r) }}
{{- end }}
{{- else }}
{{- $cluster = append $cluster $r }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml (dict "cluster" $cluster "namespaced" $namespaced) -}}
{{- end -}}

{{/* Whether to render monitoring.coreos.com objects: auto follows the cluster's APIs. */}}
{{- define "isthmus.monitoringEnabled" -}}
{{- $setting := toString .Values.monitoring.serviceMonitor.enabled -}}
{{- if or (eq $setting "true") (and (eq $setting "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}
true
{{- end -}}
{{- end -}}
