#!/usr/bin/python3
"""How high real moving-fashion videos can score on the probe's text match and identity.

  scripts/real_ceiling.py SCORES.json MANIFEST.jsonl [--target 0.8]

SCORES.json: `loong eval probe score --json` of real videos; MANIFEST.jsonl: the manifest
they were scored from (`loong data moving-fashion`), whose `truth` files hold every item's
centre in every frame. Needs only python3.

A video shows the same item images for its whole length, so a probe names each item for the
whole video or not at all. Where it names them, a frame still fails when the probe finds fewer
items than the prompt names (one item hides the other): its items-seen share. So:
- a perfect classifier on the same detector scores at most the mean items-seen share
  (`items_seen`);
- with each item named right with probability p, a video of k items scores about
  p^k x its items-seen share, and the script solves for the p that gives --target text match.
Per video it also prints the share of frames whose item centres are closer than 0.6 item
widths (ground truth): the frames one item mostly covers another.
docs/results.md ("What real videos can score") used it.
"""
import json
import math
import os
import sys


def overlap_share(truth):
    size = truth['item_size']
    close = 0
    for frame in truth['per_frame']:
        items = frame['items']
        if any(max(abs(a['x'] - b['x']), abs(a['y'] - b['y'])) < 0.6 * size
               for i, a in enumerate(items) for b in items[i + 1:]):
            close += 1
    return close / max(1, len(truth['per_frame']))


def solve_p(videos, target):
    # Mean over videos of p^k * seen = target, by bisection (monotone in p).
    lo, hi = 0.0, 1.0
    score = lambda p: sum(p ** v['items'] * v['seen'] for v in videos) / len(videos)
    if score(1.0) < target:
        return None
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if score(mid) < target else (lo, mid)
    return hi


def main(argv):
    target = 0.8
    if '--target' in argv:
        i = argv.index('--target')
        try:
            target = float(argv[i + 1])
        except (IndexError, ValueError):
            target = -1
        if not 0 < target <= 1:
            sys.exit('--target: expected a number in (0, 1]')
        del argv[i:i + 2]
    if len(argv) != 2:
        sys.exit('usage: real_ceiling.py SCORES.json MANIFEST.jsonl [--target 0.8]')
    scores_path, manifest_path = argv
    try:
        scores = json.load(open(scores_path))['per_video']
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f'{scores_path}: expected the JSON of `loong eval probe score --json` ({e})')
    root = os.path.dirname(os.path.abspath(manifest_path))
    truths = {}
    n = 0
    try:
        for n, line in enumerate(open(manifest_path), 1):
            if line.strip():
                entry = json.loads(line)
                truths[os.path.normpath(os.path.join(root, entry['video']))] = os.path.join(root, entry['truth'])
    except OSError as e:
        sys.exit(f'{manifest_path}: cannot read it ({e})')
    except (ValueError, KeyError) as e:
        sys.exit(f'{manifest_path}:{n}: expected a moving-fashion manifest line with "video" and "truth" ({e})')
    videos = []
    for v in scores:
        # The score file holds the path as given to `loong eval probe score` (absolute, or
        # relative to where it ran): match it as a suffix of the manifest's own paths.
        tail = os.sep + os.path.normpath(v['video']).lstrip(os.sep)
        keys = [k for k in truths if (os.sep + k).endswith(tail)]
        if len(keys) != 1:
            sys.exit(f'{scores_path}: {v["video"]} is not in {manifest_path}')
        try:
            truth = json.load(open(truths[keys[0]]))
        except (OSError, ValueError) as e:
            sys.exit(f'{truths[keys[0]]}: expected a moving-fashion truth file ({e})')
        o = v['overall']
        videos.append({'video': os.path.basename(keys[0]), 'items': len(truth['items']), 'overlap': overlap_share(truth),
                       'text': o['text_match'], 'identity': o['identity'], 'seen': o['items_seen']})
    if not videos:
        sys.exit(f'{scores_path}: no videos scored')
    for v in videos:
        print('%-12s items %d  overlapping %.2f  text %.2f  identity %.2f  seen %.2f' %
              (v['video'], v['items'], v['overlap'], v['text'], v['identity'], v['seen']))
    mean = lambda k: sum(v[k] for v in videos) / len(videos)
    p = solve_p(videos, target)
    print(json.dumps({
        'videos': len(videos),
        'text_match': mean('text'), 'identity': mean('identity'),
        'items_seen': mean('seen'),  # at most what a perfect classifier on this detector scores
        'target': target, 'class_accuracy_needed': p,
    }, indent=1))


if __name__ == '__main__':
    main(sys.argv[1:])
