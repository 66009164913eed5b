#!/usr/bin/env bash
# Provisions every test dependency (cached under ~/.cache/kafka-group-operator) and says how long it took.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
t0=$(date +%s)
k8s=$(bash "$here/provision-k8s.sh")
kafka=$(bash "$here/provision-kafka.sh")
venv=$(bash "$here/provision-clients.sh")
image=$(bash "$here/provision-image.sh")
gitops=$(bash "$here/provision-gitops-tools.sh")
krew=$(bash "$here/provision-krew.sh")
echo "[provision] kubernetes: $k8s" >&2
echo "[provision] kafka:      $kafka" >&2
echo "[provision] clients:    $venv (and kcat: $(command -v kcat))" >&2
echo "[provision] image:      $image (buildah, podman, hadolint, base-image stand-ins)" >&2
echo "[provision] gitops:     $gitops (kgo-gitops-health: Argo CD Lua health, Flux kstatus)" >&2
echo "[provision] krew:       $krew" >&2
echo "[provision] done in $(( $(date +%s) - t0 )) s" >&2
