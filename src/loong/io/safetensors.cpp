#include "loong/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"

namespace loong::safetensors {
namespace {

struct DtypeEntry {
  const char* name;
  at::ScalarType type;
  size_t size;
};

constexpr DtypeEntry kDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},
    {"BF16", at::kBFloat16, 2}, {"I64", at::kLong, 8}, {"I32", at::kInt, 4},
    {"I16", at::kShort, 2}, {"I8", at::kChar, 1}, {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
};

const DtypeEntry* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const DtypeEntry* find_dtype(at::ScalarType t) {
  for (const auto& d : kDtypes)
    if (t == d.type) return &d;
  return nullptr;
}

uint64_t read_u64_le(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// A read-only memory map of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK);  // a pipe's open would wait for a writer
    if (fd_ < 0) fail(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      fail(path, "expected a regular file");
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      if (p == MAP_FAILED) {
        ::close(fd_);
        fail(path, std::string("cannot map file: ") + std::strerror(errno));
      }
      data_ = static_cast<const unsigned char*>(p);
    }
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  const unsigned char* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  std::string path_;
  int fd_ = -1;
  const unsigned char* data_ = nullptr;
  uint64_t size_ = 0;
};

Header parse_header(const std::string& path, const unsigned char* bytes, uint64_t file_size) {
  if (file_size < 8)
    fail(path, "not a safetensors file: " + std::to_string(file_size) +
                   " bytes is too short for the 8-byte header length");
  const uint64_t n = read_u64_le(bytes);
  if (n > kMaxHeaderBytes)
    fail(path, "header length " + std::to_string(n) + " exceeds the limit of " +
                   std::to_string(kMaxHeaderBytes) + " bytes");
  if (n > file_size - 8)
    fail(path, "header length " + std::to_string(n) + " runs past the end of the file (" +
                   std::to_string(file_size) + " bytes)");
  if (n == 0 || bytes[8] != '{') fail(path, "header must be a JSON object starting with '{'");

  // Duplicate names are legal JSON but ambiguous weights: detect them while parsing.
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(bytes + 8, bytes + 8 + n, cb);
  } catch (const json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!duplicate.empty()) fail(path, "duplicate tensor name " + squote(duplicate));
  if (!header.is_object()) fail(path, "header must be a JSON object");

  Header h;
  h.data_start = 8 + n;
  h.file_size = file_size;
  const uint64_t data_size = file_size - h.data_start;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) fail(path, "__metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          fail(path, "__metadata__ key " + squote(m.key()) + ": expected a string, got " +
                         json_type_name(m.value()));
        h.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = path + ": tensor " + squote(name);
    if (!v.is_object()) fail(where, "expected an object with dtype, shape, data_offsets");
    TensorInfo t;
    t.name = name;
    t.dtype = get_string(v, "dtype", where);
    const DtypeEntry* dt = find_dtype(t.dtype);
    if (!dt) fail(where, "unsupported dtype " + squote(t.dtype));
    if (!v.contains("shape") || !v["shape"].is_array())
      fail(where, "key 'shape': expected an array of non-negative integers");
    uint64_t numel = 1;
    bool overflow = false;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned())
        fail(where, "key 'shape': expected an array of non-negative integers");
      uint64_t dim = d.get<uint64_t>();
      if (dim > static_cast<uint64_t>(INT64_MAX)) overflow = true;
      t.shape.push_back(static_cast<int64_t>(dim));
      if (dim != 0 && numel > UINT64_MAX / dim) overflow = true;
      numel *= dim;
    }
    const json* off = v.contains("data_offsets") ? &v["data_offsets"] : nullptr;
    if (!off || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      fail(where, "key 'data_offsets': expected [begin, end] with non-negative integers");
    t.begin = (*off)[0].get<uint64_t>();
    t.end = (*off)[1].get<uint64_t>();
    if (t.end < t.begin)
      fail(where, "data_offsets end " + std::to_string(t.end) + " is before begin " +
                      std::to_string(t.begin));
    if (t.end > data_size)
      fail(where, "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                      "] lie outside the file's " + std::to_string(data_size) + " data bytes");
    if (overflow || numel > UINT64_MAX / dt->size || numel * dt->size != t.end - t.begin)
      fail(where, "dtype " + t.dtype + " x shape needs " +
                      (overflow ? std::string("more than 2^64") : std::to_string(numel * dt->size)) +
                      " bytes but data_offsets span " + std::to_string(t.end - t.begin));
    h.tensors.push_back(std::move(t));
  }
  std::sort(h.tensors.begin(), h.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expect = 0;
  for (const auto& t : h.tensors) {
    if (t.begin > expect)
      fail(path + ": tensor " + squote(t.name),
           "gap in the data: begins at " + std::to_string(t.begin) + ", expected " +
               std::to_string(expect) + " (offsets must be contiguous from 0)");
    if (t.begin < expect)
      fail(path + ": tensor " + squote(t.name),
           "overlaps the previous tensor: begins at " + std::to_string(t.begin) +
               ", previous ends at " + std::to_string(expect));
    expect = t.end;
  }
  if (expect != data_size)
    fail(path, std::to_string(data_size - expect) +
                   " trailing bytes after the last tensor (file size does not match the header)");
  return h;
}

}  // namespace

size_t dtype_size(const std::string& dtype) {
  const DtypeEntry* d = find_dtype(dtype);
  return d ? d->size : 0;
}

Header read_header(const std::string& path) {
  MappedFile file(path);
  return parse_header(path, file.data(), file.size());
}

TensorMap load(const std::string& path, std::map<std::string, std::string>* metadata) {
  MappedFile file(path);
  Header h = parse_header(path, file.data(), file.size());
  TensorMap out;
  for (const auto& t : h.tensors) {
    const DtypeEntry* dt = find_dtype(t.dtype);
    at::Tensor x = torch::empty(t.shape, torch::TensorOptions().dtype(dt->type));
    if (t.end > t.begin) std::memcpy(x.data_ptr(), file.data() + h.data_start + t.begin, t.end - t.begin);
    out.emplace(t.name, std::move(x));
  }
  if (metadata) *metadata = std::move(h.metadata);
  return out;
}

void save(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> cpu;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name.empty() || name == "__metadata__") fail(path, "invalid tensor name " + squote(name));
    if (!names.insert(name).second) fail(path, "duplicate tensor name " + squote(name));
    if (!tensor.defined()) fail(path, "tensor " + squote(name) + " is undefined");
    const DtypeEntry* dt = find_dtype(tensor.scalar_type());
    if (!dt)
      fail(path, "tensor " + squote(name) + ": dtype " +
                     std::string(c10::toString(tensor.scalar_type())) + " cannot be stored");
    at::Tensor c = tensor.detach().to(torch::kCPU).contiguous();
    uint64_t bytes = static_cast<uint64_t>(c.numel()) * dt->size;
    header[name] = {{"dtype", dt->name},
                    {"shape", c.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    cpu.push_back(std::move(c));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data section like Python does
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((text.size() >> (8 * i)) & 0xff);

  AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary | std::ios::trunc);
    if (!out) fail(path, "cannot open for writing");
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& c : cpu)
      out.write(static_cast<const char*>(c.data_ptr()),
                static_cast<std::streamsize>(c.numel() * c.element_size()));
    out.flush();
    if (!out) fail(path, "write failed (disk full?)");
  }
  file.commit();
}

}  // namespace loong::safetensors
