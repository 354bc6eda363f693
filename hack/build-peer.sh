#!/usr/bin/env bash
# Builds the peer the benchmark compares buildwright with: Shipwright's own build controller
# (github.com/shipwright-io/build, ./cmd/shipwright-build-controller) and the Tekton Pipelines
# controller it drives (github.com/tektoncd/pipeline, ./cmd/controller), from their published
# Go modules, into a cache outside the checkout keyed by both versions. Like build-shp.sh, each
# module is downloaded, copied out of the read-only module cache and built in its own
# directory (the modules' replace directives rule out `go install module@version`).
# Only bench/run.py --system shipwright|both uses them; nothing in `make test` needs them.
# Prints the directory holding both binaries last (a warm cache prints it at once).
#
#   SHIPWRIGHT_VERSION  Shipwright Build release (default below)
#   TEKTON_VERSION      Tekton Pipelines release (default below)
#   BUILDWRIGHT_CACHE   cache root (default ~/.cache/buildwright)
set -euo pipefail

SHIPWRIGHT_VERSION="${SHIPWRIGHT_VERSION:-v0.20.13}"
TEKTON_VERSION="${TEKTON_VERSION:-v1.6.0}"
CACHE_ROOT="${BUILDWRIGHT_CACHE:-$HOME/.cache/buildwright}"
OUT="$CACHE_ROOT/peer/$SHIPWRIGHT_VERSION-$TEKTON_VERSION"

if [[ -x "$OUT/shipwright-build-controller" && -x "$OUT/tekton-controller" ]]; then
  echo "$OUT/shipwright-build-controller" >&2
  echo "$OUT/tekton-controller" >&2
  echo "$OUT"
  exit 0
fi
command -v go >/dev/null || { echo "error: the Go toolchain is required to build the peer" >&2; exit 1; }
mkdir -p "$OUT"

# module_dir MODULE VERSION -> prints the module's directory in the Go module cache.
module_dir() {
  local dir
  dir="$(go mod download -json "$1@$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -n "$dir" && -d "$dir" ]] || { echo "error: go mod download did not name the directory of $1@$2" >&2; exit 1; }
  echo "$dir"
}

# build MODULE VERSION PACKAGE BINARY: copies the module to OUT/src-<name>, builds PACKAGE there.
# The copied source also stays there: bench/peer.py reads the CRDs and ConfigMaps from it.
build() {
  local module="$1" version="$2" package="$3" binary="$4" dir src
  [[ -x "$OUT/$binary" ]] && return 0
  echo "[$(date +%H:%M:%S)] downloading $module@$version" >&2
  dir="$(module_dir "$module" "$version")"
  src="$OUT/src-${module##*/}"
  rm -rf "$src"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"  # go build -mod=mod rewrites go.sum
  echo "[$(date +%H:%M:%S)] building $binary (several minutes on 2 cores)" >&2
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 10 \
    go build -trimpath -ldflags "-s -w" -o "$OUT/$binary.partial" "$package")
  mv "$OUT/$binary.partial" "$OUT/$binary"
  echo "[$(date +%H:%M:%S)] built $OUT/$binary" >&2
}

build github.com/tektoncd/pipeline "$TEKTON_VERSION" ./cmd/controller tekton-controller
build github.com/shipwright-io/build "$SHIPWRIGHT_VERSION" ./cmd/shipwright-build-controller \
  shipwright-build-controller
echo "$OUT"
