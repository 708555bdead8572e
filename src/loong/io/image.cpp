#include "loong/io/image.h"

#include <cmath>
#include <cstdio>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"

#ifdef LOONG_WITH_PNG
#include <png.h>
#endif

namespace loong::image {

namespace {
#ifdef LOONG_WITH_PNG
// libpng reports errors by longjmp: keep that inside this function, which has
// no objects with destructors.
bool png_encode(FILE* fp, const uint8_t* data, uint32_t w, uint32_t h, int channels) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, w, h, 8, channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (uint32_t y = 0; y < h; ++y)
    png_write_row(png, const_cast<png_bytep>(data + static_cast<size_t>(y) * w * channels));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}
#endif
}  // namespace

void write_png(const std::string& path, const at::Tensor& image) {
  at::Tensor img = image.to(at::kCPU).contiguous();
  if (img.scalar_type() != at::kByte || !(img.dim() == 2 || (img.dim() == 3 && img.size(2) == 3)))
    fail(path, "expected a uint8 image [H, W, 3] or [H, W], got " + c10::str(img.sizes()) + " " +
                   std::string(c10::toString(img.scalar_type())));
  if (img.size(0) == 0 || img.size(1) == 0) fail(path, "cannot write an empty image");
#ifndef LOONG_WITH_PNG
  fail(path, "this build has no PNG support (configure with -DLOONG_WITH_PNG=ON)");
#else
  AtomicFile file(path);
  FILE* fp = std::fopen(file.temp_path().c_str(), "wb");
  if (!fp) fail(path, "cannot open for writing");
  const bool encoded = png_encode(fp, img.data_ptr<uint8_t>(), static_cast<uint32_t>(img.size(1)),
                                  static_cast<uint32_t>(img.size(0)), img.dim() == 3 ? 3 : 1);
  const bool flushed = std::fflush(fp) == 0;
  std::fclose(fp);
  if (!encoded) fail(path, "PNG encoding failed");
  if (!flushed) fail(path, "write failed (disk full?)");
  file.commit();
#endif
}

at::Tensor grid(const std::vector<at::Tensor>& tiles, int cols, int pad, int background) {
  if (tiles.empty()) throw Error("contact sheet: no frames to tile");
  const int64_t th = tiles[0].size(0), tw = tiles[0].size(1);
  const int n = static_cast<int>(tiles.size());
  if (cols <= 0) cols = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(n))));
  cols = std::min(cols, n);
  const int rows = (n + cols - 1) / cols;
  at::Tensor out = torch::full({rows * (th + pad) + pad, cols * (tw + pad) + pad, 3}, background,
                               torch::kUInt8);
  for (int i = 0; i < n; ++i) {
    const at::Tensor& t = tiles[i];
    if (t.dim() != 3 || t.size(0) != th || t.size(1) != tw || t.size(2) != 3 ||
        t.scalar_type() != at::kByte)
      throw Error("contact sheet: every frame must be uint8 [" + std::to_string(th) + ", " +
                  std::to_string(tw) + ", 3], got " + c10::str(t.sizes()));
    const int64_t y = pad + (i / cols) * (th + pad), x = pad + (i % cols) * (tw + pad);
    out.narrow(0, y, th).narrow(1, x, tw).copy_(t.to(at::kCPU));
  }
  return out;
}

std::vector<int64_t> spread_indices(int64_t total, int64_t n) {
  std::vector<int64_t> idx;
  if (total <= 0 || n <= 0) return idx;
  if (n >= total) {
    for (int64_t i = 0; i < total; ++i) idx.push_back(i);
    return idx;
  }
  for (int64_t i = 0; i < n; ++i)
    idx.push_back(n == 1 ? 0 : static_cast<int64_t>(std::llround(i * (total - 1.0) / (n - 1))));
  return idx;
}

at::Tensor contact_sheet(const at::Tensor& frames, int max_tiles, int cols) {
  if (frames.dim() != 4 || frames.size(3) != 3)
    throw Error("contact sheet: expected frames [T, H, W, 3], got " + c10::str(frames.sizes()));
  std::vector<at::Tensor> tiles;
  for (int64_t i : spread_indices(frames.size(0), max_tiles)) tiles.push_back(frames[i]);
  return grid(tiles, cols);
}

}  // namespace loong::image
