#!/usr/bin/env bash
# Builds kube-apiserver, kubectl, etcd and helm from Go modules (through the Go module proxy) and caches the
# binaries by version under $KGO_CACHE/k8s-<versions>/bin. Warm: returns at once. Cold: about 7 minutes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

K8S_VERSION=${K8S_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.7.3}
HELM_VERSION=${HELM_VERSION:-3.22.0}
K8S_MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
dest="$KGO_CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
bin="$dest/bin"

if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kubectl" ] && [ -x "$bin/etcd" ] && [ -x "$bin/helm" ]; then
  echo "$bin"
  exit 0
fi
require_cmd go "the Go toolchain (https://go.dev/dl; Debian: golang-go >= 1.26)"
log "building kube-apiserver/kubectl v$K8S_VERSION, etcd v$ETCD_VERSION, helm v$HELM_VERSION into $bin (cold: ~7 min)"
work="$dest/work"
mkdir -p "$bin" "$work"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

# kube-apiserver + kubectl: `go install` refuses k8s.io/kubernetes (it has replace directives), so a wrapper
# module replaces every staging module k8s.io/X v0.0.0 with its published v0.MINOR.PATCH.
k8s="$work/kubernetes"
mkdir -p "$k8s"
if [ ! -f "$k8s/go.sum" ] || ! grep -q "k8s.io/kubernetes v$K8S_VERSION" "$k8s/go.mod" 2>/dev/null; then
  gomod=$(cd "$k8s" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  [ -f "$gomod" ] || die "could not download the go.mod of k8s.io/kubernetes@v$K8S_VERSION"
  staging=$(awk '/^require \(/{r=1;next} r&&/^\)/{r=0} r&&$1 ~ /^k8s\.io\// && $2=="v0.0.0"{print $1}' "$gomod" | sort -u)
  [ -n "$staging" ] || die "no staging modules found in $gomod"
  {
    echo "module kgo/k8s-tools"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes v$K8S_VERSION"
    echo
    for m in $staging; do echo "replace $m => $m v0.$K8S_MINOR.${K8S_VERSION##*.}"; done
  } >"$k8s/go.mod"
  (cd "$k8s" && go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION")
fi
ver=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ver="$ver -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR -X $p.gitTreeState=clean"
done
for tool in kube-apiserver kubectl; do
  t0=$(date +%s)
  (cd "$k8s" && go build -trimpath -ldflags "-s -w $ver" -o "$bin/$tool.tmp" "k8s.io/kubernetes/cmd/$tool")
  mv "$bin/$tool.tmp" "$bin/$tool"
  log "built $tool in $(( $(date +%s) - t0 )) s"
done

# etcd: its own module (mixing it into the Kubernetes wrapper would move shared dependencies).
etcd="$work/etcd"
mkdir -p "$etcd"
if [ ! -f "$etcd/go.sum" ]; then
  printf 'module kgo/etcd\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" >"$etcd/go.mod"
  (cd "$etcd" && go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION")
fi
t0=$(date +%s)
(cd "$etcd" && go build -trimpath -ldflags "-s -w" -o "$bin/etcd.tmp" go.etcd.io/etcd/server/v3)
mv "$bin/etcd.tmp" "$bin/etcd"
log "built etcd in $(( $(date +%s) - t0 )) s"

# helm: a plain `go install`, told which Kubernetes version to assume (else it assumes 1.20).
t0=$(date +%s)
hv=""
for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  hv="$hv -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$K8S_MINOR"
done
GOBIN="$bin" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION $hv" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
log "built helm in $(( $(date +%s) - t0 )) s"

"$bin/kube-apiserver" --version >&2
"$bin/etcd" --version | head -1 >&2
echo "$bin"
