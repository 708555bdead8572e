#!/usr/bin/env bash
# A multi-prompt story, scored per part beside real videos (issue 35's story target):
# N stories of three held-out prompts, 20 s each (a new item, colour or background every 20 s),
# generated as one 60-second video with `loong generate --prompts` (the clips joined by
# re-encoding across the prompt changes), then each 20-second part scored against its own
# prompt by the probe (`loong eval probe score`, manifest entries with start/end). The real
# figure is the same probe on real 20-second videos of the same prompts (t10k items).
#
#   scripts/story_eval.sh MODEL PROBE OUT [STORIES [SEED]]   (default 16 stories, seed 1)
#
# OUT/report.json: text match (and identity, items seen) per part, model and real, and their
# ratio. Each step is skipped when its output exists. Environment: LOONG, WORLD (the
# `loong data moving-fashion` flags of the world the model was trained on, as in
# scripts/train_default_model.sh), DEVICE, GENERATE_ARGS (more `loong generate` flags for the
# model's stories, e.g. --guide-against-previous; a video already in OUT/gen is kept, so give
# each setting its own OUT).
set -euo pipefail
read -r -a generate_args <<< "${GENERATE_ARGS:-}"
model="${1:?usage: $0 MODEL PROBE OUT [STORIES [SEED]]}"
probe="${2:?usage: $0 MODEL PROBE OUT [STORIES [SEED]]}"
out="${3:?usage: $0 MODEL PROBE OUT [STORIES [SEED]]}"
stories="${4:-16}"
seed="${5:-1}"
[[ "$stories" =~ ^[1-9][0-9]*$ ]] || { echo "STORIES: expected a positive integer, got '$stories'" >&2; exit 1; }
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "SEED: expected a non-negative integer, got '$seed'" >&2; exit 1; }
for v in model probe out; do
  case "${!v}" in /*) ;; *) printf -v "$v" '%s' "$PWD/${!v}" ;; esac
done
[ -d "$model" ] || { echo "MODEL: $model is not a model bundle folder" >&2; exit 1; }
[ -f "$probe/config.json" ] || { echo "PROBE: $probe is not a probe folder (no config.json)" >&2; exit 1; }
source "$(dirname "$0")/common.sh"
device=(--device "${DEVICE:-cpu}")
mkdir -p "$out"

# Real 20-second videos: story k's prompts are videos 3k, 3k+1 and 3k+2.
[ -f "$out/real/manifest.jsonl" ] ||
  "$loong" data moving-fashion --out "$out/real" --videos $((3 * stories)) --seconds 20 --size 64 --split t10k \
    --seed 11 --quiet --force "${world[@]}"
mapfile -t captions < <(python3 -c 'import json,sys
for line in open(sys.argv[1]): print(json.loads(line)["caption"])' "$out/real/manifest.jsonl")

mkdir -p "$out/gen"
: > "$out/gen/manifest.jsonl.tmp"
for ((k = 0; k < stories; k++)); do
  prompts="$out/gen/$k.txt"
  printf '0: %s\n20: %s\n40: %s\n' "${captions[3 * k]}" "${captions[3 * k + 1]}" "${captions[3 * k + 2]}" > "$prompts"
  [ -f "$out/gen/$k.mp4" ] ||
    "$loong" generate --model "$model" --prompts "$prompts" --seconds 60 --seed "$seed" --out "$out/gen/$k.mp4" \
      "${device[@]}" ${generate_args[@]+"${generate_args[@]}"} < /dev/null > /dev/null
  for part in 0 1 2; do
    python3 -c 'import json,sys; print(json.dumps({"video": sys.argv[1], "caption": sys.argv[2],
      "start": 20 * int(sys.argv[3]), "end": 20 * (int(sys.argv[3]) + 1)}))' \
      "$k.mp4" "${captions[3 * k + part]}" "$part" >> "$out/gen/manifest.jsonl.tmp"
  done
done
mv "$out/gen/manifest.jsonl.tmp" "$out/gen/manifest.jsonl"

for set in gen real; do
  [ -f "$out/$set.json" ] ||
    "$loong" eval probe score --probe "$probe" --data "$out/$set/manifest.jsonl" --segment 20 --json "$out/$set.json" \
      "${device[@]}" > /dev/null
done

# Per part (0-20 s, 20-40 s, 40-60 s): the mean over stories, beside the real videos of the
# same prompts; written to a temporary name, then renamed.
python3 - "$out" "$stories" <<'PY'
import json, math, os, sys
out, stories = sys.argv[1], int(sys.argv[2])
gen = json.load(open(os.path.join(out, "gen.json")))["per_video"]
real = json.load(open(os.path.join(out, "real.json")))["per_video"]
def mean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else float("nan")
report = {"stories": stories, "parts": []}
for part in range(3):
    row = {"part": part, "seconds": [20 * part, 20 * part + 20]}
    for key in ("text_match", "identity", "items_seen"):
        g = mean([v["overall"][key] for i, v in enumerate(gen) if i % 3 == part])
        r = mean([v["overall"][key] for i, v in enumerate(real) if i % 3 == part])
        row[key] = {"model": g, "real": r, "ratio": g / r if r > 0 else None}
    report["parts"].append(row)
tm = [p["text_match"]["ratio"] for p in report["parts"]]
report["text_match_ratio_min"] = min(x for x in tm if x is not None) if any(x is not None for x in tm) else None
tmp = os.path.join(out, "report.json.tmp")
json.dump(report, open(tmp, "w"), indent=2)
os.replace(tmp, os.path.join(out, "report.json"))
for p in report["parts"]:
    t = p["text_match"]
    print(f"{p['seconds'][0]:2d}-{p['seconds'][1]:2d} s: text match {t['model']:.3f} (real {t['real']:.3f}, ratio {t['ratio']})")
PY
