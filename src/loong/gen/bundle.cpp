#include "loong/gen/bundle.h"

#include <algorithm>
#include <cstdlib>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/causal_frames.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/data/fashion_mnist.h"
#include "loong/data/moving_fashion.h"
#include "loong/lm/checkpoint.h"
#include "loong/store/checkpoints.h"
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
  if (!is_causal_length(info.clip_frames, f))
    fail(where, "clip_frames must be 1 + " + std::to_string(f) + "k, got " + std::to_string(info.clip_frames));
  if (!is_causal_length(info.overlap, f) || info.overlap >= info.clip_frames)
    fail(where, "overlap_frames must be 1 + " + std::to_string(f) + "k and below clip_frames, got " +
                    std::to_string(info.overlap));
  const int grid = tok.image_size / s;  // latent rows and columns
  const int64_t per_frame = static_cast<int64_t>(grid) * grid;
  if (lm.rope_3d() && (lm.rope_rows != grid || lm.rope_cols != grid))
    fail(where, "the language model's 3d positions are for a " + std::to_string(lm.rope_rows) + " x " +
                    std::to_string(lm.rope_cols) + " latent grid but the tokenizer's is " + std::to_string(grid) +
                    " x " + std::to_string(grid));
  const int64_t clip_tokens = latent_frames_of(info.clip_frames, f) * per_frame;
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

// A folder this code wrote (a bundle, or one left half-written by a killed
// run): nothing in it but a bundle's parts and our hidden temporaries
// (.NAME.tmp-PID-N, core/atomic_file.h), and a loong.json when `whole`. Only
// such a folder is ever deleted or replaced.
bool bundle_layout(const fs::path& dir, bool whole) {
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(dir, ec))) return false;
  bool described = false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    described = described || name == "loong.json";
    const bool ours_temporary = name.rfind('.', 0) == 0 && name.find(".tmp-") != std::string::npos;
    if (name != "tokenizer" && name != "lm" && name != "text" && name != "loong.json" && !ours_temporary)
      return false;
  }
  return !ec && (described || !whole);
}

// Removes a leftover of an earlier run at `path` (X.partial, X.old) if it is
// one; refuses to touch anything else there.
void remove_leftover(const fs::path& path, const std::string& out) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(path, ec))) return;
  if (!bundle_layout(path, /*whole=*/false))
    fail(path.string(), "is in the way of writing " + out + " and was not made by loong; move it away");
  fs::remove_all(path, ec);
}

// The bundle folder --out names ("DIR/" and "DIR" are one folder: its
// .partial and .old sit beside it), checked before any work: what stands
// there may be replaced only when it is a bundle and `overwrite` is set.
std::string bundle_out(const std::string& out_arg, bool overwrite) {
  fs::path out_path = fs::path(out_arg).lexically_normal();
  if (out_path.filename().empty()) out_path = out_path.parent_path();
  const std::string out = out_path.string();
  if (out.empty() || out == "." || out == "..") fail(out_arg, "expected a folder name for the bundle");
  std::error_code ec;
  if (fs::exists(fs::symlink_status(out, ec)) && !(fs::is_directory(out, ec) && fs::is_empty(out, ec))) {
    if (!bundle_layout(out, /*whole=*/true))
      fail(out, "exists and is not a model bundle; --force replaces only a bundle, so choose another folder");
    if (!overwrite) fail(out, "exists and is not empty (use --force to replace it)");
  }
  return out;
}

}  // namespace

void write_bundle(const std::string& out_arg, const BundleInfo& info, const tokenizer::VideoTokenizer& tokenizer,
                  const std::string& text_dir, const lm::Llama& lm, bool overwrite, const std::string& weights_dtype) {
  const auto type = weights_type(weights_dtype);
  if (!fs::exists(fs::path(text_dir) / "text.model")) fail(text_dir, "not a text tokenizer folder: no text.model");
  const std::string out = bundle_out(out_arg, overwrite);
  check_bundle(out, info, tokenizer->config, lm->config, text::recorded_vocab_size(text_dir));
  std::error_code ec;

  const std::string partial = out + ".partial";
  remove_leftover(partial, out);
  make_dirs(partial);
  tokenizer::save_model((fs::path(partial) / "tokenizer").string(), tokenizer, {}, type);
  lm::save_lm((fs::path(partial) / "lm").string(), lm, {}, type);
  make_dirs((fs::path(partial) / "text").string());
  for (const char* f : {"text.model", "text.json"})
    write_file_atomic((fs::path(partial) / "text" / f).string(), read_file((fs::path(text_dir) / f).string()));
  write_json_file((fs::path(partial) / "loong.json").string(), info.to_json());
  // Swap the finished folder in: the old one (if any) goes only after the new one is whole.
  const std::string old = out + ".old";
  remove_leftover(old, out);
  if (fs::exists(out)) fs::rename(out, old);
  fs::rename(partial, out);
  fs::remove_all(old, ec);
}

namespace {

// Captions of the moving-fashion world (videos and stills), rendered tiny:
// the sentences a random-weight bundle's text tokenizer is trained on.
std::vector<std::string> moving_fashion_captions(int count, uint64_t seed) {
  data::MovingFashionOptions o;
  o.size = 32;
  o.seconds = 1;
  o.seed = seed;
  o.scene_changes = 0.5;
  const auto items = data::load_fashion_mnist("train", o.mnist_dir);
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i)
    out.push_back(i % 4 == 3 ? data::make_image(items, o, i).caption : data::make_video(items, o, i).caption);
  return out;
}

}  // namespace

void write_random_bundle(const RandomBundleOptions& o) {
  if (o.preset != "tiny" && o.preset != "paper") fail("--preset", "expected tiny or paper, got " + squote(o.preset));
  torch::manual_seed(o.seed);
  auto tok_cfg = tokenizer::TokenizerConfig::preset(o.preset);
  auto lm_cfg = lm::LmConfig::preset(o.preset == "paper" ? "700M" : "tiny");
  bundle_out(o.out, o.force);  // before the text tokenizer is trained
  std::string text_dir = o.text;
  std::string tmp;
  struct RemovedAtEnd {  // the temporary text tokenizer, whatever happens
    const std::string& path;
    ~RemovedAtEnd() {
      std::error_code ec;
      if (!path.empty()) fs::remove_all(path, ec);
    }
  } removed{tmp};
  if (text_dir.empty()) {
    // A folder of our own in the system's temporary folder: nothing of the user's is in the way.
    std::error_code ec;
    fs::path temp_root = fs::temp_directory_path(ec);
    if (ec) temp_root = "/tmp";
    tmp = (temp_root / ("loong-text-" + std::to_string(::getpid()) + "-" + std::to_string(o.seed))).string();
    fs::remove_all(tmp, ec);
    text::TextTrainOptions to;
    to.vocab_size = o.text_vocab;
    to.source = "moving-fashion captions (loong model init)";
    text::TextTokenizer::train(moving_fashion_captions(2000, o.seed), to, tmp);
    text_dir = tmp;
  }
  lm_cfg.text_vocab = text::recorded_vocab_size(text_dir);
  lm_cfg.video_vocab = tok_cfg.codebook_size;
  BundleInfo info;
  info.name = o.preset + "-random";
  info.cfg_scale = o.cfg;
  info.extra = {{"command", "loong model init"}, {"preset", o.preset}, {"seed", o.seed}, {"trained", false}};
  write_bundle(o.out, info, tokenizer::VideoTokenizer(tok_cfg), text_dir, lm::Llama(lm_cfg), o.force);
}

void pack_bundle(PackOptions o) {
  o.info.extra = {{"command", "loong model pack"},
                  {"tokenizer", store::resolve_model_dir(o.tokenizer)},
                  {"lm", store::resolve_model_dir(o.lm)},
                  {"text", o.text},
                  {"dtype", o.dtype},
                  {"trained", true}};
  write_bundle(o.out, o.info, tokenizer::load_model(o.tokenizer), o.text, lm::load_lm(o.lm), o.force, o.dtype);
}

json describe_bundle(const std::string& dir) {
  auto b = load_bundle(dir);
  const auto& t = b.tokenizer->config;
  const int64_t per_frame = static_cast<int64_t>(t.image_size / t.spatial_factor()) * (t.image_size / t.spatial_factor());
  json j = b.info.to_json();
  j["frame_size"] = t.image_size;
  j["tokens_per_clip"] = latent_frames_of(b.info.clip_frames, t.temporal_factor()) * per_frame;
  j["tokenizer"] = {{"parameters", b.tokenizer->parameter_count()}, {"codebook_size", t.codebook_size}};
  j["lm"] = {{"parameters", b.lm->parameter_count()},
             {"text_vocab", b.lm->config.text_vocab},
             {"video_vocab", b.lm->config.video_vocab},
             {"max_seq_len", b.lm->config.max_seq_len}};
  int64_t bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) bytes += static_cast<int64_t>(e.file_size());
  j["bytes"] = bytes;
  return j;
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
  fail_input(option, "not given, and there is no default model (looked in: " + where +
                   "); pass a bundle folder or set LOONG_MODEL");
}

}  // namespace loong::gen
