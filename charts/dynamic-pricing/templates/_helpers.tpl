{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "dynpricing.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters. A release name that
already contains the chart name is used as it is.
*/}}
{{- define "dynpricing.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of one component's objects: "<fullname>-<component>", fullname shortened
so that the whole stays within 63 characters.
*/}}
{{- define "dynpricing.componentName" -}}
{{- $full := include "dynpricing.fullname" .root }}
{{- printf "%s-%s" ($full | trunc (int (sub 62 (len .component)))) .component | trimSuffix "-" }}
{{- end }}

{{- define "dynpricing.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: name and instance only (plus component where given), so they
never change on upgrade.
*/}}
{{- define "dynpricing.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dynpricing.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dynpricing.componentSelectorLabels" -}}
{{ include "dynpricing.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Standard labels for every object.
*/}}
{{- define "dynpricing.labels" -}}
helm.sh/chart: {{ include "dynpricing.chart" . }}
{{ include "dynpricing.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dynamic-pricing
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "dynpricing.componentLabels" -}}
{{ include "dynpricing.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "dynpricing.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dynpricing.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference of a component: repository, then "@digest" when a digest is
set, otherwise ":tag" (the chart's appVersion when the tag is empty).
*/}}
{{- define "dynpricing.image" -}}
{{- $img := .image }}
{{- $registry := .root.Values.global.imageRegistry | default "" }}
{{- $repo := $img.repository }}
{{- if $registry }}{{ $repo = printf "%s/%s" $registry $repo }}{{ end }}
{{- if $img.digest }}
{{- printf "%s@%s" $repo $img.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .root.Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/*
Name of the Strimzi Kafka cluster. Strimzi derives DNS-label names (at most 63
characters) from it, the longest being "<cluster>-entity-topic-operator-config"
(29 more), so it has at most 34 characters: "<fullname>-kafka" with the full
name cut to 28. values.schema.json holds a given clusterName to the same 34.
*/}}
{{- define "dynpricing.kafkaClusterName" -}}
{{- $full := include "dynpricing.fullname" . | trunc 28 | trimSuffix "-" }}
{{- default (printf "%s-kafka" $full) .Values.kafka.strimzi.clusterName }}
{{- end }}

{{/*
Name of the KafkaNodePool. Broker pods are "<cluster>-<pool>-<node id>": with a
cluster name of at most 34 characters and node ids below 1000, a pool name of at
most 24 (values.schema.json) keeps the pod name, its hostname, within 63.
*/}}
{{- define "dynpricing.kafkaPoolName" -}}
{{- .Values.kafka.strimzi.poolName }}
{{- end }}

{{/*
Labels of the Strimzi custom resources. Strimzi copies a custom resource's
labels onto the pods it creates, and a changed pod label rolls the brokers: only
labels that stay the same for the life of the release (no chart version, no
commonLabels).
*/}}
{{- define "dynpricing.strimziLabels" -}}
{{ include "dynpricing.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: dynamic-pricing
{{- end }}

{{/*
Name of a role's KafkaUser (and of the Secret Strimzi creates for it), which is
also its principal: "<fullname>-<role>". Argument: dict root, role.
*/}}
{{- define "dynpricing.kafkaUserName" -}}
{{- include "dynpricing.componentName" (dict "root" .root "component" .role) }}
{{- end }}

{{/*
A role's own credentials on external Kafka (kafka.external.roles.<role>), over
the shared ones. Argument: dict root, role. Returns JSON.
*/}}
{{- define "dynpricing.externalCredentials" -}}
{{- $e := .root.Values.kafka.external }}
{{- $own := index $e.roles .role | default dict }}
{{- $shared := dict "username" $e.sasl.username "existingSecret" $e.sasl.existingSecret "passwordKey" $e.sasl.passwordKey "clientSecret" $e.tls.clientSecret }}
{{- merge (deepCopy $own) $shared | toJson }}
{{- end }}

{{/*
The Strimzi client listener follows the authentication: plain (9092) without
authentication, TLS client certificates on 9093, SCRAM-SHA-512 over TLS on 9094.
*/}}
{{- define "dynpricing.strimziListener" -}}
{{- $auth := .Values.kafka.strimzi.user.enabled | ternary .Values.kafka.strimzi.user.authentication "none" }}
{{- if eq $auth "tls" }}
{{- dict "name" "tls" "port" 9093 "tls" true "auth" "tls" "protocol" "SSL" | toJson }}
{{- else if eq $auth "scram-sha-512" }}
{{- dict "name" "scram" "port" 9094 "tls" true "auth" "scram-sha-512" "protocol" "SASL_SSL" | toJson }}
{{- else }}
{{- dict "name" "plain" "port" 9092 "tls" false "auth" "none" "protocol" "PLAINTEXT" | toJson }}
{{- end }}
{{- end }}

{{/*
Kafka bootstrap address the services use.
*/}}
{{- define "dynpricing.bootstrapServers" -}}
{{- if .Values.kafka.strimzi.enabled }}
{{- $l := include "dynpricing.strimziListener" . | fromJson }}
{{- printf "%s-kafka-bootstrap.%s.svc:%d" (include "dynpricing.kafkaClusterName" .) .Release.Namespace (int $l.port) }}
{{- else }}
{{- required "kafka.external.bootstrapServers is required when kafka.strimzi.enabled is false" .Values.kafka.external.bootstrapServers }}
{{- end }}
{{- end }}

{{- define "dynpricing.securityProtocol" -}}
{{- if .Values.kafka.strimzi.enabled }}
{{- (include "dynpricing.strimziListener" . | fromJson).protocol }}
{{- else }}
{{- .Values.kafka.external.securityProtocol }}
{{- end }}
{{- end }}

{{/*
Directory the Kafka TLS files are mounted at.
*/}}
{{- define "dynpricing.kafkaTlsDir" -}}/etc/dynpricing/kafka{{- end }}

{{/*
Kafka and topic settings shared by all services, as "KEY: value" pairs for the
ConfigMap (non-secret values only). Argument: dict root, prefix, component
(the role whose principal the service runs as).
The services listen on every interface (probes and Prometheus come from outside
the container; they bind 127.0.0.1 by default) and never create topics: Strimzi's
KafkaTopics make them, or whoever runs the external brokers; a service would
create them with its own partitions and replication factor, racing the Topic
Operator. Until the topics exist a service waits, not ready.
*/}}
{{- define "dynpricing.commonConfig" -}}
{{- $root := .root }}
{{- $p := .prefix }}
{{- $v := $root.Values }}
{{ $p }}KAFKA__BOOTSTRAP_SERVERS: {{ include "dynpricing.bootstrapServers" $root | quote }}
{{ $p }}KAFKA__SECURITY_PROTOCOL: {{ include "dynpricing.securityProtocol" $root | quote }}
{{- $tlsDir := include "dynpricing.kafkaTlsDir" $root }}
{{- if $v.kafka.strimzi.enabled }}
{{- $l := include "dynpricing.strimziListener" $root | fromJson }}
{{- if $l.tls }}
{{ $p }}KAFKA__SSL_CA_LOCATION: {{ printf "%s/ca/ca.crt" $tlsDir | quote }}
{{- end }}
{{- if eq $l.auth "scram-sha-512" }}
{{ $p }}KAFKA__SASL_MECHANISM: "SCRAM-SHA-512"
{{ $p }}KAFKA__SASL_USERNAME: {{ include "dynpricing.kafkaUserName" (dict "root" $root "role" .component) | quote }}
{{- else if eq $l.auth "tls" }}
{{ $p }}KAFKA__SSL_CERTIFICATE_LOCATION: {{ printf "%s/user/user.crt" $tlsDir | quote }}
{{ $p }}KAFKA__SSL_KEY_LOCATION: {{ printf "%s/user/user.key" $tlsDir | quote }}
{{- end }}
{{- else }}
{{- $own := include "dynpricing.externalCredentials" (dict "root" $root "role" .component) | fromJson }}
{{- with $v.kafka.external }}
{{- if .tls.caSecret }}
{{ $p }}KAFKA__SSL_CA_LOCATION: {{ printf "%s/ca/%s" $tlsDir .tls.caKey | quote }}
{{- end }}
{{- if $own.clientSecret }}
{{ $p }}KAFKA__SSL_CERTIFICATE_LOCATION: {{ printf "%s/user/%s" $tlsDir .tls.certificateKey | quote }}
{{ $p }}KAFKA__SSL_KEY_LOCATION: {{ printf "%s/user/%s" $tlsDir .tls.keyKey | quote }}
{{- end }}
{{- if .sasl.mechanism }}
{{ $p }}KAFKA__SASL_MECHANISM: {{ .sasl.mechanism | quote }}
{{ $p }}KAFKA__SASL_USERNAME: {{ $own.username | quote }}
{{- end }}
{{- end }}
{{- end }}
{{ $p }}TOPICS__DEMAND: {{ $v.topics.demand.name | quote }}
{{ $p }}TOPICS__DECISIONS: {{ $v.topics.decisions.name | quote }}
{{ $p }}TOPICS__OUTCOMES: {{ $v.topics.outcomes.name | quote }}
{{ $p }}TOPICS__DEAD_LETTERS: {{ $v.topics.deadLetters.name | quote }}
{{ $p }}TOPICS__MODEL: {{ $v.topics.model.name | quote }}
{{ $p }}HTTP_PORT: {{ $v.httpPort | quote }}
{{ $p }}HTTP_HOST: "0.0.0.0"
{{ $p }}CREATE_TOPICS: "false"
{{ $p }}LOG_LEVEL: {{ $v.logging.level | quote }}
{{ $p }}LOG_FORMAT: {{ $v.logging.format | quote }}
{{- end }}

{{/*
Secret environment of a service: the SASL password from its role's KafkaUser
Secret or from an existing Secret. Argument: dict root, prefix, component.
*/}}
{{- define "dynpricing.secretEnv" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- if and $v.kafka.strimzi.enabled $v.kafka.strimzi.user.enabled (eq $v.kafka.strimzi.user.authentication "scram-sha-512") }}
- name: {{ .prefix }}KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "dynpricing.kafkaUserName" (dict "root" $root "role" .component) }}
      key: password
{{- else if and (not $v.kafka.strimzi.enabled) $v.kafka.external.sasl.mechanism }}
{{- $own := include "dynpricing.externalCredentials" (dict "root" $root "role" .component) | fromJson }}
- name: {{ .prefix }}KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.external.sasl.existingSecret (or kafka.external.roles.<role>.existingSecret) is required with a SASL mechanism" $own.existingSecret }}
      key: {{ $own.passwordKey }}
{{- end }}
{{- end }}

{{/*
Volumes holding the Kafka TLS files (CA and the role's client certificate), if
any. Argument: dict root, component.
*/}}
{{- define "dynpricing.kafkaTlsVolumes" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- if $v.kafka.strimzi.enabled }}
{{- $l := include "dynpricing.strimziListener" $root | fromJson }}
{{- if $l.tls }}
- name: kafka-ca
  secret:
    secretName: {{ include "dynpricing.kafkaClusterName" $root }}-cluster-ca-cert
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- if eq $l.auth "tls" }}
- name: kafka-user
  secret:
    secretName: {{ include "dynpricing.kafkaUserName" (dict "root" $root "role" .component) }}
    items:
      - key: user.crt
        path: user.crt
      - key: user.key
        path: user.key
{{- end }}
{{- else }}
{{- $own := include "dynpricing.externalCredentials" (dict "root" $root "role" .component) | fromJson }}
{{- with $v.kafka.external.tls }}
{{- if .caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ .caSecret }}
{{- end }}
{{- end }}
{{- if $own.clientSecret }}
- name: kafka-user
  secret:
    secretName: {{ $own.clientSecret }}
{{- end }}
{{- end }}
{{- end }}

{{- define "dynpricing.kafkaTlsMounts" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $dir := include "dynpricing.kafkaTlsDir" $root }}
{{- $ca := false }}
{{- $user := false }}
{{- if $v.kafka.strimzi.enabled }}
{{- $l := include "dynpricing.strimziListener" $root | fromJson }}
{{- $ca = $l.tls }}
{{- $user = eq $l.auth "tls" }}
{{- else }}
{{- $own := include "dynpricing.externalCredentials" (dict "root" $root "role" .component) | fromJson }}
{{- $ca = not (empty $v.kafka.external.tls.caSecret) }}
{{- $user = not (empty $own.clientSecret) }}
{{- end }}
{{- if $ca }}
- name: kafka-ca
  mountPath: {{ $dir }}/ca
  readOnly: true
{{- end }}
{{- if $user }}
- name: kafka-user
  mountPath: {{ $dir }}/user
  readOnly: true
{{- end }}
{{- end }}


{{/*
The components this release deploys, as a JSON list: the pricing roles of the
mode (the engine, or the deciders and the learner), then the producer and the
simulator when enabled. Every per-component template ranges over it.
*/}}
{{- define "dynpricing.components" -}}
{{- $v := .Values }}
{{- $list := include "dynpricing.pricingComponents" . | fromJsonArray }}
{{- range $component := list "producer" "simulator" }}
{{- if (index $v $component).enabled }}
{{- $list = append $list $component }}
{{- end }}
{{- end }}
{{- $list | toJson }}
{{- end }}

{{/*
The pricing roles of the mode, as a JSON list: ["engine"] (embedded) or
["decider", "learner"] (split).
*/}}
{{- define "dynpricing.pricingComponents" -}}
{{- if eq .Values.mode "embedded" }}
{{- list "engine" | toJson }}
{{- else }}
{{- list "decider" "learner" | toJson }}
{{- end }}
{{- end }}

{{/*
Components that own the learning state (a single replica, recreated, the state
file on a volume).
*/}}
{{- define "dynpricing.isStateful" -}}
{{- if has . (list "engine" "learner") }}true{{ end }}
{{- end }}

{{/*
Name of a stateful component's state claim: the existing claim if given,
"<fullname>-<component>-state" otherwise. Argument: dict root, component.
*/}}
{{- define "dynpricing.stateClaimName" -}}
{{- $p := (index .root.Values .component).persistence }}
{{- $p.existingClaim | default (include "dynpricing.componentName" (dict "root" .root "component" (printf "%s-state" .component))) }}
{{- end }}

{{/*
The shared pricing settings (values `pricing`) as ConfigMap entries, the same for
every pricing role (a decider refuses a model made with another grid, prior,
policy or objective). Argument: dict root, prefix, basePrices (whether the role
prices in money: the engine and the deciders; the learner learns from the
decisions, which carry their price).
*/}}
{{- define "dynpricing.pricingConfig" -}}
{{- $p := .prefix }}
{{- $basePrices := .basePrices }}
{{- with .root.Values.pricing }}
{{ $p }}PRICES: {{ .prices | toJson | quote }}
{{- if $basePrices }}
{{ $p }}BASE_PRICES: {{ .basePrices | toJson | quote }}
{{- end }}
{{ $p }}LOCATIONS: {{ .locations | toJson | quote }}
{{- if .policy }}
{{ $p }}POLICY: {{ .policy | quote }}
{{- end }}
{{ $p }}OBJECTIVE: {{ .objective | quote }}
{{ $p }}PRIOR_ALPHA: {{ .priorAlpha | toJson | quote }}
{{ $p }}PRIOR_BETA: {{ .priorBeta | toJson | quote }}
{{- if not (kindIs "invalid" .halfLifeS) }}
{{ $p }}HALF_LIFE_S: {{ .halfLifeS | toJson | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Settings of a component that learns (the engine, the learner): the state file
and the join's rules. Argument: dict root, prefix, component.
*/}}
{{- define "dynpricing.learningConfig" -}}
{{- $p := .prefix }}
{{- $c := index .root.Values .component }}
{{ $p }}STATE_PATH: {{ printf "%s/bandit_stats.json" $c.persistence.mountPath | quote }}
{{- with $c.settings }}
{{ $p }}SNAPSHOT_INTERVAL_S: {{ .snapshotIntervalS | toJson | quote }}
{{ $p }}DECISION_TIMEOUT_S: {{ .decisionTimeoutS | toJson | quote }}
{{ $p }}EXPIRED_AS: {{ .expiredAs | quote }}
{{ $p }}MAX_PENDING: {{ .maxPending | int64 | quote }}
{{- end }}
{{- end }}

{{/*
The ConfigMap data of one component (dict root, component): the shared Kafka and
topic settings plus its own. Its checksum annotates only that component's pods,
so a change restarts just the component it concerns.
*/}}
{{- define "dynpricing.configData" -}}
{{- $root := .root }}
{{- $component := .component }}
{{- $c := index $root.Values $component }}
{{- $p := printf "DYNPRICING_%s_" (upper $component) }}
{{- $ctx := dict "root" $root "prefix" $p "component" $component }}
{{- include "dynpricing.commonConfig" $ctx | trim }}
{{- with $c.settings }}
{{- if has $component (list "engine" "decider" "learner" "simulator") }}
{{ $p }}GROUP_ID: {{ .groupId | quote }}
{{- end }}
{{- if has $component (list "engine" "decider" "learner") }}
{{- include "dynpricing.pricingConfig" (dict "root" $root "prefix" $p "basePrices" (ne $component "learner")) }}
{{- end }}
{{- if has $component (list "engine" "learner") }}
{{- include "dynpricing.learningConfig" $ctx }}
{{- end }}
{{- if has $component (list "engine" "decider") }}
{{ $p }}BATCH_SIZE: {{ .batchSize | int64 | quote }}
{{- end }}
{{- if eq $component "decider" }}
{{- if not (kindIs "invalid" .sessionTimeoutS) }}
{{ $p }}SESSION_TIMEOUT_S: {{ .sessionTimeoutS | toJson | quote }}
{{- end }}
{{- else if eq $component "learner" }}
{{ $p }}MODEL_PUBLISH_INTERVAL_S: {{ .modelPublishIntervalS | toJson | quote }}
{{- else if eq $component "producer" }}
{{ $p }}RATE: {{ .rate | toJson | quote }}
{{ $p }}COUNT: {{ .count | int64 | quote }}
{{ $p }}LOCATIONS: {{ .locations | toJson | quote }}
{{- else if eq $component "simulator" }}
{{- if .marketPath }}
{{ $p }}MARKET_PATH: {{ .marketPath | quote }}
{{- end }}
{{ $p }}DELAY_MEAN_S: {{ .delayMeanS | toJson | quote }}
{{- end }}
{{- if not (kindIs "invalid" .seed) }}
{{ $p }}SEED: {{ .seed | int64 | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Refuse decider counts that cannot work: each decider needs a demand partition to
do anything (checked when the chart makes the topic, so it knows its partitions),
and an autoscaler's range must be a range.
*/}}
{{- define "dynpricing.checkDeciderScale" -}}
{{- $v := .Values }}
{{- if ne $v.mode "embedded" }}
{{- $d := $v.decider }}
{{- $most := $d.autoscaling.enabled | ternary $d.autoscaling.maxReplicas $d.replicas | int }}
{{- $partitions := $v.topics.demand.partitions | int }}
{{- if and $v.kafka.strimzi.enabled $v.topics.create (gt $most $partitions) }}
{{- fail (printf "decider: up to %d deciders but topics.demand.partitions is %d; a decider without a partition does nothing: raise the partitions or lower %s" $most $partitions ($d.autoscaling.enabled | ternary "decider.autoscaling.maxReplicas" "decider.replicas")) }}
{{- end }}
{{- if and $d.autoscaling.enabled (gt (int $d.autoscaling.minReplicas) (int $d.autoscaling.maxReplicas)) }}
{{- fail "decider.autoscaling.minReplicas is above decider.autoscaling.maxReplicas" }}
{{- end }}
{{- end }}
{{- end }}
