// loong generate: text to a minute-long video (docs/method.md §5); the
// pipeline is gen/generate.h.
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "cli/commands.h"
#include "cli/status_line.h"
#include "loong/core/atomic_file.h"
#include "loong/core/clock.h"
#include "loong/core/error.h"
#include "loong/core/runtime.h"
#include "loong/gen/generate.h"
#include "loong/gen/upscale.h"

namespace loong::cli {

namespace {

std::string fixed(double v, int digits = 1) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

void add_generate_command(CLI::App& app, Globals& g) {
  struct Args {
    std::string model, prompt, prompts, out, init_video, sheet, report, save_codes, device = "cpu";
    std::string upscale_method = "bicubic", sr_model, decode_weights = "f32";
    double seconds = 10;
    int upscale = 1;
    int64_t overlap = 0;
    double first_clip_cfg = 0;
    bool no_reencode = false, quiet = false, no_speculative = false, guide_against_previous = false,
         tokenizer_f32 = false;
    int64_t speculative = -1;
    gen::SamplingOptions s;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("generate", "Generate a video (up to minutes long) from text");
  cmd->add_option("--model", a->model,
                  "Model bundle folder (`loong model init` / `loong model pack`); default: the repository's "
                  "models/default, or $LOONG_MODEL");
  cmd->add_option("--prompt", a->prompt, "What the video shows");
  cmd->add_option("--prompts", a->prompts,
                  "A story: a text file with one prompt per clip, or 'SECONDS: prompt' lines");
  cmd->add_option("--seconds", a->seconds, "Length of the video");
  cmd->add_option("--out", a->out, "Output video (.mp4, .mkv, .mov or .gif)")->required();
  const auto sampling = add_sampling_options(cmd, a->s, a->first_clip_cfg);
  cmd->add_option("--overlap-frames", a->overlap,
                  "Frames re-encoded as the start of each next clip (1 + 4k); default: the model's (5)");
  cmd->add_flag("--no-reencode", a->no_reencode,
                "Condition each clip on the previous clip's own tokens instead of re-encoded frames (ablation)");
  cmd->add_flag("--guide-against-previous", a->guide_against_previous,
                "With --prompts: guide the first clip after each prompt change against the previous prompt "
                "instead of against no text, so that the new prompt's items replace the old ones");
  auto* spec = cmd->add_option(
      "--speculative", a->speculative,
      "Codes scored per model call: drafts (the same cell one latent frame back) accepted by an exact rule, so "
      "the codes keep one-at-a-time sampling's distribution (the same codes with --top-k 1); default 2 on the "
      "CPU for models over 64 M parameters, else 0; 0 or 1 = one code per call (CUDA: always one)")
      ->check(CLI::Range(int64_t{0}, int64_t{64}));
  cmd->add_flag("--no-speculative", a->no_speculative, "One code per model call (the same as --speculative 0)")
      ->excludes(spec);
  add_decode_weights_option(cmd, a->decode_weights);
  add_tokenizer_f32_option(cmd, a->tokenizer_f32);
  cmd->add_option("--init-video", a->init_video, "Continue this video: its last frames start the first clip");
  cmd->add_option("--upscale", a->upscale, "Upscale the frames by this factor");
  cmd->add_option("--upscale-method", a->upscale_method, "bicubic or lanczos");
  cmd->add_option("--sr-model", a->sr_model,
                  "Upscale with a learned network instead: a folder from `loong sr train` or a TorchScript file");
  cmd->add_option("--sheet", a->sheet, "Also write a contact sheet PNG of frames spread over the video");
  cmd->add_option("--report", a->report, "Also write the settings and timings as JSON");
  cmd->add_option("--save-codes", a->save_codes,
                  "Also write the sampled codes and the clip plan (.safetensors); `loong tokenizer decode` makes the "
                  "same video of them");
  cmd->add_option("--device", a->device, "cpu or cuda[:N]");
  cmd->add_flag("--quiet", a->quiet, "Only errors and the output path");
  cmd->callback(command(g, [a, cmd, sampling] {
    if (a->prompt.empty() == a->prompts.empty())
      fail("--prompt", a->prompts.empty() ? "required: what the video shows (or --prompts FILE)"
                                          : "give --prompt or --prompts, not both");
    gen::GenerateRequest r;
    r.model = a->model;
    r.seconds = a->seconds;
    r.sampling = a->s;
    r.given = sampling.given();
    r.first_clip_cfg = a->first_clip_cfg;
    r.overlap = a->overlap;
    r.reencode = !a->no_reencode;
    r.guide_against_previous = a->guide_against_previous;
    r.speculative = a->no_speculative ? 0 : a->speculative;
    r.decode_weights = a->decode_weights;
    r.tokenizer_f32 = a->tokenizer_f32;
    r.init_video = a->init_video;
    r.upscale = a->upscale;
    r.upscale_given = cmd->count("--upscale") > 0;
    r.upscale_method = a->upscale_method;
    r.sr_model = a->sr_model;
    r.out = a->out;
    r.sheet = a->sheet;
    r.report = a->report;
    r.save_codes = a->save_codes;
    gen::validate_settings(r);  // the flags, before the prompts file is read
    require_distinct_paths({{"--out", a->out}, {"--sheet", a->sheet}, {"--report", a->report}, {"--save-codes", a->save_codes}},
                           {{"--prompts", a->prompts}});
    r.prompts = a->prompts.empty() ? gen::PromptSchedule::single(a->prompt) : gen::PromptSchedule::load(a->prompts);
    gen::validate(r);  // everything typed, before the model is loaded
    r.device = parse_device(a->device);

    StatusLine console(a->quiet);
    const char* kill_after = std::getenv("LOONG_TEST_KILL_AFTER_CLIP");  // test hook: a run stopped mid-way
    gen::GenerateEvents ev;
    ev.started = [&](const gen::GenerateStart& s) {
      if (!a->quiet && !s.writing.empty())
        console.print("writing " + s.writing + " as clips finish (renamed to " + s.out + " at the end)");
    };
    ev.clip_written = [&](const gen::ClipWritten& c) {
      if (!a->quiet)
        console.print("clip " + std::to_string(c.clip + 1) + "/" + std::to_string(c.clips) + ": frames " +
                      std::to_string(c.first) + "-" + std::to_string(c.last) + " (" + fixed((c.last + 1) / c.fps) +
                      " s of " + fixed(c.total / c.fps) + " s)");
      if (kill_after && std::atoll(kill_after) == c.clip + 1) std::raise(SIGKILL);
    };
    // Shown with --quiet too: it is about the video, not the progress.
    ev.warning = [&](const std::string& w) { std::fprintf(stderr, "loong: warning: %s\n", w.c_str()); };
    ev.progress = [&](const gen::GenerateProgress& p) {
      if (!console.tty() || (p.done % 16 != 0 && p.done != p.total)) return;
      console.status(bar(p.done, p.total) + " clip " + std::to_string(p.clip + 1) + "/" + std::to_string(p.clips) +
                     "  " + fixed(p.codes_per_s, 0) + " tok/s  ETA " + format_duration(p.eta_s));
    };
    const auto res = gen::generate_video(r, ev);
    console.clear();
    if (a->quiet) {
      std::cout << a->out << std::endl;
      return;
    }
    const auto& t = res.timings;
    std::cout << "video: " << a->out << " (" << res.frames << " frames, " << fixed(res.frames / res.fps) << " s at "
              << res.fps << " fps, " << res.size << "x" << res.size << ")" << std::endl;
    if (!a->sheet.empty()) std::cout << "sheet: " << a->sheet << std::endl;
    if (!a->save_codes.empty()) std::cout << "codes: " << a->save_codes << std::endl;
    std::cout << "time:  " << fixed(res.total_s) << " s: prefill " << fixed(t.prefill_s, 2) << ", decode "
              << fixed(t.decode_s, 2) << " (" << fixed(t.codes / std::max(t.prefill_s + t.decode_s, 1e-9), 0)
              << " codes/s), tokenizer encode " << fixed(t.encode_s, 2) << ", decode " << fixed(t.pixels_s, 2)
              << ", upscale " << fixed(res.upscale_s, 2) << ", write " << fixed(res.write_s, 2) << std::endl;
    if (t.drafted > 0)
      std::cout << "speculation: " << fixed(res.report["codes_per_call"].get<double>(), 2) << " codes per model call ("
                << t.decode_calls << " calls; " << t.accepted << " of " << t.drafted << " drafted codes accepted)"
                << std::endl;
  }));
}

}  // namespace loong::cli
