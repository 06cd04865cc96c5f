#!/usr/bin/env bash
# Install what the chart expects on a cluster: the Strimzi operator (1.x, pinned
# OCI chart) and kube-prometheus-stack (pinned). Idempotent; used by
# `make kind-up`, usable on any cluster: KUBE_CONTEXT=my-ctx k8s/install-platform.sh
set -euo pipefail

KUBE_CONTEXT="${KUBE_CONTEXT:-kind-dynpricing}"
STRIMZI_VERSION="${STRIMZI_VERSION:-1.2.0}"
KPS_VERSION="${KPS_VERSION:-88.6.4}"
HELM="${HELM:-helm}"
here="$(cd "$(dirname "$0")" && pwd)"

# Strimzi cluster operator, watching every namespace and not copying the labels
# that change per deploy onto broker pods (k8s/strimzi-values.yaml). skaffold
# leaves this release alone: only `make kind-down` removes it.
"$HELM" upgrade --install strimzi oci://quay.io/strimzi-helm/strimzi-kafka-operator \
  --version "$STRIMZI_VERSION" --kube-context "$KUBE_CONTEXT" \
  --namespace strimzi --create-namespace \
  --values "$here/strimzi-values.yaml" --wait --timeout 10m

# Prometheus operator, Prometheus and Grafana: picks up the chart's
# ServiceMonitor/PrometheusRule (label release=kube-prometheus-stack) and its
# dashboard ConfigMaps (label grafana_dashboard).
"$HELM" upgrade --install kube-prometheus-stack \
  oci://ghcr.io/prometheus-community/charts/kube-prometheus-stack \
  --version "$KPS_VERSION" --kube-context "$KUBE_CONTEXT" \
  --namespace monitoring --create-namespace \
  --values "$here/kube-prometheus-stack-values.yaml" --wait --timeout 15m
