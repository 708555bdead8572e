#!/usr/bin/env bash
# A lighter decoder for a bundle's video tokenizer, trained on its encoder and codebook, and a
# bundle with it (docs/tokenizer.md, "A lighter decoder"; docs/benchmarks.md, "A lighter decoder").
#
#   scripts/train_light_decoder.sh [BUNDLE] [WORK]     (defaults: models/default out/light-decoder)
#
# Steps (each resumes or is skipped when done):
#   data     the tokenizer recipe's training videos and stills, and its 64 held-out t10k clips
#            (set WORLD as the bundle was trained: empty for the committed default model)
#   train    scripts/decoder_light.json from the bundle's tokenizer (--init; the encoder and
#            codebook kept bit for bit, so every video keeps its codes), then
#            scripts/decoder_light_more.json from that run at a lower rate
#   eval     held-out PSNR of the bundle's tokenizer and of the new one: WORK/eval-*.json
#   pack     WORK/model: the bundle's language model and text tokenizer with the new video
#            tokenizer, and the bundle's recorded guidance, temperature and clip settings
# About 25 min on 2 cores (2026-12-06: 10.4 min, then 14 min beside a build). The committed
# default model's tokenizer gave 26.9 dB against its own 27.3 dB, and decodes 2.9x faster.
set -euo pipefail
bundle="${1:-models/default}"
work="${2:-}"
case "$bundle" in /*) ;; *) bundle="$PWD/$bundle" ;; esac
case "$work" in /* | "") ;; *) work="$PWD/$work" ;; esac
source "$(dirname "$0")/common.sh"
work="${work:-$PWD/out/light-decoder}"
[ -f "$bundle/loong.json" ] && [ -d "$bundle/tokenizer" ] ||
  { echo "$bundle: not a model bundle (no loong.json and tokenizer/)" >&2; exit 1; }
mkdir -p "$work"

train_data "$work/train" 256 512 0
heldout_clips "$work/heldout"

run() {  # run DIR CONFIG INIT
  if [ -d "$1/checkpoints" ]; then
    "$loong" tokenizer train --config "$2" --data "$work/train/all.jsonl" --out "$1" --resume --device "${DEVICE:-cpu}"
  else
    "$loong" tokenizer train --config "$2" --data "$work/train/all.jsonl" --out "$1" --init "$3" --device "${DEVICE:-cpu}"
  fi
}
start=$(date +%s)
run "$work/run" scripts/decoder_light.json "$bundle/tokenizer" > "$work/train.log"
run "$work/run2" scripts/decoder_light_more.json "$work/run" > "$work/train2.log"
echo "training wall time: $(( $(date +%s) - start )) s"

heldout_eval "$bundle/tokenizer" "$work/heldout" "$work/eval-bundle.json" --device "${DEVICE:-cpu}" > /dev/null
heldout_eval "$work/run2" "$work/heldout" "$work/eval-light.json" --device "${DEVICE:-cpu}" > /dev/null
python3 - "$work" << 'PY'
import json, sys
w = sys.argv[1]
for name in ("bundle", "light"):
    j = json.load(open(f"{w}/eval-{name}.json"))
    print(f"{name}: held-out PSNR {j['psnr']:.2f} dB, {j['codes_used']} codes used")
PY

# The bundle's recorded settings, each passed only where it has one.
read -r -a settings < <(python3 -c "
import json, sys
j = json.load(open(sys.argv[1]))
flags = {'cfg_scale': '--cfg', 'first_clip_cfg_scale': '--first-clip-cfg', 'temperature': '--temperature',
         'fps': '--fps', 'clip_frames': '--clip-frames', 'overlap_frames': '--overlap-frames'}
print(' '.join(f'{flag} {j[key]}' for key, flag in flags.items() if key in j))" "$bundle/loong.json")
"$loong" model pack --tokenizer "$work/run2" --text "$bundle/text" --lm "$bundle/lm" --name "$(basename "$bundle")-light" \
  --dtype f16 "${settings[@]}" --out "$work/model" --force
du -sh "$work/model"
