#include "loong/gen/bundle.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/lm/trainer.h"
#include "loong/text/text_tokenizer.h"
#include "loong/tokenizer/checkpoint.h"

namespace fs = std::filesystem;

namespace loong::gen {

namespace {
constexpr const char* kFormat = "loong-model";
constexpr int kVersion = 1;
}  // namespace

json BundleInfo::to_json() const {
  json j = {{"format", kFormat}, {"version", kVersion}, {"name", name},
            {"fps", fps},        {"clip_frames", clip_frames}, {"overlap_frames", overlap}};
  if (cfg_scale > 0) j["cfg_scale"] = cfg_scale;
  if (first_clip_cfg_scale > 0) j["first_clip_cfg_scale"] = first_clip_cfg_scale;
  if (temperature > 0) j["temperature"] = temperature;
  if (!extra.is_null()) j["made_by"] = extra;
  return j;
}

BundleInfo BundleInfo::from_json(const json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "expected a JSON object");
  if (!j.contains("format") || j["format"] != kFormat)
    fail(where, "key 'format': expected \"" + std::string(kFormat) + "\" (is this a model bundle folder?)");
  const auto version = get_int(j, "version", where);
  if (version != kVersion)
    fail(where, "key 'version': this build reads version " + std::to_string(kVersion) + ", got " +
                    std::to_string(version));
  BundleInfo b;
  ObjectReader r(j, where);
  r.take("format");
  r.take("version");
  r.string("name", b.name);
  r.number("fps", b.fps, 0.1, 1000);
  r.integer("clip_frames", b.clip_frames, 1, 100000);
  r.integer("overlap_frames", b.overlap, 1, 100000);
  r.number("cfg_scale", b.cfg_scale, 1, 100);
  r.number("first_clip_cfg_scale", b.first_clip_cfg_scale, 1, 100);
  r.number("temperature", b.temperature, 0.05, 10);
  if (j.contains("made_by")) b.extra = j["made_by"];
  r.take("made_by");
  r.finish();
  return b;
}

void check_bundle(const std::string& where, const BundleInfo& info, const tokenizer::TokenizerConfig& tok,
                  const lm::LmConfig& lm, int text_vocab) {
  if (lm.video_vocab != tok.codebook_size)
    fail(where, "the language model has " + std::to_string(lm.video_vocab) + " video codes but the tokenizer's codebook has " +
                    std::to_string(tok.codebook_size));
  if (text_vocab >= 0 && lm.text_vocab != text_vocab)
    fail(where, "the language model has " + std::to_string(lm.text_vocab) +
                    " text ids but the text tokenizer has " + std::to_string(text_vocab) + " pieces");
  const int f = tok.temporal_factor(), s = tok.spatial_factor();
  if (info.clip_frames < 1 || (info.clip_frames - 1) % f != 0)
    fail(where, "clip_frames must be 1 + " + std::to_string(f) + "k, got " + std::to_string(info.clip_frames));
  if (info.overlap < 1 || (info.overlap - 1) % f != 0 || info.overlap >= info.clip_frames)
    fail(where, "overlap_frames must be 1 + " + std::to_string(f) + "k and below clip_frames, got " +
                    std::to_string(info.overlap));
  const int grid = tok.image_size / s;  // latent rows and columns
  const int64_t per_frame = static_cast<int64_t>(grid) * grid;
  if (lm.rope_3d() && (lm.rope_rows != grid || lm.rope_cols != grid))
    fail(where, "the language model's 3d positions are for a " + std::to_string(lm.rope_rows) + " x " +
                    std::to_string(lm.rope_cols) + " latent grid but the tokenizer's is " + std::to_string(grid) +
                    " x " + std::to_string(grid));
  const int64_t clip_tokens = ((info.clip_frames - 1) / f + 1) * per_frame;
  if (clip_tokens + 4 > lm.max_seq_len)
    fail(where, "a clip of " + std::to_string(info.clip_frames) + " frames is " + std::to_string(clip_tokens) +
                    " tokens, more than the language model's max_seq_len " + std::to_string(lm.max_seq_len));
}

void resolve_sampling(const BundleInfo& info, const SamplingGiven& given, SamplingOptions& s, double& first_clip) {
  if (!given.cfg && info.cfg_scale > 0) s.cfg_scale = info.cfg_scale;
  if (!given.first_clip_cfg && !given.cfg) first_clip = info.first_clip_cfg_scale;
  if (first_clip <= 0) first_clip = s.cfg_scale;
  if (!given.temperature && info.temperature > 0) s.temperature = info.temperature;
}

std::string bundle_part_or_self(const std::string& dir, const std::string& part) {
  std::error_code ec;
  const fs::path p = fs::path(dir) / part;
  return fs::exists(fs::path(dir) / "loong.json", ec) && fs::is_directory(p, ec) ? p.string() : dir;
}

Bundle load_bundle(const std::string& dir, c10::Device device) {
  if (!fs::is_directory(dir)) fail(dir, "no such model folder (expected a bundle from `loong model init` or `loong model pack`)");
  const std::string info_path = (fs::path(dir) / "loong.json").string();
  if (!fs::exists(info_path))
    fail(dir, "not a model bundle: no loong.json (make one with `loong model init` or `loong model pack`)");
  Bundle b;
  b.dir = dir;
  b.info = BundleInfo::from_json(read_json_file(info_path), info_path);
  const auto part = [&](const char* name) {
    const auto p = fs::path(dir) / name;
    if (!fs::is_directory(p)) fail(p.string(), "missing part of the model bundle");
    return p.string();
  };
  b.tokenizer = tokenizer::load_model(part("tokenizer"), device);
  b.lm = lm::load_lm(part("lm"), device);
  b.text_dir = part("text");
  check_bundle(info_path, b.info, b.tokenizer->config, b.lm->config, text::recorded_vocab_size(b.text_dir));
  return b;
}

namespace {

c10::ScalarType weights_type(const std::string& name) {
  if (name == "f32") return torch::kFloat;
  if (name == "f16") return torch::kHalf;
  if (name == "bf16") return torch::kBFloat16;
  fail("--dtype", "expected f32, f16 or bf16, got " + squote(name));
}

}  // namespace

void write_bundle(const std::string& out, const BundleInfo& info, const tokenizer::VideoTokenizer& tokenizer,
                  const std::string& text_dir, const lm::Llama& lm, bool overwrite, const std::string& weights_dtype) {
  const auto type = weights_type(weights_dtype);
  if (!fs::exists(fs::path(text_dir) / "text.model")) fail(text_dir, "not a text tokenizer folder: no text.model");
  check_bundle(out, info, tokenizer->config, lm->config, text::recorded_vocab_size(text_dir));
  if (fs::exists(out) && !(fs::is_directory(out) && fs::is_empty(out)) && !overwrite)
    fail(out, "exists and is not empty (use --force to replace it)");

  const std::string partial = out + ".partial";
  std::error_code ec;
  fs::remove_all(partial, ec);
  make_dirs(partial);
  tokenizer::save_model((fs::path(partial) / "tokenizer").string(), tokenizer, {}, type);
  lm::save_lm((fs::path(partial) / "lm").string(), lm, {}, type);
  make_dirs((fs::path(partial) / "text").string());
  for (const char* f : {"text.model", "text.json"})
    write_file_atomic((fs::path(partial) / "text" / f).string(), read_file((fs::path(text_dir) / f).string()));
  write_json_file((fs::path(partial) / "loong.json").string(), info.to_json());
  // Swap the finished folder in: the old one (if any) goes only after the new one is whole.
  const std::string old = out + ".old";
  fs::remove_all(old, ec);
  if (fs::exists(out)) fs::rename(out, old);
  fs::rename(partial, out);
  fs::remove_all(old, ec);
}

std::string default_model_dir(std::vector<std::string>* searched) {
  // An explicit LOONG_MODEL is used as is: load_bundle says what is wrong with it.
  if (const char* env = std::getenv("LOONG_MODEL"); env && *env) {
    if (searched) searched->push_back(env);
    return env;
  }
  std::vector<fs::path> places;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    places.push_back(exe.parent_path() / ".." / ".." / "models" / "default");
    places.push_back(exe.parent_path() / ".." / "share" / "loong" / "models" / "default");
  }
#ifdef LOONG_SOURCE_DIR
  places.push_back(fs::path(LOONG_SOURCE_DIR) / "models" / "default");
#endif
  std::vector<std::string> seen;
  for (const auto& p : places) {
    const auto dir = p.lexically_normal();
    if (std::find(seen.begin(), seen.end(), dir.string()) != seen.end()) continue;
    seen.push_back(dir.string());
    if (searched) searched->push_back(dir.string());
    if (fs::exists(dir / "loong.json", ec)) return dir.string();
  }
  return "";
}

std::string model_or_default(const std::string& model, const std::string& option) {
  if (!model.empty()) return model;
  std::vector<std::string> searched;
  auto dir = default_model_dir(&searched);
  if (!dir.empty()) return dir;
  std::string where;
  for (const auto& s : searched) where += (where.empty() ? "" : ", ") + s;
  fail(option, "not given, and there is no default model (looked in: " + where +
                   "); pass a bundle folder or set LOONG_MODEL");
}

}  // namespace loong::gen
