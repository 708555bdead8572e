// bench_serve: generation through `loong serve` against `loong generate`,
// the same model and settings, runs alternating in one process tree.
//
//   bench_serve [--loong build/bin/loong] [--model models/default] [--seconds 10] [--runs 5]
//
// Each run makes one video each way: `loong generate` as a process, and one
// job submitted over HTTP to a `loong serve` started once (its model stays
// loaded), its video read as it is streamed until the job ends. Both report the same timings (the library's
// report: prefill, decode, tokenizer, write); the target is the server's
// generation time within 5% of the CLI's (ratio <= 1.05), medians. Wall
// times are printed too: the CLI's include starting the process and loading
// the model, the server's the HTTP round trips.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "bench_common.h"
#include "loong/core/json_util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// `loong serve` as a child process; its first stdout line names the address.
struct ServerProcess {
  pid_t pid = -1;
  int port = 0;
  ServerProcess(const std::string& loong, const std::string& model, const std::string& out) {
    int fds[2];
    if (pipe(fds) != 0) throw std::runtime_error("pipe");
    pid = fork();
    if (pid == 0) {
      dup2(fds[1], 1);
      close(fds[0]);
      execl(loong.c_str(), loong.c_str(), "serve", "--model", model.c_str(), "--port", "0", "--out", out.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    std::string line;
    char c;
    while (read(fds[0], &c, 1) == 1 && c != '\n') line += c;
    close(fds[0]);
    const auto colon = line.find(':', line.find("127.0.0.1"));
    if (colon == std::string::npos) throw std::runtime_error("loong serve did not start: " + line);
    port = std::atoi(line.c_str() + colon + 1);
  }
  ~ServerProcess() {
    kill(pid, SIGTERM);
    waitpid(pid, nullptr, 0);
  }
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("generation through `loong serve` against `loong generate`");
  std::string loong = "build/bin/loong", model = "models/default", prompt = "a red sneaker moving to the right on a black background";
  double seconds = 10;
  int runs = 5;
  app.add_option("--loong", loong, "The loong binary");
  app.add_option("--model", model, "Model bundle");
  app.add_option("--prompt", prompt, "Prompt");
  app.add_option("--seconds", seconds, "Video length");
  app.add_option("--runs", runs, "Runs each way, alternating; medians are reported")->check(CLI::Range(1, 100));
  CLI11_PARSE(app, argc, argv);

  const fs::path work = fs::temp_directory_path() / ("bench_serve_" + std::to_string(getpid()));
  fs::create_directories(work);
  ServerProcess server(loong, model, (work / "studio").string());
  httplib::Client client("127.0.0.1", server.port);
  client.set_read_timeout(600);

  std::vector<double> cli_gen, cli_wall, cli_rate, srv_gen, srv_wall, srv_rate;
  for (int i = 0; i < runs; ++i) {
    // loong generate
    const std::string report = (work / ("cli-" + std::to_string(i) + ".json")).string();
    const std::string cmd = loong + " generate --model '" + model + "' --prompt '" + prompt + "' --seconds " +
                            std::to_string(seconds) + " --out " + (work / ("cli-" + std::to_string(i) + ".mp4")).string() +
                            " --report " + report + " --quiet > /dev/null";
    double t0 = now_s();
    if (std::system(cmd.c_str()) != 0) {
      std::cerr << "bench_serve: failed: " << cmd << "\n";
      return 1;
    }
    cli_wall.push_back(now_s() - t0);
    const json r = loong::read_json_file(report);
    cli_gen.push_back(r["timings_s"]["total"].get<double>());
    cli_rate.push_back(r["decode_tokens_per_s"].get<double>());

    // the same through the server
    t0 = now_s();
    auto res = client.Post("/api/jobs", json{{"prompt", prompt}, {"seconds", seconds}}.dump(), "application/json");
    if (!res || res->status != 201) {
      std::cerr << "bench_serve: submit failed: " << (res ? res->body : "no answer") << "\n";
      return 1;
    }
    const std::string id = json::parse(res->body)["id"];
    // Waits by reading the video as it is made (the stream ends with the
    // job), as a watching client does; then asks for the job once.
    size_t streamed = 0;
    client.Get(("/api/jobs/" + id + "/video").c_str(), [&](const char*, size_t n) {
      streamed += n;
      return true;
    });
    json job;
    for (;;) {
      auto st = client.Get(("/api/jobs/" + id).c_str());
      job = json::parse(st->body);
      if (job["state"] != "queued" && job["state"] != "running") break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (streamed == 0) {
      std::cerr << "bench_serve: no video streamed for job " << id << "\n";
      return 1;
    }
    if (job["state"] != "done") {
      std::cerr << "bench_serve: job " << job.dump() << "\n";
      return 1;
    }
    srv_wall.push_back(now_s() - t0);
    srv_gen.push_back(job["report"]["timings_s"]["total"].get<double>());
    srv_rate.push_back(job["report"]["decode_tokens_per_s"].get<double>());
  }
  using loong::bench::median;
  const json out = {
      {"bench", "serve"},
      {"model", model},
      {"seconds", seconds},
      {"runs", runs},
      {"threads", std::thread::hardware_concurrency()},
      {"generate", {{"generation_s", median(cli_gen)}, {"wall_s", median(cli_wall)}, {"codes_per_s", median(cli_rate)}}},
      {"serve", {{"generation_s", median(srv_gen)}, {"wall_s", median(srv_wall)}, {"codes_per_s", median(srv_rate)}}},
      {"generation_time_ratio", median(srv_gen) / median(cli_gen)},
      {"codes_per_s_ratio", median(srv_rate) / median(cli_rate)},
      {"wall_time_ratio", median(srv_wall) / median(cli_wall)},
      {"target", "generation_time_ratio <= 1.05"}};
  std::cout << out.dump(2) << std::endl;
  fs::remove_all(work);
  return 0;
}
