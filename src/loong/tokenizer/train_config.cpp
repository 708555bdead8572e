#include "loong/tokenizer/train_config.h"

#include <cmath>
#include <filesystem>

#include "loong/core/causal_frames.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"

namespace loong::tokenizer {

int64_t TrainConfig::total_steps() const {
  int64_t n = 0;
  for (const auto& s : stages) n += s.steps;
  return n;
}

const Stage& TrainConfig::stage_at(int64_t step) const {
  int64_t end = 0;
  for (const auto& s : stages) {
    end += s.steps;
    if (step < end) return s;
  }
  return stages.back();
}

double TrainConfig::lr_factor(int64_t step) const {
  if (warmup_steps > 0 && step < warmup_steps) return static_cast<double>(step + 1) / warmup_steps;
  const double span = std::max<int64_t>(1, total_steps() - warmup_steps);
  const double t = std::min(1.0, std::max(0.0, (step - warmup_steps) / span));
  double f = min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * t));
  // The step's stage scales it, and every later stage ramps up again.
  int64_t start = 0;
  for (size_t i = 0; i < stages.size(); start += stages[i++].steps) {
    if (step >= start + stages[i].steps && i + 1 < stages.size()) continue;
    f *= stages[i].lr_scale;
    if (i > 0 && stage_warmup_steps > 0 && step - start < stage_warmup_steps)
      f *= static_cast<double>(step - start + 1) / stage_warmup_steps;
    break;
  }
  return f;
}

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json st = nlohmann::json::array();
  for (const auto& s : stages)
    st.push_back({{"frames", s.frames}, {"steps", s.steps}, {"batch_size", s.batch_size}, {"lr_scale", s.lr_scale}});
  return {{"stages", st},
          {"seed", seed},
          {"fps", fps},
          {"lr", lr},
          {"min_lr_ratio", min_lr_ratio},
          {"weight_decay", weight_decay},
          {"beta1", beta1},
          {"beta2", beta2},
          {"warmup_steps", warmup_steps},
          {"stage_warmup_steps", stage_warmup_steps},
          {"grad_clip", grad_clip},
          {"ema_decay", ema_decay},
          {"l1_weight", l1_weight},
          {"l2_weight", l2_weight},
          {"perceptual_weight", perceptual_weight},
          {"perceptual_model", perceptual_model},
          {"codebook_weight", codebook_weight},
          {"gan_start", gan_start},
          {"disc_warmup_steps", disc_warmup_steps},
          {"gan_loss", gan_loss},
          {"gan_weight", gan_weight},
          {"adaptive_weight_max", adaptive_weight_max},
          {"disc_lr", disc_lr},
          {"disc_channels", disc_channels},
          {"disc_layers", disc_layers},
          {"lecam_weight", lecam_weight},
          {"lecam_decay", lecam_decay},
          {"decoder_only", decoder_only},
          {"mixed_precision", mixed_precision},
          {"fused_adamw", fused_adamw},
          {"activation_checkpointing", activation_checkpointing},
          {"dist_timeout_s", dist_timeout_s},
          {"log_every", log_every},
          {"sample_every", sample_every},
          {"checkpoint_every", checkpoint_every},
          {"keep_checkpoints", keep_checkpoints},
          {"max_minutes", max_minutes},
          {"cache_mb", cache_mb}};
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& where) {
  TrainConfig c;
  ObjectReader r(j, where);
  std::vector<Stage> stages;
  if (r.objects("stages", "{\"frames\", \"steps\", \"batch_size\"}", [&](ObjectReader& sr) {
        Stage s;
        sr.integer("frames", s.frames, 1, 4097);
        sr.integer("steps", s.steps, 0, int64_t(1) << 40);
        sr.integer("batch_size", s.batch_size, 1, 4096);
        sr.number("lr_scale", s.lr_scale, 0, 100);
        stages.push_back(s);
      }))
    c.stages = stages;
  long long seed = 0;
  r.integer("seed", seed, 0, (1LL << 62));
  c.seed = static_cast<uint64_t>(seed);
  r.number("fps", c.fps, 0.1, 240);
  r.number("lr", c.lr, 0, 1);
  r.number("min_lr_ratio", c.min_lr_ratio, 0, 1);
  r.number("weight_decay", c.weight_decay, 0, 10);
  r.number("beta1", c.beta1, 0, 0.9999999);
  r.number("beta2", c.beta2, 0, 0.9999999);
  r.integer("warmup_steps", c.warmup_steps, int64_t(0), int64_t(1) << 40);
  r.integer("stage_warmup_steps", c.stage_warmup_steps, int64_t(0), int64_t(1) << 40);
  r.number("grad_clip", c.grad_clip, 0, 1e6);
  r.number("ema_decay", c.ema_decay, 0, 0.999999);
  r.number("l1_weight", c.l1_weight, 0, 1e6);
  r.number("l2_weight", c.l2_weight, 0, 1e6);
  r.number("perceptual_weight", c.perceptual_weight, 0, 1e6);
  r.string("perceptual_model", c.perceptual_model);
  r.number("codebook_weight", c.codebook_weight, 0, 1e6);
  r.integer("gan_start", c.gan_start, int64_t(-1), int64_t(1) << 40);
  r.integer("disc_warmup_steps", c.disc_warmup_steps, int64_t(0), int64_t(1) << 40);
  r.string("gan_loss", c.gan_loss);
  r.number("gan_weight", c.gan_weight, 0, 1e6);
  r.number("adaptive_weight_max", c.adaptive_weight_max, 0, 1e12);
  r.number("disc_lr", c.disc_lr, 0, 1);
  r.integer("disc_channels", c.disc_channels, 1, 4096);
  r.integer("disc_layers", c.disc_layers, 1, 6);
  r.number("lecam_weight", c.lecam_weight, 0, 1e6);
  r.number("lecam_decay", c.lecam_decay, 0, 0.999999);
  r.boolean("decoder_only", c.decoder_only);
  r.boolean("mixed_precision", c.mixed_precision);
  r.boolean("fused_adamw", c.fused_adamw);
  r.boolean("activation_checkpointing", c.activation_checkpointing);
  r.number("dist_timeout_s", c.dist_timeout_s, 1, 1e7);
  r.integer("log_every", c.log_every, int64_t(1), int64_t(1) << 40);
  r.integer("sample_every", c.sample_every, int64_t(0), int64_t(1) << 40);
  r.integer("checkpoint_every", c.checkpoint_every, int64_t(0), int64_t(1) << 40);
  r.integer("keep_checkpoints", c.keep_checkpoints, 1, 1000000);
  r.number("max_minutes", c.max_minutes, 0, 1e9);
  r.integer("cache_mb", c.cache_mb, int64_t(0), int64_t(1) << 30);
  r.finish();
  return c;
}

void TrainConfig::validate(const TokenizerConfig& model, const std::string& where) const {
  for (size_t i = 0; i < stages.size(); ++i) {
    const int f = model.temporal_factor();
    if (!is_causal_length(stages[i].frames, f))
      fail(where, "stages[" + std::to_string(i) + "].frames: the tokenizer takes 1 + " + std::to_string(f) +
                      "k frames (1, " + std::to_string(1 + f) + ", " + std::to_string(1 + 4 * f) + ", ...), got " +
                      std::to_string(stages[i].frames));
  }
  if (total_steps() < 1) fail(where, "the stages add up to 0 steps");
  if (disc_warmup_steps > 0 && (gan_start < 0 || disc_warmup_steps > gan_start))
    fail(where, "key 'disc_warmup_steps': the discriminator trains alone for the steps before gan_start, so it "
                "needs gan_start >= disc_warmup_steps (got gan_start " + std::to_string(gan_start) + ", " +
                    std::to_string(disc_warmup_steps) + " warm-up steps)");
  if (gan_loss != "hinge" && gan_loss != "non_saturating")
    fail(where, "key 'gan_loss': expected \"hinge\" or \"non_saturating\", got " + squote(gan_loss));
  if (!perceptual_model.empty() && !std::filesystem::is_regular_file(perceptual_model))
    fail(where, "key 'perceptual_model': no such file " + squote(perceptual_model) +
                    " (a TorchScript network (x, y) -> distance; see docs/weights.md)");
}

nlohmann::json RunConfig::to_json() const { return {{"model", model.to_json()}, {"train", train.to_json()}}; }

RunConfig RunConfig::from_json(const nlohmann::json& j, const std::string& where) {
  // {"preset": "tiny", "model": {overrides}, "train": {overrides}}: each section
  // is the preset's, with the given keys replaced.
  ObjectReader r(j, where);
  std::string base = "tiny";
  r.string("preset", base);
  bool known = false;
  std::string names;
  for (const auto& n : preset_names()) known = known || n == base, names += (names.empty() ? "" : ", ") + n;
  if (!known) fail(where, "key 'preset': unknown tokenizer preset " + squote(base) + " (expected one of: " + names + ")");
  RunConfig c = preset(base);
  auto merged = [&](const char* key, nlohmann::json defaults) {
    const auto& o = j[key];
    if (!o.is_object()) fail(where, std::string("key '") + key + "': expected a JSON object, got " + json_type_name(o));
    for (auto it = o.begin(); it != o.end(); ++it) defaults[it.key()] = it.value();
    return defaults;
  };
  if (r.take("model")) c.model = TokenizerConfig::from_json(merged("model", c.model.to_json()), where + ": model");
  if (r.take("train")) c.train = TrainConfig::from_json(merged("train", c.train.to_json()), where + ": train");
  r.finish();
  c.train.validate(c.model, where + ": train");
  return c;
}

RunConfig RunConfig::preset(const std::string& name) {
  RunConfig c;
  c.model = TokenizerConfig::preset(name);  // throws for unknown names
  TrainConfig& t = c.train;
  if (name == "tiny") {
    // Two CPU cores, under an hour: see scripts/train_tokenizer_tiny.sh and
    // docs/benchmarks.md for the recorded run.
    // Clips train at 0.3x the schedule's lr: at the full rate (~5e-4 when
    // clips start) the recorded run fell from 23 dB to 13-16 dB on clips
    // within 50 steps of reaching 3e-4, with or without a ramp.
    t.stages = {{1, 1800, 16, 1.0}, {17, 1650, 2, 0.3}, {65, 50, 1, 0.3}};
    // L1 + 10 * L2: over the first 600 image steps, 25.5 dB on the training
    // batches against 22.6 with L1 alone (and 24.3 with L2 alone; 30 * L2 or
    // a 0.3x codebook weight: within 0.15 dB of 10 * L2).
    t.l2_weight = 10;
    t.lr = 1e-3;
    t.warmup_steps = 100;
    t.max_minutes = 58;
    t.ema_decay = 0.995;
    t.gan_start = -1;
    t.sample_every = 250;
    t.checkpoint_every = 500;
  } else if (name == "paper") {
    // docs/method.md §2: images, then 17-frame, then 65-frame clips at 128x128.
    t.stages = {{1, 100000, 64}, {17, 100000, 16}, {65, 100000, 4}};
    t.lr = 1e-4;
    t.warmup_steps = 2000;
    t.stage_warmup_steps = 2000;
    t.ema_decay = 0.999;
    t.gan_start = 80000;
    t.sample_every = 2000;
    t.checkpoint_every = 5000;
  }
  return c;
}

RunConfig RunConfig::load(const std::string& preset_or_path) {
  for (const auto& n : preset_names())
    if (preset_or_path == n) return preset(n);
  if (!std::filesystem::exists(preset_or_path)) {
    std::string names;
    for (const auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
    fail(preset_or_path, "no such config file (or preset: " + names + ")");
  }
  return from_json(read_json_file(preset_or_path), preset_or_path);
}

}  // namespace loong::tokenizer
