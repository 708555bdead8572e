// loong model init | pack | info: model bundles for `loong generate`.
#include <iostream>

#include "cli/commands.h"
#include "loong/gen/bundle.h"

namespace loong::cli {

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
    gen::write_random_bundle({ia->preset, ia->out, ia->text, ia->text_vocab, ia->seed, ia->cfg, ia->force});
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
    gen::PackOptions o;
    o.tokenizer = pa->tokenizer, o.text = pa->text, o.lm = pa->lm, o.out = pa->out, o.dtype = pa->dtype;
    o.force = pa->force;
    o.info.name = pa->name;
    o.info.fps = pa->fps;
    o.info.clip_frames = pa->clip_frames;
    o.info.overlap = pa->overlap;
    o.info.cfg_scale = pa->cfg;
    o.info.first_clip_cfg_scale = pa->first_clip_cfg;
    o.info.temperature = pa->temperature;
    gen::pack_bundle(o);
    std::cout << "model: " << pa->out << std::endl;
  }));

  auto info_dir = std::make_shared<std::string>();
  auto* info = model->add_subcommand("info", "Describe a bundle as JSON");
  info->add_option("dir", *info_dir, "Bundle folder")->required();
  info->callback(command(g, [info_dir] {
    std::cout << gen::describe_bundle(*info_dir).dump(2) << std::endl;
  }));
}

}  // namespace loong::cli
