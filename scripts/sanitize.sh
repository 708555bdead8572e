#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer (docs/reliability.md): loong's
# library, CLI, tests and libFuzzer targets built with clang into build-asan.
# LibTorch, FFmpeg and OpenBLAS are Debian's, uninstrumented: the sanitizers
# check loong's own code and every call it makes into theirs. SentencePiece is
# left out (its shim needs dlopen's RTLD_DEEPBIND, which ASan refuses), so are
# the benchmarks.
#
#   scripts/sanitize.sh build [TARGET...]    configure and build (default: tests, CLI, fuzzers)
#   scripts/sanitize.sh test [CTEST ARGS]    build, then the test suite under the sanitizers
#                                            (default: the fast tests, as CI runs them)
# Environment: ASAN_BUILD_DIR (default build-asan), JOBS.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${ASAN_BUILD_DIR:-build-asan}
mode=${1:-test}
shift || true

# Any finding ends the process with a report: UBSan halts instead of going on;
# LeakSanitizer stays off (LibTorch's and FFmpeg's process-lifetime registries
# are reported as leaks at exit); llvm-symbolizer names the lines.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
for s in /usr/bin/llvm-symbolizer /usr/lib/llvm-*/bin/llvm-symbolizer; do
  [ -x "$s" ] && { export ASAN_SYMBOLIZER_PATH=$s; break; }
done

build() {
  export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
  if [ ! -f "$dir/build.ninja" ]; then
    # -O1 with line tables: readable reports at a bearable speed.
    cmake -S . -B "$dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DLOONG_SANITIZE=address,undefined \
      -DLOONG_BUILD_FUZZERS=ON -DLOONG_WITH_SENTENCEPIECE=OFF -DLOONG_BUILD_BENCH=OFF
  fi
  if [ $# -eq 0 ]; then set -- loong_tests loong_cli fuzzers; fi
  cmake --build "$dir" ${JOBS:+-j "$JOBS"} --target "$@"
}

case "$mode" in
  build) build "$@" ;;
  test)
    build
    if [ $# -eq 0 ]; then set -- -LE slow; fi
    # Tests run the CLI as a child process: it is instrumented too, and the
    # options above reach it through the environment.
    ctest --test-dir "$dir" --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 900 "$@"
    ;;
  *) echo "usage: $0 build [TARGET...] | test [CTEST ARGS]" >&2; exit 2 ;;
esac
