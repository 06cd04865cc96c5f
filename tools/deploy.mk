# Deployment tooling: pinned helm (3 and 4), kind, promtool and checkov, plus
# the kind/skaffold workflow. Included by the top-level Makefile.
# Everything lands in the git-ignored .tools/; nothing downloads at run time.

TOOLS_DIR      := $(CURDIR)/.tools
HELM3_VERSION  := v3.22.0
HELM4_VERSION  := v4.3.1
KIND_VERSION   := v0.33.0
CHECKOV_VERSION := 3.3.30
STRIMZI_VERSION := 1.2.0
KPS_VERSION    := 88.6.4
KIND_CLUSTER   := dynpricing
KUBE_CONTEXT   := kind-$(KIND_CLUSTER)
APP_NAMESPACE  := dynpricing
CONTAINER_ENGINE ?= docker

# podman (no Docker engine here): the project's settings, and the local stand-in
# for the Dockerfile's python base that no registry serves here.
PODMAN_CONF       := $(CURDIR)/tools/podman/containers.conf
PODMAN_BASE_IMAGE := localhost/dynpricing-python-base:bookworm
PODMAN_BASE_CACHE := $(CURDIR)/.cache/podman-base

HELM3   := $(TOOLS_DIR)/helm3/helm
HELM4   := $(TOOLS_DIR)/helm4/helm
HELM    := $(HELM3)
KIND    := $(TOOLS_DIR)/bin/kind
CHECKOV := $(TOOLS_DIR)/checkov-venv/bin/checkov
# `go install` skips Helm's Makefile: set the version it reports and, for Helm 3,
# the default Kubernetes version (1.20 otherwise) as its release builds do.
# The tests pass --kube-version explicitly all the same.
HELM3_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM3_VERSION) \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37 \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37
HELM4_LDFLAGS := -X helm.sh/helm/v4/internal/version.version=$(HELM4_VERSION)

.PHONY: helm helm3 helm4 kind promtool checkov deploy-tools podman-base kind-up kind-down deploy dev

$(HELM3):
	GOBIN=$(TOOLS_DIR)/helm3 GOFLAGS=-buildvcs=false go install -ldflags '$(HELM3_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM3_VERSION)

$(HELM4):
	GOBIN=$(TOOLS_DIR)/helm4 GOFLAGS=-buildvcs=false go install -ldflags '$(HELM4_LDFLAGS)' helm.sh/helm/v4/cmd/helm@$(HELM4_VERSION)

helm3: $(HELM3) ## build the pinned Helm 3 into .tools/helm3
helm4: $(HELM4) ## build the pinned Helm 4 into .tools/helm4
helm: helm3 helm4 ## build both pinned Helm versions

$(KIND):
	GOBIN=$(TOOLS_DIR)/bin GOFLAGS=-buildvcs=false go install sigs.k8s.io/kind@$(KIND_VERSION)

kind: $(KIND) ## build the pinned kind into .tools/bin

# System packages are installed by .ci/run (or by hand, README "Prerequisites"):
# make test itself needs no root.
promtool: ## check for promtool and prometheus (Debian's prometheus package)
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || \
	  echo "promtool/prometheus missing: apt-get install prometheus (their tests skip; under CI=true they fail)" >&2

podman-base: ## the local python base image for podman: debootstrap (root) once, cached in .cache/
	@CONTAINERS_CONF=$(PODMAN_CONF) podman image exists $(PODMAN_BASE_IMAGE) || \
	  CONTAINERS_CONF=$(PODMAN_CONF) bash tools/podman/base-image.sh $(PODMAN_BASE_IMAGE) $(PODMAN_BASE_CACHE)

$(CHECKOV):
	python3 -m venv $(TOOLS_DIR)/checkov-venv
	$(TOOLS_DIR)/checkov-venv/bin/pip install -q "checkov==$(CHECKOV_VERSION)"

checkov: $(CHECKOV) ## install the pinned checkov into its own venv

deploy-tools: helm promtool checkov ## everything tests/deploy needs

kind-up: kind helm ## create the local kind cluster
	@$(KIND) get clusters 2>/dev/null | grep -qx $(KIND_CLUSTER) || \
	  $(KIND) create cluster --config k8s/kind-cluster.yaml --name $(KIND_CLUSTER)
	PATH=$(TOOLS_DIR)/helm3:$$PATH bash k8s/install-platform.sh

kind-down: kind ## delete the local kind cluster
	$(KIND) delete cluster --name $(KIND_CLUSTER)

# Build the five images, load them into kind and install or upgrade the chart;
# each image is tagged with its content, so only changed services roll.
deploy: kind helm ## build images, load them into kind, install the chart
	KUBE_CONTEXT=$(KUBE_CONTEXT) KIND_CLUSTER=$(KIND_CLUSTER) NAMESPACE=$(APP_NAMESPACE) \
	  CONTAINER_ENGINE=$(CONTAINER_ENGINE) HELM=$(HELM3) KIND=$(KIND) bash k8s/deploy.sh

dev: kind helm ## skaffold dev loop on the kind cluster
	PATH=$(TOOLS_DIR)/helm3:$(TOOLS_DIR)/bin:$$PATH skaffold dev -p kind --kube-context $(KUBE_CONTEXT)
