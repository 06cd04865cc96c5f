#!/usr/bin/env bash
# `make deploy`: build the five images (the chart's mode picks which run), load them into the kind cluster and
# install or upgrade the chart. Each image is tagged with its own content (the
# first 12 hex digits of the image id), so a deploy rolls exactly the services
# whose image changed, and a deploy of unchanged code rolls nothing.
set -euo pipefail

KUBE_CONTEXT="${KUBE_CONTEXT:-kind-dynpricing}"
KIND_CLUSTER="${KIND_CLUSTER:-dynpricing}"
NAMESPACE="${NAMESPACE:-dynpricing}"
CONTAINER_ENGINE="${CONTAINER_ENGINE:-docker}"
HELM="${HELM:-helm}"
KIND="${KIND:-kind}"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"

tags=()
for service in engine decider learner producer simulator; do
  image="dynpricing-$service"
  "$CONTAINER_ENGINE" build --target "$service" -t "$image:build" "$repo"
  id="$("$CONTAINER_ENGINE" image inspect --format '{{.Id}}' "$image:build")"
  id="${id#sha256:}"
  tag="dev-${id:0:12}"
  "$CONTAINER_ENGINE" tag "$image:build" "$image:$tag"
  "$KIND" load docker-image "$image:$tag" --name "$KIND_CLUSTER"
  tags+=(--set "$service.image.tag=$tag")
done

"$HELM" upgrade --install dynpricing "$repo/charts/dynamic-pricing" \
  --kube-context "$KUBE_CONTEXT" --namespace "$NAMESPACE" --create-namespace \
  --values "$here/kind-values.yaml" --wait --timeout 15m "${tags[@]}"
