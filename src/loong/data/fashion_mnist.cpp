#include "loong/data/fashion_mnist.h"

#include <zlib.h>

#include <cstdlib>
#include <filesystem>

#include <torch/torch.h>

#include "loong/core/error.h"

namespace fs = std::filesystem;

namespace loong::data {

const std::array<const char*, kFashionClasses> kFashionClassNames = {
    "t-shirt", "pair of trousers", "pullover", "dress", "coat",
    "sandal",  "shirt",            "sneaker",  "bag",   "ankle boot"};

std::string default_fashion_mnist_dir() {
  if (const char* env = std::getenv("LOONG_FASHION_MNIST"); env && *env) return env;
  return "/usr/share/datasets/fashion-mnist";
}

namespace {

// Reads an IDX file (.gz or plain; gzread passes plain files through).
std::string read_idx(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail(path, "cannot open (install Debian's dataset-fashion-mnist package or set LOONG_FASHION_MNIST)");
  std::string data;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) data.append(buf, n);
  const bool err = n < 0;
  gzclose(f);
  if (err) fail(path, "corrupt or truncated gzip data");
  return data;
}

uint32_t be32(const std::string& s, size_t off) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(s[off + i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

std::string find_file(const std::string& dir, const std::string& stem) {
  for (const char* suffix : {".gz", ""}) {
    std::string p = (fs::path(dir) / (stem + suffix)).string();
    if (fs::exists(p)) return p;
  }
  fail((fs::path(dir) / (stem + ".gz")).string(),
       "Fashion-MNIST file not found (install Debian's dataset-fashion-mnist package or set LOONG_FASHION_MNIST)");
}

}  // namespace

FashionMnist load_fashion_mnist(const std::string& split, const std::string& dir_in) {
  if (split != "train" && split != "t10k")
    fail("split", "expected 'train' or 't10k', got " + squote(split));
  const std::string dir = dir_in.empty() ? default_fashion_mnist_dir() : dir_in;
  const std::string ipath = find_file(dir, split + "-images-idx3-ubyte");
  const std::string lpath = find_file(dir, split + "-labels-idx1-ubyte");
  const std::string img = read_idx(ipath), lab = read_idx(lpath);
  if (img.size() < 16 || be32(img, 0) != 0x00000803) fail(ipath, "not an IDX image file (bad magic)");
  if (lab.size() < 8 || be32(lab, 0) != 0x00000801) fail(lpath, "not an IDX label file (bad magic)");
  const int64_t n = be32(img, 4), rows = be32(img, 8), cols = be32(img, 12);
  if (rows != 28 || cols != 28) fail(ipath, "expected 28x28 images");
  if (static_cast<int64_t>(img.size()) != 16 + n * rows * cols) fail(ipath, "size does not match its header");
  if (be32(lab, 4) != n || static_cast<int64_t>(lab.size()) != 8 + n)
    fail(lpath, "label count does not match the image file");
  FashionMnist fm;
  fm.split = split;
  fm.images = torch::empty({n, rows, cols}, torch::kUInt8);
  std::memcpy(fm.images.data_ptr(), img.data() + 16, n * rows * cols);
  fm.labels = torch::empty({n}, torch::kUInt8);
  std::memcpy(fm.labels.data_ptr(), lab.data() + 8, n);
  fm.labels = fm.labels.to(torch::kLong);
  if (fm.labels.max().item<int64_t>() >= kFashionClasses) fail(lpath, "label out of range");
  return fm;
}

}  // namespace loong::data
