#!/usr/bin/env bash
# Remakes the fuzzers' seed corpora in fuzz/corpus/ (committed; each file small):
# one or a few valid inputs per reader, so that fuzzing starts from the formats'
# structure. Needs python3, the ffmpeg program and a loong binary with FFmpeg
# and SentencePiece (LOONG, default build/bin/loong).
set -euo pipefail
source "$(dirname "$0")/common.sh"
c=fuzz/corpus
# Inputs fuzzing found (regression-*) are kept.
mkdir -p "$c"/{safetensors,shards,manifest,config,text,clip_bpe,video}
find "$c" -type f ! -name 'regression-*' -delete
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT

# seed DIR NAME SELECTOR_BYTE FILE: FILE's bytes behind a selector byte (the harness reads it first).
seed() { { printf "\\x$(printf %02x "$3")"; cat "$4"; } > "$c/$1/$2"; }

python3 - "$c/safetensors" <<'PY'
import json, struct, sys
def st(path, tensors, meta):
    header, data = {"__metadata__": meta}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
st(sys.argv[1] + "/f32.safetensors", {"w": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))}, {"format": "loong-lm"})
st(sys.argv[1] + "/mixed.safetensors", {"a": ("BF16", [3], b"\x80\x3f" * 3), "b": ("I64", [1], struct.pack("<q", 7)),
   "c": ("U8", [0], b"")}, {"format": "loong-adamw"})
PY

# A token shard of one image and one short video, by the default model's tokenizers.
"$loong" data moving-fashion --out "$tmp/d" --videos 1 --seconds 1 --size 64 --images 1 --seed 5 --quiet --force
cat "$tmp/d/manifest.jsonl" "$tmp/d/images.jsonl" > "$tmp/d/all.jsonl"
"$loong" tokenize --data "$tmp/d/all.jsonl" --tokenizer models/default/tokenizer --text models/default/text --out "$tmp/s" > /dev/null
cp "$tmp"/s/*.loongshard "$c/shards/one.loongshard"

printf '%s\n' '{"path": "a.mp4", "caption": "a red sneaker", "start": 1.5, "end": 3}' \
  '{"path": "b.png", "caption": "a bag", "kind": "image"}' > "$tmp/m.jsonl"
seed manifest jsonl 0 "$tmp/m.jsonl"
printf '%s\n' 'path,caption,start,end' 'a.mp4,"a red, ""quoted"" sneaker",0,2' 'b.png,a bag,,' > "$tmp/m.csv"
seed manifest csv 1 "$tmp/m.csv"

i=0
for f in models/default/tokenizer/config.json models/default/lm/config.json; do
  seed config "$i-$(basename "$(dirname "$f")")" "$i" "$f"; i=$((i + 1))
done
echo '{"preset": "tiny", "train": {"lr": 1e-3}}' > "$tmp/t.json"
seed config 2-tokenizer-run 2 "$tmp/t.json"
echo '{"preset": "tiny", "data": "shards", "stages": [{"frames": 1, "steps": 3, "batch_size": 4, "lr": 1e-3}]}' > "$tmp/l.json"
seed config 3-lm-run 3 "$tmp/l.json"
seed config 4-bundle 4 models/default/loong.json
echo '{"image_size": 64, "channels": 16}' > "$tmp/p.json" && seed config 5-probe 5 "$tmp/p.json"
echo '{"scale": 2, "channels": 16, "layers": 2}' > "$tmp/r.json" && seed config 6-sr 6 "$tmp/r.json"

printf '0: a red sneaker moving right\n20.5: a blue bag on a grey background\n# a comment\n' > "$tmp/story"
seed text story 0 "$tmp/story"
printf 'a red sneaker and a blue bag moving to the left on a black background\n' > "$tmp/cap"
seed text caption 1 "$tmp/cap"

printf '#version: 0.2\nh e\nhe l\nl o</w>\nr e\nre d</w>\n' > "$c/clip_bpe/merges.txt"
gzip -c "$c/clip_bpe/merges.txt" > "$c/clip_bpe/merges.txt.gz"

# Videos: the selector byte picks the file name's container (fuzz_video.cpp's list).
src=(-f lavfi -i "testsrc=size=16x16:rate=4:duration=0.5")
ffmpeg -loglevel error "${src[@]}" -pix_fmt yuv420p -c:v libx264 -g 2 -bf 1 "$tmp/v.mp4"
ffmpeg -loglevel error "${src[@]}" -c:v mjpeg "$tmp/v.avi"
ffmpeg -loglevel error "${src[@]}" -c:v ffv1 "$tmp/v.mkv"
ffmpeg -loglevel error "${src[@]}" "$tmp/v.gif"
ffmpeg -loglevel error "${src[@]}" -c:v libvpx -b:v 50k "$tmp/v.webm"
ffmpeg -loglevel error "${src[@]}" -c:v png "$tmp/v.mov"
ffmpeg -loglevel error -f lavfi -i "testsrc=size=16x16" -frames:v 1 "$tmp/v.png"
ffmpeg -loglevel error "${src[@]}" -pix_fmt yuv420p "$tmp/v.y4m"
i=0
for e in mp4 avi mkv gif webm mov png y4m; do seed video "$e" "$i" "$tmp/v.$e"; i=$((i + 1)); done
du -sh "$c"; find "$c" -type f | wc -l
