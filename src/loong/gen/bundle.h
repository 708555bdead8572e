// A model bundle: everything `loong generate` needs, in one folder.
//
//   DIR/loong.json      format "loong-model", version, fps, clip frames, overlap,
//                       optionally the guidance scales (all clips; the first) and
//                       the sampling temperature
//   DIR/tokenizer/      the video tokenizer (model.safetensors + config.json)
//   DIR/text/           the SentencePiece text tokenizer (text.model + text.json)
//   DIR/lm/             the language model (model.safetensors + config.json)
// A bundle is written under DIR.partial and renamed when complete.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include "loong/gen/sampling.h"
#include "loong/lm/model.h"
#include "loong/lm/vocab.h"
#include "loong/tokenizer/model.h"

namespace loong::gen {

struct BundleInfo {
  std::string name = "tiny";
  double fps = 6.5;            // frame rate of the training videos (and of the output)
  int64_t clip_frames = 65;    // frames per generated clip (the last training stage's)
  int64_t overlap = 5;         // default frames re-encoded between clips
  // The guidance scale this model was tuned for, used when --cfg is not given
  // (0: none recorded; the sampler's default, the paper's 7.5, applies).
  // Small models want about 1 (docs/results.md).
  double cfg_scale = 0;
  // The same for the first clip, made from the text alone (0: cfg_scale).
  double first_clip_cfg_scale = 0;
  // The softmax temperature this model samples at when --temperature is not
  // given (0: none recorded; 1 applies).
  double temperature = 0;
  nlohmann::json extra;        // free-form provenance (how it was made)

  nlohmann::json to_json() const;
  static BundleInfo from_json(const nlohmann::json& j, const std::string& where);
};

struct Bundle {
  std::string dir;
  BundleInfo info;
  tokenizer::VideoTokenizer tokenizer{nullptr};
  lm::Llama lm{nullptr};
  std::string text_dir;  // load with text::TextTokenizer::load

  lm::Vocab vocab() const { return lm::Vocab(lm->config.text_vocab, lm->config.video_vocab); }
};

// Which sampling flags the user gave (`generate`, `eval long`).
struct SamplingGiven {
  bool cfg = false, first_clip_cfg = false, temperature = false;
};
// The settings to sample with: a flag that was given wins; else the bundle's
// recorded value (when --cfg alone is given, it sets every clip). `first_clip`
// comes out concrete (never 0).
void resolve_sampling(const BundleInfo& info, const SamplingGiven& given, SamplingOptions& s, double& first_clip);

// Loads and cross-checks a bundle: vocabulary sizes of the parts agree, the
// clip fits the model's positions. Errors name the file.
Bundle load_bundle(const std::string& dir, c10::Device device = c10::Device("cpu"));

// Writes a bundle from its parts; `text_dir` (a text tokenizer folder) is
// copied. Refuses an existing non-empty `out` unless `overwrite`.
// `weights_dtype` stores the floating-point tensors as "f32", "f16" or "bf16"
// (half the size; they are widened to f32 on load).
void write_bundle(const std::string& out, const BundleInfo& info, const tokenizer::VideoTokenizer& tokenizer,
                  const std::string& text_dir, const lm::Llama& lm, bool overwrite = false,
                  const std::string& weights_dtype = "f32");

// `loong model init`: a complete bundle of a preset ("tiny" or "paper") with
// random weights, which runs the whole path untrained. Without `text`, a
// text tokenizer of `text_vocab` pieces is trained on moving-fashion captions.
struct RandomBundleOptions {
  std::string preset = "tiny", out, text;
  int text_vocab = 128;
  uint64_t seed = 0;
  double cfg = 0;  // guidance recorded in loong.json (0: none)
  bool force = false;
};
void write_random_bundle(const RandomBundleOptions& o);

// `loong model pack`: trained parts (model, checkpoint or run folders) into a
// bundle; `info`'s provenance is filled in here.
struct PackOptions {
  std::string tokenizer, text, lm, out, dtype = "f32";
  BundleInfo info;
  bool force = false;
};
void pack_bundle(PackOptions o);

// `loong model info`: loong.json, frame size, codes per clip, the parts' sizes
// and the bundle's bytes on disk.
nlohmann::json describe_bundle(const std::string& dir);

// The bundle `loong generate` uses when no --model is given, or "" when there
// is none. $LOONG_MODEL when set (not checked here: load_bundle does); else
// the first folder with a loong.json of: models/default in the source
// tree next to the binary (build/bin/loong -> models/default);
// share/loong/models/default next to an installed binary; the source tree the
// binary was built from. `searched` (optional) gets the places looked at.
std::string default_model_dir(std::vector<std::string>* searched = nullptr);
// `model` when given, else the default bundle; fails naming `option` when
// there is none.
std::string model_or_default(const std::string& model, const std::string& option = "--model");

// Checks that the parts fit together (also done by load_bundle); `text_vocab`
// is the text tokenizer's size, or < 0 to skip that check.
void check_bundle(const std::string& where, const BundleInfo& info, const tokenizer::TokenizerConfig& tok,
                  const lm::LmConfig& lm, int text_vocab);

}  // namespace loong::gen
