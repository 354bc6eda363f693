#!/usr/bin/env bash
# Builds Tekton's step entrypoint (github.com/tektoncd/pipeline/cmd/entrypoint) from its
# published Go module into a cache outside the checkout, keyed by version. The build Pod puts
# it in front of every step's command to run the steps in order (see docs/build-pod.md); the
# node agent of `make run` runs the same binary on this machine. Static (CGO off), so the same
# file also runs in distroless and scratch step images. Prints the binary's path last.
#
#   TEKTON_VERSION     Tekton Pipelines release (default below)
#   BUILDWRIGHT_CACHE  cache root (default ~/.cache/buildwright)
set -euo pipefail

TEKTON_VERSION="${TEKTON_VERSION:-v1.6.0}"
CACHE_ROOT="${BUILDWRIGHT_CACHE:-$HOME/.cache/buildwright}"
OUT="$CACHE_ROOT/tekton-entrypoint/$TEKTON_VERSION"

if [[ -x "$OUT/entrypoint" ]]; then
  echo "$OUT/entrypoint"
  exit 0
fi
command -v go >/dev/null || { echo "error: the Go toolchain is required to build Tekton's entrypoint" >&2; exit 1; }

work="$CACHE_ROOT/tekton-entrypoint/src-$TEKTON_VERSION"
mkdir -p "$work" "$OUT"
cd "$work"
echo "[$(date +%H:%M:%S)] building Tekton's entrypoint $TEKTON_VERSION (a few minutes the first time)" >&2
[[ -f go.mod ]] || go mod init buildwright.local/entrypoint >/dev/null 2>&1
# The module proxy answers exact versions only, so the version is always spelled out.
GOFLAGS=-mod=mod go get "github.com/tektoncd/pipeline/cmd/entrypoint@$TEKTON_VERSION" >&2
# SPIFFE/SPIRE result signing is a Tekton feature buildwright does not use: leaving it out
# roughly halves the binary every build Pod copies.
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags disable_spire -ldflags "-s -w" \
  -o "$OUT/entrypoint.partial" \
  github.com/tektoncd/pipeline/cmd/entrypoint
mv "$OUT/entrypoint.partial" "$OUT/entrypoint"
echo "[$(date +%H:%M:%S)] built $OUT/entrypoint" >&2
echo "$OUT/entrypoint"
