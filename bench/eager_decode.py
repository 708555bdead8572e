#!/usr/bin/env python3
"""The baseline a user would otherwise write: a plain PyTorch eager decode of
a loong bundle's language model, against `loong generate` on the same weights
(issue 38). Runs alternate; medians; one JSON object on stdout.

  python3 bench/eager_decode.py [--loong build/bin/loong] [--model models/default]
                                [--reps 5] [--threads 1,2] [--speculative 0,4]

The eager decode: the bundle's weights (model.safetensors, read here without
the safetensors package), LLaMA blocks written as one would in PyTorch
(RMSNorm, rotary pairs, SwiGLU, grouped-query attention), a preallocated KV
cache, guidance as a batch of 2 (the unconditional row left-padded and
masked), top-k 50 sampling over the video codes, one code a step: one clip,
tokens_per_clip codes, prefill included, at each thread count of --threads
(its best is the baseline). loong: `loong generate --seconds <one clip>`
with guidance on every clip (--cfg and --first-clip-cfg 2, so that it too
decodes a batch of 2), its report's decode_tokens_per_s (prefill and decode),
once per --speculative value. Runs during which other processes used more
than a fifth of a core (/proc/stat less this script's and loong's CPU time)
are left out of the medians and counted as `noisy`.
"""
import argparse
import json
import math
import os
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

PROMPT = "a red sneaker moving to the right on a black background"


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    types = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        if t["dtype"] == "BF16":
            a = (np.frombuffer(data[b:e], dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(data[b:e], dtype=types[t["dtype"]])
        out[name] = torch.from_numpy(a.copy()).reshape(t["shape"]).float()
    return out


class EagerLlama:
    """Meta's LLaMA layout (the names loong's safetensors use), f32, no grad."""

    def __init__(self, w, cfg):
        self.w, self.cfg = w, cfg
        self.n_layers, self.n_heads = cfg["n_layers"], cfg["n_heads"]
        self.n_kv = cfg.get("n_kv_heads", self.n_heads) or self.n_heads
        self.head_dim = cfg["dim"] // self.n_heads
        self.eps = cfg.get("norm_eps", 1e-5)
        half = self.head_dim // 2
        freq = cfg.get("rope_theta", 10000.0) ** (-torch.arange(half, dtype=torch.float64) * 2 / self.head_dim)
        ang = torch.arange(cfg["max_seq_len"], dtype=torch.float64)[:, None] * freq[None, :]
        self.cos, self.sin = ang.cos().float(), ang.sin().float()

    def norm(self, x, weight):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * weight

    def rope(self, x, start):  # x [B, T, H, D]: pairs (2i, 2i+1)
        T = x.shape[1]
        c, s = self.cos[start:start + T, None, :], self.sin[start:start + T, None, :]
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * c - b * s, a * s + b * c], -1).flatten(-2)

    def new_cache(self, batch, capacity):
        shape = (batch, self.n_kv, capacity, self.head_dim)
        self.k = [torch.zeros(shape) for _ in range(self.n_layers)]
        self.v = [torch.zeros(shape) for _ in range(self.n_layers)]

    def forward(self, tokens, start, valid):
        """tokens [B, T] at positions start.. ; valid bool [B, start + T] -> last logits [B, vocab]."""
        w, B, T = self.w, tokens.shape[0], tokens.shape[1]
        H, KV, D = self.n_heads, self.n_kv, self.head_dim
        h = w["tok_embeddings.weight"][tokens]
        end = start + T
        if T == 1:  # a decoding step: every earlier position that is not padding
            mask = valid[:, None, None, :end]
        else:
            causal = torch.ones(T, end, dtype=torch.bool).tril(start)
            # Padding is no query's key, but attends to itself (no row of -inf, no NaN in its values).
            mask = causal[None, None] & (valid[:, None, None, :end] | ~causal.tril(start - 1)[None, None])
        for i in range(self.n_layers):
            p = f"layers.{i}."
            x = self.norm(h, w[p + "attention_norm.weight"])
            q = (x @ w[p + "attention.wq.weight"].t()).view(B, T, H, D)
            k = (x @ w[p + "attention.wk.weight"].t()).view(B, T, KV, D)
            v = (x @ w[p + "attention.wv.weight"].t()).view(B, T, KV, D)
            q, k = self.rope(q, start), self.rope(k, start)
            self.k[i][:, :, start:end] = k.transpose(1, 2)
            self.v[i][:, :, start:end] = v.transpose(1, 2)
            keys, values = self.k[i][:, :, :end], self.v[i][:, :, :end]
            if KV != H:
                keys = keys.repeat_interleave(H // KV, 1)
                values = values.repeat_interleave(H // KV, 1)
            att = (q.transpose(1, 2) @ keys.transpose(-1, -2)) / math.sqrt(D)
            att = att.masked_fill(~mask, float("-inf")).softmax(-1)
            o = (att @ values).transpose(1, 2).reshape(B, T, H * D)
            h = h + o @ w[p + "attention.wo.weight"].t()
            x = self.norm(h, w[p + "ffn_norm.weight"])
            f = torch.nn.functional.silu(x @ w[p + "feed_forward.w1.weight"].t()) * (x @ w[p + "feed_forward.w3.weight"].t())
            h = h + f @ w[p + "feed_forward.w2.weight"].t()
        h = self.norm(h[:, -1], w["norm.weight"])
        return h @ w["output.weight"].t()


def eager_clip(model, text_ids, n, cfg_scale=2.0, top_k=50, seed=0):
    """One clip of n codes with guidance (batch of 2), top-k sampling. Returns seconds."""
    c = model.cfg
    T, V = c["text_vocab"], c["video_vocab"]
    pad, sot, eot, sov = T + V, T + V + 1, T + V + 2, T + V + 3
    cond = [sot] + text_ids + [eot, sov]
    uncond = [pad] * len(text_ids) + [sot, eot, sov]
    P = len(cond)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    with torch.no_grad():
        model.new_cache(2, P + n)
        valid = torch.ones(2, P + n, dtype=torch.bool)
        valid[1, :len(text_ids)] = False
        logits = model.forward(torch.tensor([cond, uncond]), 0, valid)
        for i in range(n):
            l = logits[:, T:T + V]
            guided = l[1] + cfg_scale * (l[0] - l[1])
            top, idx = guided.topk(top_k)
            code = idx[torch.multinomial(top.softmax(-1), 1, generator=g)]
            if i + 1 < n:
                tok = (code + T).view(1, 1).expand(2, 1)
                logits = model.forward(tok, P + i, valid)
    return time.perf_counter() - t0


def machine_busy_s():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(x for i, x in enumerate(v) if i not in (3, 4)) / os.sysconf("SC_CLK_TCK")


def own_cpu_s():
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def measured(fn):
    """Runs fn; returns (its result, cores other processes used meanwhile)."""
    busy0, own0, t0 = machine_busy_s(), own_cpu_s(), time.perf_counter()
    r = fn()
    wall = time.perf_counter() - t0
    return r, max(0.0, (machine_busy_s() - busy0 - (own_cpu_s() - own0)) / wall)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--loong", default="build/bin/loong")
    ap.add_argument("--model", default="models/default")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", default="1,2", help="eager thread counts (its best is the baseline)")
    ap.add_argument("--speculative", default="0,4", help="loong's --speculative values")
    a = ap.parse_args()
    cfg = json.load(open(os.path.join(a.model, "lm", "config.json")))
    info = json.load(open(os.path.join(a.model, "loong.json")))
    model = EagerLlama(load_safetensors(os.path.join(a.model, "lm", "model.safetensors")), cfg)
    fps, frames = info["fps"], info["clip_frames"]
    seconds = frames / fps
    threads = [int(t) for t in a.threads.split(",")]
    specs = [int(s) for s in a.speculative.split(",")]
    text_ids = list(range(3, 13))  # a 10-piece caption (loong's own prompt is about as long)

    work = tempfile.mkdtemp(prefix="eager_decode_")
    eager = {t: [] for t in threads}
    ours = {s: [] for s in specs}
    codes = None
    noisy = 0
    for rep in range(a.reps + 1):  # the first rep warms up and is dropped
        for t in threads:
            torch.set_num_threads(t)
            n = codes or 1088
            s, others = measured(lambda: eager_clip(model, text_ids, n))
            if rep and others <= 0.2 and codes:
                eager[t].append(n / s)
            elif rep:
                noisy += others > 0.2
        for s in specs:
            report = os.path.join(work, f"r{s}.json")
            cmd = [a.loong, "generate", "--model", a.model, "--prompt", PROMPT, "--seconds", f"{seconds:.6f}",
                   "--cfg", "2", "--first-clip-cfg", "2", "--speculative", str(s), "--out",
                   os.path.join(work, "v.mp4"), "--report", report, "--quiet"]
            _, others = measured(lambda: subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL))
            r = json.load(open(report))
            codes = r["codes"]
            if rep and others <= 0.2:
                ours[s].append(r["decode_tokens_per_s"])
            elif rep:
                noisy += 1
            print(f"rep {rep}: loong --speculative {s}: {r['decode_tokens_per_s']:.0f} codes/s "
                  f"({r['codes_per_call']:.2f} codes a call; others {others:.2f} cores)", file=sys.stderr)
        print(f"rep {rep}: eager " + ", ".join(f"{t} thr {statistics.median(eager[t]) if eager[t] else 0:.0f}"
                                               for t in threads), file=sys.stderr)
    med = lambda v: statistics.median(v) if v else 0.0
    eager_med = {str(t): med(v) for t, v in eager.items()}
    best = max(eager_med.values())
    out = {
        "bench": "eager_decode",
        "model": a.model,
        "codes": codes,
        "reps": a.reps,
        "noisy_runs_left_out": noisy,
        "torch": torch.__version__,
        "eager_codes_per_s": eager_med,
        "eager_best_codes_per_s": best,
        "loong_codes_per_s": {str(s): med(v) for s, v in ours.items()},
        "ratio_to_eager_best": {str(s): med(v) / best if best else 0.0 for s, v in ours.items()},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
