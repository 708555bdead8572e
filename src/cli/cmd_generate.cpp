// loong generate: text to a minute-long video (SPEC.md §5).
#include <csignal>
#include <filesystem>
#include <cstdlib>
#include <iostream>
#include <set>

#include <torch/torch.h>

#include "cli/commands.h"
#include "cli/status_line.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/gen/bundle.h"
#include "loong/gen/long_video.h"
#include "loong/gen/sr.h"
#include "loong/gen/upscale.h"
#include "loong/io/image.h"
#include "loong/io/video.h"
#include "loong/text/text_tokenizer.h"
#include "loong/train/checkpoints.h"

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
    std::string model, prompt, prompts, out, init_video, sheet, report, device = "cpu";
    std::string upscale_method = "bicubic", sr_model;
    double seconds = 10;
    int upscale = 1;
    int64_t overlap = 0;
    double first_clip_cfg = 0;
    bool no_reencode = false, quiet = false;
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
  cmd->add_option("--seed", a->s.seed, "Random seed (the same seed and settings give the same video)");
  auto* cfg_opt = cmd->add_option("--cfg", a->s.cfg_scale,
                                  "Classifier-free guidance scale; 1 switches guidance off. Default: the model's "
                                  "(loong.json cfg_scale), else 7.5");
  auto* first_cfg_opt = cmd->add_option("--first-clip-cfg", a->first_clip_cfg,
                                        "Guidance scale of the first clip (made from the text alone). Default: the "
                                        "model's (loong.json first_clip_cfg_scale) unless --cfg is given, else --cfg")
                            ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", a->s.top_k, "Sample among the k most likely codes; 1 is greedy");
  cmd->add_option("--top-p", a->s.top_p, "Then keep the smallest set of them holding this probability");
  auto* temp_opt = cmd->add_option("--temperature", a->s.temperature,
                                   "Softmax temperature; default: the model's (loong.json temperature), else 1");
  cmd->add_option("--overlap-frames", a->overlap,
                  "Frames re-encoded as the start of each next clip (1 + 4k); default: the model's (5)");
  cmd->add_flag("--no-reencode", a->no_reencode,
                "Condition each clip on the previous clip's own tokens instead of re-encoded frames (ablation)");
  cmd->add_option("--init-video", a->init_video, "Continue this video: its last frames start the first clip");
  cmd->add_option("--upscale", a->upscale, "Upscale the frames by this factor");
  cmd->add_option("--upscale-method", a->upscale_method, "bicubic or lanczos");
  cmd->add_option("--sr-model", a->sr_model,
                  "Upscale with a learned network instead: a folder from `loong sr train` or a TorchScript file");
  cmd->add_option("--sheet", a->sheet, "Also write a contact sheet PNG of frames spread over the video");
  cmd->add_option("--report", a->report, "Also write the settings and timings as JSON");
  cmd->add_option("--device", a->device, "cpu or cuda[:N]");
  cmd->add_flag("--quiet", a->quiet, "Only errors and the output path");
  cmd->callback(command(g, [a, cmd, cfg_opt, first_cfg_opt, temp_opt] {
    keep_freed_memory();  // the tokenizer's activations are reused clip after clip (runtime.h)
    const bool cmd_upscale_given = cmd->count("--upscale") > 0;
    // Everything the user typed is checked before the model is loaded.
    if (a->prompt.empty() == a->prompts.empty())
      fail("--prompt", a->prompts.empty() ? "required: what the video shows (or --prompts FILE)"
                                          : "give --prompt or --prompts, not both");
    gen::validate(a->s);
    auto upscaler = gen::resampling_upscaler(a->upscale, a->upscale_method);
    if (!std::isfinite(a->seconds) || a->seconds <= 0)
      fail("--seconds", "must be > 0, got " + std::to_string(a->seconds));
    const auto schedule = a->prompts.empty() ? gen::PromptSchedule::single(a->prompt) : gen::PromptSchedule::load(a->prompts);
    for (const auto& e : schedule.entries)
      if (e.text.find_first_not_of(" \t\r\n") == std::string::npos) fail("--prompt", "is empty");
    const auto device = parse_device(a->device);
    if (!a->sr_model.empty()) {
      int factor = 0;
      upscaler = gen::load_upscaler(a->sr_model, device, &factor);
      if (cmd_upscale_given && a->upscale != factor)
        fail("--upscale", std::to_string(a->upscale) + " does not match --sr-model's factor " + std::to_string(factor));
      a->upscale = factor;
    }

    a->model = gen::model_or_default(a->model);
    auto bundle = gen::load_bundle(a->model, device);
    gen::resolve_sampling(bundle.info, {cfg_opt->count() > 0, first_cfg_opt->count() > 0, temp_opt->count() > 0}, a->s,
                          a->first_clip_cfg);
    const auto text = text::TextTokenizer::load(bundle.text_dir);
    std::vector<std::vector<int32_t>> ids;
    for (const auto& e : schedule.entries) {
      ids.push_back(text.encode(e.text));
      if (ids.back().empty()) fail("--prompt", "gives no text pieces: " + squote(e.text));
    }
    gen::LongVideoOptions o;
    o.seconds = a->seconds;
    o.fps = bundle.info.fps;
    o.clip_frames = bundle.info.clip_frames;
    o.overlap = a->overlap > 0 ? a->overlap : bundle.info.overlap;
    o.reencode = !a->no_reencode;
    o.first_clip_cfg = a->first_clip_cfg;
    const int S = bundle.tokenizer->config.image_size;
    if (!a->init_video.empty()) {
      video::ReadOptions r;
      r.fps = o.fps;
      r.size = S;
      o.init_frames = video::read(a->init_video, r).frames;
    }
    gen::validate(o, bundle.tokenizer->config.temporal_factor());

    const int64_t total = std::max<int64_t>(1, std::llround(o.seconds * o.fps));
    const int out_size = S * a->upscale;
    video::WriteOptions w;
    w.fps = o.fps;
    std::string ext = std::filesystem::path(a->out).extension().string();
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    w.streaming = ext != ".gif";  // a GIF's palette needs every frame first
    video::VideoWriter writer(a->out, out_size, out_size, w);
    StatusLine console(a->quiet);
    if (!a->quiet && w.streaming)
      console.print("writing " + video::streaming_path(a->out) + " as clips finish (renamed to " + a->out +
                    " at the end)");

    const auto sheet_at = image::spread_indices(total, 8);
    std::set<int64_t> sheet_set(sheet_at.begin(), sheet_at.end());
    std::vector<at::Tensor> sheet_tiles;
    double upscale_s = 0;
    int64_t written = 0;
    const char* kill_after = std::getenv("LOONG_TEST_KILL_AFTER_CLIP");  // test hook: a run stopped mid-way

    gen::LongVideoCallbacks cb;
    cb.text = [&](int64_t, int64_t clip, double seconds) { return ids[schedule.index(clip, seconds)]; };
    int64_t clips = 0, current = 0;
    cb.clip_started = [&](const gen::ClipEvent& ev) { clips = ev.clips, current = ev.clip; };
    cb.frames = [&](const at::Tensor& frames, int64_t clip) {
      auto t0 = std::chrono::steady_clock::now();
      auto f = upscaler(frames[0]);
      upscale_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      for (int64_t i = 0; i < f.size(0); ++i)
        if (sheet_set.count(written + i)) sheet_tiles.push_back(f[i]);
      writer.write(f);
      writer.flush();
      written += f.size(0);
      if (!a->quiet)
        console.print("clip " + std::to_string(clip + 1) + "/" + std::to_string(clips) + ": frames " +
                      std::to_string(written - f.size(0)) + "-" + std::to_string(written - 1) + " (" +
                      fixed(written / o.fps) + " s of " + fixed(total / o.fps) + " s)");
      if (kill_after && std::atoll(kill_after) == clip + 1) std::raise(SIGKILL);
    };
    const auto start = std::chrono::steady_clock::now();
    cb.progress = [&](int64_t done, int64_t all) {
      if (!console.tty() || (done % 16 != 0 && done != all)) return;
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const double rate = done / std::max(el, 1e-9);
      console.status(bar(done, all) + " clip " + std::to_string(current + 1) + "/" +
                     std::to_string(clips) + "  " + fixed(rate, 0) + " tok/s  ETA " +
                     train::format_duration((all - done) / std::max(rate, 1e-9)));
    };

    gen::LongVideoGenerator generator(bundle.tokenizer, bundle.lm, bundle.vocab(), a->s);
    const auto t = generator.run(o, 1, cb);
    console.clear();
    auto t0 = std::chrono::steady_clock::now();
    writer.close();
    const double close_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!a->sheet.empty()) image::write_png(a->sheet, image::grid(sheet_tiles, 4));

    const double write_s = t.output_s - upscale_s + close_s;
    json report = {{"model", a->model},
                   {"out", a->out},
                   {"prompts", json::array()},
                   {"seconds", a->seconds},
                   {"frames", written},
                   {"fps", o.fps},
                   {"size", out_size},
                   {"seed", a->s.seed},
                   {"cfg", a->s.cfg_scale},
                   {"first_clip_cfg", a->first_clip_cfg},
                   {"top_k", a->s.top_k},
                   {"top_p", a->s.top_p},
                   {"temperature", a->s.temperature},
                   {"overlap_frames", o.overlap},
                   {"reencode", o.reencode},
                   {"upscale", a->upscale},
                   {"codes", t.codes},
                   {"timings_s",
                    {{"prefill", t.prefill_s},
                     {"decode", t.decode_s},
                     {"tokenizer_encode", t.encode_s},
                     {"tokenizer_decode", t.pixels_s},
                     {"upscale", upscale_s},
                     {"write", write_s},
                     {"total", t.total_s + close_s}}},
                   {"decode_tokens_per_s", t.codes / std::max(t.prefill_s + t.decode_s, 1e-9)}};
    for (const auto& e : schedule.entries)
      report["prompts"].push_back(e.start < 0 ? json(e.text) : json{{"start", e.start}, {"text", e.text}});
    if (!a->report.empty()) write_json_file(a->report, report);
    if (a->quiet) {
      std::cout << a->out << std::endl;
      return;
    }
    std::cout << "video: " << a->out << " (" << written << " frames, " << fixed(written / o.fps) << " s at "
              << o.fps << " fps, " << out_size << "x" << out_size << ")" << std::endl;
    if (!a->sheet.empty()) std::cout << "sheet: " << a->sheet << std::endl;
    std::cout << "time:  " << fixed(t.total_s + close_s) << " s: prefill " << fixed(t.prefill_s, 2) << ", decode "
              << fixed(t.decode_s, 2) << " (" << fixed(t.codes / std::max(t.prefill_s + t.decode_s, 1e-9), 0)
              << " codes/s), tokenizer encode " << fixed(t.encode_s, 2) << ", decode " << fixed(t.pixels_s, 2)
              << ", upscale " << fixed(upscale_s, 2) << ", write " << fixed(write_s, 2) << std::endl;
  }));
}

}  // namespace loong::cli
