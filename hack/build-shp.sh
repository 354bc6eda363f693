#!/usr/bin/env bash
# Builds the upstream Shipwright CLI (github.com/shipwright-io/cli, `shp`) from its published
# Go module into a cache outside the checkout, keyed by version. The end-to-end tests drive
# `shp build run --follow`, `shp buildrun logs` and `shp build upload` with it against
# `make run`. `go install module@version` fails here (the module's replace directives), so the
# module is downloaded, copied out of the module cache and built in its own directory.
# About 9 minutes on 2 cores the first time. Prints the binary's path last.
#
#   SHP_VERSION        Shipwright CLI release (default below)
#   BUILDWRIGHT_CACHE  cache root (default ~/.cache/buildwright)
set -euo pipefail

SHP_VERSION="${SHP_VERSION:-v0.19.0}"
CACHE_ROOT="${BUILDWRIGHT_CACHE:-$HOME/.cache/buildwright}"
OUT="$CACHE_ROOT/shp/$SHP_VERSION"

if [[ -x "$OUT/shp" ]]; then
  echo "$OUT/shp"
  exit 0
fi
command -v go >/dev/null || { echo "error: the Go toolchain is required to build shp" >&2; exit 1; }

mkdir -p "$OUT"
echo "[$(date +%H:%M:%S)] building shp $SHP_VERSION (about 9 minutes the first time)" >&2
dir="$(go mod download -json "github.com/shipwright-io/cli@$SHP_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[[ -n "$dir" && -d "$dir" ]] || { echo "error: go mod download did not name the module directory" >&2; exit 1; }
src="$CACHE_ROOT/shp/src-$SHP_VERSION"
rm -rf "$src"
cp -r "$dir" "$src"
chmod -R u+w "$src"  # the module cache is read-only; go build -mod=mod rewrites go.sum
cd "$src"
CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$OUT/shp.partial" ./cmd/shp
mv "$OUT/shp.partial" "$OUT/shp"
echo "[$(date +%H:%M:%S)] built $OUT/shp" >&2
echo "$OUT/shp"
