// `loong serve` over HTTP: the studio in this process on an ephemeral
// loopback port, cpp-httplib's client, a tiny random-weight bundle whose
// clips are 17 frames (10 s = 5 clips).
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "loong/core/atomic_file.h"
#include "loong/gen/generate.h"
#include "loong/io/video.h"
#include "loong/serve/request.h"
#include "loong/serve/studio.h"
#include "test_util.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using loong::test::TempDir;

namespace {

// One bundle per test process (`loong model init` trains a text tokenizer),
// removed at exit.
struct SharedBundle {
  fs::path dir = fs::temp_directory_path() / ("loong_test_serve_bundle_" + std::to_string(::getpid()));
  ~SharedBundle() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

const std::string& tiny_bundle() {
  static SharedBundle shared;
  static std::string path;
  if (path.empty()) {
    path = (shared.dir / "model").string();
    fs::remove_all(shared.dir);
    const auto r = loong::test::run("model init --out " + path);
    if (r.code != 0) ADD_FAILURE() << r.err;
    json info = json::parse(loong::test::read_bytes(path + "/loong.json"));
    info["clip_frames"] = 17;
    loong::test::write_bytes(path + "/loong.json", info.dump());
  }
  return path;
}

struct Served {
  loong::serve::Studio studio;
  std::thread thread;
  int port;
  httplib::Client client;

  explicit Served(loong::serve::ServeOptions o)
      : studio(prepared(std::move(o))), port(studio.bind()), client("127.0.0.1", port) {
    thread = std::thread([this] { studio.run(); });
    client.set_read_timeout(60);
  }
  ~Served() {
    studio.stop();
    thread.join();
  }
  static loong::serve::ServeOptions prepared(loong::serve::ServeOptions o) {
    o.model = tiny_bundle();
    o.port = 0;
    return o;
  }

  json post(const std::string& path, const json& body, int* status = nullptr) {
    auto res = client.Post(path.c_str(), body.dump(), "application/json");
    EXPECT_TRUE(res) << path;
    if (!res) return {};
    if (status) *status = res->status;
    return json::parse(res->body);
  }
  json get(const std::string& path, int* status = nullptr) {
    auto res = client.Get(path.c_str());
    EXPECT_TRUE(res) << path;
    if (!res) return {};
    if (status) *status = res->status;
    return json::parse(res->body);
  }
  std::string submit(const json& body) {
    int status = 0;
    json j = post("/api/jobs", body, &status);
    EXPECT_EQ(status, 201) << j.dump();
    return j.value("id", "");
  }
  json wait(const std::string& id) {  // until it ends
    for (int i = 0; i < 1200; ++i) {
      json j = get("/api/jobs/" + id);
      const std::string s = j.value("state", "");
      if (s != "queued" && s != "running") return j;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "job " << id << " did not finish";
    return {};
  }
  json wait_running(const std::string& id) {
    for (int i = 0; i < 1200; ++i) {
      json j = get("/api/jobs/" + id);
      if (j.value("state", "") != "queued") return j;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "job " << id << " did not start";
    return {};
  }
};

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// The message the library gives `loong generate` for the same value.
std::string generate_message(const std::function<void(loong::gen::GenerateRequest&)>& set) {
  loong::gen::GenerateRequest r;
  set(r);
  try {
    loong::gen::validate_settings(r);
  } catch (const loong::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Serve, FieldOfError) {
  EXPECT_EQ(loong::serve::field_of_error("--top-k: must be >= 1"), "top_k");
  EXPECT_EQ(loong::serve::field_of_error("--prompts:3: times must increase"), "prompts");
  EXPECT_EQ(loong::serve::field_of_error("--init-video: no result"), "continue_from");
  EXPECT_EQ(loong::serve::field_of_error("model/loong.json: bad"), "");
}

// Submit, stream while it is made, and find it in the gallery: the streamed
// bytes are the file's, and the file is the video asked for.
TEST(Serve, SubmitStreamAndGallery) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  loong::serve::ServeOptions o;
  o.out = dir / "studio";
  o.clip_delay_s = 0.2;
  Served s(o);
  const json info = s.get("/api/info");
  EXPECT_EQ(info["model"]["clip_frames"], 17);
  EXPECT_EQ(info["defaults"]["top_k"], 50);

  const std::string id = s.submit({{"prompt", "a red sneaker"}, {"seconds", 10}, {"seed", 3}});
  ASSERT_FALSE(id.empty());
  std::string streamed;
  httplib::Client reader("127.0.0.1", s.port);
  reader.set_read_timeout(60);
  auto res = reader.Get(("/api/jobs/" + id + "/video").c_str(), [&](const char* d, size_t n) {
    streamed.append(d, n);
    return true;
  });
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  const json j = s.wait(id);
  ASSERT_EQ(j["state"], "done") << j.dump();
  EXPECT_EQ(j["clips"], 5);
  EXPECT_EQ(j["clips_written"], 5);
  EXPECT_GT(j["first_clip_ms"].get<double>(), j["started_ms"].get<double>());
  EXPECT_FALSE(j["report"].contains("out")) << "no server paths in answers";

  const fs::path result = fs::path(o.out) / id;
  EXPECT_EQ(entries(o.out), std::vector<std::string>{id}) << "no temporary folder left";
  EXPECT_EQ(entries(result), (std::vector<std::string>{"job.json", "report.json", "sheet.png", "video.mp4"}));
  const std::string file = loong::test::read_bytes((result / "video.mp4").string());
  EXPECT_EQ(streamed.size(), file.size());
  EXPECT_TRUE(streamed == file) << "the stream is the file, byte for byte";
  EXPECT_EQ(loong::video::read((result / "video.mp4").string()).frames.size(0), 65);
  const json report = json::parse(loong::test::read_bytes((result / "report.json").string()));
  EXPECT_EQ(report["seed"], 3);
  EXPECT_EQ(report["out"], (result / "video.mp4").string());

  const json gallery = s.get("/api/results");
  ASSERT_EQ(gallery["results"].size(), 1u);
  EXPECT_EQ(gallery["results"][0]["name"], id);
  EXPECT_EQ(gallery["results"][0]["request"]["prompt"], "a red sneaker");
  auto got = s.client.Get(("/results/" + id + "/video.mp4").c_str());
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->get_header_value("Content-Type"), "video/mp4");
  EXPECT_TRUE(got->body == file);
  auto page = s.client.Get("/");
  ASSERT_TRUE(page);
  EXPECT_NE(page->body.find("loong studio"), std::string::npos);

  // Continue it: the new video starts from the old one's last frames.
  const std::string next = s.submit({{"prompt", "a red sneaker"}, {"seconds", 5}, {"continue_from", id}});
  const json k = s.wait(next);
  EXPECT_EQ(k["state"], "done") << k.dump();
  const json meta = json::parse(loong::test::read_bytes((fs::path(o.out) / next / "job.json").string()));
  EXPECT_EQ(meta["continue_from"], id);
}

// Every field is checked by `loong generate`'s code and answered with its
// message and the field's name; nothing is queued.
TEST(Serve, BadFieldsGetTheCliMessage) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  loong::serve::ServeOptions o;
  o.out = dir / "studio";
  o.max_seconds = 120;
  Served s(o);
  struct Case {
    json body;
    std::string field, piece;
  };
  const std::vector<Case> cases = {
      {{{"prompt", "x"}, {"top_k", 0}},
       "top_k",
       generate_message([](auto& r) { r.sampling.top_k = 0; })},
      {{{"prompt", "x"}, {"temperature", -1}},
       "temperature",
       generate_message([](auto& r) { r.sampling.temperature = -1; })},
      {{{"prompt", "x"}, {"top_p", 1.5}}, "top_p", generate_message([](auto& r) { r.sampling.top_p = 1.5; })},
      {{{"prompt", "x"}, {"cfg", -2}}, "cfg", generate_message([](auto& r) { r.sampling.cfg_scale = -2; })},
      {{{"prompt", "x"}, {"first_clip_cfg", -1}},
       "first_clip_cfg",
       generate_message([](auto& r) {
         r.given.first_clip_cfg = true;
         r.first_clip_cfg = -1;
       })},
      {{{"prompt", "x"}, {"seconds", 0}}, "seconds", generate_message([](auto& r) { r.seconds = 0; })},
      {{{"prompt", "x"}, {"upscale_method", "nearest"}},
       "upscale_method",
       generate_message([](auto& r) { r.upscale_method = "nearest"; })},
      {{{"prompt", "x"}, {"seconds", "ten"}}, "seconds", "--seconds: expected a number, got \"ten\""},
      {{{"prompt", "x"}, {"seconds", 500}}, "seconds", "at most 120 s"},
      {{{"prompt", "x"}, {"seed", 1.5}}, "seed", "--seed: expected a whole number"},
      {{{"prompt", "x"}, {"upscale", 64}}, "upscale", "1 to 8"},
      {{{"prompt", "   "}}, "prompt", "--prompt"},
      {{{"seconds", 3}}, "prompt", "required"},
      {{{"prompt", "x"}, {"prompts", "0: y"}}, "prompt", "not both"},
      {{{"prompts", "0: a\n0: b"}}, "prompts", "--prompts:2: times must increase"},
      {{{"prompt", std::string(3000, 'a')}}, "prompt", "at most 2000 characters"},
      {{{"prompt", "x"}, {"colour", "red"}}, "", "unknown field 'colour'"},
      {json::array({1, 2}), "", "expected a JSON object"},
  };
  for (const auto& c : cases) {
    ASSERT_FALSE(c.piece.empty());
    int status = 0;
    const json j = s.post("/api/jobs", c.body, &status);
    EXPECT_EQ(status, 400) << c.body.dump();
    EXPECT_EQ(j.value("field", "?"), c.field) << j.dump();
    EXPECT_NE(j.value("error", "").find(c.piece), std::string::npos) << j.dump() << " wants " << c.piece;
    EXPECT_EQ(j.value("error", "").find('\n'), std::string::npos) << "one line";
  }
  auto notjson = s.client.Post("/api/jobs", "{prompt:", "application/json");
  ASSERT_TRUE(notjson);
  EXPECT_EQ(notjson->status, 400);
  EXPECT_NE(notjson->body.find("not JSON"), std::string::npos);
  auto big = s.client.Post("/api/jobs", std::string(100 * 1024, ' '), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  EXPECT_TRUE(s.get("/api/jobs")["jobs"].empty()) << "nothing was queued";
}

// Only names the server made reach the file system, inside --out.
TEST(Serve, PathsFromRequestsStayInside) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  loong::serve::ServeOptions o;
  o.out = dir / "studio";
  Served s(o);
  fs::create_directories(dir / "outside");
  loong::test::write_bytes(dir / "outside/video.mp4", "secret");
  loong::test::write_bytes(dir / "outside/report.json", "{\"secret\": 1}");
  fs::create_directory_symlink(dir.path() / "outside", fs::path(o.out) / "20260101-000000-1");
  for (const std::string bad : {"../outside", "/etc", "20260101-000000-1", "20260101-000000-2", "a/../b", ""}) {
    int status = 0;
    const json j = s.post("/api/jobs", {{"prompt", "x"}, {"continue_from", bad}}, &status);
    if (bad.empty()) continue;  // "" = no continuation
    EXPECT_EQ(status, 400) << bad;
    EXPECT_EQ(j.value("field", ""), "continue_from") << j.dump();
  }
  for (const std::string path : {"/results/20260101-000000-1/video.mp4", "/results/20260101-000000-1/report.json",
                                 "/results/..%2Foutside/video.mp4", "/results/../outside/video.mp4",
                                 "/results/20260101-000000-1/..%2F..%2Fetc%2Fpasswd", "/results/x/%2Fetc%2Fpasswd"}) {
    auto res = s.client.Get(path.c_str());
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path;
    EXPECT_EQ(res->body.find("secret"), std::string::npos) << path;
  }
  EXPECT_TRUE(s.get("/api/results")["results"].empty()) << "a symlink is not a result";
}

TEST(Serve, TokenRequiredOnEveryRequest) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  loong::serve::ServeOptions o;
  o.out = dir / "studio";
  o.token = "s3cret";
  Served s(o);
  for (const char* path : {"/", "/api/info", "/api/jobs", "/api/results", "/results/20260101-000000-1/video.mp4"}) {
    auto res = s.client.Get(path);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 401) << path;
  }
  auto post = s.client.Post("/api/jobs", R"({"prompt": "x"})", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 401);
  auto wrong = s.client.Get("/api/info", {{"Authorization", "Bearer s3creT"}});
  EXPECT_EQ(wrong->status, 401);
  auto header = s.client.Get("/api/info", {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(header->status, 200);
  auto query = s.client.Get("/api/info?token=s3cret");
  EXPECT_EQ(query->status, 200);
  EXPECT_NE(s.studio.url().find("?token=s3cret"), std::string::npos);
}

// One job at a time, the rest in order; cancelling frees the place; a full
// queue answers 429; a cancelled job leaves nothing.
TEST(Serve, QueueOrderCancelAndLimit) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  loong::serve::ServeOptions o;
  o.out = dir / "studio";
  o.max_queue = 2;
  o.clip_delay_s = 0.3;
  Served s(o);
  const std::string a = s.submit({{"prompt", "a red sneaker"}, {"seconds", 10}});
  EXPECT_EQ(s.wait_running(a)["state"], "running");
  const std::string b = s.submit({{"prompt", "a blue shirt"}, {"seconds", 3}});
  const std::string c = s.submit({{"prompt", "a green bag"}, {"seconds", 3}});
  EXPECT_EQ(s.get("/api/jobs/" + b)["position"], 1);
  EXPECT_EQ(s.get("/api/jobs/" + c)["position"], 2);
  int status = 0;
  const json full = s.post("/api/jobs", {{"prompt", "one too many"}}, &status);
  EXPECT_EQ(status, 429) << full.dump();
  const json list = s.get("/api/jobs")["jobs"];
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0]["id"], a);
  EXPECT_EQ(list[1]["id"], b);
  EXPECT_EQ(list[2]["id"], c);

  EXPECT_EQ(s.post("/api/jobs/" + b + "/cancel", json::object())["state"], "cancelled");
  EXPECT_EQ(s.get("/api/jobs/" + c)["position"], 1) << "the cancelled job's place is freed";
  s.post("/api/jobs/" + a + "/cancel", json::object());
  EXPECT_EQ(s.wait(a)["state"], "cancelled");
  const json jc = s.wait(c);
  EXPECT_EQ(jc["state"], "done") << jc.dump();
  EXPECT_FALSE(s.get("/api/jobs/" + b).contains("started_ms")) << "a job cancelled in the queue never runs";
  EXPECT_EQ(entries(o.out), std::vector<std::string>{c}) << "only the finished result, no temporaries";
  int missing = 0;
  s.get("/api/jobs/no-such-job", &missing);
  EXPECT_EQ(missing, 404);
}

// A client that leaves mid-stream, a failed job and concurrent clients: the
// server carries on with the next job each time.
TEST(Serve, SurvivesDisconnectsFailuresAndConcurrentClients) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  loong::serve::ServeOptions o;
  o.out = dir / "studio";
  o.clip_delay_s = 0.1;
  Served s(o);
  const std::string first = s.submit({{"prompt", "a red sneaker"}, {"seconds", 10}});
  {
    httplib::Client reader("127.0.0.1", s.port);
    size_t got = 0;
    auto res = reader.Get(("/api/jobs/" + first + "/video").c_str(), [&](const char*, size_t n) {
      got += n;
      return false;  // hang up after the first chunk
    });
    EXPECT_GT(got, 0u);
  }
  EXPECT_EQ(s.wait(first)["state"], "done");

  // Fails when it runs: the video it continues is gone by then.
  const std::string blocker = s.submit({{"prompt", "a red sneaker"}, {"seconds", 10}});
  const std::string doomed = s.submit({{"prompt", "x"}, {"seconds", 3}, {"continue_from", first}});
  fs::remove(fs::path(o.out) / first / "video.mp4");
  EXPECT_EQ(s.wait(blocker)["state"], "done");
  const json d = s.wait(doomed);
  EXPECT_EQ(d["state"], "failed");
  EXPECT_EQ(d["field"], "continue_from") << d.dump();

  std::vector<std::thread> clients;
  std::vector<std::string> states(4);
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", s.port);
      c.set_read_timeout(60);
      auto res = c.Post("/api/jobs", json{{"prompt", "a red sneaker"}, {"seconds", 2}, {"seed", i}}.dump(),
                        "application/json");
      if (!res || res->status != 201) return;
      const std::string id = json::parse(res->body)["id"];
      for (int k = 0; k < 1200; ++k) {
        auto st = c.Get(("/api/jobs/" + id).c_str());
        if (!st) return;
        const std::string state = json::parse(st->body)["state"];
        if (state == "done" || state == "failed" || state == "cancelled") {
          states[i] = state;
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
      }
    });
  for (auto& t : clients) t.join();
  for (int i = 0; i < 4; ++i) EXPECT_EQ(states[i], "done") << i;
  EXPECT_EQ(s.get("/api/results")["results"].size(), 5u);
}

// A killed server's temporary folder is removed by the next one on --out.
TEST(Serve, RemovesADeadServersTemporaries) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  const fs::path out = dir / "studio";
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);  // a PID that is gone
  const std::string host = loong::host_tag();  // host name and PID namespace, as the server names its folders
  const fs::path dead = out / (".job-" + host + "-" + std::to_string(child) + "-20260101-000000-1");
  const fs::path alive = out / (".job-" + host + "-1-20260101-000000-2");  // PID 1 is running
  fs::create_directories(dead);
  fs::create_directories(alive);
  loong::serve::ServeOptions o;
  o.out = out.string();
  Served s(o);
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive));
}

// The command: prints its address, answers, and stops cleanly on SIGTERM
// (exit 0); a bad model or port is one line and a non-zero exit; another
// host than loopback is warned about.
TEST(Serve, CommandStartsAnswersAndStops) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  const auto bad = loong::test::run("serve --model " + (dir / "nothing") + " --out " + (dir / "s"));
  loong::test::expect_one_line_error(bad, 1, "no such model folder");
  const auto port = loong::test::run("serve --model " + tiny_bundle() + " --port 70000 --out " + (dir / "s"));
  EXPECT_NE(port.code, 0);
  EXPECT_NE(port.err.find("--port"), std::string::npos) << port.err;

  for (const std::string host : {"127.0.0.1", "0.0.0.0"}) {
    int out[2], err[2];
    ASSERT_EQ(pipe(out), 0);
    ASSERT_EQ(pipe(err), 0);
    const std::string studio = dir / ("studio-" + host);
    const pid_t pid = fork();
    if (pid == 0) {
      dup2(out[1], 1);
      dup2(err[1], 2);
      execl(LOONG_CLI_PATH, LOONG_CLI_PATH, "serve", "--model", tiny_bundle().c_str(), "--port", "0", "--host",
            host.c_str(), "--out", studio.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(out[1]);
    close(err[1]);
    std::string line;
    char c;
    while (read(out[0], &c, 1) == 1 && c != '\n') line += c;
    const auto at = line.find("http://" + host + ":");
    ASSERT_NE(at, std::string::npos) << line;
    const int p = std::atoi(line.c_str() + at + 8 + host.size());
    httplib::Client client("127.0.0.1", p);
    auto info = client.Get("/api/info");
    ASSERT_TRUE(info) << line;
    EXPECT_EQ(info->status, 200);
    EXPECT_TRUE(fs::is_directory(studio));
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    std::string errs;
    while (read(err[0], &c, 1) == 1) errs += c;
    close(out[0]);
    close(err[0]);
    EXPECT_EQ(errs.find("warning: serving on") != std::string::npos, host != "127.0.0.1") << errs;
  }
}

// Pages of other sites, through the user's browser: another Origin, a form
// post, a rebound DNS name. And a finished job cannot be cancelled.
TEST(Serve, OtherSitesAreRefused) {
  LOONG_NEEDS_TEXT_TOKENIZER();
  TempDir dir;
  loong::serve::ServeOptions o;
  o.out = dir / "studio";
  Served s(o);
  const std::string body = R"({"prompt": "a red sneaker", "seconds": 1})";
  auto cross = s.client.Post("/api/jobs", {{"Origin", "http://evil.example"}}, body, "application/json");
  ASSERT_TRUE(cross);
  EXPECT_EQ(cross->status, 403);
  auto form = s.client.Post("/api/jobs", body, "application/x-www-form-urlencoded");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 415);
  auto rebound = s.client.Get("/api/info", {{"Host", "evil.example:8080"}});
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 403);
  auto same = s.client.Get("/api/info", {{"Origin", "http://127.0.0.1:" + std::to_string(s.port)}});
  ASSERT_TRUE(same);
  EXPECT_EQ(same->status, 200) << "the page's own origin";
  EXPECT_TRUE(s.get("/api/jobs")["jobs"].empty());
  const std::string id = s.submit(json::parse(body));
  EXPECT_EQ(s.wait(id)["state"], "done");
  int status = 0;
  s.post("/api/jobs/" + id + "/cancel", json::object(), &status);
  EXPECT_EQ(status, 409);
}
