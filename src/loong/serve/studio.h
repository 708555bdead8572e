// `loong serve`: a local web studio over one loaded model. A page to write a
// prompt or a story and watch the video grow clip by clip, a queue shared by
// every tab and client (one generation at a time), a gallery of results, and
// the JSON API the page uses (docs/serve.md).
//
// The HTTP layer is cpp-httplib (Debian's libcpp-httplib); generation is
// gen::generate_video, the same function `loong generate` calls, with the
// request's fields checked by the same code as the CLI's flags.
//
// Results: OUT/NAME/{video.mp4, sheet.png, report.json, job.json}. A job
// writes into OUT/.job-PID-NAME and renames it to OUT/NAME when complete, so
// the gallery never shows a half-written result; a cancelled or failed job's
// folder is removed, and one a killed server left behind is removed by the
// next server that starts on OUT.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

namespace loong::serve {

struct ServeOptions {
  std::string model;             // bundle folder; "" = gen::default_model_dir()
  std::string host = "127.0.0.1";
  int port = 8080;               // 0 = any free port (tests)
  std::string out = "out/studio";
  std::string token;             // "" = none; else required on every request
  c10::Device device = c10::Device("cpu");
  size_t max_queue = 16;         // jobs waiting behind the running one; more get 429
  double max_seconds = 600;      // longest video a request may ask for
  size_t max_prompt_chars = 2000;  // a prompt, or a whole story
  size_t max_body_bytes = 64 * 1024;
  int max_upscale = 8;
  size_t max_streams = 32;       // clients reading a job's video at once; more get 503
  // Test hook (LOONG_TEST_CLIP_DELAY_MS): a pause after each clip, so that a
  // tiny model's job lasts long enough to watch and cancel.
  double clip_delay_s = 0;
};

class Studio {
 public:
  // Loads the model and prepares OUT (created if missing; stale job folders
  // of dead servers removed). Throws loong::Error for a bad model or OUT.
  explicit Studio(ServeOptions options);
  ~Studio();  // stop()
  Studio(const Studio&) = delete;
  Studio& operator=(const Studio&) = delete;

  // Binds host:port; returns the port (the chosen one for port 0).
  // Throws loong::Error when the address cannot be bound.
  int bind();
  // Serves until stop() (from another thread or a signal handler's thread).
  void run();
  // Cancels the running job, drops the queue, ends open streams and run().
  void stop();

  std::string url() const;                  // http://host:port/
  const nlohmann::json& info() const;       // GET /api/info

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace loong::serve
