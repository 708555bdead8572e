// safetensors: the weight format Python's `safetensors` reads and writes.
//
//   [u64 little-endian N][N bytes of JSON header, space padded][data]
//   header: {"__metadata__": {str: str}?,
//            "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
//
// The reader is bounded: every rule below is checked and each violation is a
// distinct loong::Error naming the file (llama.cpp's gguf reader is the model).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace loong::safetensors {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

struct TensorInfo {
  std::string name;
  std::string dtype;           // "F32", "F16", "BF16", "I64", "I32", "U8", ...
  std::vector<int64_t> shape;  // empty = scalar
  uint64_t begin = 0;          // byte offsets into the data section
  uint64_t end = 0;
};

struct Header {
  std::vector<TensorInfo> tensors;  // in file order of data_offsets
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;          // 8 + N
  uint64_t file_size = 0;
};

using TensorMap = std::map<std::string, at::Tensor>;

// Validates the header against the file size. Throws loong::Error.
Header read_header(const std::string& path);

// Loads every tensor (CPU, contiguous). metadata may be null.
TensorMap load(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

// Writes tensors (any device/dtype supported above) atomically: temporary
// file, fsync, rename. Names must be unique and non-empty.
void save(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata = {});

// Bytes per element of a safetensors dtype name; 0 if unknown.
size_t dtype_size(const std::string& dtype);

}  // namespace loong::safetensors
