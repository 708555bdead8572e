#!/usr/bin/env bash
# Crash trials (docs/reliability.md): trains a micro language model and, separately, a
# micro video tokenizer, kills the training with SIGKILL at KILLS random moments each
# (a checkpoint is written every step, so many kills land inside a checkpoint write),
# resumes after each kill, and checks that the final checkpoint is bit-identical to
# the one of an uninterrupted run, and that no temporary is left anywhere.
#
#   scripts/kill_trials.sh [WORK_DIR]      (default: out/kill-trials)
# Environment: LOONG (the binary, default build/bin/loong), KILLS (default 20),
# SEED (default: the clock; printed so that a failure can be replayed), WHICH (lm,
# tokenizer or both, the default). Exit status 0 only when every trial passed.
set -euo pipefail
work="${1:-}"
case "$work" in /* | "") ;; *) work="$PWD/$work" ;; esac
source "$(dirname "$0")/common.sh"
work="${work:-$PWD/out/kill-trials}"
kills="${KILLS:-20}"
seed="${SEED:-$(date +%s)}"
which="${WHICH:-both}"
RANDOM=$seed
export LOONG_THREADS=1  # bit-identical runs need the same reduction order every time
mkdir -p "$work"
echo "kill trials: $kills kills each, SEED=$seed, in $work"

# --- data (made once) ---------------------------------------------------------------
if [ ! -f "$work/data/all.jsonl" ]; then
  "$loong" data moving-fashion --out "$work/data" --videos 8 --seconds 2 --size 64 --images 16 --seed 3 --quiet --force
  cat "$work/data/manifest.jsonl" "$work/data/images.jsonl" > "$work/data/all.jsonl"
fi
if [ ! -f "$work/shards/part-00000-of-00001.loongshard" ]; then
  "$loong" tokenize --data "$work/data/all.jsonl" --tokenizer models/default/tokenizer --text models/default/text \
    --out "$work/shards" > /dev/null
fi
cat > "$work/lm.json" <<JSON
{"model": {"dim": 32, "n_layers": 2, "n_heads": 4, "ffn_dim": 64, "max_seq_len": 640},
 "data": "$work/shards", "text_tokenizer": "$PWD/models/default/text", "video_tokenizer": "$PWD/models/default/tokenizer",
 "stages": [{"frames": 1, "steps": 300, "batch_size": 4, "lr": 3e-3, "warmup_steps": 3},
            {"frames": 5, "steps": 300, "batch_size": 2, "image_fraction": 0.5, "lr": 2e-3, "warmup_steps": 2, "lambda": 1.0}],
 "checkpoint_every": 1, "keep_checkpoints": 2, "plot_every": 0, "log_every": 1}
JSON
cat > "$work/tokenizer.json" <<JSON
{"preset": "tiny",
 "model": {"image_size": 64, "base_channels": 8, "codebook_size": 64, "codebook_dim": 8},
 "train": {"stages": [{"frames": 1, "steps": 50, "batch_size": 4}, {"frames": 5, "steps": 50, "batch_size": 2}],
           "lr": 2e-3, "warmup_steps": 2, "ema_decay": 0.9, "gan_start": 10, "sample_every": 0,
           "checkpoint_every": 1, "keep_checkpoints": 2, "log_every": 1}}
JSON

# command_of KIND RUN FRESH: sets CMD to the command that starts (FRESH=1) or resumes a run.
command_of() {
  local kind="$1" run="$2" fresh="$3"
  if [ "$kind" = lm ]; then
    if [ "$fresh" = 1 ]; then CMD=("$loong" train --config "$work/lm.json" --out "$run")
    else CMD=("$loong" train --resume "$run"); fi
  else
    if [ "$fresh" = 1 ]; then CMD=("$loong" tokenizer train --config "$work/tokenizer.json" --data "$work/data/all.jsonl" --out "$run")
    else CMD=("$loong" tokenizer train --resume --data "$work/data/all.jsonl" --out "$run"); fi
  fi
}
start() { command_of "$@" && "${CMD[@]}"; }

has_checkpoint() { compgen -G "$1/checkpoints/step-*[0-9]" > /dev/null; }

# final_files RUN: the files of the newest checkpoint, as "NAME SHA256" lines.
final_files() {
  local ck
  ck=$(ls -d "$1"/checkpoints/step-*[0-9] | sort | tail -n 1)
  echo "$(basename "$ck")"
  (cd "$ck" && find . -type f ! -name '*.json' -print0 | sort -z | xargs -0 sha256sum)
  # JSON files hold timings; their training state (step, RNG, data position) must match.
  (cd "$ck" && for f in *.json; do
     [ -f "$f" ] && echo "$f $(python3 -c 'import json,sys
d=json.load(open(sys.argv[1]))
for k in ("seconds","elapsed_s","wall_s","time","minutes","tokens_per_s","date"): d.pop(k,None)
print(json.dumps(d,sort_keys=True))' "$f" | sha256sum | cut -c1-16)"
   done)
}

# losses LOG: "step loss" per logged step (the training log must hold each step once).
losses() { python3 -c 'import json,sys
for line in open(sys.argv[1]):
    r=json.loads(line); print(r["step"], repr(r.get("loss")))' "$1"; }

failures=0
trial() {
  local kind="$1" ref="$work/$1-straight" run="$work/$1-killed" log="$work/$1.log"
  rm -rf "$run" "$log"
  # The uninterrupted run is kept for the next time, for the same binary and config.
  local stamp
  stamp=$(cat "$loong" "$work/$kind.json" | sha256sum | cut -c1-16)
  if [ "$(cat "$ref.done" 2> /dev/null)" != "$stamp" ]; then
    rm -rf "$ref"
    local s=$EPOCHREALTIME
    start "$kind" "$ref" 1 > "$work/$kind-straight.log" 2>&1 ||
      { echo "$kind: the uninterrupted run failed (see $work/$kind-straight.log)"; failures=$((failures + 1)); return; }
    awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f\n", b-a}' > "$ref.seconds"
    echo "$stamp" > "$ref.done"
  fi
  local straight
  straight=$(cat "$ref.seconds")
  echo "$kind: uninterrupted run ${straight} s"
  [ "$kills" -gt 0 ] || return 0  # only the uninterrupted run (scripts/full_disk_trials.sh)
  # Kill delays from 0.2 s (still loading) to about 1.5 times the run's share per kill
  # (plus start-up), so that the kills spread over the whole run.
  local span
  span=$(awk -v t="$straight" -v k="$kills" 'BEGIN{printf "%.3f", 0.6 + 1.5 * t / k}')
  local landed=0 in_checkpoint=0 runs=0
  while [ "$landed" -lt "$kills" ]; do
    local fresh=1
    has_checkpoint "$run" && fresh=0
    local delay
    delay=$(awk -v r=$RANDOM -v s="$span" 'BEGIN{printf "%.2f", 0.2 + (s - 0.2) * r / 32767}')
    command_of "$kind" "$run" "$fresh"
    "${CMD[@]}" >> "$log" 2>&1 &  # the background job is loong itself: the kill reaches it
    local pid=$!
    runs=$((runs + 1))
    sleep "$delay"
    if kill -9 "$pid" 2> /dev/null; then
      wait "$pid" 2> /dev/null || true
      landed=$((landed + 1))
      compgen -G "$run/checkpoints/*.partial" > /dev/null && in_checkpoint=$((in_checkpoint + 1))
      echo "--- killed after ${delay} s" >> "$log"
    else
      # Finished before the kill: the run is complete; start it again from scratch.
      wait "$pid" || { echo "$kind: a run failed (see $log)"; failures=$((failures + 1)); return; }
      rm -rf "$run"
    fi
  done
  # Resume to the end.
  local last=1
  has_checkpoint "$run" && last=0
  start "$kind" "$run" "$last" >> "$log" 2>&1 || { echo "$kind: the last start failed (see $log)"; failures=$((failures + 1)); return; }
  local leftovers
  leftovers=$(find "$run" \( -name '.*.tmp-*' -o -name '*.partial' \) | wc -l)
  if diff <(final_files "$ref") <(final_files "$run") > "$work/$kind.diff"; then
    echo "$kind: $landed kills ($in_checkpoint left a checkpoint half-written) in $runs starts: final checkpoint identical"
  else
    echo "$kind: $landed kills: final checkpoint DIFFERS from the uninterrupted run (see $work/$kind.diff)"
    failures=$((failures + 1))
  fi
  if ! diff <(losses "$ref/log.jsonl") <(losses "$run/log.jsonl") > "$work/$kind-log.diff"; then
    echo "$kind: the training log differs from the uninterrupted run's (see $work/$kind-log.diff)"
    failures=$((failures + 1))
  fi
  if [ "$leftovers" -ne 0 ]; then
    echo "$kind: $leftovers temporaries left in $run"
    failures=$((failures + 1))
  fi
}

case "$which" in
  lm) trial lm ;;
  tokenizer) trial tokenizer ;;
  both) trial lm; trial tokenizer ;;
  *) echo "WHICH: expected lm, tokenizer or both, got '$which'" >&2; exit 2 ;;
esac
[ "$failures" -eq 0 ] && echo "kill trials: all passed" || { echo "kill trials: $failures failed"; exit 1; }
