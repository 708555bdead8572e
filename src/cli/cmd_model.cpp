// loong model init | pack | info: model bundles for `loong generate`.
#include <filesystem>
#include <iostream>

#include <torch/torch.h>

#include "cli/commands.h"
#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/data/moving_fashion.h"
#include "loong/gen/bundle.h"
#include "loong/lm/trainer.h"
#include "loong/text/text_tokenizer.h"
#include "loong/tokenizer/checkpoint.h"

namespace fs = std::filesystem;

namespace loong::cli {

namespace {

// Captions of the moving-fashion world (videos and stills), rendered tiny:
// the sentences a random-weight bundle's text tokenizer is trained on.
std::vector<std::string> moving_fashion_captions(int count, uint64_t seed) {
  data::MovingFashionOptions o;
  o.size = 32;
  o.seconds = 1;
  o.seed = seed;
  o.scene_changes = 0.5;
  const auto items = data::load_fashion_mnist("train", o.mnist_dir);
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i)
    out.push_back(i % 4 == 3 ? data::make_image(items, o, i).caption : data::make_video(items, o, i).caption);
  return out;
}

}  // namespace

void add_model_commands(CLI::App& app, Globals& g) {
  CLI::App* model = app.add_subcommand("model", "Model bundles: everything `loong generate` needs in one folder");
  model->require_subcommand(1);

  struct InitArgs {
    std::string preset = "tiny", out, text, lm_preset;
    int text_vocab = 128;
    uint64_t seed = 0;
    double cfg = 0;
    bool force = false;
  };
  auto ia = std::make_shared<InitArgs>();
  auto* init = model->add_subcommand(
      "init", "Write a complete bundle with random weights (tests the whole path without training)");
  init->add_option("--preset", ia->preset, "Tokenizer and language-model preset: tiny or paper");
  init->add_option("--out", ia->out, "Bundle folder to write")->required();
  init->add_option("--text", ia->text,
                   "Use this text tokenizer folder; default: train one on moving-fashion captions");
  init->add_option("--text-vocab", ia->text_vocab, "Pieces of the text tokenizer trained when --text is not given")
      ->check(CLI::Range(8, 100000));
  init->add_option("--seed", ia->seed, "Seed of the random weights");
  init->add_option("--cfg", ia->cfg, "Guidance scale recorded in the bundle, used when `loong generate` gets no --cfg")
      ->check(CLI::Range(1.0, 100.0));
  init->add_flag("--force", ia->force, "Replace an existing bundle");
  init->callback(command(g, [ia] {
    if (ia->preset != "tiny" && ia->preset != "paper") fail("--preset", "expected tiny or paper, got " + squote(ia->preset));
    torch::manual_seed(ia->seed);
    auto tok_cfg = tokenizer::TokenizerConfig::preset(ia->preset);
    auto lm_cfg = lm::LmConfig::preset(ia->preset == "paper" ? "700M" : "tiny");
    std::string text_dir = ia->text;
    std::string tmp;
    if (text_dir.empty()) {
      tmp = ia->out + ".text-tmp";
      text::TextTrainOptions o;
      o.vocab_size = ia->text_vocab;
      o.source = "moving-fashion captions (loong model init)";
      text::TextTokenizer::train(moving_fashion_captions(2000, ia->seed), o, tmp);
      text_dir = tmp;
    }
    lm_cfg.text_vocab = text::recorded_vocab_size(text_dir);
    lm_cfg.video_vocab = tok_cfg.codebook_size;
    gen::BundleInfo info;
    info.name = ia->preset + "-random";
    info.cfg_scale = ia->cfg;
    info.extra = {{"command", "loong model init"}, {"preset", ia->preset}, {"seed", ia->seed}, {"trained", false}};
    gen::write_bundle(ia->out, info, tokenizer::VideoTokenizer(tok_cfg), text_dir, lm::Llama(lm_cfg), ia->force);
    if (!tmp.empty()) fs::remove_all(tmp);
    std::cout << "model: " << ia->out << " (random weights, preset " << ia->preset << ")" << std::endl;
  }));

  struct PackArgs {
    std::string tokenizer, text, lm, out, name = "custom", dtype = "f32";
    double fps = 6.5;
    int64_t clip_frames = 65, overlap = 5;
    double cfg = 0, first_clip_cfg = 0, temperature = 0;
    bool force = false;
  };
  auto pa = std::make_shared<PackArgs>();
  auto* pack = model->add_subcommand("pack", "Put trained parts together into a bundle");
  pack->add_option("--tokenizer", pa->tokenizer, "Video tokenizer: model, checkpoint or run folder")->required();
  pack->add_option("--text", pa->text, "Text tokenizer folder (from `loong text train`)")->required();
  pack->add_option("--lm", pa->lm, "Language model: model, checkpoint or run folder")->required();
  pack->add_option("--out", pa->out, "Bundle folder to write")->required();
  pack->add_option("--name", pa->name, "Name recorded in loong.json");
  pack->add_option("--fps", pa->fps, "Frame rate of the training videos")->check(CLI::Range(0.1, 1000.0));
  pack->add_option("--clip-frames", pa->clip_frames, "Frames per generated clip (the last stage's clip length)")
      ->check(CLI::PositiveNumber);
  pack->add_option("--overlap-frames", pa->overlap, "Default frames re-encoded between clips")->check(CLI::PositiveNumber);
  pack->add_option("--cfg", pa->cfg, "Guidance scale recorded in the bundle, used when `loong generate` gets no --cfg")
      ->check(CLI::Range(1.0, 100.0));
  pack->add_option("--first-clip-cfg", pa->first_clip_cfg,
                   "Guidance scale recorded for the first clip (made from the text alone); default: --cfg's")
      ->check(CLI::Range(1.0, 100.0));
  pack->add_option("--temperature", pa->temperature,
                   "Sampling temperature recorded in the bundle, used when `loong generate` gets no --temperature")
      ->check(CLI::Range(0.05, 10.0));
  pack->add_option("--dtype", pa->dtype, "Store the weights as f32, f16 or bf16 (half the size; widened to f32 on load)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}));
  pack->add_flag("--force", pa->force, "Replace an existing bundle");
  pack->callback(command(g, [pa] {
    gen::BundleInfo info;
    info.name = pa->name;
    info.fps = pa->fps;
    info.clip_frames = pa->clip_frames;
    info.overlap = pa->overlap;
    info.cfg_scale = pa->cfg;
    info.first_clip_cfg_scale = pa->first_clip_cfg;
    info.temperature = pa->temperature;
    info.extra = {{"command", "loong model pack"},
                  {"tokenizer", train::resolve_model_dir(pa->tokenizer)},
                  {"lm", train::resolve_model_dir(pa->lm)},
                  {"text", pa->text},
                  {"dtype", pa->dtype},
                  {"trained", true}};
    gen::write_bundle(pa->out, info, tokenizer::load_model(pa->tokenizer), pa->text, lm::load_lm(pa->lm), pa->force,
                      pa->dtype);
    std::cout << "model: " << pa->out << std::endl;
  }));

  auto info_dir = std::make_shared<std::string>();
  auto* info = model->add_subcommand("info", "Describe a bundle as JSON");
  info->add_option("dir", *info_dir, "Bundle folder")->required();
  info->callback(command(g, [info_dir] {
    auto b = gen::load_bundle(*info_dir);
    const auto& t = b.tokenizer->config;
    const int64_t per_frame = static_cast<int64_t>(t.image_size / t.spatial_factor()) * (t.image_size / t.spatial_factor());
    json j = b.info.to_json();
    j["frame_size"] = t.image_size;
    j["tokens_per_clip"] = ((b.info.clip_frames - 1) / t.temporal_factor() + 1) * per_frame;
    j["tokenizer"] = {{"parameters", b.tokenizer->parameter_count()}, {"codebook_size", t.codebook_size}};
    j["lm"] = {{"parameters", b.lm->parameter_count()},
               {"text_vocab", b.lm->config.text_vocab},
               {"video_vocab", b.lm->config.video_vocab},
               {"max_seq_len", b.lm->config.max_seq_len}};
    int64_t bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(*info_dir))
      if (e.is_regular_file()) bytes += static_cast<int64_t>(e.file_size());
    j["bytes"] = bytes;
    std::cout << j.dump(2) << std::endl;
  }));
}

}  // namespace loong::cli
