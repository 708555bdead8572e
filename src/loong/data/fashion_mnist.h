// Fashion-MNIST from Debian's `dataset-fashion-mnist` package (IDX files,
// optionally gzip-compressed): 28x28 grey images of 10 clothing classes.
#pragma once
#include <array>
#include <string>

#include <ATen/core/Tensor.h>

namespace loong::data {

constexpr int kFashionClasses = 10;
// Singular, caption-ready class names in label order.
extern const std::array<const char*, kFashionClasses> kFashionClassNames;

struct FashionMnist {
  at::Tensor images;  // uint8 [N, 28, 28]
  at::Tensor labels;  // int64 [N]
  std::string split;  // "train" or "t10k"
};

// $LOONG_FASHION_MNIST if set, else /usr/share/datasets/fashion-mnist.
std::string default_fashion_mnist_dir();

// split: "train" (60,000 items) or "t10k" (10,000 unseen items, for evaluation).
FashionMnist load_fashion_mnist(const std::string& split, const std::string& dir = "");

}  // namespace loong::data
