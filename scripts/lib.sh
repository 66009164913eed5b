# Shared by the provisioning scripts: cache location, logging, and loud failures.
KGO_CACHE=${KGO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kafka-group-operator}
export KGO_CACHE
mkdir -p "$KGO_CACHE"

log() { echo "[provision] $*" >&2; }
die() { echo "[provision] ERROR: $*" >&2; exit 1; }
require_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is missing: install $2"
}
