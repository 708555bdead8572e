#!/usr/bin/env bash
# Trains the default model (models/default) from scratch with the project's
# own commands, through the full recipe, then measures it against real
# held-out videos (docs/results.md, "The default model"):
#
#   tokenizer  the tiny video tokenizer with 1,024 codes (scripts/train_tokenizer_tiny.sh with
#              scripts/tokenizer_tiny_1024.json: 1 -> 17 -> 65 frames)
#   lm         moving-fashion data, a SentencePiece text tokenizer, token shards, and the
#              language model: images, then 17-frame, then 65-frame clips with lambda = 1, then
#              65-frame clips whose first frames are given, half of them spliced (stories)
#   pack       the bundle WORK/model (f16 weights; guidance scale 2, none for the first clip;
#              temperature 1: at 0.7 items fade into the background, docs/results.md)
#   eval       a probe, then 60-second videos of 32 held-out prompts (t10k items, never
#              seen in training) generated with re-encoding at seeds 1 and 2 and scored
#              beside the real videos of the same prompts: WORK/eval/report.json,
#              WORK/eval-seed2/report.json and plots; and the same real videos through the
#              tokenizer, the ceiling of any model on it: WORK/tokenizer-ceiling/report.json;
#              and 16 three-prompt stories (scripts/story_eval.sh): WORK/story/report.json
#
# The world (docs/data.md, "Worlds"; docs/results.md, "The default model, second version"):
# items 28 pixels wide on 64x64 frames (Fashion-MNIST's own size), drawn from the six classes a
# 64x64 frame tells apart (t-shirt, trousers, dress, sneaker, bag, ankle boot), bouncing off
# each other so that two never hide one another. WORLD (the `loong data moving-fashion` flags of
# every dataset made here, the probe's world too) changes it; WORLD="" is the default world of
# the first default model.
#
#   scripts/train_default_model.sh [WORK_DIR [STEP...]]   (default out/default-model; all steps)
#
# Every step is skipped when its output exists, so a stopped run continues.
# Time on 2 CPU cores (2026-11-25, the committed model): tokenizer 27.5 min, data 1 min, shards
# 12 min (2,048 videos, 32,768 stills), language model 31.5 min, probe 28.5 min, eval about
# 10 min (3 for the model's videos, the rest to pass the real ones through the tokenizer):
# under 2 hours. On the machine of 2026-12-05 (second world, freed memory kept: common.sh):
# tokenizer about 51 min (69 measured before the fix), data 2, shards 7.5, language model 26
# and its stories stage 6.5, probe 41, eval 11 + ceiling 8 + story 10: about 160 minutes.
# The figure of docs/results.md: scripts/default_model_figure.sh WORK.
# With a GPU, DEVICE=cuda trains both networks there (the recipe is the same).
# TOKENIZER_CONFIG (default scripts/tokenizer_tiny_1024.json: the tiny preset with 1,024 codes,
# the committed model's) picks the video tokenizer; the model before it used the 256-code
# L1-only scripts/tokenizer_tiny_l1.json, and 'tiny' is the preset's own 256 codes.
# scripts/tokenizer_tiny_1024_4x.json downsamples 4x in space, not 8x: a higher ceiling
# (docs/results.md) but 4x the tokens. Its language model is best trained on a GPU; on 2 CPU
# cores bench_lm_train puts it at about 5 hours (steps of 32 stills 1.7 s, of 16 17-frame
# clips 6.8 s, of 8 65-frame clips about 22 s; blocked attention, docs/benchmarks.md), after
# about an hour of tokenizing. Give it LM_MODEL='{"n_kv_heads": 1}':
# one key/value head is what lets a 4x minute generate near the 60 s limit on 2 cores.
# VIDEO_TOKENIZER=DIR uses an already trained video tokenizer instead of training one (e.g.
# VIDEO_TOKENIZER=models/default/tokenizer, to try a language-model change alone).
# To make it the default: rm -r models/default && cp -r WORK/model models/default
# (only when it beats the committed one on the figures in docs/results.md).
# Environment: LOONG (the binary, default build/bin/loong), LOONG_THREADS, DEVICE, and
# LM_MODEL: a JSON object of model keys over the tiny preset's, e.g. '{"dim": 192, "n_heads": 6,
# "n_kv_heads": 6, "ffn_dim": 768}' (the wider run of docs/results.md) or '{"rope": "3d"}' (3D rotary
# positions on the tokenizer's latent grid, docs/lm.md), and LM_IMAGE_STEPS:
# the steps of stage 1 (default 3000; 6000 is the longer run of docs/results.md).
set -euo pipefail
export WORLD="${WORLD-"--item-size 0.4375 --classes 0,1,3,7,8,9 --items-bounce"}"
work="${1:-}"
case "$work" in /* | "") ;; *) work="$PWD/$work" ;; esac
shift $(( $# >= 1 ? 1 : 0 ))
video_tokenizer="${VIDEO_TOKENIZER:-}"  # made absolute before common.sh changes the folder
case "$video_tokenizer" in /* | "") ;; *) video_tokenizer="$PWD/$video_tokenizer" ;; esac
steps="${*:-tokenizer lm pack eval}"
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/common.sh"
work="${work:-$PWD/out/default-model}"
mkdir -p "$work"
want() { [[ " $steps " == *" $1 "* ]]; }
device=(--device "${DEVICE:-cpu}")
tok="$work/tokenizer/run"
image_steps="${LM_IMAGE_STEPS:-3000}"
[[ "$image_steps" =~ ^[1-9][0-9]*$ ]] || { echo "LM_IMAGE_STEPS: expected a positive integer, got '$image_steps'" >&2; exit 1; }

if [ -n "$video_tokenizer" ] && [ -e "$tok" ] &&
  [ "$(cd "$tok" && pwd -P)" != "$(cd "$video_tokenizer" 2> /dev/null && pwd -P)" ]; then
  echo "VIDEO_TOKENIZER: $work already holds another video tokenizer ($tok); choose a new WORK folder" >&2
  exit 1
fi
if want tokenizer && [ ! -f "$work/tokenizer/eval.json" ]; then
  if [ -n "$video_tokenizer" ]; then
    # An already trained tokenizer: linked in, not trained, and evaluated on the tokenizer
    # recipe's held-out clips (which the eval step reads too).
    [ -f "$video_tokenizer/config.json" ] || [ -d "$video_tokenizer/checkpoints" ] || {
      echo "VIDEO_TOKENIZER: $video_tokenizer is not a video tokenizer (expected a folder with config.json," \
        "e.g. models/default/tokenizer, or a 'loong tokenizer train' run folder)" >&2; exit 1; }
    mkdir -p "$work/tokenizer"
    [ -e "$tok" ] || ln -s "$(cd "$video_tokenizer" && pwd -P)" "$tok"
    heldout_clips "$work/tokenizer/heldout"
    heldout_eval "$tok" "$work/tokenizer/heldout" "$work/tokenizer/eval.json" "${device[@]}"
  else
    [ ! -L "$tok" ] || {
      echo "$tok links to an existing tokenizer: set VIDEO_TOKENIZER to it, or choose a new WORK folder" >&2; exit 1; }
    DEVICE="${DEVICE:-cpu}" TOKENIZER_CONFIG="${TOKENIZER_CONFIG:-$here/tokenizer_tiny_1024.json}" \
      "$here/train_tokenizer_tiny.sh" "$work/tokenizer"
  fi
fi

if want lm; then
  train_data "$work/train" 2048 32768 5
  text_and_shards "$work" "$tok" "${device[@]}"
  # The tiny preset's model and stages, at 10x (images), 2.25x and 2.5x the steps. 32,768 stills
  # (not 1,024) keep stage 1 from memorising its images: the class shapes then carry to unseen items.
  # Then stories (docs/lm.md): clips whose first 5 frames are given, half of them another clip's,
  # so that a story's new prompt takes hold after the re-encoded end of the previous part.
  model_keys=""
  [ -z "${LM_MODEL:-}" ] || model_keys=$'\n "model": '"$LM_MODEL,"
  cat > "$work/lm.json" <<JSON
{"preset": "tiny", "data": "shards", "text_tokenizer": "text", "video_tokenizer": "$tok", "log_every": 10,$model_keys
 "stages": [
   {"name": "images", "frames": 1, "steps": $image_steps, "batch_size": 32, "lr": 0.002, "warmup_steps": 30},
   {"name": "17 frames", "frames": 17, "image_fraction": 0.25, "steps": 900, "batch_size": 16, "lr": 0.001,
    "warmup_steps": 30},
   {"name": "65 frames", "frames": 65, "image_fraction": 0.1, "steps": 300, "batch_size": 8, "lr": 0.001,
    "warmup_steps": 20, "lambda": 1.0},
   {"name": "stories", "frames": 65, "image_fraction": 0.1, "steps": 300, "batch_size": 8, "lr": 0.0005,
    "warmup_steps": 20, "lambda": 1.0, "given_frames": 5, "splice_fraction": 0.5}]}
JSON
  if [ -d "$work/lm/checkpoints" ]; then
    # A run resumes with the stages it began with (its run.json), not this recipe's.
    python3 - "$work/lm/run.json" "$work/lm.json" <<'PY' || true
import json, sys
began, now = ([s.get("name") for s in json.load(open(p))["stages"]] for p in sys.argv[1:])
if began != now:
    print(f"warning: {sys.argv[1]} resumes its stages {began}, not this recipe's {now}; "
          "remove its folder to train the recipe's", file=sys.stderr)
PY
    "$loong" train --resume "$work/lm" "${device[@]}" > "$work/lm.log"
  else
    "$loong" train --config "$work/lm.json" --out "$work/lm" "${device[@]}" > "$work/lm.log"
  fi
fi

if want pack; then
  "$loong" model pack --tokenizer "$tok" --text "$work/text" --lm "$work/lm" --name default --dtype f16 \
    --cfg 2 --first-clip-cfg 1 --temperature 1 --out "$work/model" --force
  du -sh "$work/model"
fi

if want eval; then
  [ -f "$work/heldout/manifest.jsonl" ] ||
    "$loong" data moving-fashion --out "$work/heldout" --videos 32 --seconds 60 --size 64 --split t10k --seed 7 --quiet \
      "${world[@]}"
  # The probe renders the world of the training data (its dataset.json); the crop window follows the item size.
  [ -d "$work/probe" ] ||
    "$loong" eval probe train --out "$work/probe" --size 64 --steps 3000 --crop-steps 1500 --tokenizer "$tok" \
      --world "$work/train" "${device[@]}" > "$work/probe.log"
  # The model's minutes at two seeds, each scored beside the real ones.
  for seed in 1 2; do
    out="$work/eval"
    [ "$seed" = 1 ] || out="$work/eval-seed$seed"
    [ -f "$out/report.json" ] ||
      "$loong" eval long --model "$work/model" --probe "$work/probe" --real "$work/heldout/manifest.jsonl" \
        --seconds 60 --segment 10 --seed "$seed" --out "$out" "${device[@]}" > "$out.log"
  done
  [ -f "$work/tokenizer-heldout.json" ] ||
    heldout_eval "$work/model/tokenizer" "$work/tokenizer/heldout" "$work/tokenizer-heldout.json" "${device[@]}" > /dev/null
  # The ceiling any language model on this tokenizer can reach: the real held-out videos passed
  # through the tokenizer (65-frame chunks, as generated clips are), scored by the same probe.
  ceiling="$work/tokenizer-ceiling"
  if [ ! -f "$ceiling/report.json" ]; then
    mkdir -p "$ceiling/videos"
    while IFS= read -r video; do
      "$loong" tokenizer reconstruct --model "$work/model/tokenizer" "$work/heldout/$video" -o "$ceiling/$video" \
        "${device[@]}" < /dev/null > /dev/null
    done < <(sed -n 's/.*"video": *"\([^"]*\)".*/\1/p' "$work/heldout/manifest.jsonl")
    cp "$work/heldout/manifest.jsonl" "$ceiling/manifest.jsonl"
    "$loong" eval probe score --probe "$work/probe" --data "$ceiling/manifest.jsonl" --json "$ceiling/report.json" \
      "${device[@]}" > /dev/null
  fi
  # A three-prompt story (a new item, colour or background every 20 s), each part scored against
  # its own prompt beside real videos of the same prompts.
  [ -f "$work/story/report.json" ] || "$here/story_eval.sh" "$work/model" "$work/probe" "$work/story" 16 1
  echo "reports: $work/eval/report.json, $work/eval-seed2/report.json, $work/story/report.json (tokenizer: $work/tokenizer-heldout.json; through the tokenizer:" \
    "$ceiling/report.json)"
fi
