#!/usr/bin/env bash
# Builds and tests loong against LibTorch 2.x (Debian 13's 2.6) on a Debian 12 machine,
# inside a Debian 13 root made with debootstrap:
#
#   scripts/torch2.sh test [cpu|cuda]    build everything and run the tests (CI=true: not 'slow')
#   scripts/torch2.sh build [cpu|cuda]   build only
#   scripts/torch2.sh shell [cpu|cuda]   a shell in the root, the repository at /src
#
# cpu:  libtorch-dev 2.6, the whole project as ./run builds it, in build-torch2/.
# cuda: libtorch-cuda-dev 2.6 (CUDA 12.4) with FFmpeg and SentencePiece off, as on the GPU
#       machines, in build-torch2-cuda/. No GPU is needed: the CUDA parts of the tests skip.
#       Debian's nvidia-cudnn downloads cuDNN from NVIDIA when it is installed, which cannot
#       work offline, so the root gets an empty stand-in package of that name, and a stub
#       libcudnn.so.9 whose functions all return CUDNN_STATUS_NOT_INITIALIZED (libtorch_cuda
#       is linked with BIND_NOW, so every cuDNN symbol it names must exist for it to load).
#       loong calls no cuDNN function; on a machine with a GPU, the real cuDNN is used.
#
# Each root is made once and kept (LOONG_TORCH2_ROOT, default ~/.cache/loong/trixie-<variant>),
# and remade when its package list below changes. The repository is bind-mounted at /src,
# so build folders (ignored by git) and ccache's entries (kept in the root) have the same
# paths in every clone, and ccache hits across clones.
# Needs root (debootstrap, chroot, mount): run it as root or through sudo.
# Environment: LOONG_TORCH2_ROOT, LOONG_DEBIAN_MIRROR (default deb.debian.org), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
MODE=${1:-test}
VARIANT=${2:-cpu}
MIRROR=${LOONG_DEBIAN_MIRROR:-http://deb.debian.org/debian}

COMMON=(
  g++ cmake ninja-build ccache pkg-config ca-certificates libopenblas0-openmp
  nlohmann-json3-dev libcli11-dev libpng-dev zlib1g-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev dataset-fashion-mnist
)
case "$VARIANT" in
  cpu)
    PACKAGES=("${COMMON[@]}" libtorch-dev libgloo-dev
      libavformat-dev libavcodec-dev libavfilter-dev libswscale-dev libavutil-dev ffmpeg libsentencepiece-dev)
    COMPONENTS=main
    BUILD=build-torch2
    ;;
  cuda)
    # Gloo's CUDA build (libtorch-cuda links it; libgloo-dev conflicts with it) and NCCL's headers.
    PACKAGES=("${COMMON[@]}" libtorch-cuda-dev nvidia-cuda-dev nvidia-cuda-toolkit libgloo-cuda-dev libnccl-dev)
    COMPONENTS=main,contrib,non-free,non-free-firmware
    BUILD=build-torch2-cuda
    ;;
  *) echo "usage: scripts/torch2.sh [test|build|shell] [cpu|cuda]" >&2; exit 2 ;;
esac
ROOT=${LOONG_TORCH2_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/loong/trixie-$VARIANT}
WANT=$( (printf '%s\n' "$VARIANT" "${PACKAGES[@]}"; sed -n '/^cudnn_stub()/,/^}/p' "$0") | sha256sum | cut -c1-16)

sudo_=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: scripts/torch2.sh needs root or sudo (debootstrap, chroot, mount)" >&2; exit 1; }
  sudo_=(sudo)
fi

unmount() {  # the root's mounts, when a run left them (killed)
  for m in src proc; do
    if mountpoint -q "$1/$m" 2>/dev/null; then "${sudo_[@]}" umount "$1/$m"; fi
  done
}

in_root() {  # runs "$@" in the root with /proc and the repository mounted; unmounts afterwards
  local dir=$1; shift
  "${sudo_[@]}" mkdir -p "$dir/src" "$dir/proc"
  mountpoint -q "$dir/proc" || "${sudo_[@]}" mount -t proc proc "$dir/proc"
  mountpoint -q "$dir/src" || "${sudo_[@]}" mount --bind "$REPO" "$dir/src"
  local rc=0
  "${sudo_[@]}" chroot "$dir" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CI="${CI:-}" JOBS="${JOBS:-}" LOONG_THREADS="${LOONG_THREADS:-}" "$@" || rc=$?
  unmount "$dir"
  return $rc
}

# The stand-in for nvidia-cudnn and the stub libcudnn.so.9 (see the top of this file).
cudnn_stub() {
  local dir=$1
  "${sudo_[@]}" mkdir -p "$dir/tmp/cudnn-standin/DEBIAN"
  printf '%s\n' "Package: nvidia-cudnn" "Version: 9.0.0.312~cuda12+loong1" "Architecture: amd64" \
    "Maintainer: loong <loong@localhost>" "Section: contrib/libs" "Priority: optional" \
    "Description: empty stand-in for nvidia-cudnn (offline build machines; see scripts/torch2.sh)" |
    "${sudo_[@]}" tee "$dir/tmp/cudnn-standin/DEBIAN/control" >/dev/null
  in_root "$dir" bash -c 'dpkg-deb -b /tmp/cudnn-standin /tmp/nvidia-cudnn.deb >/dev/null && dpkg -i /tmp/nvidia-cudnn.deb >/dev/null'
}
cudnn_stub_library() {  # after libtorch-cuda is installed: every cuDNN symbol it names
  in_root "$1" bash -c '
    set -e
    lib=$(ls /usr/lib/x86_64-linux-gnu/libtorch_cuda.so.* | head -1)
    mkdir -p /usr/local/lib/cudnn-stub && cd /usr/local/lib/cudnn-stub
    nm -D --undefined-only "$lib" | awk "{print \$2}" | grep "^cudnn" | sed "s/@.*//" | sort -u |
      awk "{print \"int \" \$1 \"(void) { return 1; }\"}" > stub.c
    echo "libcudnn.so.9 { global: *; };" > stub.map
    gcc -shared -fPIC -o libcudnn.so.9 -Wl,-soname,libcudnn.so.9 -Wl,--version-script=stub.map stub.c
    echo /usr/local/lib/cudnn-stub > /etc/ld.so.conf.d/cudnn-stub.conf && ldconfig'
}

make_root() {
  if [ -f "$ROOT/.loong-packages" ] && [ "$(cat "$ROOT/.loong-packages")" = "$WANT" ]; then return; fi
  # A root made for another package list gets the missing packages added in
  # place (seconds, where making it again downloads gigabytes); made again
  # only if that fails.
  if [ -f "$ROOT/.loong-packages" ]; then
    echo "==> adding packages to $ROOT"
    if in_root "$ROOT" bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --no-install-recommends ${PACKAGES[*]} >/dev/null"; then
      if [ "$VARIANT" = cuda ]; then cudnn_stub_library "$ROOT"; fi
      echo "$WANT" | "${sudo_[@]}" tee "$ROOT/.loong-packages" >/dev/null
      return
    fi
    echo "==> could not update $ROOT: making it again"
  fi
  command -v debootstrap >/dev/null || {
    echo "==> installing debootstrap"
    "${sudo_[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq --no-install-recommends debootstrap
  }
  local partial="$ROOT.partial"
  unmount "$partial"  # a root left half-made by a kill is made again
  "${sudo_[@]}" rm -rf "$partial"
  "${sudo_[@]}" mkdir -p "$(dirname "$ROOT")"
  echo "==> making a Debian 13 root in $partial (debootstrap, about a minute)"
  "${sudo_[@]}" debootstrap --variant=minbase --components="$COMPONENTS" trixie "$partial" "$MIRROR" >/dev/null
  if [ "$VARIANT" = cuda ]; then cudnn_stub "$partial"; fi
  echo "==> installing the build dependencies there (LibTorch 2.6, $VARIANT)"
  in_root "$partial" bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends ${PACKAGES[*]} >/dev/null"
  if [ "$VARIANT" = cuda ]; then cudnn_stub_library "$partial"; fi
  echo "$WANT" | "${sudo_[@]}" tee "$partial/.loong-packages" >/dev/null
  if [ -d "$ROOT" ]; then
    unmount "$ROOT"
    "${sudo_[@]}" rm -rf "$ROOT"
  fi
  "${sudo_[@]}" mv "$partial" "$ROOT"
}

make_root
case "$MODE" in
  test | build)
    start=$(date +%s)
    if [ "$VARIANT" = cpu ]; then
      # ./run inside the root: its packages are there, so it only builds (and tests).
      in_root "$ROOT" bash -c "cd /src && BUILD_DIR=$BUILD ./run $MODE"
    else
      labels=""
      if [ "${CI:-}" = "true" ]; then labels="-LE slow"; fi
      in_root "$ROOT" bash -c "set -e; cd /src
        export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
        [ -f $BUILD/build.ninja ] || cmake -S . -B $BUILD -G Ninja -DCMAKE_BUILD_TYPE=Release \
          -DLOONG_WITH_FFMPEG=OFF -DLOONG_WITH_SENTENCEPIECE=OFF
        cmake --build $BUILD \${JOBS:+-j \$JOBS}
        if [ $MODE = test ]; then ctest --test-dir $BUILD --output-on-failure -j \${CTEST_JOBS:-2} $labels; fi"
    fi
    echo "==> LibTorch 2.x ($VARIANT) $MODE: $(($(date +%s) - start)) s"
    ;;
  shell) in_root "$ROOT" bash -c "cd /src && exec bash" ;;
  *) echo "usage: scripts/torch2.sh [test|build|shell] [cpu|cuda]" >&2; exit 2 ;;
esac
