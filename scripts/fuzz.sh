#!/usr/bin/env bash
# Runs loong's libFuzzer targets (fuzz/; docs/reliability.md), built with
# ASan + UBSan by scripts/sanitize.sh.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   SECONDS per target (default 8: about a minute
#                                           for all, as CI runs it); TARGET: safetensors,
#                                           shards, manifest, config, text, clip_bpe, video
# Corpora: the committed seeds in fuzz/corpus/TARGET, and what fuzzing found in
# out/fuzz/corpus/TARGET (kept between runs, so that later runs go deeper).
# A crash, a hang (over 20 s on one input), a memory leak (LeakSanitizer, per input), memory
# past 2 GB or an exception other than loong::Error is a finding: its input is saved as
# out/fuzz/findings/TARGET/crash-*; replay it with `build-asan/fuzz/fuzz_TARGET FILE`.
# Each run appends its figures (seconds, inputs tried, findings) to out/fuzz/log.jsonl.
# Environment: PARALLEL (targets at once, default 2), ASAN_BUILD_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
shift || true
all=(safetensors shards manifest config text clip_bpe video)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
dir=${ASAN_BUILD_DIR:-build-asan}
scripts/sanitize.sh build fuzzers
out=out/fuzz
mkdir -p "$out"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LOONG_THREADS=1 OMP_NUM_THREADS=1

run_one() {
  local t=$1
  local exe=$dir/fuzz/fuzz_$t
  [ -x "$exe" ] || { echo "$t: no $exe (built without FFmpeg?)"; return 0; }
  mkdir -p "$out/corpus/$t" "$out/findings/$t"
  local dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  local start=$EPOCHREALTIME rc=0
  "$exe" "$out/corpus/$t" "fuzz/corpus/$t" "${dict[@]}" -max_total_time="$seconds" -timeout=20 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$out/findings/$t/" \
    > "$out/$t.log" 2>&1 || rc=$?
  local execs findings
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out/$t.log" | grep -o '[0-9]*$' || echo 0)
  findings=$(find "$out/findings/$t" -type f | wc -l)
  local wall
  wall=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')
  printf '{"target": "%s", "seconds": %s, "inputs": %s, "corpus": %s, "findings": %s, "exit": %s, "date": "%s"}\n' \
    "$t" "$wall" "${execs:-0}" "$(find "$out/corpus/$t" -type f | wc -l)" "$findings" "$rc" "$(date -u +%FT%TZ)" >> "$out/log.jsonl"
  if [ "$rc" -ne 0 ]; then
    echo "$t: FINDING after ${wall} s (exit $rc); input in $out/findings/$t/, report in $out/$t.log:"
    grep -m 5 -E 'ERROR|runtime error|terminate called|what\(\)' "$out/$t.log" | sed 's/^/    /' || true
    return 1
  fi
  echo "$t: ${execs:-0} inputs in ${wall} s, nothing found"
}

pids=() names=() failed=0
for t in "${targets[@]}"; do
  case " ${all[*]} " in *" $t "*) ;; *) echo "unknown target '$t' (expected: ${all[*]})" >&2; exit 2 ;; esac
  run_one "$t" & pids+=($!) names+=("$t")
  if [ ${#pids[@]} -ge "${PARALLEL:-2}" ]; then wait "${pids[0]}" || failed=$((failed + 1)); pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || failed=$((failed + 1)); done
[ "$failed" -eq 0 ] && echo "fuzzing: nothing found" || { echo "fuzzing: $failed target(s) found something"; exit 1; }
