#!/usr/bin/env bash
# Full-disk trials (docs/reliability.md): a training run and a video output on a
# small file system that fills up (a tmpfs of a few MB; needs root, for mount).
# Passes when each fails with one clear error, the newest complete checkpoint still
# resumes to the same final weights as an uninterrupted run, an existing output
# video keeps its bytes, and no hidden temporary is left.
#
#   scripts/full_disk_trials.sh [WORK_DIR]   (default: out/full-disk); uses the data and
#                                            the uninterrupted run of scripts/kill_trials.sh
set -euo pipefail
work="${1:-}"
case "$work" in /* | "") ;; *) work="$PWD/$work" ;; esac
source "$(dirname "$0")/common.sh"
work="${work:-$PWD/out/full-disk}"
if [ "$(id -u)" -ne 0 ]; then echo "full-disk trials: need root (to mount a small tmpfs); skipped"; exit 0; fi
export LOONG_THREADS=1
mkdir -p "$work"
kt="$work/kill-trials"
# The micro LM, its data and its uninterrupted run (KILLS=0: no kill trials).
KILLS=0 WHICH=lm scripts/kill_trials.sh "$kt" > /dev/null
small="$work/small"
mkdir -p "$small"
mountpoint -q "$small" && umount "$small"
cleanup() { mountpoint -q "$small" && umount "$small"; return 0; }
trap cleanup EXIT
failures=0
check() { if eval "$2"; then echo "  ok: $1"; else echo "  FAILED: $1"; failures=$((failures + 1)); fi; }
one_line_error() { [ "$(grep -c . "$1")" -eq 1 ] && grep -q "^loong: error: .*\(No space\|disk full\|write failed\|cannot\)" "$1"; }

echo "training on a 3 MB file system (each checkpoint about 1.1 MB; two are kept)"
mount -t tmpfs -o size=3m tmpfs "$small"
rc=0
"$loong" train --config "$kt/lm.json" --out "$small/run" > "$work/train.out" 2> "$work/train.err" || rc=$?
last=$(ls -d "$small"/run/checkpoints/step-*[0-9] 2> /dev/null | sort | tail -n 1 || true)
check "training stops with exit status 1 (got $rc)" '[ "$rc" -eq 1 ]'
check "one clear line: $(head -c 160 "$work/train.err")" 'one_line_error "$work/train.err"'
check "a complete checkpoint is left (${last##*/})" '[ -n "$last" ]'
check "no hidden temporary left" '[ -z "$(find "$small" -name ".*.tmp-*")" ]'
# Room again: resume the same run elsewhere and finish it.
rm -rf "$work/resumed" && cp -r "$small/run" "$work/resumed"
sed -i "s|$small/run|$work/resumed|g" "$work/resumed/run.json" 2> /dev/null || true
umount "$small"
"$loong" train --resume "$work/resumed" > "$work/resume.out" 2>&1 || true
a=$(ls -d "$kt"/lm-straight/checkpoints/step-*[0-9] 2> /dev/null | sort | tail -n 1 || true)
b=$(ls -d "$work"/resumed/checkpoints/step-*[0-9] 2> /dev/null | sort | tail -n 1 || true)
check "resumed from ${last##*/}: final weights equal the uninterrupted run's" \
  '[ -n "$a" ] && [ -n "$b" ] && cmp -s "$a/model.safetensors" "$b/model.safetensors" && cmp -s "$a/optimizer.safetensors" "$b/optimizer.safetensors"'

echo "a 60-second video onto a full file system, over an existing one"
mount -t tmpfs -o size=400k tmpfs "$small"
"$loong" generate --prompt "a red sneaker moving to the right on a black background" --seconds 1 --quiet \
  --out "$small/v.mp4" > /dev/null
before=$(sha256sum < "$small/v.mp4")
rc=0
"$loong" generate --prompt "a blue bag moving left on a gray background" --seconds 60 --upscale 4 --quiet \
  --out "$small/v.mp4" > /dev/null 2> "$work/generate.err" || rc=$?
check "generation stops with exit status 1 (got $rc)" '[ "$rc" -eq 1 ]'
check "one clear line: $(head -c 160 "$work/generate.err")" 'one_line_error "$work/generate.err"'
check "the existing video keeps its bytes" '[ "$(sha256sum < "$small/v.mp4")" = "$before" ]'
check "no hidden temporary left" '[ -z "$(find "$small" -name ".*.tmp-*")" ]'
ls -la "$small" > "$work/generate.ls"
umount "$small"
[ "$failures" -eq 0 ] && echo "full-disk trials: all passed" || { echo "full-disk trials: $failures failed"; exit 1; }
