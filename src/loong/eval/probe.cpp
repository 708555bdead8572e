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
#include "loong/store/checkpoints.h"

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

}  // namespace

torch::Tensor probe_input(const torch::Tensor& frames) {
  return frames.permute({0, 3, 1, 2}).to(torch::kFloat).div(255.0);
}

nlohmann::json ProbeConfig::to_json() const {
  nlohmann::json j = {{"image_size", image_size},
          {"channels", channels},
          {"features", features},
          {"crop_fraction", crop_fraction},
          {"crop_pixels", crop_pixels},
          {"crop_channels", crop_width()}};
  if (!world.empty()) j["world"] = world;
  return j;
}

ProbeConfig ProbeConfig::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail(where, "expected a JSON object");
  ProbeConfig c;
  ObjectReader r(j, where);
  if (r.take("world")) {
    data::MovingFashionOptions check;
    data::set_world(check, j["world"], where + ": world");  // validated here, applied where frames are rendered
    c.world = j["world"];
  }
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

void save_probe(const std::string& dir, const ProbeNet& net, const nlohmann::json& provenance) {
  std::map<std::string, std::string> meta;
  if (!provenance.is_null()) meta["made_by"] = provenance.dump();
  store::save_model_folder(dir, *net, kFormat, net->config.to_json(), meta);
}

ProbeNet load_probe(const std::string& dir_in, c10::Device device) {
  const std::string dir = store::model_folder(dir_in, kFormat, "a moving-fashion probe");
  const std::string cfg = (fs::path(dir) / "config.json").string();
  ProbeNet net(ProbeConfig::from_json(read_json_file(cfg), cfg));
  store::load_model_folder(dir, *net, device);
  return net;
}

}  // namespace loong::eval
