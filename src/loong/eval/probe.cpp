#include "loong/eval/probe.h"

#include <filesystem>
#include <map>
#include <random>

#include <torch/torch.h>

#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/data/moving_fashion.h"
#include "loong/train/checkpoints.h"

namespace fs = std::filesystem;

namespace loong::eval {

namespace {
constexpr const char* kFormat = "loong-probe";

int index_of(const std::string& name, const char* what, bool background) {
  if (background) {
    for (size_t i = 0; i < data::kBackgrounds.size(); ++i)
      if (name == data::kBackgrounds[i].name) return static_cast<int>(i);
  } else {
    for (size_t i = 0; i < data::kItemColours.size(); ++i)
      if (name == data::kItemColours[i].name) return static_cast<int>(i);
  }
  fail("ground truth", std::string("unknown ") + what + " '" + name + "'");
}

torch::nn::Conv2d conv(int in, int out, int stride) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1));
}

torch::Tensor to_unit(const torch::Tensor& frames) {  // uint8 [T, S, S, 3] -> float [T, 3, S, S]
  return frames.permute({0, 3, 1, 2}).to(torch::kFloat).div(255.0);
}
}  // namespace

nlohmann::json ProbeConfig::to_json() const {
  return {{"image_size", image_size}, {"channels", channels}, {"features", features}};
}

ProbeConfig ProbeConfig::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "expected a JSON object");
  ProbeConfig c;
  ObjectReader r(j, where);
  r.integer("image_size", c.image_size, 16, 1024);
  r.integer("channels", c.channels, 4, 512);
  r.integer("features", c.features, 8, 4096);
  r.finish();
  return c;
}

ProbeNetImpl::ProbeNetImpl(ProbeConfig c) : config(c) {
  const int w = config.channels;
  trunk = register_module(
      "trunk", torch::nn::Sequential(conv(3, w, 1), torch::nn::ReLU(), conv(w, 2 * w, 2), torch::nn::ReLU(),
                                     conv(2 * w, 4 * w, 2), torch::nn::ReLU(), conv(4 * w, 4 * w, 2), torch::nn::ReLU(),
                                     torch::nn::AdaptiveAvgPool2d(torch::nn::AdaptiveAvgPool2dOptions({4, 4}))));
  embed = register_module("embed", torch::nn::Linear(4 * w * 16, config.features));
  background = register_module("background", torch::nn::Linear(config.features, kProbeBackgrounds));
  presence = register_module("presence", torch::nn::Linear(config.features, kProbeItems));
  position = register_module("position", torch::nn::Linear(config.features, kProbeItems * 2));
}

ProbeOutput ProbeNetImpl::forward(const torch::Tensor& x) {
  ProbeOutput o;
  o.features = torch::gelu(embed(trunk->forward(x).flatten(1)));  // GELU: a ReLU here died under the presence loss
  o.background = background(o.features);
  o.presence = presence(o.features);
  o.position = torch::sigmoid(position(o.features)).view({x.size(0), kProbeItems, 2});
  return o;
}

ProbeTargets probe_targets(const nlohmann::json& truth, int64_t frames) {
  const std::string where = "ground truth";
  if (!truth.contains("per_frame") || !truth["per_frame"].is_array() || !truth.contains("items"))
    fail(where, "expected moving-fashion ground truth with 'items' and 'per_frame'");
  const auto& pf = truth["per_frame"];
  if (static_cast<int64_t>(pf.size()) < frames)
    fail(where, "has " + std::to_string(pf.size()) + " frames, " + std::to_string(frames) + " asked");
  std::map<int64_t, int> slot;  // item id -> class * 8 + colour
  for (const auto& it : truth["items"])
    slot[get_int(it, "id", where)] = static_cast<int>(get_int(it, "class", where)) * kProbeColours +
                                     index_of(get_string(it, "colour", where), "colour", false);
  ProbeTargets t;
  t.background = torch::zeros({frames}, torch::kLong);
  t.presence = torch::zeros({frames, kProbeItems});
  t.position = torch::zeros({frames, kProbeItems, 2});
  for (int64_t f = 0; f < frames; ++f) {
    const auto& fr = pf[static_cast<size_t>(f)];
    t.background[f] = index_of(get_string(fr, "background", where), "background", true);
    for (const auto& it : fr["items"]) {
      const int s = slot.at(get_int(it, "id", where));
      t.presence[f][s] = 1;
      t.position[f][s][0] = get_number(it, "x", where);
      t.position[f][s][1] = get_number(it, "y", where);
    }
  }
  return t;
}

namespace {

struct FrameBatch {
  torch::Tensor frames;  // uint8 [N, S, S, 3]
  ProbeTargets t;
};

// `per_video` frames from each of the given rendered videos (spread evenly).
FrameBatch render(const data::FashionMnist& items, const data::MovingFashionOptions& o,
                  const std::vector<int64_t>& indices, int per_video, bool stills, std::mt19937_64* rng,
                  const std::function<torch::Tensor(const torch::Tensor&)>& degrade) {
  std::vector<torch::Tensor> frames, bg, pres, pos;
  for (size_t k = 0; k < indices.size(); ++k) {
    const bool still = stills && k % 4 == 3;  // a quarter stills, as stage-1 data
    auto s = still ? data::make_image(items, o, indices[k]) : data::make_video(items, o, indices[k]);
    auto f = s.frames;
    if (degrade) f = degrade(f);
    const int64_t T = f.size(0);
    auto t = probe_targets(s.truth, T);
    std::vector<int64_t> pick;
    for (int i = 0; i < per_video && i < T; ++i)
      pick.push_back(rng ? static_cast<int64_t>((*rng)() % static_cast<uint64_t>(T)) : (T - 1) * i / std::max(1, per_video - 1));
    auto idx = torch::tensor(pick, torch::kLong);
    frames.push_back(f.index_select(0, idx));
    bg.push_back(t.background.index_select(0, idx));
    pres.push_back(t.presence.index_select(0, idx));
    pos.push_back(t.position.index_select(0, idx));
  }
  return {torch::cat(frames), {torch::cat(bg), torch::cat(pres), torch::cat(pos)}};
}

data::MovingFashionOptions world(int size, const std::string& split, uint64_t seed) {
  data::MovingFashionOptions o;
  o.size = size;
  o.seconds = 10;
  o.split = split;
  o.seed = seed;
  o.scene_changes = 0;
  return o;
}

}  // namespace

ProbeScores score_probe(ProbeNet& net, const std::string& split, int videos, uint64_t seed,
                        const std::function<torch::Tensor(const torch::Tensor&)>& degrade) {
  const auto o = world(net->config.image_size, split, seed);
  const auto items = data::load_fashion_mnist(split, o.mnist_dir);
  const auto device = net->parameters()[0].device();
  net->eval();
  torch::NoGradGuard ng;
  ProbeScores s;
  double bg_ok = 0, exact = 0, pos_err = 0, pos_n = 0;
  for (int v = 0; v < videos; v += 8) {
    std::vector<int64_t> idx;
    for (int k = v; k < std::min(videos, v + 8); ++k) idx.push_back(k);
    auto b = render(items, o, idx, 8, false, nullptr, degrade);
    auto out = net->forward(to_unit(b.frames).to(device));
    auto bg = out.background.argmax(-1).cpu();
    bg_ok += (bg == b.t.background).sum().item<double>();
    // The k most likely items, k = the number truly visible (the prompt says
    // how many items there are when generated videos are scored).
    auto logits = out.presence.cpu();
    for (int64_t f = 0; f < logits.size(0); ++f) {
      const auto truth = b.t.presence[f];
      const int64_t k = truth.sum().item<int64_t>();
      if (k == 0) {
        exact += (logits[f] <= 0).all().item<bool>() ? 1 : 0;
        continue;
      }
      auto top = std::get<1>(logits[f].topk(k));
      exact += truth.index_select(0, top).sum().item<int64_t>() == k ? 1 : 0;
    }
    auto mask = b.t.presence.unsqueeze(-1);
    pos_err += ((out.position.cpu() - b.t.position).abs() * mask).sum().item<double>();
    pos_n += 2 * mask.sum().item<double>();
    s.frames += b.frames.size(0);
  }
  s.background_accuracy = bg_ok / static_cast<double>(s.frames);
  s.items_exact = exact / static_cast<double>(s.frames);
  s.position_error = pos_n > 0 ? pos_err / pos_n : 0;
  return s;
}

ProbeScores train_probe(ProbeNet& net, const ProbeTrainOptions& o) {
  const auto w = world(net->config.image_size, "train", o.seed);
  const auto items = data::load_fashion_mnist("train", w.mnist_dir);
  const auto device = net->parameters()[0].device();
  torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(0));
  std::mt19937_64 rng(o.seed);
  const int per_video = 4, videos = std::max(1, o.batch / per_video);
  for (int step = 1; step <= o.steps; ++step) {
    net->train();
    std::vector<int64_t> idx;
    for (int k = 0; k < videos; ++k) idx.push_back(static_cast<int64_t>(rng() % 1000000));
    auto b = render(items, w, idx, per_video, true, &rng, o.degrade);
    auto out = net->forward(to_unit(b.frames).to(device));
    auto pres = b.t.presence.to(device);
    auto bg_loss = torch::nn::functional::cross_entropy(out.background, b.t.background.to(device));
    auto loss = bg_loss +
                torch::nn::functional::binary_cross_entropy_with_logits(out.presence, pres) * 2 +
                ((out.position - b.t.position.to(device)).abs() * pres.unsqueeze(-1)).sum() /
                    pres.sum().clamp_min(1) * 5;
    // Cosine decay to 10% of the rate.
    const double lr = o.lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * (step - 1) / std::max(1, o.steps))));
    train::set_lr(opt, lr);
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (o.on_step) o.on_step(step, loss.item<double>());
  }
  return score_probe(net, "t10k", o.heldout_videos, o.seed + 1, o.degrade);
}

VideoScore score_predictions(const torch::Tensor& background, const torch::Tensor& presence,
                             const torch::Tensor& position, double fps, const CaptionFacts& facts,
                             double segment_seconds) {
  if (facts.states.empty()) fail("probe score", "the prompt describes no scene");
  if (!(fps > 0) || !(segment_seconds > 0)) fail("probe score", "fps and segment length must be > 0");
  const int64_t T = background.size(0);
  const int64_t k = static_cast<int64_t>(facts.first().items.size());
  auto bg = background.argmax(-1).cpu();
  auto top = std::get<1>(presence.cpu().topk(k, -1));  // [T, k]
  auto pos = position.cpu().to(torch::kDouble);
  // Per frame: its predicted item set (sorted slots) and background.
  std::vector<std::vector<int>> sets(static_cast<size_t>(T));
  std::map<std::vector<int>, int64_t> counts;
  for (int64_t t = 0; t < T; ++t) {
    auto& set = sets[static_cast<size_t>(t)];
    for (int64_t j = 0; j < k; ++j) set.push_back(static_cast<int>(top[t][j].item<int64_t>()));
    std::sort(set.begin(), set.end());
    ++counts[set];
  }
  std::vector<int> mode;
  int64_t best = -1;
  for (const auto& [set, n] : counts)
    if (n > best) best = n, mode = set;

  auto score_range = [&](int64_t a, int64_t b) {
    SegmentScore s;
    s.start = a / fps;
    s.end = b / fps;
    s.frames = b - a;
    double match = 0, same = 0, speed = 0;
    int64_t moves = 0;
    for (int64_t t = a; t < b; ++t) {
      const auto& set = sets[static_cast<size_t>(t)];
      const int64_t frame_bg = bg[t].item<int64_t>();
      for (const auto& st : facts.states)
        if (st.items == set && (st.background < 0 || st.background == frame_bg)) {
          match += 1;
          break;
        }
      same += set == mode ? 1 : 0;
      if (t > a) {
        for (int slot : set)
          if (std::binary_search(sets[static_cast<size_t>(t - 1)].begin(), sets[static_cast<size_t>(t - 1)].end(), slot)) {
            speed += (pos[t][slot] - pos[t - 1][slot]).norm().item<double>() * fps;
            ++moves;
          }
      }
    }
    s.text_match = s.frames ? match / static_cast<double>(s.frames) : 0;
    s.identity = s.frames ? same / static_cast<double>(s.frames) : 0;
    s.motion = moves ? speed / static_cast<double>(moves) : 0;
    return s;
  };
  VideoScore v;
  const int64_t per = std::max<int64_t>(1, std::llround(segment_seconds * fps));
  for (int64_t a = 0; a < T; a += per) v.segments.push_back(score_range(a, std::min(T, a + per)));
  v.overall = score_range(0, T);
  return v;
}

VideoScore score_video(ProbeNet& net, const torch::Tensor& frames, double fps, const CaptionFacts& facts,
                       double segment_seconds, int batch) {
  const int64_t S = net->config.image_size;
  if (frames.dim() != 4 || frames.size(1) != S || frames.size(2) != S || frames.scalar_type() != torch::kUInt8)
    fail("probe score", "expected uint8 frames [T, " + std::to_string(S) + ", " + std::to_string(S) + ", 3], got " +
                            c10::str(frames.sizes()));
  const auto device = net->parameters()[0].device();
  net->eval();
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> bg, pres, pos;
  for (int64_t i = 0; i < frames.size(0); i += batch) {
    auto out = net->forward(to_unit(frames.narrow(0, i, std::min<int64_t>(batch, frames.size(0) - i))).to(device));
    bg.push_back(out.background.cpu());
    pres.push_back(out.presence.cpu());
    pos.push_back(out.position.cpu());
  }
  return score_predictions(torch::cat(bg), torch::cat(pres), torch::cat(pos), fps, facts, segment_seconds);
}

void save_probe(const std::string& dir, const ProbeNet& net, const nlohmann::json& provenance) {
  std::map<std::string, std::string> meta;
  if (!provenance.is_null()) meta["made_by"] = provenance.dump();
  train::save_model_folder(dir, *net, kFormat, net->config.to_json(), meta);
}

ProbeNet load_probe(const std::string& dir_in, c10::Device device) {
  const std::string dir = train::model_folder(dir_in);
  const std::string cfg = (fs::path(dir) / "config.json").string();
  ProbeNet net(ProbeConfig::from_json(read_json_file(cfg), cfg));
  train::load_model_folder(dir, *net, kFormat, "a moving-fashion probe", device);
  return net;
}

}  // namespace loong::eval
