#include "loong/data/moving_fashion.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <vector>

#include <torch/torch.h>

#include "loong/core/error.h"

namespace loong::data {

const std::array<NamedColour, 8> kItemColours = {{
    {"red", 220, 40, 40},   {"orange", 245, 140, 20}, {"yellow", 240, 220, 40},
    {"green", 40, 180, 60}, {"cyan", 40, 200, 220},   {"blue", 50, 90, 230},
    {"purple", 150, 60, 200}, {"pink", 245, 120, 180},
}};

const std::array<NamedColour, 6> kBackgrounds = {{
    {"black", 0, 0, 0},     {"white", 245, 245, 245}, {"gray", 128, 128, 128},
    {"navy", 20, 30, 90},   {"brown", 110, 70, 40},   {"dark green", 20, 70, 35},
}};

const std::array<const char*, 8> kDirections = {
    "to the right", "to the left", "up", "down",
    "up and to the right", "up and to the left", "down and to the right", "down and to the left"};

namespace {

constexpr int kDirDx[8] = {1, -1, 0, 0, 1, -1, 1, -1};
constexpr int kDirDy[8] = {0, 0, -1, 1, -1, -1, 1, 1};
constexpr const char* kSpeedNames[2] = {"slow", "fast"};
constexpr const char* kSpeedAdverbs[2] = {"slowly", "quickly"};
constexpr double kSpeedFraction[2] = {0.15, 0.35};  // of the frame width per second

// SplitMix64: a tiny, portable generator, so datasets are identical on every
// platform (std:: distributions are implementation-defined).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  int below(int n) { return static_cast<int>(next() % static_cast<uint64_t>(n)); }
  bool chance(double p) { return uniform() < p; }
};

uint64_t stream_seed(uint64_t seed, uint64_t stream, int64_t index) {
  Rng r(seed ^ (stream * 0xd1b54a32d192ed03ull));
  r.s ^= static_cast<uint64_t>(index) * 0x8cb92ba72f3d8dd7ull;
  r.next();
  return r.next();
}

double colour_distance(const NamedColour& a, const NamedColour& b) {
  const double dr = a.r - b.r, dg = a.g - b.g, db = a.b - b.b;
  return std::sqrt(dr * dr + dg * dg + db * db);
}

bool contrasts(int colour, int background) {
  return colour_distance(kItemColours[colour], kBackgrounds[background]) > 130;
}

struct Item {
  int id = 0;
  int label = 0;
  int64_t source = 0;  // index into the Fashion-MNIST split
  int colour = 0;
  int dir = 0, speed = 0;
  double x = 0, y = 0, vx = 0, vy = 0;  // centre and velocity in pixels (per frame)
  int enters = 0, leaves = -1;          // frames
  at::Tensor sprite;                    // float [s, s] in [0, 1]
};

class World {
 public:
  World(const FashionMnist& fm, const MovingFashionOptions& o, Rng& rng)
      : fm_(fm), o_(o), rng_(rng) {
    item_px_ = std::max(8, static_cast<int>(std::lround(o.size * o.item_size)));
  }

  int item_px() const { return item_px_; }

  Item new_item(int id, int background, const std::vector<int>& taken_colours, bool moving) {
    Item it;
    it.id = id;
    // A restricted world draws until an allowed class comes up (the stream of
    // draws is that of the full world when every class is allowed).
    do {
      it.source = rng_.below(static_cast<int>(fm_.images.size(0)));
      it.label = static_cast<int>(fm_.labels[it.source].item<int64_t>());
    } while (!o_.classes.empty() && std::find(o_.classes.begin(), o_.classes.end(), it.label) == o_.classes.end());
    do {
      it.colour = rng_.below(static_cast<int>(kItemColours.size()));
    } while (!contrasts(it.colour, background) ||
             std::find(taken_colours.begin(), taken_colours.end(), it.colour) != taken_colours.end());
    const double half = item_px_ / 2.0;
    it.x = half + rng_.uniform() * (o_.size - item_px_);
    it.y = half + rng_.uniform() * (o_.size - item_px_);
    if (moving) {
      it.dir = rng_.below(8);
      it.speed = rng_.below(2);
      double v = kSpeedFraction[it.speed] * o_.size / o_.fps;
      double norm = std::sqrt(double(kDirDx[it.dir] * kDirDx[it.dir] + kDirDy[it.dir] * kDirDy[it.dir]));
      it.vx = v * kDirDx[it.dir] / norm;
      it.vy = v * kDirDy[it.dir] / norm;
    }
    at::Tensor src = fm_.images[it.source].to(torch::kFloat).div(255.0).view({1, 1, 28, 28});
    it.sprite = torch::nn::functional::interpolate(
                    src, torch::nn::functional::InterpolateFuncOptions()
                             .size(std::vector<int64_t>{item_px_, item_px_})
                             .mode(torch::kBilinear)
                             .align_corners(false))
                    .view({item_px_, item_px_})
                    .clamp(0, 1);
    // Many items (sneakers, sandals) are dark: normalise each to its own peak
    // so its colour reads clearly on any background.
    it.sprite = it.sprite / it.sprite.max().clamp_min(1e-3);
    return it;
  }

  bool overlap(const Item& a, const Item& b) const {
    return std::abs(a.x - b.x) < item_px_ && std::abs(a.y - b.y) < item_px_;
  }

  // With items_bounce: moves `it` to a place clear of the other live items.
  // At the start (`everyone`) the others may move too: a large item near the
  // middle leaves no room for a second. A crowded frame keeps the last try
  // (bounce() then pushes the items apart).
  void place_apart(Item& it, std::vector<Item>& items, int64_t frame, bool everyone) {
    if (!o_.items_bounce) return;
    const double half = item_px_ / 2.0;
    auto resample = [&](Item& x) {
      x.x = half + rng_.uniform() * (o_.size - item_px_);
      x.y = half + rng_.uniform() * (o_.size - item_px_);
    };
    for (int tries = 0; tries < 64; ++tries) {
      bool clear = true;
      for (const auto& other : items)
        if (other.id != it.id && (other.leaves < 0 || other.leaves > frame) && overlap(it, other)) clear = false;
      if (clear) return;
      resample(it);
      if (everyone && tries % 4 == 3)
        for (auto& other : items)
          if (other.id != it.id) resample(other);
    }
  }

  // With items_bounce: two items whose squares meet bounce off each other
  // along the axis on which they met, each keeping its speed (as off a wall);
  // `before` holds the centres before this frame's step.
  void bounce(std::vector<Item>& items, const std::vector<std::pair<double, double>>& before, int64_t frame) const {
    for (size_t i = 0; i < items.size(); ++i) {
      for (size_t j = i + 1; j < items.size(); ++j) {
        Item &a = items[i], &b = items[j];
        if ((a.leaves >= 0 && a.leaves <= frame) || (b.leaves >= 0 && b.leaves <= frame) || !overlap(a, b)) continue;
        const double dx = a.x - b.x, dy = a.y - b.y;
        const double pdx = before[i].first - before[j].first, pdy = before[i].second - before[j].second;
        // The axis whose gap closed this step; when both were already closed
        // (a crowded start), the one with the wider gap.
        const bool along_x = std::abs(pdx) >= item_px_ ? true
                             : std::abs(pdy) >= item_px_ ? false
                                                         : std::abs(dx) >= std::abs(dy);
        // Each turns away from the other and both are pushed apart until
        // their squares touch (within the walls), so none passes through.
        double &av = along_x ? a.vx : a.vy, &bv = along_x ? b.vx : b.vy;
        double &ap = along_x ? a.x : a.y, &bp = along_x ? b.x : b.y;
        const double s = (along_x ? dx : dy) >= 0 ? 1.0 : -1.0;
        av = s * std::abs(av);
        bv = -s * std::abs(bv);
        const double lo = item_px_ / 2.0, hi = o_.size - item_px_ / 2.0;
        const double push = item_px_ - std::abs(ap - bp);
        ap = std::clamp(ap + s * push / 2, lo, hi);
        bp = std::clamp(ap - s * item_px_, lo, hi);
        ap = std::clamp(bp + s * item_px_, lo, hi);
      }
    }
  }

  // Moves every item one frame on (walls, and with items_bounce each other);
  // `next` is the frame they move to.
  void advance(std::vector<Item>& items, int64_t next) const {
    std::vector<std::pair<double, double>> before;
    if (o_.items_bounce)
      for (const auto& it : items) before.emplace_back(it.x, it.y);
    for (auto& it : items) step(it);
    if (o_.items_bounce) bounce(items, before, next);
  }

  void step(Item& it) const {
    const double lo = item_px_ / 2.0, hi = o_.size - item_px_ / 2.0;
    it.x += it.vx;
    it.y += it.vy;
    if (it.x < lo) { it.x = 2 * lo - it.x; it.vx = -it.vx; }
    if (it.x > hi) { it.x = 2 * hi - it.x; it.vx = -it.vx; }
    if (it.y < lo) { it.y = 2 * lo - it.y; it.vy = -it.vy; }
    if (it.y > hi) { it.y = 2 * hi - it.y; it.vy = -it.vy; }
  }

  // uint8 [size, size, 3]
  at::Tensor render(int background, const std::vector<const Item*>& items) const {
    const auto& bg = kBackgrounds[background];
    at::Tensor canvas = torch::tensor({float(bg.r), float(bg.g), float(bg.b)}).view({1, 1, 3})
                            .expand({o_.size, o_.size, 3}).clone();
    for (const Item* it : items) {
      const int x0 = static_cast<int>(std::lround(it->x - item_px_ / 2.0));
      const int y0 = static_cast<int>(std::lround(it->y - item_px_ / 2.0));
      const int cx0 = std::max(0, x0), cy0 = std::max(0, y0);
      const int cx1 = std::min(o_.size, x0 + item_px_), cy1 = std::min(o_.size, y0 + item_px_);
      if (cx1 <= cx0 || cy1 <= cy0) continue;
      at::Tensor a = it->sprite.narrow(0, cy0 - y0, cy1 - cy0).narrow(1, cx0 - x0, cx1 - cx0).unsqueeze(2);
      const auto& c = kItemColours[it->colour];
      at::Tensor tint = torch::tensor({float(c.r), float(c.g), float(c.b)}).view({1, 1, 3});
      at::Tensor colour = tint * (0.55 + 0.45 * a);    // keep the item's texture
      at::Tensor alpha = (a * 3.0).clamp(0, 1);        // solid body, soft edges
      at::Tensor region = canvas.narrow(0, cy0, cy1 - cy0).narrow(1, cx0, cx1 - cx0);
      region.copy_(region * (1 - alpha) + colour * alpha);
    }
    return canvas.round().clamp(0, 255).to(torch::kUInt8);
  }

 private:
  const FashionMnist& fm_;
  const MovingFashionOptions& o_;
  Rng& rng_;
  int item_px_;
};

std::string item_phrase(const Item& it) {
  return std::string(kItemColours[it.colour].name) + " " + kFashionClassNames[it.label];
}

std::string article(const std::string& word) {
  return std::string("aeiou").find(word[0]) != std::string::npos ? "an " : "a ";
}

std::string a_item(const Item& it) { return article(kItemColours[it.colour].name) + item_phrase(it); }

std::string bg_name(int b) { return kBackgrounds[b].name; }

std::string video_caption(Rng& rng, const std::vector<Item>& first, int bg) {
  if (first.size() == 1) {
    const Item& it = first[0];
    const std::string a = a_item(it), d = kDirections[it.dir], b = bg_name(bg);
    switch (rng.below(5)) {
      case 0: return a + " moves " + d + " on a " + b + " background";
      case 1: return a + " moving " + d + " " + kSpeedAdverbs[it.speed] + " over a " + b + " background";
      case 2: return "on a " + b + " background, " + a + " drifts " + d;
      case 3: return article(kSpeedNames[it.speed]) + kSpeedNames[it.speed] + " " + item_phrase(it) +
                     " sliding " + d + " across a " + b + " backdrop";
      default: return a + " bounces around, heading " + d + ", on a " + b + " background";
    }
  }
  const Item &p = first[0], &q = first[1];
  const std::string b = bg_name(bg);
  switch (rng.below(3)) {
    case 0: return a_item(p) + " moving " + kDirections[p.dir] + " and " + a_item(q) + " moving " +
                   kDirections[q.dir] + " on a " + b + " background";
    case 1: return "two items on a " + b + " background: " + a_item(p) + " going " + kDirections[p.dir] +
                   " and " + a_item(q) + " going " + kDirections[q.dir];
    default: return a_item(p) + " drifts " + kDirections[p.dir] + " while " + a_item(q) + " drifts " +
                    kDirections[q.dir] + ", on a " + b + " background";
  }
}

nlohmann::json item_json(const Item& it, bool moving) {
  nlohmann::json j = {{"id", it.id}, {"class", it.label}, {"class_name", kFashionClassNames[it.label]},
                      {"colour", kItemColours[it.colour].name}, {"source_index", it.source},
                      {"enters_frame", it.enters}};
  j["leaves_frame"] = it.leaves >= 0 ? nlohmann::json(it.leaves) : nlohmann::json(nullptr);
  if (moving) {
    j["direction"] = kDirections[it.dir];
    j["speed"] = kSpeedNames[it.speed];
  }
  return j;
}

double round2(double v) { return std::round(v * 1e4) / 1e4; }

// Sorted, distinct; all ten is the unrestricted world (empty: the same draws).
std::vector<int> normalised_classes(std::vector<int> c) {
  std::sort(c.begin(), c.end());
  c.erase(std::unique(c.begin(), c.end()), c.end());
  if (static_cast<int>(c.size()) == kFashionClasses) c.clear();
  return c;
}

}  // namespace

void validate(const MovingFashionOptions& o) {
  if (o.videos < 0 || o.videos > 1000000) fail("--videos", "expected 0 to 1,000,000, got " + std::to_string(o.videos));
  if (o.images < 0 || o.images > 10000000) fail("--images", "expected 0 to 10,000,000, got " + std::to_string(o.images));
  if (o.videos == 0 && o.images == 0) fail("--videos", "nothing to generate: --videos and --images are both 0");
  if (!(o.seconds > 0) || o.seconds > 3600) fail("--seconds", "expected (0, 3600], got " + std::to_string(o.seconds));
  if (o.size < 16 || o.size > 1024) fail("--size", "expected 16 to 1024 pixels, got " + std::to_string(o.size));
  if (!(o.fps > 0) || o.fps > 120) fail("--fps", "expected (0, 120], got " + std::to_string(o.fps));
  if (o.split != "train" && o.split != "t10k") fail("--split", "expected 'train' or 't10k', got " + squote(o.split));
  if (!(o.two_items >= 0 && o.two_items <= 1)) fail("--two-items", "expected a probability in [0, 1]");
  if (!(o.scene_changes >= 0 && o.scene_changes <= 1)) fail("--scene-changes", "expected a probability in [0, 1]");
  if (!(o.item_size >= 0.05 && o.item_size <= 0.5))
    fail("--item-size", "expected a fraction of the frame in [0.05, 0.5], got " + std::to_string(o.item_size));
  for (int c : o.classes)
    if (c < 0 || c >= kFashionClasses) fail("--classes", "expected class indices 0 to 9, got " + std::to_string(c));
}

nlohmann::json world_json(const MovingFashionOptions& o) {
  nlohmann::json classes = nlohmann::json::array();
  if (o.classes.empty())
    for (int c = 0; c < kFashionClasses; ++c) classes.push_back(c);
  else
    for (int c : o.classes) classes.push_back(c);
  return {{"item_size", o.item_size}, {"classes", classes}, {"two_items", o.two_items},
          {"items_bounce", o.items_bounce}};
}

void set_world(MovingFashionOptions& o, const nlohmann::json& world, const std::string& where) {
  if (!world.is_object()) fail(where, "expected a JSON object (a moving-fashion dataset's \"world\")");
  auto number = [&](const char* key, double& out) {
    if (!world.contains(key)) return;
    if (!world[key].is_number()) fail(where, std::string("\"") + key + "\": expected a number");
    out = world[key].get<double>();
  };
  number("item_size", o.item_size);
  number("two_items", o.two_items);
  if (world.contains("items_bounce")) {
    if (!world["items_bounce"].is_boolean()) fail(where, "\"items_bounce\": expected true or false");
    o.items_bounce = world["items_bounce"].get<bool>();
  }
  if (world.contains("classes")) {
    const auto& c = world["classes"];
    if (!c.is_array() || c.empty()) fail(where, "\"classes\": expected a non-empty array of class indices 0 to 9");
    std::vector<int> classes;
    for (const auto& v : c) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= kFashionClasses)
        fail(where, "\"classes\": expected class indices 0 to 9, got " + v.dump());
      classes.push_back(v.get<int>());
    }
    o.classes = normalised_classes(std::move(classes));
  }
  if (!(o.item_size >= 0.05 && o.item_size <= 0.5)) fail(where, "\"item_size\": expected a fraction in [0.05, 0.5]");
  if (!(o.two_items >= 0 && o.two_items <= 1)) fail(where, "\"two_items\": expected a probability in [0, 1]");
}

std::vector<int> parse_classes(const std::string& text, const std::string& where) {
  std::vector<int> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    std::string tok = text.substr(start, end - start);
    tok.erase(0, tok.find_first_not_of(' '));
    tok.erase(tok.find_last_not_of(' ') + 1);
    int found = -1;
    if (!tok.empty() && tok.find_first_not_of("0123456789") == std::string::npos && tok.size() <= 2) {
      found = std::stoi(tok);
      if (found >= kFashionClasses) found = -1;
    } else {
      std::string lower = tok;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
      for (int c = 0; c < kFashionClasses; ++c)
        if (lower == kFashionClassNames[c]) found = c;
    }
    if (found < 0) {
      std::string names;
      for (int c = 0; c < kFashionClasses; ++c)
        names += (c ? ", " : "") + std::to_string(c) + " " + kFashionClassNames[c];
      fail(where, "unknown class " + squote(tok) + " (expected indices or names: " + names + ")");
    }
    out.push_back(found);
    start = end + 1;
  }
  return normalised_classes(std::move(out));
}

int64_t frame_count(const MovingFashionOptions& o) {
  return std::max<int64_t>(1, std::llround(o.seconds * o.fps));
}

Sample make_video(const FashionMnist& fm, const MovingFashionOptions& o, int64_t index) {
  Rng rng(stream_seed(o.seed, 1, index));
  World world(fm, o, rng);
  const int64_t T = frame_count(o);
  int bg = rng.below(static_cast<int>(kBackgrounds.size()));
  std::vector<Item> items;
  const int n_items = rng.chance(o.two_items) ? 2 : 1;
  std::vector<int> taken;
  for (int i = 0; i < n_items; ++i) {
    items.push_back(world.new_item(i, bg, taken, true));
    world.place_apart(items.back(), items, 0, true);
    taken.push_back(items.back().colour);
  }
  const std::vector<Item> first = items;
  std::string caption = video_caption(rng, first, bg);

  // Scene changes: at most one in each 10-second window after the first.
  struct Event { int64_t frame; bool background; };
  std::vector<Event> events;
  for (int k = 1; k * 10.0 < o.seconds; ++k) {
    if (!rng.chance(o.scene_changes)) continue;
    const double t = k * 10.0 + rng.uniform() * std::min(10.0, o.seconds - k * 10.0) * 0.5;
    const int64_t f = std::min<int64_t>(T - 1, std::llround(t * o.fps));
    if (f > 0) events.push_back({f, rng.chance(0.5)});
  }

  nlohmann::json per_frame = nlohmann::json::array();
  nlohmann::json event_json = nlohmann::json::array();
  std::vector<at::Tensor> frames;
  size_t next_event = 0;
  int next_id = n_items;
  for (int64_t f = 0; f < T; ++f) {
    while (next_event < events.size() && events[next_event].frame == f) {
      const Event& ev = events[next_event++];
      std::vector<int> colours;
      for (const auto& it : items) if (it.leaves < 0) colours.push_back(it.colour);
      if (ev.background) {
        int nb;
        bool ok;
        do {
          nb = rng.below(static_cast<int>(kBackgrounds.size()));
          ok = nb != bg;
          for (int c : colours) ok = ok && contrasts(c, nb);
        } while (!ok);
        bg = nb;
        caption += ", then the background turns " + bg_name(bg);
        event_json.push_back({{"frame", f}, {"type", "background"}, {"background", bg_name(bg)}});
      } else {
        std::vector<size_t> live;
        for (size_t i = 0; i < items.size(); ++i) if (items[i].leaves < 0) live.push_back(i);
        Item& gone = items[live[rng.below(static_cast<int>(live.size()))]];
        gone.leaves = static_cast<int>(f);
        std::vector<int> keep;
        for (const auto& it : items) if (it.leaves < 0) keep.push_back(it.colour);
        Item fresh = world.new_item(next_id++, bg, keep, true);
        fresh.enters = static_cast<int>(f);
        caption += ", then the " + item_phrase(gone) + " leaves and " + a_item(fresh) + " enters";
        event_json.push_back({{"frame", f}, {"type", "swap"}, {"leaves", gone.id}, {"enters", fresh.id}});
        items.push_back(std::move(fresh));  // `gone` is not used past here
        world.place_apart(items.back(), items, f, false);
      }
    }
    std::vector<const Item*> visible;
    nlohmann::json fj = {{"background", bg_name(bg)}, {"items", nlohmann::json::array()}};
    for (const auto& it : items) {
      if (it.leaves >= 0 && f >= it.leaves) continue;
      visible.push_back(&it);
      fj["items"].push_back({{"id", it.id}, {"x", round2(it.x / o.size)}, {"y", round2(it.y / o.size)}});
    }
    frames.push_back(world.render(bg, visible));
    per_frame.push_back(std::move(fj));
    world.advance(items, f + 1);
  }

  Sample s;
  s.frames = torch::stack(frames);
  s.caption = caption;
  nlohmann::json items_json = nlohmann::json::array();
  for (const auto& it : items) items_json.push_back(item_json(it, true));
  s.truth = {{"kind", "video"}, {"index", index}, {"split", o.split}, {"seed", o.seed},
             {"caption", caption}, {"fps", o.fps}, {"size", o.size}, {"frames", T},
             {"item_size", static_cast<double>(world.item_px()) / o.size},
             {"items", items_json}, {"events", event_json}, {"per_frame", per_frame}};
  return s;
}

Sample make_image(const FashionMnist& fm, const MovingFashionOptions& o, int64_t index) {
  Rng rng(stream_seed(o.seed, 2, index));
  World world(fm, o, rng);
  const int bg = rng.below(static_cast<int>(kBackgrounds.size()));
  std::vector<Item> items;
  std::vector<int> taken;
  const int n_items = rng.chance(o.two_items) ? 2 : 1;
  for (int i = 0; i < n_items; ++i) {
    items.push_back(world.new_item(i, bg, taken, false));
    world.place_apart(items.back(), items, 0, true);
    taken.push_back(items.back().colour);
  }
  const std::string b = bg_name(bg);
  std::string caption;
  if (n_items == 1) {
    switch (rng.below(3)) {
      case 0: caption = a_item(items[0]) + " on a " + b + " background"; break;
      case 1: caption = "a picture of " + a_item(items[0]) + " on " + b; break;
      default: caption = "on a " + b + " background, " + a_item(items[0]); break;
    }
  } else {
    caption = (rng.chance(0.5) ? "" : "two items: ") + a_item(items[0]) + " and " + a_item(items[1]) +
              " on a " + b + " background";
  }
  std::vector<const Item*> visible;
  nlohmann::json fj = {{"background", b}, {"items", nlohmann::json::array()}};
  nlohmann::json items_json = nlohmann::json::array();
  for (const auto& it : items) {
    visible.push_back(&it);
    fj["items"].push_back({{"id", it.id}, {"x", round2(it.x / o.size)}, {"y", round2(it.y / o.size)}});
    items_json.push_back(item_json(it, false));
  }
  Sample s;
  s.frames = world.render(bg, visible).unsqueeze(0);
  s.caption = caption;
  s.truth = {{"kind", "image"}, {"index", index}, {"split", o.split}, {"seed", o.seed},
             {"caption", caption}, {"size", o.size}, {"frames", 1},
             {"item_size", static_cast<double>(world.item_px()) / o.size},
             {"items", items_json}, {"events", nlohmann::json::array()},
             {"per_frame", nlohmann::json::array({fj})}};
  return s;
}

}  // namespace loong::data
