// Line plots of training curves as RGB images (written with image::write_png).
// Drawn here by hand: Debian has no small C/C++ plotting library without a
// GUI stack or a Python runtime, and a few lines, ticks and a legend in a
// built-in 3x5 pixel font are all a loss curve needs.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

namespace loong::plot {

struct Series {
  std::string label;               // legend text: digits, lowercase letters, ". - = ( ) /"
  std::array<uint8_t, 3> color;
  std::vector<double> x, y;        // points with a non-finite y are skipped
};

// uint8 [height, width, 3]: axes with tick values, one line per series, a legend.
at::Tensor line_plot(const std::vector<Series>& series, const std::string& x_label, const std::string& y_label,
                     int width = 800, int height = 480);

// Exponential moving average over the finite values (bias-corrected, so the
// curve starts at the first value); non-finite inputs stay non-finite.
std::vector<double> ema_smooth(const std::vector<double>& y, double alpha);

}  // namespace loong::plot
