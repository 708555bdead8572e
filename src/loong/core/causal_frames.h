// The causal tokenizer's rule for clip lengths (docs/method.md §2): the first
// frame is encoded alone, then `f` frames at a time (f = the temporal factor,
// 4 in the paper), so a clip of 1 + f*k frames maps to 1 + k latent frames
// (1 -> 1, 17 -> 5, 65 -> 17). Every count of frames that must encode to
// whole latent frames (clips, overlaps, training stages, chunks) is checked
// with these; each caller words its own error, naming its input.
#pragma once
#include <algorithm>
#include <cstdint>

namespace loong {

// Whether `frames` is 1 + f*k for some k >= 0.
constexpr bool is_causal_length(int64_t frames, int64_t f) { return frames >= 1 && (frames - 1) % f == 0; }

// Latent frames of a clip of 1 + f*k frames: 1 + k.
constexpr int64_t latent_frames_of(int64_t frames, int64_t f) { return (frames - 1) / f + 1; }

// Frames that `latents` latent frames decode to: 1 + f*(latents - 1).
constexpr int64_t frames_of_latents(int64_t latents, int64_t f) { return 1 + f * (latents - 1); }

// The smallest 1 + f*k >= frames (1 for frames < 1).
constexpr int64_t round_up_causal_length(int64_t frames, int64_t f) {
  return 1 + f * ((std::max<int64_t>(frames, 1) - 1 + f - 1) / f);
}

}  // namespace loong
