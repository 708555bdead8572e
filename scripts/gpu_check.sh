#!/usr/bin/env bash
# Everything the CUDA path needs checked on a GPU, in one call (docs/build.md,
# "On a GPU machine"). The GPU machines are lent briefly, without network, and
# may lack some build dependencies, so this script brings them along.
#
#   scripts/gpu_check.sh pack          here, before the call: copy the header-only
#                                      dependencies (nlohmann-json, CLI11), zlib's
#                                      headers, Gloo's headers and GoogleTest's sources
#                                      into .gpu-deps/ (ignored by git; the device call
#                                      carries it)
#   scripts/gpu_check.sh [OUT_DIR]     the check: versions, build, tests, benchmarks
#
# The check writes OUT_DIR (default $OUT, else out/gpu_check): gpu_check.log
# (everything printed), summary.json (each step's status and seconds, the
# versions, the benchmark figures) and bench.json.
#
# Environment: DEVICE=cuda (default) or cpu: the same steps on this machine
# with tiny shapes, against Debian's LibTorch, to rehearse the script before
# the GPU call. PYTHON (default: /opt/torch/.venv/bin/python3 if present, else
# python3) gives the LibTorch to build against (torch.utils.cmake_prefix_path).
# JOBS (default 16). BUILD_DIR (default build-gpu, or build-gpu-rehearsal on
# the CPU). SKIP_TESTS=1 / SKIP_BENCH=1. TARGETS: build only these (e.g.
# "loong_tests loong_cli" when SKIP_BENCH=1). FORCE_DEPS=1 uses the carried
# dependencies even where the machine has its own (to rehearse that path).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEPS=$ROOT/.gpu-deps

if [ "${1:-}" = pack ]; then
  set -e
  rm -rf "$DEPS.tmp"
  mkdir -p "$DEPS.tmp/include" "$DEPS.tmp/share/cmake" "$DEPS.tmp/src"
  cp -r /usr/include/nlohmann /usr/include/CLI /usr/include/zlib.h /usr/include/zconf.h "$DEPS.tmp/include/"
  cp -r /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 "$DEPS.tmp/share/cmake/"
  cp -r /usr/src/googletest "$DEPS.tmp/src/"
  # Gloo's headers (c10d's Gloo group includes them), used only where the
  # LibTorch built against has none of its own: Debian 13's CUDA build of Gloo
  # (scripts/torch2.sh cuda made its root) where present, else this machine's.
  GLOO_FROM=${XDG_CACHE_HOME:-$HOME/.cache}/loong/trixie-cuda/usr/include/gloo
  [ -f "$GLOO_FROM/algorithm.h" ] || GLOO_FROM=/usr/include/gloo
  mkdir -p "$DEPS.tmp/gloo/include" && cp -r "$GLOO_FROM" "$DEPS.tmp/gloo/include/"
  rm -rf "$DEPS" && mv "$DEPS.tmp" "$DEPS"
  echo "packed $(du -sh "$DEPS" | cut -f1) into .gpu-deps (carry it: run(carry=[\".gpu-deps\"]))"
  exit 0
fi

DEVICE=${DEVICE:-cuda}
OUT_DIR=${1:-${OUT:-out/gpu_check}}
JOBS=${JOBS:-16}
# Seconds the whole check may take (the device tool's calls stop at 600 s):
# each step gets what is left, and summary.json is rewritten after every step.
BUDGET=${BUDGET:-570}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
# What only this script reads (the build's and benchmarks' output, also in the
# log) stays out of OUT_DIR: the device tool brings back at most 8 files.
SCRATCH=$(mktemp -d)
LOG=$OUT_DIR/gpu_check.log
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE=$!
STEPS=$OUT_DIR/steps.jsonl
: > "$STEPS"
rm -f "$OUT_DIR/bench.json" "$OUT_DIR/bench.jsonl" "$OUT_DIR/summary.json"

summary() {  # summary.json: the steps so far and the figures
  {
    printf '{"device":"%s","build_dir":"%s","steps":[' "$DEVICE" "${BUILD_DIR:-}"
    paste -sd, "$STEPS" | tr -d '\n'
    printf '],"bench":'
    if [ -s "$OUT_DIR/bench.json" ]; then tr -d '\n' < "$OUT_DIR/bench.json"; else printf 'null'; fi
    printf '}\n'
  } > "$OUT_DIR/summary.json.tmp" && mv "$OUT_DIR/summary.json.tmp" "$OUT_DIR/summary.json"
}

# step NAME CMD...: runs CMD within the time left (timeout; this script's own
# functions, which are short, run directly), records its exit
# status and seconds, rewrites the summary; never stops the script.
step() {
  local name=$1
  shift
  local left=$((BUDGET - SECONDS))
  echo
  if [ "$left" -le 5 ]; then
    echo "==> $name: skipped, no time left"
    printf '{"step":"%s","rc":"skipped","seconds":0}\n' "$name" >> "$STEPS"
    summary
    return 1
  fi
  echo "==> $name ($left s left): $*"
  local t0=$SECONDS
  if [ "$(type -t "$1")" = function ]; then "$@"; else timeout --kill-after=5 "$left" "$@"; fi
  local rc=$?
  echo "<== $name: exit $rc in $((SECONDS - t0)) s"
  printf '{"step":"%s","rc":%d,"seconds":%d}\n' "$name" "$rc" "$((SECONDS - t0))" >> "$STEPS"
  summary
  return $rc
}

finish() {
  echo
  echo "summary: $OUT_DIR/summary.json"
  local rc=0
  grep -q '"rc":[1-9"]' "$STEPS" && rc=1
  exec >&- 2>&-
  wait "$TEE" 2>/dev/null
  exit $rc
}

if [ -z "${PYTHON+x}" ]; then
  if [ "$DEVICE" = cpu ]; then PYTHON=""
  elif [ -x /opt/torch/.venv/bin/python3 ]; then PYTHON=/opt/torch/.venv/bin/python3
  else PYTHON=python3; fi
fi

# 1. What we rely on.
versions() {
  if command -v nvidia-smi >/dev/null; then nvidia-smi; else echo "nvidia-smi: not present"; fi
  if command -v nvcc >/dev/null; then nvcc --version
  elif [ -x /usr/local/cuda/bin/nvcc ]; then /usr/local/cuda/bin/nvcc --version
  else echo "nvcc: not present"; fi
  if [ -n "$PYTHON" ]; then
    "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cxx11_abi", torch._C._GLIBCXX_USE_CXX11_ABI, "device", torch.cuda.is_available() and torch.cuda.get_device_name(0))'
  else
    echo "python torch: not used (Debian LibTorch)"
  fi
  cmake --version | head -1
  if command -v ninja >/dev/null; then echo "ninja $(ninja --version)"; else echo "ninja: not present (Makefiles)"; fi
  echo "cores: $(nproc)"
}
step versions versions

# 2. Configure and build (FFmpeg, SentencePiece and PNG off, as the GPU
# machines lack them), against the Python torch's LibTorch.
PREFIX=""
ABI=1
if [ -n "$PYTHON" ]; then
  PREFIX=$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')
  ABI=$("$PYTHON" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')
fi
EXTRA=()
if command -v ninja >/dev/null; then GENERATOR=Ninja; else GENERATOR="Unix Makefiles"; fi
if [ -d "$DEPS" ]; then
  PREFIX="$PREFIX;$DEPS;$DEPS/gtest"
  # zlib: the machine's library with the carried headers when its own are absent.
  if [ "${FORCE_DEPS:-0}" = 1 ] || [ ! -f /usr/include/zlib.h ]; then
    ZLIB_SO=$(ls /usr/lib/x86_64-linux-gnu/libz.so* /lib/x86_64-linux-gnu/libz.so* 2>/dev/null | head -1)
    EXTRA+=(-DZLIB_INCLUDE_DIR="$DEPS/include" -DZLIB_LIBRARY="$ZLIB_SO")
  fi
fi
# GoogleTest from the carried sources when the machine has none, or when its
# LibTorch uses the old C++ ABI (a system GoogleTest uses the new one).
gtest_from_source() {
  if [ ! -d "$DEPS/src/googletest" ] || [ -d "$DEPS/gtest" ]; then return 0; fi
  if [ "${FORCE_DEPS:-0}" != 1 ] && [ "$ABI" = 1 ] &&
     { [ -d /usr/lib/x86_64-linux-gnu/cmake/GTest ] || [ -d /usr/lib/cmake/GTest ]; }; then
    return 0
  fi
  cmake -S "$DEPS/src/googletest" -B "$DEPS/gtest-build" -G "$GENERATOR" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$DEPS/gtest" -DBUILD_GMOCK=OFF -DCMAKE_CXX_FLAGS="-D_GLIBCXX_USE_CXX11_ABI=$ABI" \
        >/dev/null &&
    cmake --build "$DEPS/gtest-build" -j "$JOBS" >/dev/null && cmake --install "$DEPS/gtest-build" >/dev/null
}
step gtest gtest_from_source

if [ "$DEVICE" = cpu ]; then BUILD_DIR=${BUILD_DIR:-build-gpu-rehearsal}; else BUILD_DIR=${BUILD_DIR:-build-gpu}; fi
# Distributed training (src/loong/dist) needs Gloo's headers and, for NCCL,
# nccl.h. A pip-installed torch may lack the first (then the carried ones are
# used) and keeps the second in its nvidia-nccl package, beside torch.
DIST=()
if [ -n "$PYTHON" ]; then
  TORCH_DIR=$("$PYTHON" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
  if [ ! -f "$TORCH_DIR/include/gloo/algorithm.h" ] && [ -f "$DEPS/gloo/include/gloo/algorithm.h" ]; then
    DIST+=(-DLOONG_GLOO_INCLUDE_DIR="$DEPS/gloo/include")
  fi
  NCCL_H=$(find "$(dirname "$TORCH_DIR")/nvidia" -name nccl.h -path '*include*' 2>/dev/null | head -1)
  if [ -n "$NCCL_H" ]; then DIST+=(-DLOONG_NCCL_INCLUDE_DIR="$(dirname "$NCCL_H")"); fi
  echo "torch: $TORCH_DIR; gloo headers: $([ -f "$TORCH_DIR/include/gloo/algorithm.h" ] && echo torch\'s || echo "${DIST[0]:-none}"); nccl.h: ${NCCL_H:-not beside torch}"
fi
configure() {
  cmake -S . -B "$BUILD_DIR" -G "$GENERATOR" -DCMAKE_BUILD_TYPE=Release ${PREFIX:+-DCMAKE_PREFIX_PATH="$PREFIX"} \
        -DCMAKE_CUDA_ARCHITECTURES=90 -DLOONG_WITH_FFMPEG=OFF -DLOONG_WITH_SENTENCEPIECE=OFF -DLOONG_WITH_PNG=OFF \
        "${EXTRA[@]}" "${DIST[@]}" "$@"
}
# If only the distributed module fails to compile (a c10d or Gloo header that
# differs from the ones tried here), the rest is still worth building and
# measuring: once more without it, and the log says so.
build() {
  cmake --build "$BUILD_DIR" -j "$JOBS" ${TARGETS:+--target $TARGETS} 2>&1 | tee "$SCRATCH/build.out"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ] && grep -q '^FAILED: .*loong/dist/' "$SCRATCH/build.out"; then
    echo "gpu_check: the distributed module failed to compile; building without it (LOONG_WITH_DIST=OFF)"
    configure -DLOONG_WITH_DIST=OFF >/dev/null &&
      cmake --build "$BUILD_DIR" -j "$JOBS" ${TARGETS:+--target $TARGETS}
    rc=$?
    [ "$rc" -eq 0 ] && rc=3  # built, but without distributed training: the step still counts as failed
  elif [ "$rc" -ne 0 ] && grep -q 'ld returned' "$SCRATCH/build.out"; then
    # A link failure may come from listing libstdc++ first (CMakeLists.txt,
    # LOONG_STDCXX_FIRST): once more without it (stdcxx below then tries
    # LD_PRELOAD), and the log says so.
    echo "gpu_check: linking failed; linking again with LOONG_STDCXX_FIRST=OFF"
    configure -DLOONG_STDCXX_FIRST=OFF >/dev/null &&
      cmake --build "$BUILD_DIR" -j "$JOBS" ${TARGETS:+--target $TARGETS}
    rc=$?
    [ "$rc" -eq 0 ] && rc=3
  fi
  return "$rc"
}
step configure configure && step build build
BUILT=$?
[ "$BUILT" -eq 3 ] && BUILT=0
if [ "$BUILT" -ne 0 ]; then finish; fi

# What the programs bind std::filesystem to (CMakeLists.txt, LOONG_STDCXX_FIRST,
# says why): the first libraries they need, and where a test that makes a
# folder binds its calls if it still crashes.
stdcxx() {
  readelf -d "$BUILD_DIR/tests/loong_tests" | grep NEEDED | head -8
  local test=("$BUILD_DIR/tests/loong_tests" --gtest_filter='AtomicFile.*:Safetensors.RoundTripEveryDtype')
  "${test[@]}" && return 0
  (cd "$BUILD_DIR" && ninja -t commands tests/loong_tests 2>/dev/null | tail -1 | cut -c1-3000)
  ld --version | head -1
  "$(sed -n 's/^CMAKE_CXX_COMPILER:[^=]*=//p' "$BUILD_DIR/CMakeCache.txt")" -print-file-name=libstdc++.so
  LD_DEBUG=bindings LD_DEBUG_OUTPUT="$SCRATCH/bind" "${test[@]}" >/dev/null 2>&1
  grep -h 'filesystem' "$SCRATCH"/bind.* | grep -v 'file /lib' | head -8
  # Still crashing: libstdc++ loaded first by hand, so that the steps after
  # this one still say something (the log says so).
  local lib
  lib=$(ldd "$BUILD_DIR/tests/loong_tests" | awk '/libstdc\+\+/ {print $3}')
  if [ -n "$lib" ] && LD_PRELOAD=$lib "${test[@]}" >/dev/null 2>&1; then
    echo "gpu_check: WORKAROUND: LD_PRELOAD=$lib for the steps after this one"
    export LD_PRELOAD=$lib
  fi
  return 1
}
if [ "${SKIP_TESTS:-0}" != 1 ]; then step stdcxx stdcxx; fi

# 3. The CUDA tests first (they skip, saying why, without a device), then
# 4. the figures (bench/bench_device.cpp says what each is), then the rest of
# the suite with the time left.
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  # Through CTest, a process per test, so that a crash in one (with its stack,
  # tests/crash_trace.cpp) leaves the others' results; one at a time on the GPU.
  step cuda_tests ctest --test-dir "$BUILD_DIR" -R '^(Cuda|Device|StaticDecode|FusedAdamW|ActivationCheckpointing)\.' \
       --output-on-failure --timeout 120
  # Its record (NCCL or Gloo, tokens/s and communication per step), which CTest hides.
  step launcher_record "$BUILD_DIR/tests/loong_tests" --gtest_filter=Cuda.TrainsUnderALauncherOnTheGpu
fi
if [ "${SKIP_BENCH:-0}" != 1 ]; then
  if [ "$DEVICE" = cpu ]; then
    ARGS=(--device cpu --lm tiny --tokenizer tiny --contexts 64,256 --steps 16 --reps 2 --minute-seconds 12
          --train-seq 256 --train-batch 2 --tokenizer-batch 1 --threads 2)
  else
    ARGS=(--device cuda --lm 700M,3B --tokenizer paper --contexts 512,2048,4352 --steps 128 --reps 5
          --minute-seconds 60 --train-seq 4352 --train-batch 4 --tokenizer-batch 4)
  fi
  # Each part alone, so one that fails or runs out of time leaves the others' figures.
  for part in decode train tokenizer minute; do
    step "bench_$part" "$BUILD_DIR/bench/bench_device" "${ARGS[@]}" --what "$part" | tee "$SCRATCH/bench_$part.out"
    if grep -q '^RESULT ' "$SCRATCH/bench_$part.out"; then
      grep '^RESULT ' "$SCRATCH/bench_$part.out" | sed 's/^RESULT //' >> "$OUT_DIR/bench.jsonl"
      # bench.json: one object, the parts merged.
      python3 - "$OUT_DIR/bench.jsonl" "$OUT_DIR/bench.json" <<'PY' 2>/dev/null || cp "$OUT_DIR/bench.jsonl" "$OUT_DIR/bench.json"
import json, sys
merged = {}
for line in open(sys.argv[1]):
    merged.update(json.loads(line))
json.dump(merged, open(sys.argv[2], "w"))
PY
      summary
    fi
  done
fi
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  # A thread per test, as many tests as cores (LibTorch would give each all
  # the cores); not those that read Fashion-MNIST, which the GPU machines lack.
  NEEDS_DATA='FashionMnist|MovingFashion|Eval\.(Captions|Probe)'
  [ "$DEVICE" = cpu ] && NEEDS_DATA='^$'
  OMP_NUM_THREADS=1 step tests ctest --test-dir "$BUILD_DIR" -j "$JOBS" -LE slow \
       -E "^(Cuda|Device|StaticDecode|FusedAdamW|ActivationCheckpointing)\.|$NEEDS_DATA" \
       --output-on-failure --timeout 300
fi
finish
