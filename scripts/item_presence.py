#!/usr/bin/python3
"""Item presence without a probe, for moving-fashion videos (flat backgrounds).

  scripts/item_presence.py VIDEO...      (needs ffmpeg and python3-numpy: apt-get install python3-numpy)

A frame shows an item when at least 20 of its pixels (at 64 x 64) differ from the frame's
median colour, the background, by more than 48 of 255 in some channel. Prints one JSON
object: over the videos, the mean share of frames showing an item ("present"), the mean count
of such pixels ("area"), how many videos show one in under half their frames, and the share
per 10-second segment (65 frames at 6.5 fps). docs/results.md ("Sampling temperature back
to 1") used it to check what the probe's items-seen score says.
"""
import json
import subprocess
import sys

import numpy as np


def frames(path, size=64):
    raw = subprocess.run(['ffmpeg', '-v', 'error', '-i', path, '-vf', f'scale={size}:{size}', '-f', 'rawvideo',
                          '-pix_fmt', 'rgb24', '-'], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, size, size, 3).astype(np.int16)


def main(paths):
    if not paths:
        sys.exit('usage: item_presence.py VIDEO...')
    per = []
    for p in paths:
        f = frames(p)
        background = np.median(f.reshape(len(f), -1, 3), axis=1)[:, None, None, :]
        area = (np.abs(f - background).max(-1) > 48).sum((1, 2))
        present = area >= 20
        per.append({'present': float(present.mean()), 'area': float(area.mean()),
                    'segments': [float(present[i:i + 65].mean()) for i in range(0, len(f), 65)]})
    n = max(len(v['segments']) for v in per)
    print(json.dumps({
        'videos': len(per),
        'present': float(np.mean([v['present'] for v in per])),
        'area': float(np.mean([v['area'] for v in per])),
        'videos_present_under_half': sum(v['present'] < 0.5 for v in per),
        'segments': [float(np.mean([v['segments'][k] for v in per if k < len(v['segments'])])) for k in range(n)],
    }))


if __name__ == '__main__':
    main(sys.argv[1:])
