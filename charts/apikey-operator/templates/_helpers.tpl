{{/*
The chart name, overridable.
*/}}
{{- define "apikey-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: the release name, plus the chart name unless the
release name already contains it. Truncated to 63 characters (DNS label limit).
*/}}
{{- define "apikey-operator.fullname" -}}
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
The credential store's resource names.
*/}}
{{- define "apikey-operator.credstoreName" -}}
{{- printf "%s-credstore" (include "apikey-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "apikey-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels shared by every object (Kubernetes recommended labels), plus the user's
`commonLabels` (the schema keeps those off the `app.kubernetes.io/` and `helm.sh/` keys
set here, so no key is rendered twice).
*/}}
{{- define "apikey-operator.commonLabels" -}}
helm.sh/chart: {{ include "apikey-operator.chart" . }}
app.kubernetes.io/name: {{ include "apikey-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: apikey-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of the operator's objects.
*/}}
{{- define "apikey-operator.labels" -}}
{{ include "apikey-operator.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Selector of the operator's pods (immutable once installed: never add to it).
*/}}
{{- define "apikey-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "apikey-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "apikey-operator.credstoreLabels" -}}
{{ include "apikey-operator.commonLabels" . }}
app.kubernetes.io/component: credstore
{{- end }}

{{- define "apikey-operator.credstoreSelectorLabels" -}}
app.kubernetes.io/name: {{ include "apikey-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: credstore
{{- end }}

{{/*
The operator's ServiceAccount name.
*/}}
{{- define "apikey-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "apikey-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}, the tag defaulting to the appVersion.
*/}}
{{- define "apikey-operator.imageRef" -}}
{{- $repository := index . 0 }}
{{- $tag := index . 1 }}
{{- $digest := index . 2 }}
{{- if $digest }}
{{- printf "%s@%s" $repository $digest }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{- define "apikey-operator.image" -}}
{{- include "apikey-operator.imageRef" (list .Values.image.repository (default .Chart.AppVersion .Values.image.tag) .Values.image.digest) }}
{{- end }}

{{- define "apikey-operator.credstoreImage" -}}
{{- if .Values.credstore.image.repository }}
{{- include "apikey-operator.imageRef" (list .Values.credstore.image.repository (default .Chart.AppVersion .Values.credstore.image.tag) "") }}
{{- else }}
{{- include "apikey-operator.image" . }}
{{- end }}
{{- end }}

{{/*
The namespace a namespaced operator watches.
*/}}
{{- define "apikey-operator.watchNamespace" -}}
{{- default .Release.Namespace .Values.watch.namespace }}
{{- end }}

{{/*
Restricted pod security (Pod Security Standards "restricted"): shared by both workloads.
*/}}
{{- define "apikey-operator.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "apikey-operator.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The rules the operator needs in every namespace it serves. Why each is needed is documented
in the chart README ("RBAC"); tests/cluster/chart.rs runs the operator with exactly these
rules through a full ApiToken lifecycle.
*/}}
{{- define "apikey-operator.namespacedRules" -}}
# CredentialStores: watched (its status is written through the subresource below).
- apiGroups: ["apikeys.dev"]
  resources: ["credentialstores"]
  verbs: ["list", "watch"]
# The key kinds: watched; read fresh when the cache lags the operator's own write (get);
# the cleanup finalizer added and removed (patch).
- apiGroups: ["apikeys.dev"]
  resources: ["apitokens", "apiclients", "serviceaccountkeys"]
  verbs: ["get", "list", "watch", "patch"]
# Status written with server-side apply on the status subresource.
- apiGroups: ["apikeys.dev"]
  resources: ["credentialstores/status", "apitokens/status", "apiclients/status", "serviceaccountkeys/status"]
  verbs: ["patch"]
# Target Secrets: watched by label (managed-by), written with server-side apply (create,
# patch), released on Orphan (patch), removed on Delete (delete); store credential Secrets
# are read (get) and watched by metadata (list/watch).
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Events on transitions (events.k8s.io/v1; repeated events are patched as a series).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# spec.rolloutRestart: the pod template of the named workloads is patched, and their
# rollout followed (read) before the previous credential is retired.
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "patch"]
{{- end }}

{{/*
The rules only a cluster-wide operator needs.
*/}}
{{- define "apikey-operator.clusterRules" -}}
# ClusterCredentialStores: watched, status written.
- apiGroups: ["apikeys.dev"]
  resources: ["clustercredentialstores"]
  verbs: ["list", "watch"]
- apiGroups: ["apikeys.dev"]
  resources: ["clustercredentialstores/status"]
  verbs: ["patch"]
# A ClusterCredentialStore's spec.namespaceSelector is matched against namespace labels.
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get"]
{{- end }}

{{/*
The rules of leader election, in the release namespace only.
*/}}
{{- define "apikey-operator.leaderElectionRules" -}}
# The Lease: read and created if missing (get, create), taken, renewed and released with
# server-side apply and patches (patch), and watched so a standby campaigns as soon as the
# leader releases it (list, watch).
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "list", "watch", "create", "patch"]
{{- end }}

{{/*
The rules of the roles for people (templates/user-roles.yaml): reading the key kinds and the
stores, for view, edit and admin. Neither stores nor keys hold secrets: credentials are named
by Secret reference, and key statuses carry fingerprints only.
*/}}
{{- define "apikey-operator.userReadRules" -}}
- apiGroups: ["apikeys.dev"]
  resources: ["apitokens", "apiclients", "serviceaccountkeys", "credentialstores"]
  verbs: ["get", "list", "watch"]
# Cluster-scoped: effective only through a ClusterRoleBinding (a RoleBinding ignores it).
- apiGroups: ["apikeys.dev"]
  resources: ["clustercredentialstores"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{/*
Writing the key kinds (their spec and metadata; never status), for edit and admin.
*/}}
{{- define "apikey-operator.userKeyWriteRules" -}}
- apiGroups: ["apikeys.dev"]
  resources: ["apitokens", "apiclients", "serviceaccountkeys"]
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
{{- end }}

{{/*
The cluster identity: `clusterId`, else the kube-system namespace's UID when Helm can look
it up (empty when rendering offline; the operator then reads it itself).
*/}}
{{- define "apikey-operator.clusterId" -}}
{{- if .Values.clusterId -}}
{{- .Values.clusterId -}}
{{- else -}}
{{- $kubeSystem := lookup "v1" "Namespace" "" "kube-system" -}}
{{- if $kubeSystem -}}{{- $kubeSystem.metadata.uid -}}{{- end -}}
{{- end -}}
{{- end }}
