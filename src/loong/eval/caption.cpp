#include "loong/eval/caption.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "loong/core/error.h"
#include "loong/data/fashion_mnist.h"
#include "loong/data/moving_fashion.h"

namespace loong::eval {

namespace {

std::string lower(const std::string& s) {
  std::string o = s;
  std::transform(o.begin(), o.end(), o.begin(), [](unsigned char c) { return std::tolower(c); });
  return o;
}

bool word_at(const std::string& s, size_t pos, const std::string& w) {
  if (s.compare(pos, w.size(), w) != 0) return false;
  const bool start = pos == 0 || !std::isalpha(static_cast<unsigned char>(s[pos - 1]));
  const size_t end = pos + w.size();
  const bool stop = end >= s.size() || !std::isalpha(static_cast<unsigned char>(s[end]));
  return start && stop;
}

// "<colour> <class>" mentions in order: (slot, position of the mention).
std::vector<std::pair<int, size_t>> item_mentions(const std::string& s) {
  // Class names longest first, so "t-shirt" wins over "shirt".
  std::vector<int> order(data::kFashionClasses);
  for (int i = 0; i < data::kFashionClasses; ++i) order[static_cast<size_t>(i)] = i;
  std::sort(order.begin(), order.end(), [](int a, int b) {
    return std::strlen(data::kFashionClassNames[static_cast<size_t>(a)]) >
           std::strlen(data::kFashionClassNames[static_cast<size_t>(b)]);
  });
  std::vector<std::pair<int, size_t>> out;
  for (size_t pos = 0; pos < s.size(); ++pos) {
    for (size_t c = 0; c < data::kItemColours.size(); ++c) {
      const std::string colour = data::kItemColours[c].name;
      if (!word_at(s, pos, colour) || s.compare(pos + colour.size(), 1, " ") != 0) continue;
      if (pos >= 5 && s.compare(pos - 5, 5, "dark ") == 0) continue;  // "dark green" is a background
      const size_t at = pos + colour.size() + 1;
      for (int k : order) {
        const std::string name = data::kFashionClassNames[static_cast<size_t>(k)];
        if (word_at(s, at, name)) {
          out.push_back({k * static_cast<int>(data::kItemColours.size()) + static_cast<int>(c), pos});
          break;
        }
      }
    }
  }
  return out;
}

// The background named in `s`: "<bg> background", "<bg> backdrop", "turns <bg>" or "on <bg>" at the end.
int background_in(const std::string& s) {
  int found = -1;
  size_t best = std::string::npos;
  for (size_t b = 0; b < data::kBackgrounds.size(); ++b) {
    const std::string name = data::kBackgrounds[b].name;
    for (size_t pos = s.find(name); pos != std::string::npos; pos = s.find(name, pos + 1)) {
      if (!word_at(s, pos, name)) continue;
      const size_t end = pos + name.size();
      const std::string rest = s.substr(end);
      const bool named = rest.rfind(" background", 0) == 0 || rest.rfind(" backdrop", 0) == 0 ||
                         (pos >= 6 && s.compare(pos - 6, 6, "turns ") == 0) ||
                         (pos >= 3 && s.compare(pos - 3, 3, "on ") == 0 && end == s.size());
      if (named && (best == std::string::npos || pos < best)) {
        found = static_cast<int>(b);
        best = pos;
      }
    }
  }
  return found;
}

}  // namespace

CaptionFacts parse_caption(const std::string& caption) {
  const std::string s = lower(caption);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t cut = s.find(", then ", start);
    parts.push_back(s.substr(start, cut == std::string::npos ? std::string::npos : cut - start));
    if (cut == std::string::npos) break;
    start = cut + 7;
  }
  CaptionFacts f;
  SceneState state;
  for (const auto& m : item_mentions(parts[0])) state.items.push_back(m.first);
  state.background = background_in(parts[0]);
  if (state.items.empty()) fail("caption", "names no '<colour> <item>' (e.g. 'a red sneaker'): '" + caption + "'");
  std::sort(state.items.begin(), state.items.end());
  f.states.push_back(state);
  for (size_t i = 1; i < parts.size(); ++i) {
    const auto& p = parts[i];
    const int bg = background_in(p);
    if (bg >= 0 && p.find("background") != std::string::npos) {
      state.background = bg;
    } else {
      // "the <colour> <class> leaves and a <colour> <class> enters"
      const auto m = item_mentions(p);
      const size_t leaves = p.find(" leaves");
      for (const auto& [slot, pos] : m) {
        auto it = std::find(state.items.begin(), state.items.end(), slot);
        if (leaves != std::string::npos && pos < leaves) {
          if (it != state.items.end()) state.items.erase(it);
        } else if (it == state.items.end()) {
          state.items.push_back(slot);
        }
      }
      std::sort(state.items.begin(), state.items.end());
    }
    f.states.push_back(state);
  }
  return f;
}

}  // namespace loong::eval
