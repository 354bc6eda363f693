#!/usr/bin/env bash
# End-to-end test of buildwright on a kind cluster: build the image, install deploy/, run the
# book's kaniko and buildah scenarios against shipwright-io/sample-nodejs, and check that the
# images landed in a local registry with the digests the BuildRuns report.
#
# Needs docker, kind, kubectl and curl, and internet access (GitHub, Docker Hub, quay.io).
#   e2e/kind.sh                 # everything, then delete the cluster and the registry
#   KEEP=1 e2e/kind.sh          # leave the cluster and registry running afterwards
# Settings (environment): CLUSTER_NAME, REGISTRY_PORT, IMAGE, KIND_NODE_IMAGE,
# BUILDRUN_TIMEOUT (seconds per BuildRun), ROLLOUT_TIMEOUT (seconds), SCENARIOS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_NAME="${CLUSTER_NAME:-buildwright-e2e}"
# The scenarios in e2e/scenarios/ push to this name: pods reach the registry container by its
# name on the `kind` Docker network.
REGISTRY_NAME="buildwright-e2e-registry"
REGISTRY_PORT="${REGISTRY_PORT:-5001}"
# The reference deploy/ installs: loading a local build under this name means the
# Deployment and its step image run exactly what was built, with no overlay.
IMAGE="${IMAGE:-ghcr.io/buildwright/buildwright:0.1.0}"
NAMESPACE="buildwright-e2e"
BUILDRUN_TIMEOUT="${BUILDRUN_TIMEOUT:-1200}"
ROLLOUT_TIMEOUT="${ROLLOUT_TIMEOUT:-300}"
SCENARIOS="${SCENARIOS:-kaniko buildah}"
KEEP="${KEEP:-0}"
# Cleanup removes only what this run created, never a cluster or container found before.
CREATED_CLUSTER=0
CREATED_REGISTRY=0

# A kubeconfig of its own, so the user's current context is never touched.
KUBECONFIG_FILE=""

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'e2e FAILED: %s\n' "$*" >&2; exit 1; }

require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed (needed: docker kind kubectl curl)"
  done
  docker info >/dev/null 2>&1 || die "docker is installed but its engine does not answer (docker info)"
}

cleanup() {
  local code=$?
  if [ "$code" -ne 0 ] && [ "$CREATED_CLUSTER" = "1" ]; then
    diagnostics || true
  fi
  if [ "$KEEP" = "1" ]; then
    log "KEEP=1: cluster '$CLUSTER_NAME' and registry '$REGISTRY_NAME' left running"
    echo "  export KUBECONFIG=$KUBECONFIG_FILE" >&2
    echo "  cleanup: kind delete cluster --name $CLUSTER_NAME; docker rm -f $REGISTRY_NAME" >&2
  else
    log "cleaning up"
    if [ "$CREATED_CLUSTER" = "1" ]; then
      kind delete cluster --name "$CLUSTER_NAME" >/dev/null 2>&1 || true
    fi
    if [ "$CREATED_REGISTRY" = "1" ]; then
      docker rm -f "$REGISTRY_NAME" >/dev/null 2>&1 || true
    fi
    rm -f "$KUBECONFIG_FILE"
  fi
  exit "$code"
}

diagnostics() {
  log "diagnostics"
  kubectl get buildruns,builds,pods -n "$NAMESPACE" -o wide >&2 || true
  kubectl get buildruns -n "$NAMESPACE" -o yaml >&2 || true
  local pod
  for pod in $(kubectl get pods -n "$NAMESPACE" -o name 2>/dev/null); do
    kubectl describe -n "$NAMESPACE" "$pod" >&2 || true
    kubectl logs -n "$NAMESPACE" "$pod" --all-containers --prefix --tail=100 >&2 || true
  done
  kubectl get pods -n buildwright -o wide >&2 || true
  kubectl logs -n buildwright deployment/buildwright --tail=200 >&2 || true
}

create_cluster() {
  log "creating kind cluster '$CLUSTER_NAME'"
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    die "a kind cluster named '$CLUSTER_NAME' already exists; delete it or set CLUSTER_NAME"
  fi
  local args=(create cluster --name "$CLUSTER_NAME" --kubeconfig "$KUBECONFIG_FILE" --wait 120s)
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then
    args+=(--image "$KIND_NODE_IMAGE")
  fi
  CREATED_CLUSTER=1
  kind "${args[@]}"
}

start_registry() {
  log "starting registry '$REGISTRY_NAME' on the kind network (127.0.0.1:$REGISTRY_PORT on this host)"
  if docker container inspect "$REGISTRY_NAME" >/dev/null 2>&1; then
    die "a container named '$REGISTRY_NAME' already exists; remove it (docker rm -f $REGISTRY_NAME)"
  fi
  CREATED_REGISTRY=1
  docker run --detach --name "$REGISTRY_NAME" --network kind \
    --publish "127.0.0.1:${REGISTRY_PORT}:5000" registry:2 >/dev/null
  wait_for "the registry to answer" 60 curl -fsS "http://127.0.0.1:${REGISTRY_PORT}/v2/"
}

build_and_load_image() {
  log "building $IMAGE"
  docker build --tag "$IMAGE" "$ROOT"
  log "loading $IMAGE into the cluster's nodes"
  kind load docker-image "$IMAGE" --name "$CLUSTER_NAME"
}

install() {
  log "installing deploy/"
  # The ClusterBuildStrategies in deploy/ need their CRD to be served first: install the
  # CRDs, wait for them, then the whole kustomization (which re-applies them unchanged).
  kubectl apply --server-side -k "$ROOT/crds"
  kubectl wait --for=condition=Established --timeout=60s crd \
    -l app.kubernetes.io/part-of=buildwright
  kubectl apply --server-side -k "$ROOT/deploy"
  local deployed
  deployed="$(kubectl get deployment buildwright -n buildwright \
    -o jsonpath='{.spec.template.spec.containers[0].image}')"
  [ "$deployed" = "$IMAGE" ] ||
    die "deploy/ installs image '$deployed' but this run built '$IMAGE': set IMAGE=$deployed"
  kubectl rollout status deployment/buildwright -n buildwright --timeout="${ROLLOUT_TIMEOUT}s"
  # The webhook serves conversions only once the operator injected its CA into the CRDs.
  wait_for "the conversion webhook's caBundle" 60 has_ca_bundle
}

has_ca_bundle() {
  local bundle
  bundle="$(kubectl get crd builds.shipwright.io \
    -o jsonpath='{.spec.conversion.webhook.clientConfig.caBundle}')"
  [ -n "$bundle" ]
}

prepare_namespace() {
  log "namespace $NAMESPACE with push-secret for $REGISTRY_NAME:5000"
  kubectl create namespace "$NAMESPACE"
  # The local registry accepts anyone; the Builds still reference a push secret as a real
  # registry would require, so the credentials path runs.
  kubectl create secret docker-registry push-secret -n "$NAMESPACE" \
    --docker-server="$REGISTRY_NAME:5000" --docker-username=e2e --docker-password=e2e
}

# wait_for DESCRIPTION SECONDS COMMAND...: run COMMAND until it succeeds or time runs out.
wait_for() {
  local what="$1" seconds="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out after ${seconds}s waiting for $what"
    sleep 2
  done
}

condition() {
  kubectl get buildrun "$1" -n "$NAMESPACE" \
    -o jsonpath="{.status.conditions[?(@.type==\"Succeeded\")].$2}"
}

# run_scenario NAME: apply e2e/scenarios/NAME.yaml, start a BuildRun, wait for its outcome
# and compare the reported digest with the registry's.
run_scenario() {
  local scenario="$1"
  local file="$ROOT/e2e/scenarios/$scenario.yaml"
  [ -f "$file" ] || die "no scenario file $file"
  log "scenario $scenario"
  kubectl apply -n "$NAMESPACE" -f "$file"
  local build
  build="$(kubectl get -n "$NAMESPACE" -f "$file" -o jsonpath='{.metadata.name}')"
  wait_for "Build $build to be registered" 60 registered "$build"

  local buildrun
  buildrun="$(kubectl create -n "$NAMESPACE" -o jsonpath='{.metadata.name}' -f - <<YAML
apiVersion: shipwright.io/v1alpha1
kind: BuildRun
metadata:
  generateName: ${build%-build}-buildrun-
spec:
  buildRef:
    name: ${build}
YAML
)"
  log "BuildRun $buildrun: waiting up to ${BUILDRUN_TIMEOUT}s"
  local deadline=$((SECONDS + BUILDRUN_TIMEOUT)) status="" reason=""
  while :; do
    status="$(condition "$buildrun" status || true)"
    reason="$(condition "$buildrun" reason || true)"
    case "$status" in
      True) break ;;
      False) die "BuildRun $buildrun failed: $reason: $(condition "$buildrun" message)" ;;
    esac
    [ "$SECONDS" -lt "$deadline" ] ||
      die "BuildRun $buildrun did not finish in ${BUILDRUN_TIMEOUT}s (last reason: ${reason:-none})"
    sleep 5
  done

  local image digest
  image="$(kubectl get build "$build" -n "$NAMESPACE" -o jsonpath='{.spec.output.image}')"
  digest="$(kubectl get buildrun "$buildrun" -n "$NAMESPACE" -o jsonpath='{.status.output.digest}')"
  [ -n "$digest" ] || die "BuildRun $buildrun succeeded but reports no output digest"
  check_registry "$image" "$digest"
  log "scenario $scenario passed: $image@$digest"
}

registered() {
  [ "$(kubectl get build "$1" -n "$NAMESPACE" -o jsonpath='{.status.registered}')" = "True" ]
}

# check_registry IMAGE DIGEST: the tag in the registry must resolve to DIGEST.
check_registry() {
  local image="$1" expected="$2"
  local without_host="${image#"$REGISTRY_NAME:5000/"}"
  local repository="${without_host%:*}" tag="${without_host##*:}"
  local accept
  accept="application/vnd.oci.image.index.v1+json,application/vnd.oci.image.manifest.v1+json"
  accept+=",application/vnd.docker.distribution.manifest.list.v2+json"
  accept+=",application/vnd.docker.distribution.manifest.v2+json"
  local headers actual
  headers="$(curl -fsS --head -H "Accept: $accept" \
    "http://127.0.0.1:${REGISTRY_PORT}/v2/${repository}/manifests/${tag}")" ||
    die "$image is not in the registry"
  actual="$(printf '%s\n' "$headers" | tr -d '\r' |
    awk 'tolower($1) == "docker-content-digest:" { print $2 }')"
  [ "$actual" = "$expected" ] ||
    die "$image in the registry has digest '${actual}', the BuildRun reported '${expected}'"
}

main() {
  require docker kind kubectl curl
  KUBECONFIG_FILE="$(mktemp -t buildwright-e2e-kubeconfig.XXXXXX)"
  export KUBECONFIG="$KUBECONFIG_FILE"
  trap cleanup EXIT
  create_cluster
  start_registry
  build_and_load_image
  install
  prepare_namespace
  local scenario
  for scenario in $SCENARIOS; do
    run_scenario "$scenario"
  done
  log "all scenarios passed: $SCENARIOS"
}

main "$@"
