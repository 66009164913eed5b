#!/usr/bin/env bash
# Builds krew (the kubectl plugin manager) from its Go module through the Go module proxy and caches the binary
# by version under $KGO_CACHE/krew-<version>/bin, as `kubectl-krew` (so that `kubectl krew` finds it on PATH).
# Warm: returns at once. Cold: about a minute.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

KREW_VERSION=${KREW_VERSION:-0.4.3}
bin="$KGO_CACHE/krew-$KREW_VERSION/bin"

if [ -x "$bin/kubectl-krew" ]; then
  echo "$bin"
  exit 0
fi
require_cmd go "the Go toolchain (https://go.dev/dl; Debian: golang-go >= 1.26)"
log "building krew v$KREW_VERSION into $bin"
mkdir -p "$bin"
t0=$(date +%s)
CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOBIN="$bin" go install -trimpath \
  -ldflags "-s -w -X sigs.k8s.io/krew/internal/version.gitTag=v$KREW_VERSION" \
  "sigs.k8s.io/krew/cmd/krew@v$KREW_VERSION"
mv "$bin/krew" "$bin/kubectl-krew"
log "built krew in $(( $(date +%s) - t0 )) s"
echo "$bin"
