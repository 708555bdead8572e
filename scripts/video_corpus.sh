#!/usr/bin/env bash
# Real-world video shapes (docs/reliability.md): makes each with the ffmpeg program
# (nothing is committed), converts it with `loong video convert` and with ffmpeg
# itself, and compares frame counts, durations and verdicts. Two conversions per
# file: every decoded frame (--fps 0; ffmpeg: -fps_mode passthrough) and resampled
# to 5 fps (ffmpeg: -vf fps=5).
#
#   scripts/video_corpus.sh [WORK_DIR]        (default: out/video-corpus)
# Prints a table; exit status 1 when a file's verdict differs from ffmpeg's or a
# count differs beyond what the table's note explains. LONG=0 skips the hour-long file.
set -euo pipefail
work="${1:-}"
case "$work" in /* | "") ;; *) work="$PWD/$work" ;; esac
source "$(dirname "$0")/common.sh"
work="${work:-$PWD/out/video-corpus}"
mkdir -p "$work/in" "$work/out"
ff() { ffmpeg -nostdin -hide_banner -loglevel error -y "$@"; }
src() { echo "testsrc2=size=${1}:rate=${2}:duration=${3}"; }

make_corpus() {
  local d=$work/in
  [ -f "$d/.done" ] && return
  # A VFR stream muxed into AVI: the muxer writes empty index entries for the gaps (dropped frames).
  ff -f lavfi -i "$(src 64x48 25 8)" -vf "select='lt(mod(n,25),4)'" -fps_mode vfr -c:v mpeg4 -q:v 5 -f avi "$d/avi_dropped.avi"
  ff -f lavfi -i "$(src 64x48 25 6)" -vf "setpts='if(lt(N,50),N/25,2+(N-50)/5)/TB'" -fps_mode vfr -c:v libx264 -pix_fmt yuv420p "$d/vfr.mp4"
  ff -f lavfi -i "$(src 64x48 30 4)" -vf "setpts='N*N/(30*60)/TB+N/60/TB'" -fps_mode vfr -c:v libx264 -pix_fmt yuv420p "$d/vfr.mkv"
  ff -f lavfi -i "$(src 64x48 25 4)" -c:v libx264 -pix_fmt yuv420p -bf 3 -g 12 -x264-params open-gop=1 "$d/open_gop_bframes.mp4"
  ff -f lavfi -i "$(src 64x48 25 3)" -c:v libx264 -pix_fmt yuv420p -metadata:s:v rotate=90 "$d/rotated_tmp.mp4"
  # FFmpeg 6.1+ writes the display matrix from -display_rotation (an input option); 5.1 from
  # the rotate tag above.
  ff -display_rotation:v:0 90 -i "$d/rotated_tmp.mp4" -c copy "$d/rotated_phone.mp4" 2> /dev/null ||
    mv "$d/rotated_tmp.mp4" "$d/rotated_phone.mp4"
  rm -f "$d/rotated_tmp.mp4"
  ff -f lavfi -i "$(src 64x48 25 3)" -vf "interlace=scan=tff,setfield=tff" -c:v libx264 -pix_fmt yuv420p -flags +ildct+ilme "$d/interlaced.mp4"
  ff -f lavfi -i "$(src 64x48 10 2)" -vf scale=7:5 -c:v ffv1 "$d/odd_7x5.mkv"
  ff -f lavfi -i "$(src 64x48 10 2)" -vf scale=1:1 -c:v ffv1 "$d/one_pixel.mkv"
  ff -f lavfi -i "$(src 160x90 25 2)" -c:v libx264 -pix_fmt yuv420p "$d/wide_16x9.mp4"
  ff -f lavfi -i "$(src 90x160 25 2)" -c:v libx264 -pix_fmt yuv420p "$d/tall_9x16.mp4"
  ff -f lavfi -i "$(src 64x48 25 2)" -c:v libx265 -pix_fmt yuv420p10le -x265-params log-level=error "$d/hevc_10bit.mp4"
  ff -f lavfi -i "$(src 64x48 25 2)" -vf format=rgba -c:v png "$d/alpha_png.mov"
  ff -f lavfi -i "$(src 64x48 25 2)" -vf format=argb -c:v qtrle "$d/alpha_qtrle.mov"
  ff -f lavfi -i "sine=frequency=440:duration=3" -f lavfi -i "$(src 64x48 25 3)" -map 0:a -map 1:v -c:a aac -c:v libx264 -pix_fmt yuv420p "$d/audio_first.mp4"
  ff -f lavfi -i "$(src 64x48 25 2)" -f lavfi -i "$(src 128x96 10 3)" -map 0:v -map 1:v -c:v libx264 -pix_fmt yuv420p "$d/two_video_streams.mkv"
  ff -f lavfi -i "$(src 64x48 25 4)" -c:v libx264 -pix_fmt yuv420p -g 25 -f mpegts "$d/clean.ts"
  # The middle GOP overwritten with garbage (a transport stream resynchronises).
  cp "$d/clean.ts" "$d/broken_middle_gop.ts"
  local n
  n=$(stat -c %s "$d/clean.ts")
  head -c $((n / 5)) /dev/urandom | dd of="$d/broken_middle_gop.ts" bs=1 seek=$((n * 2 / 5)) conv=notrunc status=none
  # Cut short: an AVI (index lost) and an MP4 with its index first (-movflags +faststart).
  n=$(stat -c %s "$d/avi_dropped.avi")
  head -c $((n * 6 / 10)) "$d/avi_dropped.avi" > "$d/truncated.avi"
  ff -f lavfi -i "$(src 64x48 25 4)" -c:v libx264 -pix_fmt yuv420p -movflags +faststart "$d/full.mp4"
  n=$(stat -c %s "$d/full.mp4")
  head -c $((n * 7 / 10)) "$d/full.mp4" > "$d/truncated_faststart.mp4"
  rm "$d/full.mp4"
  ff -f lavfi -i "$(src 64x48 25 1)" -frames:v 0 -c:v libx264 -pix_fmt yuv420p "$d/zero_frames.mp4" 2> /dev/null || true
  ff -f lavfi -i "$(src 64x48 25 1)" -frames:v 1 -c:v libx264 -pix_fmt yuv420p "$d/one_frame.mp4"
  if [ "${LONG:-1}" = 1 ]; then
    ff -f lavfi -i "color=c=red:size=2x2:rate=25:duration=3600" -c:v ffv1 "$d/one_hour_2x2.mkv"
  fi
  touch "$d/.done"
}

# ffmpeg_frames IN [FILTER...]: frames ffmpeg's program writes ("N", or "N (K error lines)" when
# it reports the file as broken), or "error: ..." when it fails.
ffmpeg_frames() {
  local in=$1 log
  shift
  if log=$(ffmpeg -nostdin -hide_banner -loglevel error -i "$in" -map 0:v:0? "$@" -f null - -progress pipe:1 2>&1); then
    local f
    f=$(echo "$log" | grep '^frame=' | tail -n 1 | cut -d= -f2)
    local errs
    errs=$(echo "$log" | grep -v -E '^[a-z_0-9]+=' | grep -c . || true)
    if [ "${errs:-0}" -gt 0 ]; then echo "${f:-0} ($errs error lines)"; else echo "${f:-0}"; fi
  else
    echo "error: $(echo "$log" | grep -v -E '^[a-z_0-9]+=' | head -n 1)"
  fi
}

# loong_frames IN FPS: frames `loong video convert` writes, or "error: ...".
loong_frames() {
  local in=$1 fps=$2 out log
  out="$work/out/$(basename "$in").$fps.mp4"
  rm -f "$out"
  if log=$("$loong" video convert "$in" "$out" --fps "$fps" --size 16 --max-frames 200000 2>&1); then
    echo "$log" | sed -n 's/.*: \([0-9]*\) frames.*/\1/p'
  else
    log=${log#loong: error: }
    log=${log#"$in: "}
    echo "error: ${log:0:60}$([ ${#log} -gt 60 ] && echo ...)"
  fi
}

make_corpus
printf '| file | ffmpeg, every frame | loong, every frame | ffmpeg, 5 fps | loong, 5 fps | verdict |\n|---|---|---|---|---|---|\n'
bad=0
for f in "$work"/in/*; do
  name=$(basename "$f")
  fa=$(ffmpeg_frames "$f" -fps_mode passthrough)
  la=$(loong_frames "$f" 0)
  fb=$(ffmpeg_frames "$f" -vf fps=5)
  lb=$(loong_frames "$f" 5)
  fa_n=${fa%% *} la_n=${la%% *} fb_n=${fb%% *} lb_n=${lb%% *}
  # ffmpeg's verdict: clean (frames, no error lines), or broken (error lines, an error, no frames).
  ff_clean=1
  [[ $fa == error* || $fa_n == 0 || $fa == *"error lines"* ]] && ff_clean=0
  verdict=same
  if [ $ff_clean = 0 ] && [[ $la != error* ]]; then verdict="DIFFERS (ffmpeg: broken, loong converts)"
  elif [ $ff_clean = 1 ] && [[ $la == error* ]]; then verdict="DIFFERS (loong refuses)"
  elif [ $ff_clean = 0 ]; then verdict="same: broken"
  else
    [ "$fa_n" = "$la_n" ] || verdict="count differs"
    # ffmpeg's fps filter rounds each frame's time to the nearest output slot; loong
    # takes the frame shown at each slot's time: the two may differ by one at the ends.
    if [[ $lb != error* && $fb != error* ]] && [ "$fb_n" != "$lb_n" ]; then
      d=$((fb_n - lb_n)); d=${d#-}
      [ "$d" -le 1 ] && verdict="$verdict; 5 fps: ±1 (rounding at the end)" || verdict="$verdict; 5 fps count differs"
    fi
  fi
  case "$verdict" in *DIFFERS* | *"count differs"*) bad=$((bad + 1)) ;; esac
  printf '| %s | %s | %s | %s | %s | %s |\n' "$name" "$fa" "$la" "$fb" "$lb" "$verdict"
done
echo
[ "$bad" -eq 0 ] && echo "video corpus: every file as ffmpeg" || { echo "video corpus: $bad file(s) differ"; exit 1; }
