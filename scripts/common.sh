# Sourced by the scripts in this folder (not run on its own).
# Sets $loong (the binary: $LOONG, default build/bin/loong) and defines
# train_data DIR VIDEOS IMAGES SEED: moving-fashion training data at 64x64
# with DIR/all.jsonl listing the videos and the stills (made once), and
# heldout_clips DIR: the tokenizer recipe's held-out clips (t10k, 64 ten-second videos), and
# heldout_eval TOKENIZER DIR JSON [loong options...]: a tokenizer scored on DIR's 17-frame clips.
# WORLD: `loong data moving-fashion` flags for the look of every dataset made here (docs/data.md,
# "Worlds"), e.g. "--item-size 0.4375 --classes 0,1,3,7,8,9 --items-bounce"; empty: the default world.
set -euo pipefail
# The trainers too keep freed memory in the heap for reuse (core/runtime.h; every other command
# does by default): on the virtual machine of 2026-12-05 the language model's steps ran 1.6x
# faster with it at the same peak memory (0.83 GB), since page faults there are dear.
export LOONG_KEEP_FREED_MEMORY="${LOONG_KEEP_FREED_MEMORY:-1}"
read -r -a world <<< "${WORLD:-}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
loong="${LOONG:-build/bin/loong}"
[ -x "$loong" ] || { echo "no $loong: run ./run build first" >&2; exit 1; }

train_data() {
  local dir="$1" videos="$2" images="$3" seed="$4"
  if [ ! -f "$dir/all.jsonl" ]; then
    "$loong" data moving-fashion --out "$dir" --videos "$videos" --seconds 10 --size 64 --images "$images" \
      --seed "$seed" --quiet --force "${world[@]}"
    cat "$dir/manifest.jsonl" "$dir/images.jsonl" > "$dir/all.jsonl"
  fi
}

# text_and_shards WORK TOKENIZER [loong options...]: WORK/text (SentencePiece on the captions
# of WORK/train/all.jsonl) and WORK/shards (its tokens), each made once. The shard file is
# renamed into place only when complete, so a run stopped while tokenizing tokenizes again.
text_and_shards() {
  local work="$1" tok="$2"
  shift 2
  [ -f "$work/text/text.model" ] || "$loong" text train --data "$work/train/all.jsonl" --vocab 512 --out "$work/text"
  [ -f "$work/shards/part-00000-of-00001.loongshard" ] ||
    "$loong" tokenize --data "$work/train/all.jsonl" --tokenizer "$tok" --text "$work/text" --out "$work/shards" "$@"
}

heldout_clips() {
  [ -f "$1/manifest.jsonl" ] ||
    "$loong" data moving-fashion --out "$1" --split t10k --videos 64 --seconds 10 --size 64 --seed 1 --quiet --force \
      "${world[@]}"
}

heldout_eval() {
  local model="$1" dir="$2" json="$3"
  shift 3
  "$loong" tokenizer eval --model "$model" --data "$dir/manifest.jsonl" --frames 17 --json "$json" "$@"
}
