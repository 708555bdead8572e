#!/usr/bin/env bash
# Reproduces the recorded tiny-tokenizer run (docs/benchmarks.md): builds
# moving-fashion data at 64x64 (train split for training, t10k split for the
# held-out evaluation), trains the `tiny` preset on the CPU (at most 60
# minutes: the preset's max_minutes), then evaluates on 17-frame held-out clips.
#
#   scripts/train_tokenizer_tiny.sh [WORK_DIR]      (default: out/tokenizer-tiny)
# Environment: LOONG (the binary, default build/bin/loong), LOONG_THREADS,
# DEVICE (cpu, the default, or cuda), TOKENIZER_CONFIG (default: the `tiny`
# preset; scripts/tokenizer_tiny_1024.json is the 1,024-code recipe the committed
# default model's tokenizer was trained with, scripts/tokenizer_tiny_l1.json the
# L1-only one of the model before it).
set -euo pipefail
work="${1:-}"
case "$work" in /* | "") ;; *) work="$PWD/$work" ;; esac
source "$(dirname "$0")/common.sh"
work="${work:-out/tokenizer-tiny}"
mkdir -p "$work"

train_data "$work/train" 256 512 0
heldout_clips "$work/heldout"

resume=()
[ -d "$work/run/checkpoints" ] && resume=(--resume)
start=$(date +%s)
"$loong" tokenizer train --config "${TOKENIZER_CONFIG:-tiny}" --data "$work/train/all.jsonl" --out "$work/run" "${resume[@]}" \
  --device "${DEVICE:-cpu}" | tee "$work/train.log"
echo "training wall time: $(( $(date +%s) - start )) s" | tee -a "$work/train.log"

heldout_eval "$work/run" "$work/heldout" "$work/eval.json" --device "${DEVICE:-cpu}"
