#include "loong/lm/train_config.h"

#include <cmath>
#include <filesystem>

#include "loong/core/causal_frames.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"

namespace fs = std::filesystem;

namespace loong::lm {

std::vector<std::string> lm_train_preset_names() { return {"tiny", "paper"}; }

namespace {
std::string preset_list() {
  std::string names;
  for (const auto& n : lm_train_preset_names()) names += (names.empty() ? "" : ", ") + n;
  return names;
}
}  // namespace

int64_t LmTrainConfig::total_steps() const {
  int64_t n = 0;
  for (const auto& s : stages) n += s.steps;
  return n;
}

int LmTrainConfig::stage_index(int64_t step) const {
  int64_t end = 0;
  for (size_t i = 0; i < stages.size(); ++i) {
    end += stages[i].steps;
    if (step < end) return static_cast<int>(i);
  }
  return static_cast<int>(stages.size()) - 1;
}

int64_t LmTrainConfig::stage_start(int stage) const {
  int64_t start = 0;
  for (int i = 0; i < stage; ++i) start += stages[i].steps;
  return start;
}

double LmTrainConfig::lr_at(int64_t step) const {
  const int i = stage_index(step);
  const LmStage& s = stages[i];
  const int64_t k = step - stage_start(i);  // step within the stage
  if (s.warmup_steps > 0 && k < s.warmup_steps) return s.lr * static_cast<double>(k + 1) / s.warmup_steps;
  const double span = static_cast<double>(std::max<int64_t>(1, s.steps - s.warmup_steps));
  const double t = std::min(1.0, std::max(0.0, (k - s.warmup_steps) / span));
  return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * t)));
}

nlohmann::json LmTrainConfig::to_json() const {
  nlohmann::json st = nlohmann::json::array();
  for (const auto& s : stages)
    st.push_back({{"name", s.name},
                  {"frames", s.frames},
                  {"image_fraction", s.image_fraction},
                  {"steps", s.steps},
                  {"batch_size", s.batch_size},
                  {"grad_accum", s.grad_accum},
                  {"lr", s.lr},
                  {"warmup_steps", s.warmup_steps},
                  {"min_lr_ratio", s.min_lr_ratio},
                  {"lambda", s.lambda},
                  {"given_frames", s.given_frames},
                  {"splice_fraction", s.splice_fraction}});
  nlohmann::json m = model.to_json();
  return {{"model", m},
          {"data", data},
          {"text_tokenizer", text_tokenizer},
          {"video_tokenizer", video_tokenizer},
          {"stages", st},
          {"seed", seed},
          {"temporal_factor", temporal_factor},
          {"weighted_frames", weighted_frames},
          {"caption_dropout", caption_dropout},
          {"weight_decay", weight_decay},
          {"beta1", beta1},
          {"beta2", beta2},
          {"grad_clip", grad_clip},
          {"mixed_precision", mixed_precision},
          {"fused_adamw", fused_adamw},
          {"activation_checkpointing", activation_checkpointing},
          {"micro_batch", micro_batch},
          {"bucket_mb", bucket_mb},
          {"dist_timeout_s", dist_timeout_s},
          {"zero", zero},
          {"log_every", log_every},
          {"plot_every", plot_every},
          {"checkpoint_every", checkpoint_every},
          {"keep_checkpoints", keep_checkpoints},
          {"max_bad_steps", max_bad_steps},
          {"max_minutes", max_minutes}};
}

LmTrainConfig LmTrainConfig::preset(const std::string& name) {
  LmTrainConfig c;
  if (name == "tiny") {
    // Two CPU cores, minutes: the recorded run in docs/benchmarks.md.
    c.model = LmConfig::preset("tiny");
    c.stages = {{"images", 1, 1.0, 300, 32, 1, 2e-3, 30, 0.1, 0},
                {"17 frames", 17, 0.1, 400, 16, 1, 1e-3, 30, 0.1, 0},
                {"65 frames", 65, 0.1, 120, 8, 1, 1e-3, 20, 0.1, 1.0}};
    c.plot_every = 50;
    c.checkpoint_every = 250;
  } else if (name == "paper") {
    // docs/method.md §4 with the 700M model. Batches are micro-batch x accumulation:
    // 512, 512, 256 sequences. The image share of stages 2-3 is ours (the
    // paper does not give it).
    c.model = LmConfig::preset("700M");
    c.stages = {{"images", 1, 1.0, 200000, 64, 8, 1e-4, 10000, 0.1, 0},
                {"17 frames", 17, 0.2, 200000, 16, 32, 1e-4, 10000, 0.1, 0},
                {"65 frames", 65, 0.1, 100000, 4, 64, 1e-4, 10000, 0.1, 1.0}};
    c.plot_every = 1000;
    c.checkpoint_every = 2000;
  } else {
    fail("--config", "unknown training preset " + squote(name) + " (expected one of: " + preset_list() + ", or a JSON file)");
  }
  return c;
}

LmTrainConfig LmTrainConfig::from_json(const nlohmann::json& j, const std::string& where, const std::string& base_dir) {
  if (!j.is_object()) fail(where, "expected a JSON object with the training config");
  ObjectReader r(j, where);
  std::string base = "tiny";
  r.string("preset", base);
  bool known = false;
  for (const auto& n : lm_train_preset_names()) known = known || n == base;
  if (!known) fail(where, "key 'preset': unknown training preset " + squote(base) + " (expected one of: " + preset_list() + ")");
  LmTrainConfig c = preset(base);
  if (r.take("model")) {
    const auto& m = j["model"];
    if (m.is_string()) {
      c.model = LmConfig::preset(m.get<std::string>());
    } else {
      if (!m.is_object())
        fail(where, "key 'model': expected a preset name (tiny, 700M, 3B, 7B) or an object of model keys, got " +
                        json_type_name(m));
      // Keys override the training preset's model (or the model preset named inside).
      nlohmann::json merged = m.contains("preset") ? nlohmann::json::object() : c.model.to_json();
      for (auto it = m.begin(); it != m.end(); ++it) merged[it.key()] = it.value();
      c.model = LmConfig::from_json(merged, where + ": model");
      c.text_vocab_given = m.contains("text_vocab");
      c.video_vocab_given = m.contains("video_vocab");
    }
  }
  auto path = [&](const char* key, std::string& v) {
    r.string(key, v);
    if (!v.empty() && !base_dir.empty() && fs::path(v).is_relative()) v = (fs::path(base_dir) / v).lexically_normal().string();
  };
  path("data", c.data);
  path("text_tokenizer", c.text_tokenizer);
  path("video_tokenizer", c.video_tokenizer);
  std::vector<LmStage> stages;
  if (r.objects("stages", "stage objects ({\"frames\", \"steps\", \"batch_size\", ...})", [&](ObjectReader& sr) {
        LmStage s;
        sr.string("name", s.name);
        sr.integer("frames", s.frames, 1, 1 << 20);
        sr.number("image_fraction", s.image_fraction, 0, 1);
        sr.integer("steps", s.steps, 0, int64_t(1) << 40);
        sr.integer("batch_size", s.batch_size, 1, 1 << 20);
        sr.integer("grad_accum", s.grad_accum, 1, 1 << 20);
        sr.number("lr", s.lr, 0, 1);
        sr.integer("warmup_steps", s.warmup_steps, 0, int64_t(1) << 40);
        sr.number("min_lr_ratio", s.min_lr_ratio, 0, 1);
        sr.number("lambda", s.lambda, 0, 1000);
        sr.integer("given_frames", s.given_frames, 0, 1 << 20);
        sr.number("splice_fraction", s.splice_fraction, 0, 1);
        if (s.name.empty()) s.name = s.frames == 1 ? "images" : std::to_string(s.frames) + " frames";
        if (s.frames == 1) s.image_fraction = 1;
        stages.push_back(s);
      }))
    c.stages = stages;
  long long seed = static_cast<long long>(c.seed);
  r.integer("seed", seed, 0, 1LL << 62);
  c.seed = static_cast<uint64_t>(seed);
  r.integer("temporal_factor", c.temporal_factor, 1, 64);
  r.integer("weighted_frames", c.weighted_frames, 1, 1 << 20);
  r.number("caption_dropout", c.caption_dropout, 0, 1);
  r.number("weight_decay", c.weight_decay, 0, 10);
  r.number("beta1", c.beta1, 0, 0.9999999);
  r.number("beta2", c.beta2, 0, 0.9999999);
  r.number("grad_clip", c.grad_clip, 0, 1e6);
  r.boolean("mixed_precision", c.mixed_precision);
  r.boolean("fused_adamw", c.fused_adamw);
  r.boolean("activation_checkpointing", c.activation_checkpointing);
  r.integer("micro_batch", c.micro_batch, 0, 1 << 20);
  r.number("bucket_mb", c.bucket_mb, 0.001, 1 << 20);
  r.number("dist_timeout_s", c.dist_timeout_s, 1, 1e7);
  r.integer("zero", c.zero, 0, 1);
  r.integer("log_every", c.log_every, 1, int64_t(1) << 40);
  r.integer("plot_every", c.plot_every, 0, int64_t(1) << 40);
  r.integer("checkpoint_every", c.checkpoint_every, 0, int64_t(1) << 40);
  r.integer("keep_checkpoints", c.keep_checkpoints, 1, 1000000);
  r.integer("max_bad_steps", c.max_bad_steps, 1, 1000000);
  r.number("max_minutes", c.max_minutes, 0, 1e9);
  r.finish();
  c.validate(where);
  return c;
}

void LmTrainConfig::validate(const std::string& where) const {
  model.validate(where + ": model");
  if (stages.empty()) fail(where, "key 'stages': at least one stage is needed");
  if (total_steps() < 1) fail(where, "key 'stages': the stages add up to 0 steps");
  if (!is_causal_length(weighted_frames, temporal_factor))
    fail(where, "key 'weighted_frames': expected 1 + " + std::to_string(temporal_factor) + "k frames (e.g. 17), got " +
                    std::to_string(weighted_frames));
  for (size_t i = 0; i < stages.size(); ++i) {
    const auto& s = stages[i];
    const std::string sw = where + ": stages[" + std::to_string(i) + "]";
    if (!is_causal_length(s.frames, temporal_factor))
      fail(sw, "key 'frames': the video tokenizer takes 1 + " + std::to_string(temporal_factor) + "k frames (1, " +
                   std::to_string(1 + temporal_factor) + ", " + std::to_string(1 + 4 * temporal_factor) + ", ...), got " +
                   std::to_string(s.frames));
    if (s.frames > 1 && s.image_fraction >= 1)
      fail(sw, "key 'image_fraction': 1 leaves no room for the stage's " + std::to_string(s.frames) +
                   "-frame clips (use frames: 1 for an image stage)");
    if (s.given_frames > 0 && (!is_causal_length(s.given_frames, temporal_factor) || s.given_frames >= s.frames))
      fail(sw, "key 'given_frames': expected 0 or 1 + " + std::to_string(temporal_factor) +
                   "k frames, fewer than the stage's " + std::to_string(s.frames) + " (e.g. 5, generation's overlap), got " +
                   std::to_string(s.given_frames));
    if (s.splice_fraction > 0 && s.given_frames == 0)
      fail(sw, "key 'splice_fraction': splices another sample's given frames in; set 'given_frames' too (e.g. 5)");
  }
}

LmTrainConfig LmTrainConfig::load(const std::string& preset_or_path) {
  for (const auto& n : lm_train_preset_names())
    if (preset_or_path == n) return preset(n);
  if (!fs::exists(preset_or_path)) fail(preset_or_path, "no such training config file (or preset: " + preset_list() + ")");
  return from_json(read_json_file(preset_or_path), preset_or_path,
                   fs::absolute(preset_or_path).parent_path().string());
}

}  // namespace loong::lm
