#include "loong/tokenizer/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include <torch/script.h>
#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/clock.h"
#include "loong/ops/adamw.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/dist/grad_sync.h"
#include "loong/core/torch_compat.h"
#include "loong/core/torchscript.h"
#include "loong/io/image.h"
#include "loong/io/safetensors.h"
#include "loong/tokenizer/checkpoint.h"
#include "loong/tokenizer/discriminator.h"
#include "loong/tokenizer/layers.h"

namespace fs = std::filesystem;

namespace loong::tokenizer {

using store::load_optimizer;
using store::save_optimizer;
using store::set_lr;
using store::step_name;


struct TokenizerTrainer::State {
  RunConfig cfg;
  TrainerOptions opts;
  VideoTokenizer model{nullptr}, ema{nullptr};
  PatchDiscriminator disc{nullptr};
  std::unique_ptr<torch::optim::AdamW> opt, dopt;
  std::optional<torch::jit::Module> perceptual;
  LecamEma lecam;
  int64_t step = 0;
  int64_t saved_step = -1;
  double elapsed_before = 0;      // seconds trained by earlier sessions
  Clock::time_point session_start = Clock::now();
  std::ofstream log;
  torch::Tensor last_layer;       // the decoder's output conv weight (adaptive GAN weight)
  std::map<int, torch::Tensor> sample_clips;  // fixed clips per stage length
  dist::Group* group = nullptr;   // null: alone
  std::unique_ptr<dist::GradSync> gsync, dsync;  // the generator's and the discriminator's gradients
  bool time_up = false;           // max_minutes passed (on any rank)

  bool root() const { return !group || group->root(); }
  int rank() const { return group ? group->rank() : 0; }
  int world() const { return group ? group->size() : 1; }
  void print(const std::string& s) const {
    if (opts.print && root()) opts.print(s);
  }
  // The mean over the ranks of each rank's mean (their shares are equal), in place.
  void average(torch::Tensor& t, const std::string& what) const {
    if (!group) return;
    auto c = t.to(torch::kFloat).to(group->device()).contiguous();
    group->allreduce(c, what);
    c.div_(world());
    t = c.to(t.device()).to(t.scalar_type());
  }
  double elapsed() const { return elapsed_before + seconds_since(session_start); }

  torch::Tensor perceptual_loss(const torch::Tensor& rec, const torch::Tensor& x) {
    // [B, 3, T, H, W] -> frames [B*T, 3, H, W]
    auto flat = [](const torch::Tensor& v) {
      return v.transpose(1, 2).reshape({v.size(0) * v.size(2), v.size(1), v.size(3), v.size(4)});
    };
    auto d = perceptual->forward({flat(rec), flat(x)}).toTensor();
    return d.to(torch::kFloat).mean();
  }

  void ema_update() {
    torch::NoGradGuard ng;
    const double d = std::min(cfg.train.ema_decay, (1.0 + step) / (10.0 + step));
    auto ep = ema->parameters(), mp = model->parameters();
    for (size_t i = 0; i < ep.size(); ++i) {
      if (mp[i].requires_grad())
        ep[i].mul_(d).add_(mp[i], 1 - d);
      else
        ep[i].copy_(mp[i]);  // frozen (decoder_only): kept bit for bit, which d x + (1 - d) x is not
    }
    auto eb = ema->buffers(), mb = model->buffers();
    for (size_t i = 0; i < eb.size(); ++i) eb[i].copy_(mb[i]);
  }

  void write_samples(int frames) {
#ifdef LOONG_WITH_PNG
    auto it = sample_clips.find(frames);
    if (it == sample_clips.end()) return;
    const auto& clips = it->second;  // [N, T, H, W, 3] uint8
    torch::Tensor rec;
    {
      torch::NoGradGuard ng;
      ema->eval();
      auto out = ema->forward(frames_to_video(clips, opts.device));
      rec = out.reconstruction;
      ema->train();
    }
    std::vector<torch::Tensor> tiles;
    const int64_t n = clips.size(0), T = clips.size(1);
    int cols;
    if (T == 1) {
      for (int64_t i = 0; i < n; ++i) tiles.push_back(clips[i][0]);
      for (int64_t i = 0; i < n; ++i) tiles.push_back(output_to_frames(rec[i])[0]);
      cols = static_cast<int>(n);
    } else {
      auto idx = image::spread_indices(T, 8);
      cols = static_cast<int>(idx.size());
      for (int64_t i = 0; i < n; ++i) {
        auto r = output_to_frames(rec[i]);
        for (auto k : idx) tiles.push_back(clips[i][k]);
        for (auto k : idx) tiles.push_back(r[k]);
      }
    }
    image::write_png((fs::path(opts.run_dir) / "samples" / (step_name(step) + ".png")).string(),
                     image::grid(tiles, cols));
#else
    (void)frames;
#endif
  }
};

TokenizerTrainer::TokenizerTrainer(RunConfig config, TrainerOptions opts) : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.cfg = std::move(config);
  s.opts = std::move(opts);
  const auto& t = s.cfg.train;
  t.validate(s.cfg.model, "run config: train");
  const fs::path run(s.opts.run_dir);
  s.group = s.opts.group.get();
  for (size_t i = 0; i < t.stages.size(); ++i)
    if (t.stages[i].batch_size % s.world() != 0)
      fail("run config: train: stages[" + std::to_string(i) + "]",
           "key 'batch_size': " + std::to_string(t.stages[i].batch_size) + " clips cannot be shared equally by " +
               std::to_string(s.world()) + " ranks (the batch is global; docs/distributed.md)");

  if (s.opts.resume && !s.opts.init_model.empty())
    fail("--init", "starts a new run from a model's weights and --resume continues a run from its own checkpoint; "
                   "give one of them");
  std::string resume_from;
  if (s.opts.resume) {
    resume_from = newest_checkpoint(s.opts.run_dir);
    if (resume_from.empty())
      fail(s.opts.run_dir, "nothing to resume: no complete checkpoint in " + (run / "checkpoints").string());
  } else if (!list_checkpoints(s.opts.run_dir).empty()) {
    fail(s.opts.run_dir, "already holds checkpoints; pass --resume to continue that run, or choose a new --out");
  }
  // The --init model is loaded and checked before anything is written.
  VideoTokenizer init{nullptr};
  if (!s.opts.init_model.empty()) {
    init = load_model(store::bundle_part_or_self(s.opts.init_model, "tokenizer"), s.opts.device);
    if (t.decoder_only)
      store::check_init_architecture(s.cfg.model.encoder_json(), init->config.encoder_json(), s.opts.init_model,
                                     "a decoder-only run keeps the encoder and codebook of --init, so only the "
                                     "decoder keys (decoder_channels, decoder_res_blocks) may differ");
    else
      store::check_init_architecture(s.cfg.model.to_json(), init->config.to_json(), s.opts.init_model,
                                     "--init needs the architecture the run trains");
  }
  if (t.decoder_only && init.is_empty() && !s.opts.resume)
    fail("run config: train", "key 'decoder_only' fine-tunes the decoder of a trained tokenizer, keeping its encoder "
                              "and codebook; give that tokenizer with --init");
  if (s.group) {
    s.group->check_same("training setup", {{"config", s.cfg.to_json()},
                                           {"data", s.opts.data_identity},
                                           {"resume_from", fs::path(resume_from).filename().string()},
                                           {"init", s.opts.init_model},
                                           {"binary", build_info()}});
    s.group->set_hint([&s] { return store::last_good_checkpoint(s.opts.run_dir); });
  }
  if (s.root()) {
    store::prepare_checkpoint_dir(s.opts.run_dir);
    make_dirs((run / "samples").string());
  }

  // The run's seed sets the initial weights (LibTorch seeds its default
  // generator from the clock): two runs of one config are the same run.
  torch::manual_seed(t.seed);
  s.model = VideoTokenizer(s.cfg.model);
  s.ema = VideoTokenizer(s.cfg.model);
  s.model->to(s.opts.device);
  s.ema->to(s.opts.device);
  store::copy_weights(*s.ema, *s.model);
  s.model->train();
  s.ema->train();
  for (auto& p : s.ema->parameters()) p.set_requires_grad(false);
  auto* last = s.model->decoder->ptr(s.model->decoder->size() - 1)->as<CausalConv3dImpl>();
  s.last_layer = last->conv->weight;

  if (t.decoder_only) {
    // Frozen and in eval mode, so that neither gradients nor the quantizer's
    // usage-driven code updates move the encoder or the codebook.
    for (auto m : std::vector<std::shared_ptr<torch::nn::Module>>{s.model->encoder.ptr(), s.model->quantizer.ptr()}) {
      m->eval();
      for (auto& p : m->parameters()) p.set_requires_grad(false);
    }
  }
  for (auto& m : s.model->modules())
    if (auto block = std::dynamic_pointer_cast<ResBlock3dImpl>(m)) block->checkpoint = t.activation_checkpointing;
  s.opt = std::make_unique<torch::optim::AdamW>(
      t.decoder_only ? s.model->decoder->parameters() : s.model->parameters(),
      torch::optim::AdamWOptions(t.lr).betas({t.beta1, t.beta2}).weight_decay(t.weight_decay));
  if (t.gan_start >= 0) {
    s.disc = PatchDiscriminator(s.cfg.model.in_channels, t.disc_channels, t.disc_layers);
    s.disc->to(s.opts.device);
    s.dopt = std::make_unique<torch::optim::AdamW>(
        s.disc->parameters(),
        torch::optim::AdamWOptions(t.disc_lr).betas({t.beta1, t.beta2}).weight_decay(t.weight_decay));
  }
  if (init) {
    // The decoder keys: what to_json() has beyond encoder_json(), written only
    // where they change the decoder (the other keys were checked above).
    auto decoder_keys = [](const TokenizerConfig& c) {
      auto j = c.to_json();
      const auto encoder = c.encoder_json();
      for (const auto& item : encoder.items()) j.erase(item.key());
      return j;
    };
    if (decoder_keys(s.cfg.model) == decoder_keys(init->config)) {
      store::copy_weights(*s.model, *init);
      store::copy_weights(*s.ema, *init);
      s.print("initialised from " + s.opts.init_model);
    } else {
      // decoder_only (checked above): a decoder of another shape starts from
      // the run's seed, on the encoder and codebook of --init.
      for (auto* m : {&*s.model, &*s.ema}) {
        store::copy_weights(*m->encoder, *init->encoder);
        store::copy_weights(*m->quantizer, *init->quantizer);
      }
      s.print("encoder and codebook from " + s.opts.init_model + "; a new decoder of another shape");
    }
  }
  s.lecam.decay = t.lecam_decay;
  if (!t.perceptual_model.empty() && t.perceptual_weight > 0) {
    s.perceptual = load_torchscript(t.perceptual_model, s.opts.device, "a TorchScript perceptual network, e.g. LPIPS");
    for (auto p : s.perceptual->parameters()) p.set_requires_grad(false);
  }

  if (!resume_from.empty()) {
    const fs::path ck(resume_from);
    const std::string tj_path = (ck / "trainer.json").string();
    auto tj = read_json_file(tj_path);
    if (!tj.contains("config")) fail(tj_path, "key 'config': missing");
    auto saved = RunConfig::from_json(tj["config"], tj_path + ": config");
    if (saved.model.to_json() != s.cfg.model.to_json())
      fail(s.opts.run_dir, "the model config differs from the checkpoint's (" + resume_from +
                               "); a run can only be resumed with the same model");
    s.step = store::checkpoint_step(tj, tj_path, ck.string());
    s.elapsed_before = get_number(tj, "elapsed_s", tj_path);
    if (tj.contains("lecam")) {
      s.lecam.real = get_number(tj["lecam"], "real", tj_path);
      s.lecam.fake = get_number(tj["lecam"], "fake", tj_path);
      s.lecam.started = tj["lecam"].value("started", false);
    }
    const std::string ts = (ck / "trainer.safetensors").string();
    auto tensors = safetensors::load(ts);
    load_named_tensors(*s.model, tensors, ts, "model.");
    std::map<std::string, torch::Tensor> ema_t = safetensors::load((ck / "model.safetensors").string());
    load_named_tensors(*s.ema, ema_t, (ck / "model.safetensors").string());
    load_optimizer(*s.opt, ck.string(), "optimizer");
    if (s.disc && store::has_optimizer(ck.string(), "disc_optimizer")) {
      load_named_tensors(*s.disc, tensors, ts, "disc.");
      load_optimizer(*s.dopt, ck.string(), "disc_optimizer");
    }
    s.saved_step = s.step;
    s.print("resumed from " + resume_from + " at step " + std::to_string(s.step));
  }
  if (s.group) {
    // Rank 0's weights everywhere; gradients, codebook updates and the GAN's
    // statistics of the whole batch.
    dist::broadcast_module(*s.group, *s.model);
    dist::broadcast_module(*s.group, *s.ema);
    if (s.disc) dist::broadcast_module(*s.group, *s.disc);
    std::vector<torch::Tensor> trained;
    for (auto& g : s.opt->param_groups())
      for (auto& p : g.params()) trained.push_back(p);
    const int64_t bucket = 25 << 20;
    s.gsync = std::make_unique<dist::GradSync>(*s.group, trained, bucket);
    if (s.disc) s.dsync = std::make_unique<dist::GradSync>(*s.group, s.disc->parameters(), bucket);
    auto qs = std::make_shared<QuantizerSync>();
    qs->rank = s.rank(), qs->world = s.world();
    dist::Group* g = s.group;
    auto across = [g](dist::Group::Op op) {
      return [g, op](const torch::Tensor& t) {
        auto c = t.to(g->device()).contiguous();
        g->allreduce(c, "quantizer update", op);
        if (!c.is_same(t)) t.copy_(c);
      };
    };
    qs->sum = across(dist::Group::Op::Sum);
    qs->max = across(dist::Group::Op::Max);
    s.model->quantizer->sync = qs;
  }
  if (!s.root()) return;
  write_json_file((run / "run.json").string(), s.cfg.to_json());
  store::cut_training_log(s.opts.run_dir, s.step);  // steps after the checkpoint are trained again
  s.log.open(run / "log.jsonl", std::ios::app);
  if (!s.log) fail((run / "log.jsonl").string(), "cannot open the training log for writing");
}

TokenizerTrainer::~TokenizerTrainer() {
  if (!s_->group) return;
  s_->group->set_hint(nullptr);
  s_->model->quantizer->sync.reset();  // it calls the group, which may outlive neither this nor the model handle
}
PatchDiscriminator TokenizerTrainer::discriminator() const { return s_->disc; }

int64_t TokenizerTrainer::global_step() const { return s_->step; }
VideoTokenizer TokenizerTrainer::model() const { return s_->model; }
VideoTokenizer TokenizerTrainer::ema_model() const { return s_->ema; }
const RunConfig& TokenizerTrainer::config() const { return s_->cfg; }

nlohmann::json TokenizerTrainer::step(const torch::Tensor& clips) {
  State& s = *s_;
  const auto& t = s.cfg.train;
  const auto t0 = Clock::now();
  const Stage& stage = t.stage_at(s.step);
  auto x = frames_to_video(clips, s.opts.device);
  const double factor = t.lr_factor(s.step);
  set_lr(*s.opt, t.lr * factor);
  const bool gan = s.disc && s.step >= t.gan_start;                                   // the generator's GAN term
  const bool train_disc = s.disc && s.step >= t.gan_start - t.disc_warmup_steps;  // from its warm-up on
  const bool amp = s.opts.device.is_cuda() && t.mixed_precision;

  nlohmann::json rec;
  torch::Tensor loss, recon, l2;
  TokenizerOutput out;
  double adaptive = 0;
  {
    CudaAutocast autocast(amp);
    out = s.model->forward(x);
    recon = out.reconstruction.to(torch::kFloat);
    auto l1 = (recon - x).abs().mean();
    auto nll = t.l1_weight * l1;
    rec["l1"] = l1.item<double>();
    l2 = (recon - x).pow(2).mean();  // also what the logged PSNR is computed from
    if (t.l2_weight > 0) nll = nll + t.l2_weight * l2;
    if (s.perceptual) {
      auto p = s.perceptual_loss(recon, x);
      nll = nll + t.perceptual_weight * p;
      rec["perceptual"] = p.item<double>();
    }
    loss = nll + t.codebook_weight * (out.codebook_loss + out.commitment_loss);
    if (gan) {
      for (auto& p : s.disc->parameters()) p.set_requires_grad(false);
      auto g = generator_loss(s.disc->forward(recon).to(torch::kFloat), t.gan_loss);
      // Adaptive weight (VQGAN): balance the GAN gradient against the
      // reconstruction gradient at the decoder's last layer.
      auto gnv = torch::autograd::grad({nll}, {s.last_layer}, {}, true)[0];
      auto ggv = torch::autograd::grad({g}, {s.last_layer}, {}, true)[0];
      s.average(gnv, "adaptive GAN weight of step " + std::to_string(s.step));  // the whole batch's gradients
      s.average(ggv, "adaptive GAN weight of step " + std::to_string(s.step));
      auto gn = gnv.norm(), gg = ggv.norm();
      adaptive = t.gan_weight * std::min(t.adaptive_weight_max, (gn / (gg + 1e-4)).item<double>());
      loss = loss + adaptive * g;
      rec["gan_g"] = g.item<double>();
      for (auto& p : s.disc->parameters()) p.set_requires_grad(true);
    }
  }
  const std::string at = " of step " + std::to_string(s.step);
  s.opt->zero_grad();
  if (s.gsync) s.gsync->arm("gradient all-reduce" + at);
  loss.backward();
  if (s.gsync) s.gsync->finish(1.0 / s.world());  // the mean of the ranks' means: the whole batch's
  double grad_norm = dist::clip_gradients(s.group, s.model->parameters(), t.grad_clip);
  adamw_step(*s.opt, t.fused_adamw);

  if (train_disc) {
    set_lr(*s.dopt, t.disc_lr * factor);
    torch::Tensor real, fake;
    {
      CudaAutocast autocast(amp);
      real = s.disc->forward(x).to(torch::kFloat);
      fake = s.disc->forward(recon.detach()).to(torch::kFloat);
    }
    auto d = discriminator_loss(real, fake, t.gan_loss);
    auto total = d;
    if (t.lecam_weight > 0 && s.lecam.started) {
      auto lc = s.lecam.penalty(real, fake);
      total = total + t.lecam_weight * lc;
      rec["lecam"] = lc.item<double>();
    }
    s.dopt->zero_grad();
    if (s.dsync) s.dsync->arm("discriminator all-reduce" + at);
    total.backward();
    if (s.dsync) s.dsync->finish(1.0 / s.world());
    if (t.grad_clip > 0) dist::clip_gradients(s.group, s.disc->parameters(), t.grad_clip);
    adamw_step(*s.dopt, t.fused_adamw);
    auto means = torch::stack({real.mean(), fake.mean()}).detach();
    s.average(means, "LeCAM averages" + at);
    s.lecam.update(means[0].item<double>(), means[1].item<double>());
    rec["disc"] = d.item<double>();
    rec["adaptive_weight"] = adaptive;
    rec["logits_real"] = s.lecam.real;
    rec["logits_fake"] = s.lecam.fake;
  }
  if (t.ema_decay > 0) {
    s.ema_update();
  } else {
    store::copy_weights(*s.ema, *s.model);
  }

  // The step's figures over the whole batch (each rank's are means of its
  // equal share), and whether any rank's time is up.
  bool time_up = t.max_minutes > 0 && seconds_since(s.session_start) > t.max_minutes * 60;
  double mse = l2.item<double>();
  double loss_value = loss.item<double>(), codebook = out.codebook_loss.item<double>(),
         commitment = out.commitment_loss.item<double>();
  if (s.group) {
    static const char* keys[] = {"l1", "perceptual", "gan_g", "lecam", "disc"};
    std::vector<double> v = {mse, loss_value, codebook, commitment, double(time_up)};
    for (const char* k : keys) v.push_back(rec.contains(k) ? rec[k].get<double>() : 0.0);
    auto tv = torch::tensor(v, torch::kDouble).to(s.group->device());
    s.group->allreduce(tv, "loss all-reduce" + at);
    tv = tv.cpu() / s.world();
    auto a = tv.accessor<double, 1>();
    mse = a[0], loss_value = a[1], codebook = a[2], commitment = a[3], time_up = a[4] > 0;
    for (size_t i = 0; i < std::size(keys); ++i)
      if (rec.contains(keys[i])) rec[keys[i]] = a[5 + i];
  }
  s.time_up = time_up;
  const double ms = seconds_since(t0) * 1000;
  const int K = s.cfg.model.codebook_size;
  const auto live = (s.model->quantizer->usage > 1.0 / (100.0 * K)).sum().item<int64_t>();
  rec["step"] = s.step;
  rec["frames"] = stage.frames;
  rec["batch"] = stage.batch_size;  // of all ranks together
  rec["world_size"] = s.world();
  rec["lr"] = t.lr * factor;
  rec["loss"] = loss_value;
  rec["codebook"] = codebook;
  rec["commitment"] = commitment;
  rec["l2"] = mse;
  rec["psnr"] = 10 * std::log10(4.0 / std::max(mse, 1e-12));
  rec["grad_norm"] = grad_norm;
  rec["codes_used"] = out.codes_used;
  rec["usage"] = static_cast<double>(out.codes_used) / K;
  rec["live_codes"] = live;
  rec["perplexity"] = out.perplexity;
  rec["ms"] = ms;
  rec["frames_per_s"] = clips.size(0) * s.world() * clips.size(1) / std::max(1e-9, ms / 1000);
  if (!std::isfinite(rec["loss"].get<double>()))
    fail("training", "the loss became " + std::to_string(rec["loss"].get<double>()) + " at step " +
                         std::to_string(s.step) + "; lower lr or enable grad_clip (the last checkpoint is intact)");
  ++s.step;
  return rec;
}

void TokenizerTrainer::save_checkpoint() {
  State& s = *s_;
  // Rank 0 writes; the others wait, so none runs ahead of a checkpoint that failed.
  if (s.root())
  store::write_checkpoint(s.opts.run_dir, s.step, s.cfg.train.keep_checkpoints, [&](const std::string& dir) {
    const fs::path tmp(dir);
    save_model(dir, s.ema, {{"step", std::to_string(s.step)}});
    std::vector<std::pair<std::string, torch::Tensor>> state;
    for (auto& [n, v] : named_tensors(*s.model)) state.emplace_back("model." + n, v);
    if (s.disc)
      for (auto& [n, v] : named_tensors(*s.disc)) state.emplace_back("disc." + n, v);
    safetensors::save((tmp / "trainer.safetensors").string(), state);
    save_optimizer(dir, "optimizer", *s.opt);
    if (s.dopt) save_optimizer(dir, "disc_optimizer", *s.dopt);
    nlohmann::json tj = {{"format", "loong-tokenizer-trainer"},
                         {"step", s.step},
                         {"elapsed_s", s.elapsed()},
                         {"lecam", {{"real", s.lecam.real}, {"fake", s.lecam.fake}, {"started", s.lecam.started}}},
                         {"config", s.cfg.to_json()}};
    write_json_file((tmp / "trainer.json").string(), tj);
  });
  if (s.group) s.group->barrier("checkpoint of step " + std::to_string(s.step));
  s.saved_step = s.step;
}

int64_t TokenizerTrainer::run(const BatchFn& next_batch) {
  State& s = *s_;
  const auto& t = s.cfg.train;
  const int64_t total = t.total_steps();
  s.session_start = Clock::now();
  s.print("tokenizer: " + std::to_string(s.model->parameter_count()) + " parameters, " +
          std::to_string(s.model->config.codebook_size) + " codes; " + std::to_string(total) + " steps in " +
          std::to_string(t.stages.size()) + " stage(s); device " + s.opts.device.str() + ", " +
          std::to_string(at::get_num_threads()) + " thread(s)");
  if (s.group)
    s.print("distributed: " + std::to_string(s.world()) + " ranks (" + s.group->env().launcher + "), " +
            s.group->backend() + "; each rank trains on 1/" + std::to_string(s.world()) + " of every batch");
  const Stage* current = nullptr;
  while (s.step < total) {
    if (s.time_up) {
      s.print("stopping at step " + std::to_string(s.step) + ": max_minutes (" + std::to_string(t.max_minutes) +
              ") reached; --resume continues");
      break;
    }
    const Stage& stage = t.stage_at(s.step);
    if (&stage != current) {
      current = &stage;
      s.print("stage " + std::to_string(&stage - t.stages.data() + 1) + "/" + std::to_string(t.stages.size()) + ": " +
              std::to_string(stage.frames) + "-frame clips, batch " + std::to_string(stage.batch_size));
      if (s.root() && !s.sample_clips.count(stage.frames)) {
        std::mt19937_64 fixed(t.seed + 7919);
        s.sample_clips[stage.frames] = next_batch(stage.frames, 4, fixed);
      }
    }
    // Each rank draws its share with its own generator (which entries can
    // serve a clip is known only once they are decoded, so the ranks cannot
    // split one draw of the whole batch as the language model's trainer does).
    std::mt19937_64 rng(t.seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(s.step) +
                        static_cast<uint64_t>(s.rank()) * 0xD1B54A32D192ED03ULL);
    const auto d0 = Clock::now();
    auto clips = next_batch(stage.frames, stage.batch_size / s.world(), rng);
    const double data_ms = seconds_since(d0) * 1000;
    auto rec = step(clips);
    rec["data_ms"] = data_ms;
    rec["elapsed_s"] = s.elapsed();
    if (s.root()) {
      s.log << rec.dump() << "\n";
      s.log.flush();
    }
    const int64_t done = s.step;  // steps completed
    if (done % t.log_every == 0 || done == total) {
      char line[256];
      std::snprintf(line, sizeof line,
                    "step %lld/%lld  loss %.4f  l1 %.4f  psnr %.2f  codes %lld/%d  ppl %.0f  %.0f ms  %.1f frames/s",
                    static_cast<long long>(done), static_cast<long long>(total), rec["loss"].get<double>(),
                    rec["l1"].get<double>(), rec["psnr"].get<double>(),
                    static_cast<long long>(rec["codes_used"].get<int64_t>()), s.cfg.model.codebook_size,
                    rec["perplexity"].get<double>(), rec["ms"].get<double>(), rec["frames_per_s"].get<double>());
      s.print(line);
    }
    if (t.sample_every > 0 && done % t.sample_every == 0 && s.root()) s.write_samples(stage.frames);
    if (t.checkpoint_every > 0 && done % t.checkpoint_every == 0 && done < total) save_checkpoint();
  }
  if (s.saved_step != s.step) {
    save_checkpoint();
    if (s.root()) s.write_samples(t.stage_at(std::max<int64_t>(0, s.step - 1)).frames);
  }
  s.print("checkpoint: " + newest_checkpoint(s.opts.run_dir));
  return s.step;
}

RunConfig TokenizerTrainer::run_config(const std::string& run_dir) {
  const std::string ck = newest_checkpoint(run_dir);
  if (ck.empty()) fail(run_dir, "nothing to resume: no complete checkpoint in " + run_dir + "/checkpoints");
  const std::string tj = (fs::path(ck) / "trainer.json").string();
  return RunConfig::from_json(read_json_file(tj).at("config"), tj + ": config");
}

data::SamplerOptions TokenizerTrainer::sampler_options(const RunConfig& cfg) {
  data::SamplerOptions so;
  so.clip.read.fps = cfg.train.fps;
  so.clip.read.size = cfg.model.image_size;
  int max_frames = 1;
  for (const auto& s : cfg.train.stages) max_frames = std::max(max_frames, s.frames);
  so.clip.max_frames = 4 * max_frames;  // windows are cut from the first 4x stage length
  so.cache_mb = cfg.train.cache_mb;
  return so;
}

}  // namespace loong::tokenizer
