// loong train: progressive training of the language model on token shards.
#include <cstdio>
#include <iostream>

#include <torch/torch.h>

#include "cli/commands.h"
#include "cli/status_line.h"
#include "loong/core/error.h"
#include "loong/core/runtime.h"
#include "loong/lm/trainer.h"
#include "loong/lm/train_config.h"

namespace loong::cli {

void add_train_command(CLI::App& app, Globals& g) {
  struct Args {
    std::string config, out, resume, init, data, device = "cpu";
    double max_minutes = -1;
    int64_t stop_at = -1;
    int nproc = 1;
    bool quiet = false, show_config = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("train", "Train the language model progressively (images, then 17-, then 65-frame clips)");
  cmd->add_option("--config", a->config, "Training config: a preset (tiny, paper) or a JSON file (docs/lm.md)");
  cmd->add_option("--out", a->out, "Run folder for the log, loss plot and checkpoints");
  cmd->add_option("--resume", a->resume, "Continue the run in this folder from its newest complete checkpoint");
  cmd->add_option("--init", a->init,
                  "Start from this trained language model's weights (a model, checkpoint or run folder, or a "
                  "bundle such as models/default): fine-tuning; the shards must use its tokenizers");
  cmd->add_option("--data", a->data, "Token shards (from `loong tokenize`); overrides the config's \"data\"");
  cmd->add_option("--device", a->device, "cpu or cuda[:N]");
  cmd->add_option("--max-minutes", a->max_minutes, "Stop (with a checkpoint) after this long; overrides the config")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--stop-at", a->stop_at, "End this session (with a checkpoint) at this global step; --resume continues")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--nproc", a->nproc,
                  "Train on this many processes on this machine (data parallel, Gloo; docs/distributed.md). "
                  "Under torchrun or Slurm, leave it out: their environment says the rank")
      ->check(CLI::Range(1, 4096));
  cmd->add_flag("--quiet", a->quiet, "Only errors and the final checkpoint path");
  cmd->add_flag("--show-config", a->show_config, "Print the resolved training config as JSON and exit");
  cmd->callback(command(g, [a, &g] {
    lm::LmTrainConfig cfg;
    std::string run_dir = a->out;
    if (!a->resume.empty()) {
      if (!a->config.empty()) fail("--config", "not with --resume: a run continues with the config in its run.json");
      if (!a->out.empty() && a->out != a->resume) fail("--out", "not with --resume (the run folder is --resume's)");
      run_dir = a->resume;
      cfg = lm::LmTrainer::run_config(run_dir);
    } else if (!a->config.empty()) {
      cfg = lm::LmTrainConfig::load(a->config);
    } else {
      fail("--config", "required (a preset: tiny, paper; or a JSON file) unless --resume RUN_DIR is given");
    }
    if (!a->data.empty()) cfg.data = a->data;
    if (a->max_minutes >= 0) cfg.max_minutes = a->max_minutes;
    if (a->show_config) {
      std::cout << cfg.to_json().dump(2) << std::endl;
      return;
    }
    if (run_dir.empty()) fail("--out", "required: the run folder");
    lm::LmTrainerOptions o;
    o.run_dir = run_dir;
    o.device = parse_device(a->device);
    o.group = join_job(g, a->nproc, o.device, cfg.dist_timeout_s);
    o.resume = !a->resume.empty();
    o.init_model = a->init;
    o.stop_at = a->stop_at;
    // A progress bar on the terminal's last line, redrawn under the step lines.
    auto out = std::make_shared<StatusLine>(a->quiet);
    o.print = [out](const std::string& line) {
      if (out->quiet() && line.rfind("checkpoint:", 0) != 0) return;
      out->print(line);
    };
    if (out->tty()) o.status = [out](const std::string& s) { out->status(s); };
    {
      lm::LmTrainer trainer(cfg, o);
      trainer.run();
    }
    if (o.group) o.group->finish();
    out->clear();
  }, Heap::Training));
}

}  // namespace loong::cli
