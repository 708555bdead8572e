#!/usr/bin/env bash
# The figure of docs/results.md ("The default model"): for held-out prompts, one frame every
# 5 s of the minute, in three rows per prompt:
#   real video | the real video through the model's video tokenizer | the model's video
#
#   scripts/default_model_figure.sh WORK [OUT.png [VIDEO_ID...]]
#
# WORK is a scripts/train_default_model.sh work folder after its eval step: WORK/heldout, the
# eval step's reconstructions WORK/tokenizer-ceiling/videos and the model's WORK/eval/videos. OUT defaults to WORK/figure.png; the videos to 000003 000000
# (the two prompts the figure has always shown). Needs the ffmpeg program (apt install ffmpeg).
set -euo pipefail
work="${1:?usage: scripts/default_model_figure.sh WORK [OUT.png [VIDEO_ID...]]}"
case "$work" in /*) ;; *) work="$PWD/$work" ;; esac
out="${2:-$work/figure.png}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
shift $(( $# >= 2 ? 2 : $# ))
if [ "$#" -gt 0 ]; then ids=("$@"); else ids=(000003 000000); fi
command -v ffmpeg > /dev/null || { echo "needs the ffmpeg program: apt install ffmpeg" >&2; exit 1; }
for d in "$work/heldout/videos" "$work/tokenizer-ceiling/videos" "$work/eval/videos"; do
  [ -e "$d" ] || { echo "$d: missing; run scripts/train_default_model.sh $work first" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# 12 frames at 6.5 fps: 0, 32, 65, 97, ... (one every 5 s), 80 px each, in one row.
row() {
  ffmpeg -loglevel error -y -i "$1" \
    -vf "select='eq(mod(n\,65)\,0)+eq(mod(n\,65)\,32)',scale=80:80:flags=neighbor,tile=12x1${3:-}" -frames:v 1 "$2"
}
rows=()
for i in "${!ids[@]}"; do
  id="${ids[$i]}"
  row "$work/heldout/videos/$id.mp4" "$tmp/$id-0.png"
  row "$work/tokenizer-ceiling/videos/$id.mp4" "$tmp/$id-1.png"
  gap=""
  [ "$i" -eq $(( ${#ids[@]} - 1 )) ] || gap=",pad=iw:ih+8:0:0:white"
  row "$work/eval/videos/$id.mp4" "$tmp/$id-2.png" "$gap"
  rows+=(-i "$tmp/$id-0.png" -i "$tmp/$id-1.png" -i "$tmp/$id-2.png")
done
n=$(( ${#rows[@]} / 2 ))
ffmpeg -loglevel error -y "${rows[@]}" -filter_complex "vstack=inputs=$n" "$tmp/figure.png"
mv "$tmp/figure.png" "$out"
echo "figure: $out"
