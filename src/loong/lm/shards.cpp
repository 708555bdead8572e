#include "loong/lm/shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"

namespace fs = std::filesystem;

namespace loong::lm {

namespace {
constexpr char kMagic[8] = {'L', 'O', 'O', 'N', 'G', 'S', 'H', 'D'};
constexpr char kEnd[8] = {'L', 'O', 'O', 'N', 'G', 'E', 'N', 'D'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeader = 24, kEntry = 32, kFooter = 28;

struct Entry {
  uint64_t offset;
  uint32_t text_len, frames, height, width, caption_bytes, kind;
};

template <class T>
void put(std::string& b, T v) {
  b.append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <class T>
T get(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
}  // namespace

// ---------------------------------------------------------------------------

struct ShardWriter::Impl {
  AtomicFile file;
  FILE* f = nullptr;
  int text_vocab, video_vocab;
  uint64_t pos = 0;
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<Entry> index;
  bool finished = false;

  Impl(std::string path, int tv, int vv) : file(std::move(path)), text_vocab(tv), video_vocab(vv) {
    f = std::fopen(file.temp_path().c_str(), "wb");
    if (!f) fail(file.path(), "cannot create the shard");
    std::string h(kMagic, 8);
    put<uint32_t>(h, kVersion);
    put<uint32_t>(h, 0);
    put<uint32_t>(h, static_cast<uint32_t>(tv));
    put<uint32_t>(h, static_cast<uint32_t>(vv));
    write(h);
  }
  ~Impl() {
    if (f) std::fclose(f);
  }
  void write(const std::string& b) {
    if (std::fwrite(b.data(), 1, b.size(), f) != b.size()) fail(file.path(), "write failed (disk full?)");
    crc = crc32(crc, reinterpret_cast<const Bytef*>(b.data()), static_cast<uInt>(b.size()));
    pos += b.size();
  }
};

ShardWriter::ShardWriter(std::string path, int text_vocab, int video_vocab) {
  if (text_vocab < 1 || video_vocab < 1) fail(path, "vocabulary sizes must be positive");
  impl_ = std::make_unique<Impl>(std::move(path), text_vocab, video_vocab);
}

ShardWriter::~ShardWriter() = default;

int64_t ShardWriter::size() const { return static_cast<int64_t>(impl_->index.size()); }

void ShardWriter::add(const ShardSample& s) {
  auto& m = *impl_;
  if (m.finished) fail(m.file.path(), "the shard is already finished");
  if (s.frames < 1 || s.height < 1 || s.width < 1 ||
      static_cast<int64_t>(s.video.size()) != int64_t(s.frames) * s.height * s.width)
    fail(m.file.path(), "sample " + std::to_string(m.index.size()) + ": " + std::to_string(s.video.size()) +
                            " codes do not fill a " + std::to_string(s.frames) + "x" + std::to_string(s.height) +
                            "x" + std::to_string(s.width) + " grid");
  for (int32_t t : s.text)
    if (t < 0 || t >= m.text_vocab)
      fail(m.file.path(), "sample " + std::to_string(m.index.size()) + ": text id " + std::to_string(t) +
                              " outside [0, " + std::to_string(m.text_vocab) + ")");
  for (int32_t c : s.video)
    if (c < 0 || c >= m.video_vocab)
      fail(m.file.path(), "sample " + std::to_string(m.index.size()) + ": video code " + std::to_string(c) +
                              " outside [0, " + std::to_string(m.video_vocab) + ")");
  Entry e{m.pos,
          static_cast<uint32_t>(s.text.size()),
          static_cast<uint32_t>(s.frames),
          static_cast<uint32_t>(s.height),
          static_cast<uint32_t>(s.width),
          static_cast<uint32_t>(s.caption.size()),
          static_cast<uint32_t>(s.kind)};
  std::string b;
  b.append(reinterpret_cast<const char*>(s.text.data()), s.text.size() * 4);
  b.append(reinterpret_cast<const char*>(s.video.data()), s.video.size() * 4);
  b.append(s.caption);
  b.append((4 - b.size() % 4) % 4, '\0');  // keep the next record's ids aligned
  m.write(b);
  m.index.push_back(e);
}

void ShardWriter::finish() {
  auto& m = *impl_;
  if (m.finished) return;
  const uint64_t index_offset = m.pos;
  std::string b;
  for (const auto& e : m.index) {
    put(b, e.offset);
    for (uint32_t v : {e.text_len, e.frames, e.height, e.width, e.caption_bytes, e.kind}) put(b, v);
  }
  m.write(b);
  std::string foot;
  put<uint64_t>(foot, m.index.size());
  put<uint64_t>(foot, index_offset);
  put<uint32_t>(foot, static_cast<uint32_t>(m.crc));
  foot.append(kEnd, 8);
  if (std::fwrite(foot.data(), 1, foot.size(), m.f) != foot.size() || std::fclose(m.f) != 0) {
    m.f = nullptr;
    fail(m.file.path(), "write failed (disk full?)");
  }
  m.f = nullptr;
  m.file.commit();
  m.finished = true;
}

// ---------------------------------------------------------------------------

struct ShardReader::Impl {
  std::string path;
  const unsigned char* data = nullptr;
  size_t bytes = 0;
  int text_vocab = 0, video_vocab = 0;
  uint64_t samples = 0, index_offset = 0;

  ~Impl() {
    if (data) munmap(const_cast<unsigned char*>(data), bytes);
  }
  [[noreturn]] void bad(const std::string& what) const { fail(path, "not a valid token shard: " + what); }
};

ShardReader::ShardReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.path = path;
  // O_NONBLOCK: a pipe's open would otherwise wait for a writer.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(path, fs::exists(path) ? "cannot open the shard" : "no such file");
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "expected a regular file (a token shard)");
  }
  m.bytes = static_cast<size_t>(st.st_size);
  if (m.bytes < kHeader + kFooter) {
    ::close(fd);
    m.bad("only " + std::to_string(m.bytes) + " bytes (truncated?)");
  }
  void* p = mmap(nullptr, m.bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) fail(path, "cannot map the shard");
  m.data = static_cast<const unsigned char*>(p);

  if (std::memcmp(m.data, kMagic, 8) != 0) m.bad("wrong magic (expected a file written by `loong tokenize`)");
  const auto version = get<uint32_t>(m.data + 8);
  if (version != kVersion)
    m.bad("format version " + std::to_string(version) + ", this build reads " + std::to_string(kVersion));
  m.text_vocab = static_cast<int>(get<uint32_t>(m.data + 16));
  m.video_vocab = static_cast<int>(get<uint32_t>(m.data + 20));
  const unsigned char* foot = m.data + m.bytes - kFooter;
  if (std::memcmp(foot + 20, kEnd, 8) != 0) m.bad("no end marker (truncated or still being written?)");
  m.samples = get<uint64_t>(foot);
  m.index_offset = get<uint64_t>(foot + 8);
  const uint32_t crc = get<uint32_t>(foot + 16);
  if (m.index_offset < kHeader || m.samples > m.bytes / kEntry ||
      m.index_offset + m.samples * kEntry != m.bytes - kFooter)
    m.bad("the index does not fit the file size");
  uLong actual = crc32(0L, Z_NULL, 0);
  for (size_t off = 0; off < m.bytes - kFooter;) {  // crc32 takes uInt lengths
    const size_t n = std::min<size_t>(m.bytes - kFooter - off, 1u << 30);
    actual = crc32(actual, m.data + off, static_cast<uInt>(n));
    off += n;
  }
  if (static_cast<uint32_t>(actual) != crc) m.bad("checksum mismatch (corrupt)");
  for (uint64_t i = 0; i < m.samples; ++i) {
    const unsigned char* e = m.data + m.index_offset + i * kEntry;
    const auto off = get<uint64_t>(e);
    const uint64_t text = get<uint32_t>(e + 8), t = get<uint32_t>(e + 12), h = get<uint32_t>(e + 16),
                   w = get<uint32_t>(e + 20), cap = get<uint32_t>(e + 24), kind = get<uint32_t>(e + 28);
    if (off < kHeader || off % 4 != 0 || t < 1 || h < 1 || w < 1 || kind > 1 ||
        off + (text + t * h * w) * 4 + cap > m.index_offset)
      m.bad("index entry " + std::to_string(i) + " is out of bounds");
  }
}

ShardReader::~ShardReader() = default;
ShardReader::ShardReader(ShardReader&&) noexcept = default;
ShardReader& ShardReader::operator=(ShardReader&&) noexcept = default;

int64_t ShardReader::size() const { return static_cast<int64_t>(impl_->samples); }
int ShardReader::text_vocab() const { return impl_->text_vocab; }
int ShardReader::video_vocab() const { return impl_->video_vocab; }
const std::string& ShardReader::path() const { return impl_->path; }

SampleView ShardReader::at(int64_t i) const {
  const auto& m = *impl_;
  if (i < 0 || i >= size()) fail(m.path, "sample " + std::to_string(i) + " out of range (" + std::to_string(size()) + ")");
  const unsigned char* e = m.data + m.index_offset + i * kEntry;
  const auto off = get<uint64_t>(e);
  SampleView v;
  v.text_len = get<uint32_t>(e + 8);
  v.frames = static_cast<int>(get<uint32_t>(e + 12));
  v.height = static_cast<int>(get<uint32_t>(e + 16));
  v.width = static_cast<int>(get<uint32_t>(e + 20));
  v.caption_len = get<uint32_t>(e + 24);
  v.kind = static_cast<SampleKind>(get<uint32_t>(e + 28));
  v.text = reinterpret_cast<const int32_t*>(m.data + off);
  v.video = v.text + v.text_len;
  v.caption_data = reinterpret_cast<const char*>(v.video + int64_t(v.frames) * v.height * v.width);
  return v;
}

std::vector<std::string> list_shards(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(path, "no such file or folder");
  if (!fs::is_directory(path, ec)) return {path};
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(path))
    if (e.is_regular_file() && e.path().extension() == ".loongshard") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  if (out.empty()) fail(path, "no .loongshard files here (make them with `loong tokenize`)");
  return out;
}

ShardSet::ShardSet(const std::string& path) : path_(path) {
  for (const auto& f : list_shards(path)) {
    readers_.emplace_back(f);
    const auto& r = readers_.back();
    if (readers_.size() == 1) {
      text_vocab_ = r.text_vocab();
      video_vocab_ = r.video_vocab();
    } else if (r.text_vocab() != text_vocab_ || r.video_vocab() != video_vocab_) {
      fail(f, "vocabulary sizes " + std::to_string(r.text_vocab()) + " text + " + std::to_string(r.video_vocab()) +
                  " video differ from " + readers_.front().path() + "'s " + std::to_string(text_vocab_) + " + " +
                  std::to_string(video_vocab_) + " (shards made with other tokenizers?)");
    }
    const int k = static_cast<int>(readers_.size()) - 1;
    for (int64_t i = 0; i < r.size(); ++i) where_.emplace_back(k, i);
  }
  if (where_.empty()) fail(path, "the shards hold no samples");
}

SampleView ShardSet::at(int64_t i) const {
  if (i < 0 || i >= size()) fail(path_, "sample " + std::to_string(i) + " out of range (" + std::to_string(size()) + ")");
  return readers_[where_[i].first].at(where_[i].second);
}

std::vector<int64_t> ShardSet::with_frames(int latent_frames) const {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < size(); ++i)
    if (at(i).frames >= latent_frames) out.push_back(i);
  return out;
}

std::vector<int64_t> ShardSet::images() const {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < size(); ++i)
    if (at(i).kind == SampleKind::Image) out.push_back(i);
  return out;
}

void ShardSet::check_vocab(int text_vocab, int video_vocab, const std::string& model_where) const {
  if (text_vocab != text_vocab_ || video_vocab != video_vocab_)
    fail(model_where, "the model's vocabulary (text_vocab " + std::to_string(text_vocab) + ", video_vocab " +
                          std::to_string(video_vocab) + ") does not match the shards in " + path_ + " (" +
                          std::to_string(text_vocab_) + " text pieces, " + std::to_string(video_vocab_) +
                          " video codes): set them from the tokenizers the shards were made with");
}

}  // namespace loong::lm
