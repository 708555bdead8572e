// Manifests: JSONL and WebVid-style CSV, path resolution, and errors that
// carry the file and line number.
#include "loong/data/manifest.h"
#include "test_util.h"

using loong::data::MediaKind;
using loong::test::expect_error;
using loong::test::TempDir;

TEST(Manifest, JsonlEntriesResolveAgainstTheManifestFolder) {
  TempDir dir;
  const std::string p = dir / "sets/m.jsonl";
  std::filesystem::create_directories(dir / "sets");
  loong::test::write_bytes(p,
      "{\"video\": \"clips/a.mp4\", \"caption\": \"a red bag\", \"start\": 1.5, \"end\": 4, \"truth\": \"a.json\"}\n"
      "\n"
      "{\"image\": \"/abs/b.png\", \"caption\": \"a blue coat\"}\r\n");
  auto m = loong::data::load_manifest(p);
  ASSERT_EQ(m.entries.size(), 2u);
  EXPECT_EQ(m.entries[0].kind, MediaKind::Video);
  EXPECT_EQ(m.entries[0].path, dir / "sets/clips/a.mp4");
  EXPECT_EQ(m.entries[0].start, 1.5);
  EXPECT_EQ(m.entries[0].end, 4);
  EXPECT_EQ(m.entries[0].extra["truth"], "a.json");
  EXPECT_EQ(m.entries[1].kind, MediaKind::Image);
  EXPECT_EQ(m.entries[1].path, "/abs/b.png");
  EXPECT_EQ(m.entries[1].line, 3);
  EXPECT_EQ(loong::data::where(m, m.entries[1]), p + ":3");
}

TEST(Manifest, MalformedLinesAreReportedWithLineNumbers) {
  TempDir dir;
  const std::string p = dir / "m.jsonl";
  loong::test::write_bytes(p,
      "{\"video\": \"a.mp4\", \"caption\": \"ok\"}\n"               // 1 ok
      "{\"video\": \"b.mp4\"}\n"                                    // 2 missing caption
      "{\"video\": \"c.mp4\", \"caption\": \"x\",}\n"               // 3 invalid JSON
      "{\"video\": \"d.mp4\", \"image\": \"d.png\", \"caption\": \"x\"}\n"  // 4 both
      "{\"video\": \"e.mp4\", \"caption\": 7}\n"                    // 5 wrong type
      "{\"video\": \"f.mp4\", \"caption\": \"x\", \"start\": 5, \"end\": 2}\n"  // 6 end <= start
      "{\"video\": \"https://host/g.mp4\", \"caption\": \"x\"}\n"   // 7 remote
      "[1, 2]\n"                                                    // 8 not an object
      "{\"image\": \"h.png\", \"caption\": \"x\", \"start\": 1}\n"  // 9 time on image
      "{\"video\": \"i.mp4\", \"caption\": \"x\", \"start\": 1e309}\n");  // 10 overflows a double
  auto m = loong::data::parse_manifest(p);
  ASSERT_EQ(m.entries.size(), 1u);
  ASSERT_EQ(m.errors.size(), 9u);
  const std::vector<std::pair<int, std::string>> expected = {
      {2, "missing key 'caption'"}, {3, "invalid JSON"}, {4, "exactly one of 'video' or 'image'"},
      {5, "key 'caption': expected a string, got number"}, {6, "'end' must be after 'start'"},
      {7, "remote URL"}, {8, "expected a JSON object"}, {9, "apply to videos"}, {10, "1e309"}};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(m.errors[i].rfind(p + ":" + std::to_string(expected[i].first) + ": ", 0), 0u) << m.errors[i];
    EXPECT_NE(m.errors[i].find(expected[i].second), std::string::npos) << m.errors[i];
  }
  expect_error([&] { loong::data::load_manifest(p); }, {p + ":2: missing key 'caption'", "and 8 more"});
}

TEST(Manifest, WebVidCsvWithQuotedCaptions) {
  TempDir dir;
  const std::string p = dir / "webvid.csv";
  loong::test::write_bytes(p,
      "videoid,contentUrl,duration,page_dir,name\n"
      "1,videos/1.mp4,PT00H00M10S,dir,\"a dog, running\"\n"
      "2,videos/2.mp4,PT00H00M12S,dir,\"a \"\"quoted\"\" line\nover two lines\"\n"
      "3,still.PNG,PT0S,dir,plain\n");
  auto m = loong::data::load_manifest(p);
  ASSERT_EQ(m.entries.size(), 3u);
  EXPECT_EQ(m.entries[0].caption, "a dog, running");
  EXPECT_EQ(m.entries[0].path, dir / "videos/1.mp4");
  EXPECT_EQ(m.entries[0].extra["videoid"], "1");
  EXPECT_EQ(m.entries[1].caption, "a \"quoted\" line\nover two lines");
  EXPECT_EQ(m.entries[2].line, 5);  // the quoted newline counts
  EXPECT_EQ(m.entries[2].kind, MediaKind::Image);

  // A 'path' column wins over contentUrl (the URL of the original download).
  const std::string q = dir / "dl.csv";
  loong::test::write_bytes(q, "contentUrl,path,caption,start,end\nhttps://x/1.mp4,local/1.mp4,cap,0.5,3\n");
  auto n = loong::data::load_manifest(q);
  EXPECT_EQ(n.entries[0].path, dir / "local/1.mp4");
  EXPECT_EQ(n.entries[0].start, 0.5);
  EXPECT_EQ(n.entries[0].end, 3);
}

TEST(Manifest, CsvErrors) {
  TempDir dir;
  auto write = [&](const std::string& name, const std::string& text) {
    loong::test::write_bytes(dir / name, text);
    return dir / name;
  };
  expect_error([&] { loong::data::load_manifest(write("a.csv", "file,caption\nx.mp4,c\n")); },
               {"a.csv:1", "'path' or 'contentUrl'"});
  expect_error([&] { loong::data::load_manifest(write("b.csv", "path,text\nx.mp4,c\n")); },
               {"b.csv:1", "'caption' or 'name'"});
  expect_error([&] { loong::data::load_manifest(write("c.csv", "path,caption\nx.mp4,c\ny.mp4\n")); },
               {"c.csv:3", "expected 2 fields"});
  expect_error([&] { loong::data::load_manifest(write("d.csv", "path,caption,start\nx.mp4,c,soon\n")); },
               {"d.csv:2", "column 'start'", "'soon'"});
  expect_error([&] { loong::data::load_manifest(write("e.csv", "path,caption\nx.mp4,\"open\n")); },
               {"e.csv:2", "unterminated"});
  expect_error([&] { loong::data::load_manifest(write("f.csv", "path,caption\nhttp://x/y.mp4,c\n")); },
               {"f.csv:2", "remote URL"});
  expect_error([&] { loong::data::load_manifest(write("g.jsonl", "\n\n")); }, {"g.jsonl", "no entries"});
  expect_error([&] { loong::data::load_manifest(write("h.txt", "x")); }, {"h.txt", "expected .jsonl or .csv"});
  expect_error([&] { loong::data::load_manifest(dir / "none.jsonl"); }, {"none.jsonl", "no such file"});
}
