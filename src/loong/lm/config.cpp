#include "loong/lm/config.h"

#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/lm/vocab.h"

namespace loong::lm {

int LmConfig::vocab_size() const { return text_vocab + video_vocab + kSpecialTokens; }

int llama_ffn_dim(int dim, int multiple_of) {
  const int hidden = 2 * (4 * dim) / 3;
  return multiple_of * ((hidden + multiple_of - 1) / multiple_of);
}

int64_t LmConfig::parameter_count() const {
  const int64_t d = dim, hd = head_dim(), V = vocab_size();
  const int64_t attention = d * (n_heads * hd) + 2 * d * (n_kv_heads * hd) + (n_heads * hd) * d;
  const int64_t mlp = 3 * d * ffn_dim;
  const int64_t norms = 2 * d;
  return n_layers * (attention + mlp + norms) + 2 * V * d + d;  // + embeddings, output head, final norm
}

std::vector<std::string> lm_preset_names() { return {"tiny", "700M", "3B", "7B"}; }

LmConfig LmConfig::preset(const std::string& name) {
  LmConfig c;
  // The paper's vocabulary: 32,000 text + 8,192 video + 10 special = 40,202.
  auto paper = [&](int dim, int layers, int heads) {
    c.name = name;
    c.dim = dim;
    c.n_layers = layers;
    c.n_heads = heads;
    c.n_kv_heads = heads;
    c.ffn_dim = llama_ffn_dim(dim);
    c.text_vocab = 32000;
    c.video_vocab = 8192;
    return c;
  };
  // Head width 128 as in LLaMA; depth chosen so the total (with the untied
  // 40,202-token embedding and head) lands near the name.
  if (name == "tiny") return c;
  if (name == "700M") return paper(1536, 20, 12);
  if (name == "3B") return paper(3072, 24, 24);
  if (name == "7B") return paper(4096, 32, 32);  // LLaMA-7B's shape
  std::string names;
  for (const auto& n : lm_preset_names()) names += (names.empty() ? "" : ", ") + n;
  fail("--preset", "unknown model preset " + squote(name) + " (expected one of: " + names + ")");
}

nlohmann::json LmConfig::to_json() const {
  nlohmann::json j = {{"name", name},         {"dim", dim},
                      {"n_layers", n_layers}, {"n_heads", n_heads},
                      {"n_kv_heads", n_kv_heads}, {"ffn_dim", ffn_dim},
                      {"norm_eps", norm_eps}, {"rope_theta", rope_theta},
                      {"max_seq_len", max_seq_len}, {"text_vocab", text_vocab},
                      {"video_vocab", video_vocab}};
  // 1D configs stay as they were written before 3D positions existed.
  if (rope_3d()) {
    j["rope"] = rope;
    if (rope_rows > 0) j["rope_grid"] = {rope_rows, rope_cols};
  }
  return j;
}

LmConfig LmConfig::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "expected a JSON object with the model config");
  LmConfig c;
  ObjectReader r(j, where);
  if (r.take("preset")) c = preset(get_string(j, "preset", where));
  r.string("name", c.name);
  r.integer("dim", c.dim, 1, 1 << 16);
  r.integer("n_layers", c.n_layers, 1, 1024);
  r.integer("n_heads", c.n_heads, 1, 1024);
  // A preset's n_kv_heads follows n_heads unless given.
  if (j.contains("n_heads") && !j.contains("n_kv_heads")) c.n_kv_heads = c.n_heads;
  r.integer("n_kv_heads", c.n_kv_heads, 1, 1024);
  r.integer("ffn_dim", c.ffn_dim, 1, 1 << 20);
  r.number("norm_eps", c.norm_eps, 1e-12, 1);
  r.number("rope_theta", c.rope_theta, 1, 1e9);
  r.string("rope", c.rope);
  if (r.take("rope_grid")) {
    const auto& g = j["rope_grid"];
    if (!g.is_array() || g.size() != 2 || !g[0].is_number_integer() || !g[1].is_number_integer() ||
        g[0].get<long long>() < 1 || g[1].get<long long>() < 1 || g[0].get<long long>() > 4096 ||
        g[1].get<long long>() > 4096)
      fail(where, "key 'rope_grid': expected [rows, cols], two integers in [1, 4096] (the latent frame's grid), got " +
                      g.dump());
    c.rope_rows = g[0].get<int>();
    c.rope_cols = g[1].get<int>();
  }
  r.integer("max_seq_len", c.max_seq_len, 1, 1 << 24);
  r.integer("text_vocab", c.text_vocab, 1, 1 << 22);
  r.integer("video_vocab", c.video_vocab, 1, 1 << 22);
  r.finish();
  c.validate(where);
  return c;
}

LmConfig LmConfig::load(const std::string& path) { return from_json(read_json_file(path), path); }

void LmConfig::validate(const std::string& where) const {
  if (dim % n_heads != 0)
    fail(where, "key 'dim': " + std::to_string(dim) + " is not a multiple of n_heads (" + std::to_string(n_heads) + ")");
  if (head_dim() % 2 != 0)
    fail(where, "key 'n_heads': the head width dim / n_heads = " + std::to_string(head_dim()) +
                    " must be even for rotary embeddings");
  if (rope != "1d" && rope != "3d") fail(where, "key 'rope': expected \"1d\" or \"3d\", got " + squote(rope));
  if (rope_3d() && head_dim() < 6)
    fail(where, "key 'rope': 3d positions need a head width of at least 6 (a rotary pair per axis), got " +
                    std::to_string(head_dim()));
  if (!rope_3d() && rope_rows > 0) fail(where, "key 'rope_grid': only 3d positions (\"rope\": \"3d\") use a grid");
  if (n_heads % n_kv_heads != 0)
    fail(where, "key 'n_kv_heads': " + std::to_string(n_kv_heads) + " does not divide n_heads (" +
                    std::to_string(n_heads) + ")");
}

}  // namespace loong::lm
