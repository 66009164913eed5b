#!/usr/bin/env bash
# Builds the release archives of the kubectl plugin and the krew manifest that points at them.
#
#   scripts/krew-release.sh VERSION OUTDIR OS/ARCH=BINARY...
#   e.g. scripts/krew-release.sh 0.2.0 dist linux/amd64=target/x86_64-unknown-linux-musl/release/kafka-group-operator
#
# For each OS/ARCH: OUTDIR/kubectl-kafkagroups-vVERSION-OS-ARCH.tar.gz holding the binary as `kubectl-kafkagroups`
# (reproducible: sorted, mtime 0, root-owned, gzip without a name or time), its sha256 printed as
# `sha256  archive`. Then OUTDIR/kafkagroups.yaml: plugins/krew/kafkagroups.yaml with the version, the release URLs
# (KREW_RELEASE_BASE_URL, default: the manifest's own) and these archives' checksums filled in. Upload the
# archives to the release and submit that manifest (to krew-index, or `kubectl krew install --manifest=`).
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 VERSION OUTDIR OS/ARCH=BINARY..." >&2; exit 1; }
version=${1#v}
out=$2
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
template="$root/plugins/krew/kafkagroups.yaml"
mkdir -p "$out"
manifest_in=$(mktemp)
trap 'rm -f "$manifest_in"; rm -rf "${stage:-}"' EXIT
template_version=$(sed -n 's/^  version: v\(.*\)$/\1/p' "$template")
[ -n "$template_version" ] || { echo "no spec.version in $template" >&2; exit 1; }
sed "s/v${template_version//./\\.}/v$version/g" "$template" >"$manifest_in"
if [ -n "${KREW_RELEASE_BASE_URL:-}" ]; then
  sed -i "s#uri: .*/\(kubectl-kafkagroups-v[^/]*\.tar\.gz\)\$#uri: ${KREW_RELEASE_BASE_URL%/}/\1#" "$manifest_in"
fi

for spec in "$@"; do
  platform=${spec%%=*}
  binary=${spec#*=}
  os=${platform%/*}
  arch=${platform#*/}
  case "$os/$arch" in
    linux/amd64 | linux/arm64 | darwin/amd64 | darwin/arm64) ;;
    *) echo "unknown platform $platform (linux|darwin)/(amd64|arm64)" >&2; exit 1 ;;
  esac
  [ -f "$binary" ] || { echo "$binary: no such binary" >&2; exit 1; }
  archive="$out/kubectl-kafkagroups-v$version-$os-$arch.tar.gz"
  stage=$(mktemp -d)
  install -m 0755 "$binary" "$stage/kubectl-kafkagroups"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$stage" -cf - kubectl-kafkagroups \
    | gzip -n -9 >"$archive"
  rm -rf "$stage"
  sum=$(sha256sum "$archive" | cut -d' ' -f1)
  # The sha256 line that follows this platform's uri.
  awk -v name="kubectl-kafkagroups-v$version-$os-$arch.tar.gz" -v sum="$sum" '
    index($0, "uri: ") && index($0, "/" name) { hit = 1 }
    hit && /^    sha256: / { sub(/"[0-9a-f]*"/, "\"" sum "\""); hit = 0 }
    { print }' "$manifest_in" >"$manifest_in.new"
  mv "$manifest_in.new" "$manifest_in"
  echo "$sum  $archive"
done
cp "$manifest_in" "$out/kafkagroups.yaml"
echo "manifest: $out/kafkagroups.yaml" >&2
