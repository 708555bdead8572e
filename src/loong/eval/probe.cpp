#include "loong/eval/probe.h"

#include <algorithm>
#include <cmath>
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
constexpr const char* kFormat = "loong-probe-crops";  // was "loong-probe-cells" (no crop classifier), "loong-probe" before

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
  return {{"image_size", image_size},
          {"channels", channels},
          {"features", features},
          {"crop_fraction", crop_fraction},
          {"crop_pixels", crop_pixels},
          {"crop_channels", crop_width()}};
}

ProbeConfig ProbeConfig::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "expected a JSON object");
  ProbeConfig c;
  ObjectReader r(j, where);
  r.integer("image_size", c.image_size, 16, 1024);
  r.integer("channels", c.channels, 4, 512);
  r.integer("features", c.features, 8, 4096);
  r.number("crop_fraction", c.crop_fraction, 0.05, 1.0);
  r.integer("crop_pixels", c.crop_pixels, 8, 256);
  if (j.contains("crop_channels")) r.integer("crop_channels", c.crop_channels, 4, 512);
  r.finish();
  c.validate(where);
  return c;
}

void ProbeConfig::validate(const std::string& where) const {
  if (image_size % 8 != 0) fail(where + ": image_size", "expected a multiple of 8, got " + std::to_string(image_size));
  if (crop_pixels % 4 != 0) fail(where + ": crop_pixels", "expected a multiple of 4, got " + std::to_string(crop_pixels));
  if (crop_channels < 0) fail(where + ": crop_channels", "expected 0 (as channels) or a width, got " + std::to_string(crop_channels));
}

ProbeNetImpl::ProbeNetImpl(ProbeConfig c) : config(c) {
  config.validate("probe config");
  const int w = config.channels;
  // Cells of 8x8 pixels; each sees 41 pixels around it (an item is about 20 at 64).
  trunk = register_module(
      "trunk", torch::nn::Sequential(conv(3, w, 1), torch::nn::ReLU(), conv(w, 2 * w, 2), torch::nn::ReLU(),
                                     conv(2 * w, 4 * w, 2), torch::nn::ReLU(), conv(4 * w, 4 * w, 1), torch::nn::ReLU(),
                                     conv(4 * w, 4 * w, 2), torch::nn::ReLU(), conv(4 * w, 4 * w, 1), torch::nn::ReLU()));
  cells = register_module("cells", torch::nn::Conv2d(torch::nn::Conv2dOptions(4 * w, 1 + kProbeClasses + kProbeColours + 2, 1)));
  embed = register_module("embed", torch::nn::Linear(4 * w, config.features));
  // The background also sees the frame's mean colour: flat colours are then
  // told apart from the first steps, whatever the trunk is busy learning.
  background = register_module("background", torch::nn::Linear(config.features + 3, kProbeBackgrounds));
  // The crop classifier: a window around one centre, down to a quarter of its
  // size; the flattened map keeps where in the window each feature is (an
  // item's shape is what tells its class).
  const int cw = config.crop_width();
  crop_trunk = register_module(
      "crop_trunk", torch::nn::Sequential(conv(3, cw, 1), torch::nn::ReLU(), conv(cw, 2 * cw, 2), torch::nn::ReLU(),
                                          conv(2 * cw, 2 * cw, 1), torch::nn::ReLU(), conv(2 * cw, 4 * cw, 2),
                                          torch::nn::ReLU(), conv(4 * cw, 4 * cw, 1), torch::nn::ReLU()));
  const int q = config.crop_pixels / 4;
  crop_head = register_module("crop_head", torch::nn::Linear(4 * cw * q * q, kProbeClasses + kProbeColours));
}

ProbeNet reshaped_probe(const ProbeNet& from, const ProbeConfig& config) {
  ProbeNet net(config);
  const auto device = from->parameters()[0].device();
  net->to(device);
  const auto old = from->named_parameters();
  torch::NoGradGuard ng;
  for (auto& p : net->named_parameters()) {
    const auto* q = old.find(p.key());
    if (q != nullptr && q->sizes() == p.value().sizes()) p.value().copy_(*q);
  }
  return net;
}

torch::Tensor crop_windows(const torch::Tensor& x, const torch::Tensor& centres, double fraction, int64_t pixels) {
  namespace F = torch::nn::functional;
  const int64_t N = x.size(0), M = centres.size(1);
  // An affine grid per window: grid_sample's coordinates run from -1 to 1
  // across the frame, so a window of `fraction` of the frame has half-width
  // `fraction` and its centre at 2c - 1. Border padding repeats the edge (the
  // background) where a window reaches past the frame.
  auto theta = torch::zeros({N * M, 2, 3}, x.options());
  theta.select(1, 0).select(1, 0).fill_(fraction);
  theta.select(1, 1).select(1, 1).fill_(fraction);
  theta.select(2, 2).copy_(centres.reshape({N * M, 2}).to(x.scalar_type()) * 2 - 1);
  auto grid = F::affine_grid(theta, {N * M, x.size(1), pixels, pixels}, false);
  return F::grid_sample(x.repeat_interleave(M, 0), grid,
                        F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kBorder).align_corners(false));
}

std::pair<torch::Tensor, torch::Tensor> ProbeNetImpl::classify_crops(const torch::Tensor& x, const torch::Tensor& centres) {
  const int64_t N = x.size(0), M = centres.size(1);
  auto crops = crop_windows(x, centres, config.crop_fraction, config.crop_pixels);
  auto logits = crop_head(crop_trunk->forward(crops).flatten(1)).view({N, M, kProbeClasses + kProbeColours});
  return {logits.narrow(2, 0, kProbeClasses), logits.narrow(2, kProbeClasses, kProbeColours)};
}

ProbeOutput ProbeNetImpl::forward(const torch::Tensor& x) {
  auto o = maps(x);
  find_peaks(o);
  // The second stage names the item at each peak from a window around it.
  auto named = classify_crops(x, o.peak_position.detach());
  o.peak_class = named.first.softmax(-1);
  o.peak_colour = named.second.softmax(-1);
  read_slots(o);
  return o;
}

ProbeOutput ProbeNetImpl::maps(const torch::Tensor& x) {
  ProbeOutput o;
  auto map = trunk->forward(x);  // [N, 4w, G, G]
  o.features = torch::gelu(embed(map.mean({2, 3})));  // GELU: a ReLU here died under the losses
  o.background = background(torch::cat({o.features, x.mean({2, 3})}, 1));
  auto c = cells(map);
  o.centre = c.select(1, 0);
  o.item_class = c.narrow(1, 1, kProbeClasses);
  o.colour = c.narrow(1, 1 + kProbeClasses, kProbeColours);
  o.offset = torch::tanh(c.narrow(1, 1 + kProbeClasses + kProbeColours, 2)) * 1.5;
  return o;
}

void find_peaks(ProbeOutput& o) {
  namespace F = torch::nn::functional;
  const int64_t N = o.centre.size(0), G = o.centre.size(1);
  auto p = torch::sigmoid(o.centre).unsqueeze(1);
  auto maxima = p * (p == F::max_pool2d(p, F::MaxPool2dFuncOptions(3).stride(1).padding(1))).to(p.scalar_type());
  auto top = maxima.reshape({N, G * G}).topk(std::min<int64_t>(kProbePeaks, G * G), 1);
  o.peak_score = std::get<0>(top);  // [N, M]
  const auto cell = std::get<1>(top);
  const int64_t M = cell.size(1);
  auto off = o.offset.reshape({N, 2, G * G}).gather(2, cell.unsqueeze(1).expand({N, 2, M}));  // [N, 2, M]
  auto cx = cell.remainder(G).to(off.scalar_type()), cy = cell.div(G, "floor").to(off.scalar_type());
  o.peak_position = torch::stack({(cx + 0.5 + off.select(1, 0)) / G, (cy + 0.5 + off.select(1, 1)) / G}, -1);
  auto at = [&](const torch::Tensor& map) {  // [N, C, G, G] logits -> [N, M, C] probabilities
    return map.softmax(1).reshape({N, map.size(1), G * G}).gather(2, cell.unsqueeze(1).expand({N, map.size(1), M}))
        .transpose(1, 2);
  };
  o.peak_class = at(o.item_class);
  o.peak_colour = at(o.colour);
}

void read_slots(ProbeOutput& o) {
  // The best P(centre) * P(class) * P(colour) over the peaks, each peak naming
  // one item (its most likely slot): otherwise a strong peak's second guess
  // could outrank a second, weaker item, and one item be counted twice.
  const int64_t N = o.peak_score.size(0), M = o.peak_score.size(1);
  auto joint = (o.peak_score.view({N, M, 1, 1}) * o.peak_class.unsqueeze(3) * o.peak_colour.unsqueeze(2))
                   .reshape({N, M, kProbeItems});  // slot = class * 8 + colour
  joint = joint * torch::zeros_like(joint).scatter_(2, joint.argmax(2, true), 1.0);
  auto best = joint.max(1);
  auto score = std::get<0>(best).clamp(1e-6, 1 - 1e-6);
  auto peak = std::get<1>(best);  // [N, 80]
  o.presence = torch::log(score) - torch::log1p(-score);
  o.position = o.peak_position.gather(1, peak.unsqueeze(2).expand({N, kProbeItems, 2}));
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

CellTargets cell_targets(const ProbeTargets& t, int64_t G) {
  const int64_t N = t.presence.size(0);
  CellTargets c;
  c.centre = torch::zeros({N, G, G});
  c.weight = torch::zeros({N, G, G});
  c.item_class = torch::zeros({N, G, G}, torch::kLong);
  c.colour = torch::zeros({N, G, G}, torch::kLong);
  c.offset = torch::zeros({N, 2, G, G});
  auto pres = t.presence.accessor<float, 2>();
  auto pos = t.position.accessor<float, 3>();
  auto ce = c.centre.accessor<float, 3>(), w = c.weight.accessor<float, 3>();
  auto off = c.offset.accessor<float, 4>();
  auto cls = c.item_class.accessor<int64_t, 3>(), col = c.colour.accessor<int64_t, 3>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t slot = 0; slot < kProbeItems; ++slot) {
      if (pres[n][slot] <= 0) continue;
      const double fx = pos[n][slot][0] * G, fy = pos[n][slot][1] * G;
      const int64_t gx = std::clamp<int64_t>(static_cast<int64_t>(fx), 0, G - 1);
      const int64_t gy = std::clamp<int64_t>(static_cast<int64_t>(fy), 0, G - 1);
      for (int64_t y = std::max<int64_t>(0, gy - 1); y <= std::min(G - 1, gy + 1); ++y)
        for (int64_t x = std::max<int64_t>(0, gx - 1); x <= std::min(G - 1, gx + 1); ++x) {
          const double dx = fx - (x + 0.5), dy = fy - (y + 0.5);
          const float h = (x == gx && y == gy) ? 1.f : static_cast<float>(std::exp(-(dx * dx + dy * dy) / (2 * 0.36)));
          ce[n][y][x] = std::max(ce[n][y][x], h);
          if (h <= w[n][y][x]) continue;
          w[n][y][x] = h;
          cls[n][y][x] = slot / kProbeColours;
          col[n][y][x] = slot % kProbeColours;
          off[n][0][y][x] = static_cast<float>(dx);
          off[n][1][y][x] = static_cast<float>(dy);
        }
    }
  return c;
}

CellTargets CellTargets::to(c10::Device device) const {
  return {centre.to(device), weight.to(device), item_class.to(device), colour.to(device), offset.to(device)};
}

namespace {

struct FrameBatch {
  torch::Tensor frames;  // uint8 [N, S, S, 3]
  ProbeTargets t;
};

using Degrade = std::function<torch::Tensor(const torch::Tensor&)>;

// `per_video` frames from each of the given rendered videos (spread evenly,
// or at random with `rng`), with `still_every` = n a still in place of every
// n-th video. Scoring (no `rng`) passes whole videos through `whole`, as a
// generated one is decoded; training passes half the frames through `each`.
FrameBatch render(const data::FashionMnist& items, const data::MovingFashionOptions& o,
                  const std::vector<int64_t>& indices, int per_video, int still_every, std::mt19937_64* rng,
                  const Degrade& whole, const Degrade& each) {
  std::vector<torch::Tensor> frames, bg, pres, pos;
  for (size_t k = 0; k < indices.size(); ++k) {
    const bool still = still_every > 0 && static_cast<int>(k % static_cast<size_t>(still_every)) == still_every - 1;
    auto s = still ? data::make_image(items, o, indices[k]) : data::make_video(items, o, indices[k]);
    const auto& f = s.frames;
    const int64_t T = f.size(0);
    auto t = probe_targets(s.truth, T);
    std::vector<int64_t> pick;
    for (int i = 0; i < per_video && i < T; ++i)
      pick.push_back(rng ? static_cast<int64_t>((*rng)() % static_cast<uint64_t>(T)) : (T - 1) * i / std::max(1, per_video - 1));
    auto idx = torch::tensor(pick, torch::kLong);
    frames.push_back(whole && !rng ? whole(f).index_select(0, idx) : f.index_select(0, idx));
    bg.push_back(t.background.index_select(0, idx));
    pres.push_back(t.presence.index_select(0, idx));
    pos.push_back(t.position.index_select(0, idx));
  }
  FrameBatch b{torch::cat(frames), {torch::cat(bg), torch::cat(pres), torch::cat(pos)}};
  if (rng && each) {
    // Each as a one-frame clip (8x cheaper than whole videos), all in one
    // call, so the probe reads both real and decoded frames.
    std::vector<int64_t> half;
    for (int64_t j = 0; j < b.frames.size(0); ++j)
      if ((*rng)() % 2) half.push_back(j);
    if (!half.empty()) {
      auto idx = torch::tensor(half, torch::kLong);
      b.frames.index_copy_(0, idx, each(b.frames.index_select(0, idx)));
    }
  }
  return b;
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

// CenterNet's penalty-reduced focal loss on the centre map, the weighted
// cross-entropy of class and colour, and the weighted L1 of the offset, each
// per item.
torch::Tensor cell_loss(const ProbeOutput& out, const CellTargets& c) {
  namespace F = torch::nn::functional;
  const auto items = (c.centre == 1).sum().clamp_min(1).to(torch::kFloat);
  auto p = torch::sigmoid(out.centre).clamp(1e-4, 1 - 1e-4);
  auto pos = (c.centre == 1).to(p.scalar_type());
  auto focal = -(pos * (1 - p).pow(2) * p.log() + (1 - pos) * (1 - c.centre).pow(4) * p.pow(2) * (1 - p).log());
  auto w = c.weight;
  const auto wsum = w.sum().clamp_min(1e-6);
  auto ce = [&](const torch::Tensor& logits, const torch::Tensor& target) {
    return (F::cross_entropy(logits, target, F::CrossEntropyFuncOptions().reduction(torch::kNone)) * w).sum() / wsum;
  };
  auto l1 = ((out.offset - c.offset).abs().sum(1) * w).sum() / wsum;
  return focal.sum() / items + ce(out.item_class, c.item_class) + ce(out.colour, c.colour) + l1;
}

// Every visible item of a batch of frames: its frame, centre, class and colour.
struct VisibleItems {
  torch::Tensor frame;          // [K] int64
  torch::Tensor centre;         // [K, 2]
  torch::Tensor item_class, colour;  // [K] int64
};

VisibleItems visible_items(const ProbeTargets& t) {
  auto nz = torch::nonzero(t.presence > 0);  // [K, 2]: frame, slot
  VisibleItems v;
  v.frame = nz.select(1, 0).contiguous();
  auto slot = nz.select(1, 1);
  v.centre = t.position.index({v.frame, slot});
  v.item_class = slot.div(kProbeColours, "floor");
  v.colour = slot.remainder(kProbeColours);
  return v;
}

// The crop classifier's loss: cross-entropy of class and colour on windows
// around each visible item's centre, moved by a random offset of about the
// detector's position error (σ 0.03 of the frame, at most 0.06), `copies`
// windows an item.
torch::Tensor crop_loss(ProbeNet& net, const torch::Tensor& x, const ProbeTargets& t, int copies) {
  namespace F = torch::nn::functional;
  const auto v = visible_items(t);
  const int64_t K = v.frame.size(0);
  if (K == 0) return torch::zeros({}, x.options());
  const auto device = x.device();
  auto centres = v.centre.unsqueeze(1).expand({K, copies, 2}) + (torch::randn({K, copies, 2}) * 0.03).clamp(-0.06, 0.06);
  auto named = net->classify_crops(x.index_select(0, v.frame.to(device)), centres.to(device));
  auto target = [&](const torch::Tensor& y) { return y.to(device).unsqueeze(1).expand({K, copies}).reshape({-1}); };
  return F::cross_entropy(named.first.reshape({K * copies, kProbeClasses}), target(v.item_class)) +
         F::cross_entropy(named.second.reshape({K * copies, kProbeColours}), target(v.colour));
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
  double bg_ok = 0, exact = 0, pos_err = 0, pos_n = 0, col_ok = 0, items_n = 0, cell_cls_ok = 0, cell_n = 0;
  auto per_class_ok = torch::zeros({kProbeClasses}, torch::kDouble), per_class_n = per_class_ok.clone();
  for (int v = 0; v < videos; v += 8) {
    std::vector<int64_t> idx;
    for (int k = v; k < std::min(videos, v + 8); ++k) idx.push_back(k);
    auto b = render(items, o, idx, 8, 0, nullptr, degrade, {});
    const auto x = to_unit(b.frames).to(device);
    auto out = net->forward(x);
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
    // Class and colour at the true centres: by the crop classifier, and from the cell maps.
    auto cells = cell_targets(b.t, net->grid());
    auto at_centre = cells.centre == 1;
    cell_cls_ok += ((out.item_class.argmax(1).cpu() == cells.item_class) & at_centre).sum().item<double>();
    cell_n += at_centre.sum().item<double>();
    const auto seen = visible_items(b.t);
    if (seen.frame.size(0) > 0) {
      auto named = net->classify_crops(x.index_select(0, seen.frame.to(device)), seen.centre.unsqueeze(1).to(device));
      const auto right = (named.first.squeeze(1).argmax(-1).cpu() == seen.item_class).to(torch::kDouble);
      per_class_ok.index_add_(0, seen.item_class, right);
      per_class_n.index_add_(0, seen.item_class, torch::ones_like(right));
      col_ok += (named.second.squeeze(1).argmax(-1).cpu() == seen.colour).sum().item<double>();
      items_n += static_cast<double>(seen.frame.size(0));
    }
    auto mask = b.t.presence.unsqueeze(-1);
    pos_err += ((out.position.cpu() - b.t.position).abs() * mask).sum().item<double>();
    pos_n += 2 * mask.sum().item<double>();
    s.frames += b.frames.size(0);
  }
  s.background_accuracy = bg_ok / static_cast<double>(s.frames);
  s.items_exact = exact / static_cast<double>(s.frames);
  s.position_error = pos_n > 0 ? pos_err / pos_n : 0;
  s.class_accuracy = items_n > 0 ? per_class_ok.sum().item<double>() / items_n : 0;
  s.colour_accuracy = items_n > 0 ? col_ok / items_n : 0;
  for (int64_t c = 0; c < kProbeClasses; ++c) {
    const double n = per_class_n[c].item<double>();
    s.class_items.push_back(static_cast<int64_t>(n));
    s.class_recall.push_back(n > 0 ? per_class_ok[c].item<double>() / n : std::nan(""));
  }
  s.cell_class_accuracy = cell_n > 0 ? cell_cls_ok / cell_n : 0;
  return s;
}

ProbeScores train_probe(ProbeNet& net, const ProbeTrainOptions& o) {
  const auto w = world(net->config.image_size, "train", o.seed);
  const auto items = data::load_fashion_mnist("train", w.mnist_dir);
  const auto device = net->parameters()[0].device();
  std::mt19937_64 rng(o.seed);
  // Cosine decay to 10% of the rate.
  auto cosine = [](double lr, int step, int steps) {
    return lr * (0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * (step - 1) / std::max(1, steps))));
  };
  torch::optim::AdamW opt(net->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(0));
  const int per_video = 4, videos = std::max(1, o.batch / per_video);
  for (int step = 1; step <= o.steps; ++step) {
    net->train();
    std::vector<int64_t> idx;
    for (int k = 0; k < videos; ++k) idx.push_back(static_cast<int64_t>(rng() % 1000000));
    auto b = render(items, w, idx, per_video, 4, &rng, {}, o.degrade_each);  // a quarter stills, as stage-1 data
    auto x = to_unit(b.frames).to(device);
    auto out = net->maps(x);  // the crop classifier trains on true centres (crop_loss), not on peaks
    auto loss = torch::nn::functional::cross_entropy(out.background, b.t.background.to(device)) +
                cell_loss(out, cell_targets(b.t, net->grid()).to(device)) + crop_loss(net, x, b.t, 2);
    train::set_lr(opt, cosine(o.lr, step, o.steps));
    opt.zero_grad();
    loss.backward();
    opt.step();
    if (o.on_step) o.on_step(step, loss.item<double>());
  }
  // The crop classifier alone, on the items of many fresh stills a step.
  std::vector<torch::Tensor> crop_params = net->crop_trunk->parameters();
  for (const auto& p : net->crop_head->parameters()) crop_params.push_back(p);
  torch::optim::AdamW crop_opt(crop_params, torch::optim::AdamWOptions(o.crop_lr).weight_decay(0));
  for (int step = 1; step <= o.crop_steps; ++step) {
    net->train();
    std::vector<int64_t> idx;
    for (int k = 0; k < o.crop_batch; ++k) idx.push_back(static_cast<int64_t>(rng() % 1000000));
    auto b = render(items, w, idx, 1, 1, &rng, {}, o.degrade_each);
    auto loss = crop_loss(net, to_unit(b.frames).to(device), b.t, 2);
    train::set_lr(crop_opt, cosine(o.crop_lr, step, o.crop_steps));
    crop_opt.zero_grad();
    loss.backward();
    crop_opt.step();
    if (o.on_step) o.on_step(o.steps + step, loss.item<double>());
  }
  return score_probe(net, "t10k", o.heldout_videos, o.seed + 1, o.degrade);
}

VideoScore score_predictions(const torch::Tensor& background, const torch::Tensor& presence,
                             const torch::Tensor& position, double fps, const CaptionFacts& facts,
                             double segment_seconds, const torch::Tensor& peak_score) {
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
  // Per frame: whether the probe finds k items (peaks at or above kItemSeen).
  std::vector<char> seen;
  if (peak_score.defined()) {
    if (peak_score.dim() != 2 || peak_score.size(0) != T)
      fail("probe score", "expected peak scores [" + std::to_string(T) + ", M], got " + c10::str(peak_score.sizes()));
    auto found = peak_score.cpu().ge(kItemSeen).sum(1);
    for (int64_t t = 0; t < T; ++t) seen.push_back(found[t].item<int64_t>() >= k ? 1 : 0);
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
    double match = 0, same = 0, speed = 0, found = 0;
    int64_t moves = 0;
    for (int64_t t = a; t < b; ++t) {
      const auto& set = sets[static_cast<size_t>(t)];
      if (!seen.empty()) found += seen[static_cast<size_t>(t)];
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
    s.items_seen = seen.empty() ? std::nan("") : s.frames ? found / static_cast<double>(s.frames) : 0;
    return s;
  };
  VideoScore v;
  const int64_t per = std::max<int64_t>(1, std::llround(segment_seconds * fps));
  for (int64_t a = 0; a < T; a += per) v.segments.push_back(score_range(a, std::min(T, a + per)));
  v.overall = score_range(0, T);
  return v;
}

VideoScore score_video(ProbeNet& net, const torch::Tensor& frames, double fps, const CaptionFacts& facts,
                       double segment_seconds, int batch, torch::Tensor* features) {
  const int64_t S = net->config.image_size;
  if (frames.dim() != 4 || frames.size(1) != S || frames.size(2) != S || frames.scalar_type() != torch::kUInt8)
    fail("probe score", "expected uint8 frames [T, " + std::to_string(S) + ", " + std::to_string(S) + ", 3], got " +
                            c10::str(frames.sizes()));
  const auto device = net->parameters()[0].device();
  net->eval();
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> bg, pres, pos, peaks, feat;
  for (int64_t i = 0; i < frames.size(0); i += batch) {
    auto out = net->forward(to_unit(frames.narrow(0, i, std::min<int64_t>(batch, frames.size(0) - i))).to(device));
    bg.push_back(out.background.cpu());
    pres.push_back(out.presence.cpu());
    pos.push_back(out.position.cpu());
    peaks.push_back(out.peak_score.cpu());
    if (features) feat.push_back(out.features.cpu());
  }
  if (features) *features = torch::cat(feat);
  return score_predictions(torch::cat(bg), torch::cat(pres), torch::cat(pos), fps, facts, segment_seconds,
                           torch::cat(peaks));
}

void SegmentFeatures::add(const torch::Tensor& features, double fps) {
  const int64_t T = features.size(0);
  const int64_t per = std::max<int64_t>(1, std::llround(segment_ * fps));  // as score_predictions cuts segments
  for (int64_t a = 0, k = 0; a < T; a += per, ++k) {
    if (per_segment_.size() <= static_cast<size_t>(k)) per_segment_.emplace_back();
    per_segment_[static_cast<size_t>(k)].add(features.narrow(0, a, std::min(per, T - a)));
  }
  overall_.add(features);
}

SegmentDistances segment_frechet(const SegmentFeatures& a, const SegmentFeatures& b) {
  auto fd = [](const FeatureStats& x, const FeatureStats& y) {
    if (x.count() < 2 || y.count() < 2) return std::nan("");
    return frechet_distance(x.mean(), x.covariance(), y.mean(), y.covariance());
  };
  SegmentDistances d;
  for (size_t k = 0; k < std::min(a.segments(), b.segments()); ++k) d.segments.push_back(fd(a.segment(k), b.segment(k)));
  d.overall = fd(a.overall(), b.overall());
  return d;
}

void save_probe(const std::string& dir, const ProbeNet& net, const nlohmann::json& provenance) {
  std::map<std::string, std::string> meta;
  if (!provenance.is_null()) meta["made_by"] = provenance.dump();
  train::save_model_folder(dir, *net, kFormat, net->config.to_json(), meta);
}

ProbeNet load_probe(const std::string& dir_in, c10::Device device) {
  const std::string dir = train::model_folder(dir_in, kFormat, "a moving-fashion probe");
  const std::string cfg = (fs::path(dir) / "config.json").string();
  ProbeNet net(ProbeConfig::from_json(read_json_file(cfg), cfg));
  train::load_model_folder(dir, *net, device);
  return net;
}

}  // namespace loong::eval
