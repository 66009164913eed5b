#!/usr/bin/env bash
# Builds kgo-gitops-health (tests/tools/gitops-health: Argo CD's Lua health checks in gopher-lua, Flux's kstatus)
# from Go modules through the Go module proxy and caches the binary under
# $KGO_CACHE/gitops-health-<gopher-lua>-<cli-utils>-<hash of the sources>/bin. Warm: returns at once.
# Cold: about a minute (66 s on 2 cores with empty Go module and build caches, downloads included).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

src="$(cd "$(dirname "$0")/.." && pwd)/tests/tools/gitops-health"
[ -f "$src/go.mod" ] || die "$src/go.mod is missing"
# The versions come from go.mod (the one place that pins them); the hash makes any edit a new cache entry.
# Only sed, sha256sum and cut before `require_cmd go`, so that a machine without Go is told so.
mod_version() { sed -n "s#^\(require \)\{0,1\}[[:space:]]*$1 \(v[^[:space:]]*\).*#\2#p" "$src/go.mod"; }
GOPHER_LUA_VERSION=$(mod_version github.com/yuin/gopher-lua)
CLI_UTILS_VERSION=$(mod_version sigs.k8s.io/cli-utils)
[ -n "$GOPHER_LUA_VERSION" ] && [ -n "$CLI_UTILS_VERSION" ] || die "gopher-lua or cli-utils is not required in $src/go.mod"
hash=$(cd "$src" && sha256sum main.go go.mod go.sum | sha256sum | cut -c1-12)
dest="$KGO_CACHE/gitops-health-${GOPHER_LUA_VERSION#v}-${CLI_UTILS_VERSION#v}-$hash"
bin="$dest/bin"

if [ -x "$bin/kgo-gitops-health" ]; then
  echo "$bin"
  exit 0
fi
require_cmd go "the Go toolchain (https://go.dev/dl; Debian: golang-go >= 1.26)"
log "building kgo-gitops-health (gopher-lua $GOPHER_LUA_VERSION, cli-utils $CLI_UTILS_VERSION) into $bin"
mkdir -p "$bin"
t0=$(date +%s)
# -mod=readonly: go.sum must already list every module (a build never edits the worktree).
(cd "$src" && CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=readonly" \
  go build -trimpath -ldflags "-s -w" -o "$bin/kgo-gitops-health.tmp" .)
mv "$bin/kgo-gitops-health.tmp" "$bin/kgo-gitops-health"
log "built kgo-gitops-health in $(( $(date +%s) - t0 )) s"
echo "$bin"
