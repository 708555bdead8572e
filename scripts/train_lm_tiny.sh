#!/usr/bin/env bash
# Reproduces the recorded tiny language-model run (docs/benchmarks.md):
# moving-fashion data (1,024 ten-second videos + 1,024 images at 64x64),
# a text tokenizer, token shards from a trained video tokenizer, then the
# `tiny` training preset: images, then 17-frame, then 65-frame clips. Stage 3
# runs twice from the same stage-2 checkpoint, with lambda = 1 (the preset)
# and lambda = 0, to show Eq. 2's effect on the early frames' loss.
#
#   scripts/train_lm_tiny.sh VIDEO_TOKENIZER [WORK_DIR]   (default WORK_DIR: out/lm-tiny)
# VIDEO_TOKENIZER: a trained tokenizer (scripts/train_tokenizer_tiny.sh makes one).
# Environment: LOONG (the binary, default build/bin/loong), LOONG_THREADS.
set -euo pipefail
tok="${1:?usage: $0 VIDEO_TOKENIZER [WORK_DIR]}"
work="${2:-}"
tok="$(realpath "$tok")"
case "$work" in /* | "") ;; *) work="$PWD/$work" ;; esac
source "$(dirname "$0")/common.sh"
work="${work:-out/lm-tiny}"
mkdir -p "$work"

train_data "$work/train" 1024 1024 5
text_and_shards "$work" "$tok"

cat > "$work/train.json" <<JSON
{"preset": "tiny", "data": "shards", "text_tokenizer": "text", "video_tokenizer": "$tok", "log_every": 10}
JSON
# Stages 1-2 (700 steps), then stage 3 twice from the same checkpoint.
start=$(date +%s)
[ -d "$work/lambda1/checkpoints/step-00000700" ] ||
  "$loong" train --config "$work/train.json" --out "$work/lambda1" --stop-at 700 > "$work/stage12.log"
echo "stages 1-2: $(( $(date +%s) - start )) s"
if [ ! -d "$work/lambda0" ]; then
  mkdir -p "$work/lambda0/checkpoints"
  cp -r "$work/lambda1/checkpoints/step-00000700" "$work/lambda0/checkpoints/"
  head -n 700 "$work/lambda1/log.jsonl" > "$work/lambda0/log.jsonl"
  sed 's/"lambda": 1.0/"lambda": 0.0/' "$work/lambda1/run.json" > "$work/lambda0/run.json"
fi
for run in lambda1 lambda0; do
  s=$(date +%s)
  "$loong" train --resume "$work/$run" | tee "$work/$run.log"
  echo "$run stage 3: $(( $(date +%s) - s )) s" | tee -a "$work/$run.log"
done

# Mean per-range losses (unweighted CE) over the last 40 steps of stage 3, per run.
summary() {
  tail -n 40 "$1" | awk -v run="$2" '
    function val(k,   m) { if (match($0, "\"" k "\":[-0-9.eE+]+")) { m = substr($0, RSTART, RLENGTH); sub(/.*:/, "", m); return m } return "" }
    { for (i = 1; i <= 3; i++) { k = (i == 1 ? "loss_frame_1" : i == 2 ? "loss_frames_2_17" : "loss_frames_18_65"); v = val(k); if (v != "") { s[i] += v; n[i]++ } } }
    END { printf "%s: frame 1 %.4f | frames 2-17 %.4f | frames 18-65 %.4f  (mean of the last 40 steps)\n", run, s[1]/n[1], s[2]/n[2], s[3]/n[3] }'
}
summary "$work/lambda1/log.jsonl" "lambda = 1" | tee "$work/summary.txt"
summary "$work/lambda0/log.jsonl" "lambda = 0" | tee -a "$work/summary.txt"
