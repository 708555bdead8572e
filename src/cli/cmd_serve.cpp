// loong serve: the web studio (serve/studio.h, docs/serve.md).
#include <pthread.h>
#include <signal.h>

#include <csignal>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "loong/core/error.h"
#include "loong/core/runtime.h"
#include "loong/serve/studio.h"

namespace loong::cli {

namespace {

const char* const kApi = R"(
HTTP API (JSON; the page uses it too; docs/serve.md has examples):
  GET  /api/info                 the model, its default settings, this server's limits
  POST /api/jobs                 submit {"prompt": TEXT} or {"prompts": "SECONDS: prompt\n..."} with optional
                                 seconds, seed, cfg, first_clip_cfg, top_k, top_p, temperature, upscale,
                                 upscale_method, continue_from (a result's name): 201 and the job; 400
                                 {"error", "field"} for a bad field (the message `loong generate` gives);
                                 429 when the queue is full
  GET  /api/jobs                 the running job, the queue in order, recent jobs
  GET  /api/jobs/ID              state (queued + position, running + progress, done + report, failed + error)
  GET  /api/jobs/ID/video        the video as it is made: fragmented MP4, streamed clip by clip until the end
  POST /api/jobs/ID/cancel       cancel a queued or running job (its files are removed)
  GET  /api/results              the gallery: finished results in --out, newest first
  GET  /results/NAME/FILE        video.mp4, sheet.png, report.json or job.json of a result (?download=1)
With --token, every request needs 'Authorization: Bearer TOKEN' or ?token=TOKEN.)";

}  // namespace

void add_serve_command(CLI::App& app, Globals& g) {
  struct Args {
    serve::ServeOptions o;
    std::string device = "cpu";
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("serve", "A web studio: generate in the browser, watch the video grow, keep a gallery");
  cmd->footer(kApi);
  cmd->add_option("--model", a->o.model,
                  "Model bundle folder; default: the repository's models/default, or $LOONG_MODEL");
  cmd->add_option("--host", a->o.host,
                  "Address to listen on; anything but 127.0.0.1/localhost/::1 lets other machines in (use --token)")
      ->capture_default_str();
  cmd->add_option("--port", a->o.port, "Port (0: any free one)")->capture_default_str();
  cmd->add_option("--out", a->o.out, "Folder of the results (the gallery)")->capture_default_str();
  cmd->add_option("--token", a->o.token, "Require this token on every request");
  cmd->add_option("--device", a->device, "cpu or cuda[:N]");
  cmd->add_option("--max-queue", a->o.max_queue, "Jobs that may wait behind the running one (more get HTTP 429)")
      ->capture_default_str()
      ->check(CLI::Range(1, 10000));
  cmd->add_option("--max-seconds", a->o.max_seconds, "Longest video a request may ask for")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  cmd->callback(command(g, [a] {
    a->o.device = parse_device(a->device);
    if (const char* d = std::getenv("LOONG_TEST_CLIP_DELAY_MS")) a->o.clip_delay_s = std::atof(d) / 1000;
    const std::string& h = a->o.host;
    const bool local = h == "127.0.0.1" || h == "localhost" || h == "::1";
    if (!local)
      std::fprintf(stderr, "loong: warning: serving on %s: anyone who can reach this machine can generate videos and "
                           "read the gallery%s\n",
                   h.c_str(), a->o.token.empty() ? " (no --token given)" : "");

    // SIGINT/SIGTERM end the server cleanly (the running job is cancelled,
    // its files removed): blocked here, before any thread starts, and taken
    // by one thread with sigwait.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);  // a client that leaves mid-stream is the stream's error, not ours

    serve::Studio studio(a->o);
    studio.bind();
    std::thread waiter([&] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      studio.stop();
    });
    const auto& m = studio.info()["model"];
    std::cout << "loong studio: " << studio.url() << "  (model " << m["name"].get<std::string>() << ", results in "
              << a->o.out << "; Ctrl-C stops)" << std::endl;
    studio.run();  // returns once the waiter has stopped the studio
    pthread_kill(waiter.native_handle(), SIGTERM);  // (or on its own: then this wakes the waiter to stop it)
    waiter.join();
  }));
}

}  // namespace loong::cli
