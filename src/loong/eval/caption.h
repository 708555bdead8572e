// Reading a moving-fashion caption back into facts the probe can check: the
// items (class x colour slots, as the probe numbers them), the background, and
// the scene changes narrated with ", then ...". Works for every template the
// dataset generator uses and for prompts a user writes in the same words.
#pragma once
#include <string>
#include <vector>

namespace loong::eval {

struct SceneState {
  std::vector<int> items;  // probe slots: class * 8 + colour, sorted
  int background = -1;     // index into data::kBackgrounds; -1 if the text names none
  bool operator==(const SceneState& o) const { return items == o.items && background == o.background; }
};

struct CaptionFacts {
  // The scene as first described, then after each ", then ..." change.
  std::vector<SceneState> states;
  const SceneState& first() const { return states.front(); }
};

// Throws loong::Error naming the caption when it describes no item.
CaptionFacts parse_caption(const std::string& caption);

}  // namespace loong::eval
