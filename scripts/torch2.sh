#!/usr/bin/env bash
# Builds and tests loong against LibTorch 2.x (Debian 13's libtorch-dev 2.6) on a
# Debian 12 machine, inside a Debian 13 root made with debootstrap:
#
#   scripts/torch2.sh test        build everything in build-torch2/ and run the tests (CI: not 'slow')
#   scripts/torch2.sh build       build only
#   scripts/torch2.sh shell       a shell in the root, the repository at /src
#
# The root is made once and kept (LOONG_TORCH2_ROOT, default ~/.cache/loong/trixie-root);
# it is remade when the package list below changes. The repository is bind-mounted at
# /src, so the build folder (build-torch2/, ignored by git) and ccache's entries (kept in
# the root) have the same paths in every clone and ccache hits across them.
# Needs root (debootstrap, chroot, mount): run it as root or through sudo.
# Environment: LOONG_TORCH2_ROOT, LOONG_DEBIAN_MIRROR (default deb.debian.org), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
MODE=${1:-test}
ROOT=${LOONG_TORCH2_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/loong/trixie-root}
MIRROR=${LOONG_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What the build needs, from Debian 13: the same list as ./run's, LibTorch 2.6 included.
PACKAGES=(
  g++ cmake ninja-build ccache pkg-config ca-certificates
  libtorch-dev libopenblas0-openmp
  libavformat-dev libavcodec-dev libavfilter-dev libswscale-dev libavutil-dev ffmpeg
  libsentencepiece-dev nlohmann-json3-dev libcli11-dev libpng-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  dataset-fashion-mnist
)
WANT=$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)

sudo_=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: scripts/torch2.sh needs root or sudo (debootstrap, chroot, mount)" >&2; exit 1; }
  sudo_=(sudo)
fi

in_root() {  # runs "$@" in the root with /proc and the repository mounted; unmounts afterwards
  local dir=$1; shift
  "${sudo_[@]}" mkdir -p "$dir/src" "$dir/proc"
  mountpoint -q "$dir/proc" || "${sudo_[@]}" mount -t proc proc "$dir/proc"
  mountpoint -q "$dir/src" || "${sudo_[@]}" mount --bind "$REPO" "$dir/src"
  local rc=0
  "${sudo_[@]}" chroot "$dir" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CI="${CI:-}" JOBS="${JOBS:-}" LOONG_THREADS="${LOONG_THREADS:-}" "$@" || rc=$?
  "${sudo_[@]}" umount "$dir/src" || true
  "${sudo_[@]}" umount "$dir/proc" || true
  return $rc
}

make_root() {
  if [ -f "$ROOT/.loong-packages" ] && [ "$(cat "$ROOT/.loong-packages")" = "$WANT" ]; then return; fi
  command -v debootstrap >/dev/null || {
    echo "==> installing debootstrap"
    "${sudo_[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq --no-install-recommends debootstrap
  }
  local partial="$ROOT.partial"
  # A root left half-made (or one whose mounts survived a kill) is removed first.
  for m in src proc; do mountpoint -q "$partial/$m" 2>/dev/null && "${sudo_[@]}" umount "$partial/$m"; done
  "${sudo_[@]}" rm -rf "$partial"
  "${sudo_[@]}" mkdir -p "$(dirname "$ROOT")"
  echo "==> making a Debian 13 root in $partial (debootstrap, about a minute)"
  "${sudo_[@]}" debootstrap --variant=minbase trixie "$partial" "$MIRROR" >/dev/null
  echo "==> installing the build dependencies there (LibTorch 2.6)"
  in_root "$partial" bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends ${PACKAGES[*]} >/dev/null"
  echo "$WANT" | "${sudo_[@]}" tee "$partial/.loong-packages" >/dev/null
  if [ -d "$ROOT" ]; then
    for m in src proc; do mountpoint -q "$ROOT/$m" 2>/dev/null && "${sudo_[@]}" umount "$ROOT/$m"; done
    "${sudo_[@]}" rm -rf "$ROOT"
  fi
  "${sudo_[@]}" mv "$partial" "$ROOT"
}

make_root
case "$MODE" in
  test | build)
    start=$(date +%s)
    # ./run inside the root: its packages are there, so it only builds (and tests).
    in_root "$ROOT" bash -c "cd /src && BUILD_DIR=build-torch2 ./run $MODE"
    echo "==> LibTorch 2.x $MODE: $(($(date +%s) - start)) s"
    ;;
  shell) in_root "$ROOT" bash -c "cd /src && exec bash" ;;
  *) echo "usage: scripts/torch2.sh [test|build|shell]" >&2; exit 2 ;;
esac
