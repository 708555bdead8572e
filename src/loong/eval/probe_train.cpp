#include "loong/eval/probe_train.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>

#include <torch/torch.h>

#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/data/fashion_mnist.h"
#include "loong/data/moving_fashion.h"
#include "loong/tokenizer/tokens.h"
#include "loong/store/checkpoints.h"

namespace loong::eval {

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

data::MovingFashionOptions world(const ProbeConfig& config, const std::string& split, uint64_t seed) {
  data::MovingFashionOptions o;
  data::set_world(o, config.world, "probe config: world");
  o.size = config.image_size;
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
  const auto o = world(net->config, split, seed);
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
    const auto x = probe_input(b.frames).to(device);
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
  const auto w = world(net->config, "train", o.seed);
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
    auto x = probe_input(b.frames).to(device);
    auto out = net->maps(x);  // the crop classifier trains on true centres (crop_loss), not on peaks
    auto loss = torch::nn::functional::cross_entropy(out.background, b.t.background.to(device)) +
                cell_loss(out, cell_targets(b.t, net->grid()).to(device)) + crop_loss(net, x, b.t, 2);
    store::set_lr(opt, cosine(o.lr, step, o.steps));
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
    auto loss = crop_loss(net, probe_input(b.frames).to(device), b.t, 2);
    store::set_lr(crop_opt, cosine(o.crop_lr, step, o.crop_steps));
    crop_opt.zero_grad();
    loss.backward();
    crop_opt.step();
    if (o.on_step) o.on_step(o.steps + step, loss.item<double>());
  }
  return score_probe(net, "t10k", o.heldout_videos, o.seed + 1, o.degrade);
}

json to_json(const ProbeScores& s) {
  json by_class = json::object();  // recall and items of each class: which classes are missed
  for (size_t c = 0; c < s.class_recall.size(); ++c)
    by_class[data::kFashionClassNames[c]] = {
        {"recall", std::isnan(s.class_recall[c]) ? json(nullptr) : json(s.class_recall[c])},
        {"items", s.class_items[c]}};
  return json{{"frames", s.frames},
              {"background_accuracy", s.background_accuracy},
              {"items_exact", s.items_exact},
              {"class_accuracy", s.class_accuracy},
              {"colour_accuracy", s.colour_accuracy},
              {"cell_class_accuracy", s.cell_class_accuracy},
              {"class_accuracy_by_class", by_class},
              {"position_error", s.position_error}};
}

void degrade_through(ProbeTrainOptions& o, const tokenizer::VideoTokenizer& tokenizer, int probe_size,
                     const std::string& size_source) {
  if (tokenizer->config.image_size != probe_size)
    fail("--tokenizer", "works on " + std::to_string(tokenizer->config.image_size) +
                            "-pixel frames but the probe reads " + std::to_string(probe_size) + size_source);
  auto tok = std::make_shared<tokenizer::VideoTokenizer>(tokenizer);
  o.degrade = [tok](const torch::Tensor& frames) {
    return tokenizer::decode_video(*tok, tokenizer::encode_video(*tok, frames));
  };
  o.degrade_each = [tok](const torch::Tensor& frames) { return tokenizer::round_trip_frames(*tok, frames); };
}

}  // namespace loong::eval
