// loong: generate minute-long videos from text with an autoregressive LLaMA
// over video tokens (Loong, arXiv 2410.02757). One CLI for every step.
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "loong/core/error.h"
#include "loong/core/runtime.h"

namespace {

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace loong::cli;
  CLI::App app{"loong: minute-level text-to-video generation with an autoregressive language model"};
  app.name("loong");
  app.option_defaults()->always_capture_default();
  app.set_version_flag("--version", loong::build_info());
  app.require_subcommand(1);
  Globals g;
  g.argv.assign(argv, argv + argc);
  g.app = &app;
  // Global options may also follow the subcommand (`loong generate --threads 1`).
  app.fallthrough();
  app.add_option("--threads", g.threads, "CPU threads for LibTorch; 0 = $LOONG_THREADS or all cores")
      ->check(CLI::Range(0, loong::kMaxThreads));
  add_video_commands(app, g);
  add_data_commands(app, g);
  add_checkpoint_commands(app, g);
  add_tokenizer_commands(app, g);
  add_text_commands(app, g);
  add_tokenize_command(app, g);
  add_train_command(app, g);
  add_model_commands(app, g);
  add_generate_command(app, g);
  add_serve_command(app, g);
  add_sr_commands(app, g);
  add_eval_commands(app, g);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line: what was wrong and where to look.
    std::string cmd = "loong";
    const CLI::App* sub = &app;
    while (!sub->get_subcommands().empty()) {
      sub = sub->get_subcommands().front();
      cmd += " " + sub->get_name();
    }
    std::string msg = first_line(e.what());
    // "A subcommand is required" hides the real problem when a word was given.
    // With fallthrough, a stray word may have gone up to the top.
    auto left = sub->remaining();
    if (left.empty()) left = app.remaining();
    if (!sub->get_subcommands({}).empty() && !left.empty() && left.front().rfind("-", 0) != 0) {
      msg = "unknown command '" + left.front() + "'; expected one of:";
      for (const CLI::App* c : sub->get_subcommands({})) msg += " " + c->get_name();
    }
    std::fprintf(stderr, "%s: error: %s (see '%s --help')\n", cmd.c_str(), msg.c_str(), cmd.c_str());
    return 2;
  } catch (const ExitStatus& e) {
    return e.code;
  } catch (const loong::UsageError& e) {
    std::fprintf(stderr, "loong: error: %s\n", e.what());
    return 2;
  } catch (const loong::Error& e) {
    std::fprintf(stderr, "loong: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "loong: internal error: %s\n", first_line(e.what()).c_str());
    return 1;
  }
  return 0;
}
