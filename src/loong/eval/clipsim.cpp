#include "loong/eval/clipsim.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <filesystem>
#include <sstream>

#include <torch/script.h>
#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/data/manifest.h"
#include "loong/io/video.h"
#include "loong/core/torchscript.h"

namespace loong::eval {

namespace {

// The whole file, gunzipped when it starts with gzip's magic bytes.
std::string read_maybe_gz(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail(path, "no such BPE vocabulary file (bpe_simple_vocab_16e6.txt.gz)");
  std::string raw = read_file(path);
  if (raw.size() < 2 || static_cast<unsigned char>(raw[0]) != 0x1f || static_cast<unsigned char>(raw[1]) != 0x8b)
    return raw;
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail(path, "cannot open as gzip");
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  const bool bad = n < 0;
  gzclose(f);
  if (bad) fail(path, "corrupt gzip data");
  return out;
}

std::string utf8(int cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Length of the UTF-8 sequence starting with byte c (1 for invalid bytes).
size_t utf8_len(unsigned char c) {
  if (c < 0xC0) return 1;
  if (c < 0xE0) return 2;
  if (c < 0xF0) return 3;
  return 4;
}

std::string lower_clean(const std::string& text) {
  // html.unescape of the common entities, whitespace collapsed, lower case.
  std::string t = text;
  const std::pair<const char*, const char*> entities[] = {
      {"&amp;", "&"}, {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&#39;", "'"}, {"&#x27;", "'"}};
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& [from, to] : entities)
      for (size_t p; (p = t.find(from)) != std::string::npos;) t.replace(p, std::strlen(from), to);
  std::string out;
  bool space = false;
  for (unsigned char c : t) {
    if (std::isspace(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += static_cast<char>(std::tolower(c));
  }
  return out;
}

bool is_letter_start(unsigned char c) { return std::isalpha(c) || c >= 0x80; }  // non-ASCII counts as letters

// CLIP's word pattern: the two special tokens, contractions, letter runs,
// single digits, runs of other non-space symbols.
std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (std::isspace(c)) {
      ++i;
      continue;
    }
    bool done = false;
    for (const char* special : {"<|startoftext|>", "<|endoftext|>"})
      if (s.compare(i, std::strlen(special), special) == 0) {
        words.emplace_back(special);
        i += std::strlen(special);
        done = true;
        break;
      }
    if (done) continue;
    if (c == '\'') {
      for (const char* k : {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"})
        if (s.compare(i, std::strlen(k), k) == 0) {
          words.emplace_back(k);
          i += std::strlen(k);
          done = true;
          break;
        }
      if (done) continue;
    }
    size_t j = i;
    if (is_letter_start(c)) {
      while (j < s.size() && is_letter_start(static_cast<unsigned char>(s[j]))) j += utf8_len(static_cast<unsigned char>(s[j]));
    } else if (std::isdigit(c)) {
      j = i + 1;
    } else {
      while (j < s.size()) {
        const unsigned char d = static_cast<unsigned char>(s[j]);
        if (std::isspace(d) || is_letter_start(d) || std::isdigit(d)) break;
        ++j;
      }
    }
    words.push_back(s.substr(i, std::min(j, s.size()) - i));
    i = j;
  }
  return words;
}

}  // namespace

ClipBpe ClipBpe::load(const std::string& path) {
  const std::string text = read_maybe_gz(path);
  ClipBpe b;
  // GPT-2's byte <-> printable-character table.
  std::vector<int> bs;
  for (int c = '!'; c <= '~'; ++c) bs.push_back(c);
  for (int c = 0xA1; c <= 0xAC; ++c) bs.push_back(c);
  for (int c = 0xAE; c <= 0xFF; ++c) bs.push_back(c);
  std::vector<int> cs = bs;
  int extra = 0;
  for (int c = 0; c < 256; ++c)
    if (std::find(bs.begin(), bs.end(), c) == bs.end()) bs.push_back(c), cs.push_back(256 + extra++);
  b.byte_symbol_.assign(256, "");
  std::vector<std::string> vocab;
  for (size_t k = 0; k < bs.size(); ++k) {
    b.byte_symbol_[static_cast<size_t>(bs[k])] = utf8(cs[k]);
    vocab.push_back(utf8(cs[k]));
  }
  for (size_t k = 0; k < 256; ++k) vocab.push_back(vocab[k] + "</w>");
  // Merges: the lines after the version header, at most 49152 - 256 - 2 of them (as CLIP).
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  std::getline(in, line);
  ++lineno;
  int merges = 0;
  while (std::getline(in, line) && merges < 49152 - 256 - 2) {
    ++lineno;
    if (line.empty()) continue;
    const auto sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string::npos)
      fail(path + ":" + std::to_string(lineno), "expected a merge 'A B', got '" + line.substr(0, 60) + "'");
    const std::string a = line.substr(0, sp), c = line.substr(sp + 1);
    b.ranks_[{a, c}] = merges++;
    vocab.push_back(a + c);
  }
  if (merges == 0) fail(path, "no BPE merges (expected bpe_simple_vocab_16e6.txt.gz)");
  vocab.emplace_back("<|startoftext|>");
  vocab.emplace_back("<|endoftext|>");
  for (size_t k = 0; k < vocab.size(); ++k) b.encoder_.emplace(vocab[k], static_cast<int64_t>(k));
  b.sot_ = b.encoder_.at("<|startoftext|>");
  b.eot_ = b.encoder_.at("<|endoftext|>");
  return b;
}

std::vector<std::string> ClipBpe::bpe(const std::string& word) const {
  // word: printable symbols (UTF-8); the last one carries "</w>".
  std::vector<std::string> parts;
  for (size_t i = 0; i < word.size();) {
    const size_t n = utf8_len(static_cast<unsigned char>(word[i]));
    parts.push_back(word.substr(i, n));
    i += n;
  }
  if (parts.empty()) return parts;
  parts.back() += "</w>";
  while (parts.size() > 1) {
    int best = INT_MAX;
    std::pair<std::string, std::string> pair;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = ranks_.find({parts[i], parts[i + 1]});
      if (it != ranks_.end() && it->second < best) best = it->second, pair = it->first;
    }
    if (best == INT_MAX) break;
    std::vector<std::string> merged;
    for (size_t i = 0; i < parts.size();) {
      if (i + 1 < parts.size() && parts[i] == pair.first && parts[i + 1] == pair.second) {
        merged.push_back(pair.first + pair.second);
        i += 2;
      } else {
        merged.push_back(parts[i++]);
      }
    }
    parts = std::move(merged);
  }
  return parts;
}

std::vector<int64_t> ClipBpe::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const auto& w : split_words(lower_clean(text))) {
    if (w == "<|startoftext|>" || w == "<|endoftext|>") {
      ids.push_back(encoder_.at(w));
      continue;
    }
    std::string mapped;
    for (unsigned char c : w) mapped += byte_symbol_[c];
    for (const auto& p : bpe(mapped)) {
      auto it = encoder_.find(p);
      if (it == encoder_.end()) fail("clip tokenizer", "symbol '" + p + "' is not in the vocabulary");
      ids.push_back(it->second);
    }
  }
  return ids;
}

at::Tensor ClipBpe::tokenize(const std::vector<std::string>& texts, int64_t context) const {
  auto out = torch::zeros({static_cast<int64_t>(texts.size()), context}, torch::kLong);
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t> ids{sot_};
    for (auto id : encode(texts[i])) ids.push_back(id);
    ids.push_back(eot_);
    if (static_cast<int64_t>(ids.size()) > context) {
      ids.resize(static_cast<size_t>(context));
      ids.back() = eot_;
    }
    for (size_t k = 0; k < ids.size(); ++k) out[static_cast<int64_t>(i)][static_cast<int64_t>(k)] = ids[k];
  }
  return out;
}

at::Tensor clip_preprocess(const at::Tensor& frames, int64_t size) {
  if (frames.dim() != 4 || frames.size(3) != 3 || frames.scalar_type() != torch::kUInt8)
    fail("clip", "expected uint8 frames [N, H, W, 3], got " + c10::str(frames.sizes()));
  namespace F = torch::nn::functional;
  auto x = frames.permute({0, 3, 1, 2}).to(torch::kFloat).div(255.0);
  const int64_t H = x.size(2), W = x.size(3);
  const double s = static_cast<double>(size) / std::min(H, W);
  const int64_t h = std::max<int64_t>(size, std::llround(H * s)), w = std::max<int64_t>(size, std::llround(W * s));
  x = F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kBicubic).align_corners(false))
          .clamp(0, 1);
  x = x.narrow(2, (h - size) / 2, size).narrow(3, (w - size) / 2, size);
  auto mean = torch::tensor({0.48145466, 0.4578275, 0.40821073}, torch::kFloat).view({1, 3, 1, 1});
  auto std = torch::tensor({0.26862954, 0.26130258, 0.27577711}, torch::kFloat).view({1, 3, 1, 1});
  return ((x - mean) / std).contiguous();
}

struct ClipModel::Impl {
  torch::jit::script::Module module;
  c10::Device device{c10::kCPU};
  c10::ScalarType dtype = torch::kFloat;
};

ClipModel::ClipModel(const std::string& path, c10::Device device) : impl_(std::make_unique<Impl>()), path_(path) {
  impl_->module = load_torchscript(path, device, "a CLIP TorchScript archive, e.g. ViT-L-14.pt");
  for (const char* m : {"encode_image", "encode_text"})
    if (!impl_->module.find_method(m)) fail(path, std::string("a CLIP model needs a method ") + m);
  impl_->device = device;
  // OpenAI's archives hold half-precision weights, which the CPU runs poorly.
  if (device.is_cpu()) impl_->module.to(torch::kFloat);
  for (const auto& p : impl_->module.parameters()) {
    impl_->dtype = p.scalar_type();
    break;
  }
}

ClipModel::~ClipModel() = default;
ClipModel::ClipModel(ClipModel&&) noexcept = default;

namespace {
at::Tensor run_method(torch::jit::script::Module& m, const char* name, const at::Tensor& x, const std::string& path) {
  try {
    c10::InferenceMode guard;
    auto y = m.get_method(name)({x}).toTensor().to(torch::kCPU, torch::kFloat);
    if (y.dim() != 2 || y.size(0) != x.size(0))
      fail(path, std::string(name) + " must return [N, D], got " + c10::str(y.sizes()));
    return y / y.norm(2, -1, true).clamp_min(1e-12);
  } catch (const c10::Error& e) {
    fail(path, std::string(name) + " failed: " + first_error_line(e));
  }
}
}  // namespace

at::Tensor ClipModel::encode_images(const at::Tensor& frames) {
  auto x = clip_preprocess(frames).to(impl_->device, impl_->dtype);
  return run_method(impl_->module, "encode_image", x, path_);
}

at::Tensor ClipModel::encode_texts(const at::Tensor& tokens) {
  return run_method(impl_->module, "encode_text", tokens.to(impl_->device), path_);
}

json clipsim_report(const ClipsimOptions& o) {
  const auto m = data::load_manifest(o.data);
  const auto bpe = ClipBpe::load(o.bpe);
  ClipModel clip(o.clip, parse_device(o.device));
  json per = json::array();
  double sum = 0;
  int64_t frames_total = 0;
  for (const auto& e : m.entries) {
    if (o.max_videos > 0 && static_cast<int64_t>(per.size()) >= o.max_videos) break;
    at::Tensor frames;
    if (e.kind == data::MediaKind::Image) {
      frames = video::read_image(e.path).unsqueeze(0);
    } else {
      video::ReadOptions ro;
      ro.fps = o.fps;
      ro.start = e.start;
      ro.end = e.end;
      frames = video::read(e.path, ro).frames;
    }
    if (o.max_frames > 0 && frames.size(0) > o.max_frames)
      frames = frames.index_select(0, torch::linspace(0, frames.size(0) - 1, o.max_frames).round().to(torch::kLong));
    auto text = clip.encode_texts(bpe.tokenize({e.caption}));  // [1, D]
    double video_sum = 0;
    for (int64_t i = 0; i < frames.size(0); i += o.batch) {
      auto img = clip.encode_images(frames.narrow(0, i, std::min<int64_t>(o.batch, frames.size(0) - i)));
      video_sum += img.matmul(text[0]).sum().item<double>();
    }
    const double v = video_sum / static_cast<double>(frames.size(0));
    per.push_back({{"video", e.path}, {"caption", e.caption}, {"frames", frames.size(0)}, {"clipsim", v}});
    sum += v;
    frames_total += frames.size(0);
  }
  return {{"clipsim", sum / static_cast<double>(per.size())},
          {"videos", per.size()},
          {"frames", frames_total},
          {"clip", o.clip},
          {"per_video", per}};
}

}  // namespace loong::eval
