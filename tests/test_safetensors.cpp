// safetensors: round trips for every dtype, Python-compatible bytes, and one
// distinct error for each way a file can be broken.
#include <cstring>

#include "loong/io/safetensors.h"
#include "test_util.h"

namespace st = loong::safetensors;
using loong::test::expect_error;
using loong::test::TempDir;

namespace {

// Builds a file: 8-byte little-endian header length, header text, data.
std::string file_bytes(const std::string& header, const std::string& data, int64_t claimed_len = -1) {
  uint64_t n = claimed_len >= 0 ? static_cast<uint64_t>(claimed_len) : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string corrupt(const TempDir& dir, const std::string& header, const std::string& data,
                    int64_t claimed_len = -1) {
  std::string p = dir / "broken.safetensors";
  loong::test::write_bytes(p, file_bytes(header, data, claimed_len));
  return p;
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir dir;
  torch::manual_seed(0);
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"f32", torch::randn({3, 5})},
      {"f16", torch::randn({4, 2}).to(torch::kHalf)},
      {"bf16", torch::randn({2, 3, 2}).to(torch::kBFloat16)},
      {"i64", torch::randint(-1000000, 1000000, {7}, torch::kLong)},
      {"i32", torch::randint(-1000, 1000, {2, 2}, torch::kInt)},
      {"u8", torch::randint(0, 256, {5, 1}, torch::kUInt8)},
      {"scalar", torch::tensor(3.5f)},
      {"empty", torch::zeros({0, 4})},
      {"layers.0.attention.wq.weight", torch::randn({8, 8}).t()},  // non-contiguous input
  };
  const std::string p = dir / "w.safetensors";
  st::save(p, tensors, {{"format", "pt"}});
  std::map<std::string, std::string> meta;
  auto loaded = st::load(p, &meta);
  ASSERT_EQ(loaded.size(), tensors.size());
  EXPECT_EQ(meta.at("format"), "pt");
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(loaded.count(name)) << name;
    EXPECT_EQ(loaded[name].scalar_type(), t.scalar_type()) << name;
    EXPECT_EQ(loaded[name].sizes(), t.sizes()) << name;
    EXPECT_TRUE(torch::equal(loaded[name], t)) << name;
  }
  // Nothing but the file itself is left in the folder (no temporary files).
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(Safetensors, BytesMatchPythonLayout) {
  TempDir dir;
  const std::string p = dir / "a.safetensors";
  st::save(p, {{"a", torch::tensor({1.0f, 2.0f})}, {"b", torch::tensor({7}, torch::kLong)}});
  const std::string bytes = loong::test::read_bytes(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u) << "the data section is 8-byte aligned, as Python writes it";
  EXPECT_EQ(bytes[8], '{');
  auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["a"]["dtype"], "F32");
  EXPECT_EQ(header["a"]["data_offsets"], nlohmann::json({0, 8}));
  EXPECT_EQ(header["b"]["data_offsets"], nlohmann::json({8, 16}));
  float a1;
  std::memcpy(&a1, bytes.data() + 8 + n + 4, 4);
  EXPECT_EQ(a1, 2.0f);

  // A file as Python's safetensors writes it (metadata first, space padding).
  std::string hdr = R"({"__metadata__":{"format":"pt"},"x":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})";
  hdr.append((8 - hdr.size() % 8) % 8, ' ');
  int32_t vals[2] = {-3, 42};
  const std::string q = dir / "py.safetensors";
  loong::test::write_bytes(q, file_bytes(hdr, std::string(reinterpret_cast<char*>(vals), 8)));
  auto x = st::load(q).at("x");
  EXPECT_EQ(x[0].item<int>(), -3);
  EXPECT_EQ(x[1].item<int>(), 42);
}

TEST(Safetensors, OverwriteIsAtomic) {
  TempDir dir;
  const std::string p = dir / "w.safetensors";
  st::save(p, {{"v", torch::ones({4})}});
  // A failing save (duplicate names) must leave the previous file intact.
  expect_error([&] { st::save(p, {{"v", torch::zeros({4})}, {"v", torch::zeros({4})}}); }, {p, "duplicate"});
  EXPECT_TRUE(torch::equal(st::load(p).at("v"), torch::ones({4})));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(Safetensors, CorruptFilesEachGiveADistinctError) {
  TempDir dir;
  const std::string f32x2 = R"("dtype":"F32","shape":[2])";
  const std::string eight(8, '\0');
  struct Case {
    const char* what;
    std::string header, data;
    int64_t claimed;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"header length too large", "{}", "", int64_t(200) * 1000 * 1000, "exceeds the limit"},
      {"header past end", "{}", "", 1000, "runs past the end"},
      {"not an object", "[1,2]", "", -1, "starting with '{'"},
      {"invalid json", "{\"a\":", "", -1, "not valid JSON"},
      {"number overflow", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,1e309]}})", eight, -1, "1e309"},
      {"duplicate names", "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]},\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]}}", eight, -1, "duplicate tensor name 'a'"},
      {"unknown dtype", R"({"a":{"dtype":"F99","shape":[2],"data_offsets":[0,8]}})", eight, -1, "unsupported dtype 'F99'"},
      {"missing dtype", R"({"a":{"shape":[2],"data_offsets":[0,8]}})", eight, -1, "missing key 'dtype'"},
      {"bad shape", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight, -1, "key 'shape'"},
      {"bad offsets", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", eight, -1, "key 'data_offsets'"},
      {"end before begin", R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", eight, -1, "is before begin"},
      {"outside file", "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,16]}}", eight, -1, "lie outside the file"},
      {"size mismatch", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight, -1, "x shape needs 12 bytes"},
      {"gap", "{\"a\":{" + f32x2 + ",\"data_offsets\":[8,16]}}", std::string(16, '\0'), -1, "gap in the data"},
      {"overlap", "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]},\"b\":{" + f32x2 + ",\"data_offsets\":[4,12]}}", std::string(12, '\0'), -1, "overlaps the previous tensor"},
      {"trailing bytes", "{\"a\":{" + f32x2 + ",\"data_offsets\":[0,8]}}", std::string(12, '\0'), -1, "4 trailing bytes"},
      {"metadata not strings", R"({"__metadata__":{"k":1}})", "", -1, "__metadata__ key 'k'"},
  };
  std::set<std::string> messages;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string p = corrupt(dir, c.header, c.data, c.claimed);
    expect_error([&] { st::load(p); }, {p, c.expect});
    try { st::read_header(p); } catch (const loong::Error& e) { messages.insert(e.what()); }
  }
  EXPECT_EQ(messages.size(), cases.size()) << "every corruption has its own message";

  const std::string tiny = dir / "tiny.safetensors";
  loong::test::write_bytes(tiny, "abc");
  expect_error([&] { st::load(tiny); }, {tiny, "too short"});
  expect_error([&] { st::load(dir / "missing.safetensors"); }, {"missing.safetensors", "cannot open"});
}
