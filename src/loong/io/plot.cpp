#include "loong/io/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include <torch/torch.h>

namespace loong::plot {

namespace {

// 3x5 glyphs, one string of 15 '#'/'.' per character, row by row.
const std::map<char, const char*>& font() {
  static const std::map<char, const char*> f = {
      {'0', "###" "#.#" "#.#" "#.#" "###"}, {'1', ".#." "##." ".#." ".#." "###"},
      {'2', "###" "..#" "###" "#.." "###"}, {'3', "###" "..#" "###" "..#" "###"},
      {'4', "#.#" "#.#" "###" "..#" "..#"}, {'5', "###" "#.." "###" "..#" "###"},
      {'6', "###" "#.." "###" "#.#" "###"}, {'7', "###" "..#" "..#" "..#" "..#"},
      {'8', "###" "#.#" "###" "#.#" "###"}, {'9', "###" "#.#" "###" "..#" "###"},
      {'.', "..." "..." "..." "..." ".#."}, {'-', "..." "..." "###" "..." "..."},
      {'=', "..." "###" "..." "###" "..."}, {'/', "..#" "..#" ".#." "#.." "#.."},
      {'(', ".#." "#.." "#.." "#.." ".#."}, {')', ".#." "..#" "..#" "..#" ".#."},
      {' ', "..." "..." "..." "..." "..."}, {'a', "..." ".##" "#.#" "#.#" ".##"},
      {'b', "#.." "##." "#.#" "#.#" "##."}, {'c', "..." ".##" "#.." "#.." ".##"},
      {'d', "..#" ".##" "#.#" "#.#" ".##"}, {'e', "..." "###" "###" "#.." ".##"},
      {'f', ".##" "#.." "##." "#.." "#.."}, {'g', ".##" "#.#" ".##" "..#" "##."},
      {'h', "#.." "##." "#.#" "#.#" "#.#"}, {'i', ".#." "..." ".#." ".#." ".#."},
      {'j', "..#" "..." "..#" "#.#" ".#."}, {'k', "#.." "#.#" "##." "#.#" "#.#"},
      {'l', ".#." ".#." ".#." ".#." ".##"}, {'m', "..." "##." "###" "#.#" "#.#"},
      {'n', "..." "##." "#.#" "#.#" "#.#"}, {'o', "..." ".#." "#.#" "#.#" ".#."},
      {'p', "..." "##." "#.#" "##." "#.."}, {'q', "..." ".##" "#.#" ".##" "..#"},
      {'r', "..." "#.#" "##." "#.." "#.."}, {'s', ".##" "#.." ".#." "..#" "##."},
      {'t', ".#." "###" ".#." ".#." ".##"}, {'u', "..." "#.#" "#.#" "#.#" ".##"},
      {'v', "..." "#.#" "#.#" "#.#" ".#."}, {'w', "..." "#.#" "#.#" "###" "#.#"},
      {'x', "..." "#.#" ".#." ".#." "#.#"}, {'y', "#.#" "#.#" ".##" "..#" "##."},
      {'z', "..." "###" "..#" ".#." "###"},
  };
  return f;
}

struct Canvas {
  int w, h;
  std::vector<uint8_t> px;
  Canvas(int w_, int h_) : w(w_), h(h_), px(static_cast<size_t>(w_) * h_ * 3, 255) {}
  void set(int x, int y, std::array<uint8_t, 3> c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t* p = &px[(static_cast<size_t>(y) * w + x) * 3];
    p[0] = c[0], p[1] = c[1], p[2] = c[2];
  }
  void line(double x0, double y0, double x1, double y1, std::array<uint8_t, 3> c, int thick = 1) {
    const int n = std::max(1, static_cast<int>(std::ceil(std::max(std::abs(x1 - x0), std::abs(y1 - y0)))));
    for (int i = 0; i <= n; ++i) {
      const double t = static_cast<double>(i) / n;
      const int x = static_cast<int>(std::lround(x0 + (x1 - x0) * t));
      const int y = static_cast<int>(std::lround(y0 + (y1 - y0) * t));
      for (int dy = 0; dy < thick; ++dy)
        for (int dx = 0; dx < thick; ++dx) set(x + dx, y + dy, c);
    }
  }
  // Text at scale 2 (6x10 pixels a glyph, 8 apart); returns its width.
  int text(int x, int y, const std::string& s, std::array<uint8_t, 3> c) {
    const int scale = 2;
    for (size_t i = 0; i < s.size(); ++i) {
      auto it = font().find(static_cast<char>(std::tolower(static_cast<unsigned char>(s[i]))));
      if (it == font().end()) continue;
      for (int r = 0; r < 5; ++r)
        for (int col = 0; col < 3; ++col)
          if (it->second[r * 3 + col] == '#')
            for (int dy = 0; dy < scale; ++dy)
              for (int dx = 0; dx < scale; ++dx)
                set(x + static_cast<int>(i) * 4 * scale + col * scale + dx, y + r * scale + dy, c);
    }
    return static_cast<int>(s.size()) * 4 * scale;
  }
};

// About `n` round tick values covering [lo, hi].
std::vector<double> ticks(double lo, double hi, int n) {
  const double raw = (hi - lo) / std::max(1, n);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push_back(std::abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

std::string tick_label(double v, double step) {
  char buf[32];
  if (std::abs(v) >= 10000 && std::fmod(v, 1000) == 0)
    std::snprintf(buf, sizeof buf, "%.0fk", v / 1000);
  else if (step >= 1)
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else
    std::snprintf(buf, sizeof buf, "%.*f", std::min(6, static_cast<int>(std::ceil(-std::log10(step)))), v);
  return buf;
}

}  // namespace

std::vector<double> ema_smooth(const std::vector<double>& y, double alpha) {
  std::vector<double> out(y.size(), std::numeric_limits<double>::quiet_NaN());
  double m = 0, weight = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (!std::isfinite(y[i])) continue;
    m = (1 - alpha) * m + alpha * y[i];
    weight = (1 - alpha) * weight + alpha;
    out[i] = m / weight;
  }
  return out;
}

at::Tensor line_plot(const std::vector<Series>& series, const std::string& x_label, const std::string& y_label,
                     int width, int height) {
  Canvas cv(width, height);
  const int left = 70, right = 20, top = 20, bottom = 50;
  const int pw = width - left - right, ph = height - top - bottom;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.y[i]) && std::isfinite(s.x[i])) {
        x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
        y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
      }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto X = [&](double x) { return left + (x - x0) / (x1 - x0) * pw; };
  auto Y = [&](double y) { return top + (1 - (y - y0) / (y1 - y0)) * ph; };
  const std::array<uint8_t, 3> grid{225, 225, 225}, axis{60, 60, 60};

  auto yt = ticks(y0, y1, 6);
  for (double v : yt) {
    cv.line(left, Y(v), left + pw, Y(v), grid);
    const double step = yt.size() > 1 ? yt[1] - yt[0] : 1;
    const std::string s = tick_label(v, step);
    cv.text(left - 8 - static_cast<int>(s.size()) * 8, static_cast<int>(Y(v)) - 5, s, axis);
  }
  auto xt = ticks(x0, x1, 8);
  for (double v : xt) {
    cv.line(X(v), top, X(v), top + ph, grid);
    const double step = xt.size() > 1 ? xt[1] - xt[0] : 1;
    const std::string s = tick_label(v, std::max(1.0, step));
    cv.text(static_cast<int>(X(v)) - static_cast<int>(s.size()) * 4, top + ph + 8, s, axis);
  }
  cv.line(left, top, left, top + ph, axis);
  cv.line(left, top + ph, left + pw, top + ph, axis);
  cv.text(left + pw / 2 - static_cast<int>(x_label.size()) * 4, height - 20, x_label, axis);
  cv.text(6, top - 14 + 0, y_label, axis);

  for (const auto& s : series) {
    bool have = false;
    double px = 0, py = 0;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;  // gaps join across: a range absent from some steps
      const double qx = X(s.x[i]), qy = Y(s.y[i]);
      if (have) cv.line(px, py, qx, qy, s.color, 2);
      px = qx, py = qy, have = true;
    }
  }
  // Legend, top right.
  int ly = top + 8;
  for (const auto& s : series) {
    const int tw = static_cast<int>(s.label.size()) * 8;
    const int lx = left + pw - tw - 40;
    cv.line(lx, ly + 4, lx + 20, ly + 4, s.color, 3);
    cv.text(lx + 28, ly, s.label, axis);
    ly += 16;
  }
  return torch::from_blob(cv.px.data(), {height, width, 3}, torch::kUInt8).clone();
}

}  // namespace loong::plot
