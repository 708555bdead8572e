#include "loong/tokenizer/config.h"

#include <type_traits>

#include "loong/core/causal_frames.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"

namespace loong::tokenizer {

int TokenizerConfig::spatial_factor() const { return 1 << (levels() - 1); }

int TokenizerConfig::temporal_factor() const {
  int f = 1;
  for (bool t : temporal_down) f *= t ? 2 : 1;
  return f;
}

int TokenizerConfig::latent_frames(int frames) const {
  const int f = temporal_factor();
  if (!is_causal_length(frames, f))
    fail("frames", "the tokenizer takes 1 + " + std::to_string(f) + "k frames (1, " + std::to_string(1 + f) +
                       ", " + std::to_string(1 + 4 * f) + ", ...), got " + std::to_string(frames));
  return static_cast<int>(latent_frames_of(frames, f));
}

int TokenizerConfig::decoder_width(int level) const {
  return decoder_channels.empty() ? channels(level) : decoder_channels.at(level);
}

int TokenizerConfig::decoder_blocks(int level) const {
  return decoder_res_blocks.empty() ? num_res_blocks + 1 : decoder_res_blocks.at(level);
}

nlohmann::json TokenizerConfig::encoder_json() const {
  auto j = to_json();
  j.erase("decoder_channels");
  j.erase("decoder_res_blocks");
  return j;
}

std::vector<std::string> preset_names() { return {"tiny", "paper"}; }

TokenizerConfig TokenizerConfig::preset(const std::string& name) {
  TokenizerConfig c;
  if (name == "tiny") return c;  // the defaults: trains on 2 CPU cores
  if (name == "paper") {
    // 128x128 frames, 8,192 codes, widths chosen so encoder + decoder come to
    // about the paper's 246 M parameters.
    c.name = "paper";
    c.image_size = 128;
    c.base_channels = 128;
    c.channel_mult = {1, 2, 2, 4};
    c.num_res_blocks = 2;
    c.norm = "group";
    c.codebook_size = 8192;
    c.codebook_dim = 64;
    return c;
  }
  std::string names;
  for (const auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
  fail("--preset", "unknown tokenizer preset " + squote(name) + " (expected one of: " + names + ")");
}

nlohmann::json TokenizerConfig::to_json() const {
  nlohmann::json j = {{"name", name},
          {"image_size", image_size},
          {"in_channels", in_channels},
          {"base_channels", base_channels},
          {"channel_mult", channel_mult},
          {"temporal_down", temporal_down},
          {"norm", norm},
          {"num_res_blocks", num_res_blocks},
          {"codebook_size", codebook_size},
          {"codebook_dim", codebook_dim},
          {"beta", beta},
          {"usage_decay", usage_decay}};
  // Written only where they change the decoder, so a config from before these
  // keys reads back unchanged, and configs that build the same model compare
  // equal (--init's architecture check) however they spell it.
  std::vector<int> widths, blocks;
  for (int i = 0; i < levels(); ++i) widths.push_back(channels(i)), blocks.push_back(num_res_blocks + 1);
  if (!decoder_channels.empty() && decoder_channels != widths) j["decoder_channels"] = decoder_channels;
  if (!decoder_res_blocks.empty() && decoder_res_blocks != blocks) j["decoder_res_blocks"] = decoder_res_blocks;
  return j;
}

namespace {
// Reads j[key] into out when present; every element must convert to T exactly.
template <class T>
void read_array(const nlohmann::json& j, const char* key, const std::string& where, const char* expected,
                std::vector<T>& out) {
  if (!j.contains(key)) return;
  const auto& a = j[key];
  auto bad = [&] { fail(where, "key " + squote(key) + ": expected " + expected); };
  if (!a.is_array()) bad();
  out.clear();
  for (const auto& v : a) {
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) bad();
    } else {
      if (!v.is_number_integer()) bad();
    }
    out.push_back(v.get<T>());
  }
}
}  // namespace

TokenizerConfig TokenizerConfig::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "expected a JSON object with the tokenizer config");
  TokenizerConfig c;
  if (j.contains("preset")) c = preset(get_string(j, "preset", where));
  static const char* known[] = {"preset", "name", "image_size", "in_channels", "base_channels", "channel_mult",
                                "temporal_down", "norm", "num_res_blocks", "codebook_size", "codebook_dim", "beta",
                                "usage_decay", "decoder_channels", "decoder_res_blocks"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok) fail(where, "unknown key " + squote(it.key()) + " in the tokenizer config");
  }
  auto int_key = [&](const char* k, int& v) {
    if (j.contains(k)) v = static_cast<int>(get_int(j, k, where));
  };
  if (j.contains("name")) c.name = get_string(j, "name", where);
  if (j.contains("norm")) c.norm = get_string(j, "norm", where);
  int_key("image_size", c.image_size);
  int_key("in_channels", c.in_channels);
  int_key("base_channels", c.base_channels);
  int_key("num_res_blocks", c.num_res_blocks);
  int_key("codebook_size", c.codebook_size);
  int_key("codebook_dim", c.codebook_dim);
  if (j.contains("beta")) c.beta = get_number(j, "beta", where);
  if (j.contains("usage_decay")) c.usage_decay = get_number(j, "usage_decay", where);
  read_array(j, "channel_mult", where, "an array of positive integers", c.channel_mult);
  read_array(j, "temporal_down", where, "an array of booleans", c.temporal_down);
  read_array(j, "decoder_channels", where, "an array of positive integers, one a level", c.decoder_channels);
  read_array(j, "decoder_res_blocks", where, "an array of positive integers, one a level", c.decoder_res_blocks);
  c.validate(where);
  return c;
}

TokenizerConfig TokenizerConfig::load(const std::string& path) { return from_json(read_json_file(path), path); }

void TokenizerConfig::validate(const std::string& where) const {
  auto positive = [&](const char* key, int v, int max) {
    if (v < 1 || v > max)
      fail(where, "key " + squote(key) + ": expected an integer in [1, " + std::to_string(max) + "], got " +
                      std::to_string(v));
  };
  positive("in_channels", in_channels, 16);
  positive("base_channels", base_channels, 4096);
  positive("num_res_blocks", num_res_blocks, 16);
  positive("codebook_size", codebook_size, 1 << 20);
  positive("codebook_dim", codebook_dim, 4096);
  if (channel_mult.size() < 2 || channel_mult.size() > 6)
    fail(where, "key 'channel_mult': expected 2 to 6 levels, got " + std::to_string(channel_mult.size()));
  for (int m : channel_mult)
    if (m < 1 || m > 64) fail(where, "key 'channel_mult': every entry must be in [1, 64]");
  if (temporal_down.size() != channel_mult.size() - 1)
    fail(where, "key 'temporal_down': expected one entry per downsample (" + std::to_string(channel_mult.size() - 1) +
                    "), got " + std::to_string(temporal_down.size()));
  auto per_level = [&](const char* key, const std::vector<int>& v, int max) {
    if (v.empty()) return;
    if (v.size() != channel_mult.size())
      fail(where, "key " + squote(key) + ": expected one entry per level (" + std::to_string(channel_mult.size()) +
                      ", as channel_mult), got " + std::to_string(v.size()));
    for (int x : v)
      if (x < 1 || x > max)
        fail(where, "key " + squote(key) + ": every entry must be in [1, " + std::to_string(max) + "], got " +
                        std::to_string(x));
  };
  per_level("decoder_channels", decoder_channels, 4096);
  per_level("decoder_res_blocks", decoder_res_blocks, 16);
  if (image_size < spatial_factor() || image_size % spatial_factor() != 0)
    fail(where, "key 'image_size': expected a multiple of " + std::to_string(spatial_factor()) + ", got " +
                    std::to_string(image_size));
  if (norm != "group" && norm != "none")
    fail(where, "key 'norm': expected \"group\" or \"none\", got " + squote(norm));
  if (!(beta >= 0 && beta <= 10)) fail(where, "key 'beta': expected a number in [0, 10]");
  if (!(usage_decay > 0 && usage_decay < 1)) fail(where, "key 'usage_decay': expected a number in (0, 1)");
}

}  // namespace loong::tokenizer
