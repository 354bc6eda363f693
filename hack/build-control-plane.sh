#!/usr/bin/env bash
# Builds kube-apiserver, etcd and kube-controller-manager from the published Go modules (no Docker, no release
# downloads) into a cache outside the checkout, keyed by version, so only a machine's first
# run pays the compile. Prints the directory holding the binaries on its last line.
#
#   KUBE_VERSION   Kubernetes release to build (default below)
#   BUILDWRIGHT_CACHE  cache root (default ~/.cache/buildwright)
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
# The etcd release that this Kubernetes release itself depends on: the apiserver is tested
# against it, and building it from the same module graph costs almost nothing extra.
CACHE_ROOT="${BUILDWRIGHT_CACHE:-$HOME/.cache/buildwright}"
OUT="$CACHE_ROOT/control-plane/$KUBE_VERSION"

BINARIES=(etcd kube-apiserver kube-controller-manager)

have_all() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$1/$b" ]] || return 1; done
}

if have_all "$OUT"; then
  echo "control plane $KUBE_VERSION cached in $OUT" >&2
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { echo "error: the Go toolchain is required to build kube-apiserver" >&2; exit 1; }

staging_version="v0.${KUBE_VERSION#v1.}"
work="$CACHE_ROOT/control-plane/src-$KUBE_VERSION"
mkdir -p "$work/etcd" "$OUT.partial"
cd "$work"
# A cache directory from an older version of this script may hold only some binaries:
# keep them and compile only what is missing.
for b in "${BINARIES[@]}"; do
  if [[ -x "$OUT/$b" && ! -x "$OUT.partial/$b" ]]; then cp -p "$OUT/$b" "$OUT.partial/$b"; fi
done

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

log "preparing a Go module for k8s.io/kubernetes $KUBE_VERSION (staging modules $staging_version)"
go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
upstream_mod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$KUBE_VERSION.mod"

{
  echo "module buildwright.local/controlplane"
  echo
  echo "go 1.24.0"
  echo
  echo "require k8s.io/kubernetes $KUBE_VERSION"
  echo
  echo "replace ("
  # k8s.io/kubernetes replaces each staging module with a local directory; outside its own
  # tree those must point at the published module of the matching version instead.
  sed -n '/^replace (/,/^)/p' "$upstream_mod" | awk -v v="$staging_version" '$2 == "=>" { print "\t" $1 " => " $1 " " v }'
  echo ")"
} > go.mod

cat > etcd/main.go <<'GO'
// Command etcd runs the etcd server from the module version Kubernetes depends on.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO

log "resolving dependencies (go mod tidy)"
go mod tidy

ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  major="${KUBE_VERSION#v}"; major="${major%%.*}"
  minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
  ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

if [[ ! -x "$OUT.partial/etcd" ]]; then
  log "compiling etcd (about a minute)"
  go build -trimpath -ldflags "-s -w" -o "$OUT.partial/etcd" ./etcd
fi
if [[ ! -x "$OUT.partial/kube-apiserver" ]]; then
  log "compiling kube-apiserver $KUBE_VERSION (several minutes on 2 cores)"
  go build -trimpath -ldflags "$ldflags" -o "$OUT.partial/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
fi
# Last, so a cache holding the other two from before is reused. The tests need its garbage
# collector (ownerReference cascades) and namespace controller.
if [[ ! -x "$OUT.partial/kube-controller-manager" ]]; then
  log "compiling kube-controller-manager $KUBE_VERSION (a few minutes on 2 cores)"
  go build -trimpath -ldflags "$ldflags" -o "$OUT.partial/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager
fi

rm -rf "$OUT"
mv "$OUT.partial" "$OUT"
log "done: $OUT"
echo "$OUT"
