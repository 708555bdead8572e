#include "loong/lm/trainer.h"
#include "loong/text/text_tokenizer.h"

#include <chrono>
#include <csignal>
#include <sys/resource.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include <torch/torch.h>

#include "loong/core/atomic_file.h"
#include "loong/core/clock.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/core/runtime.h"
#include "loong/core/torch_compat.h"
#include "loong/dist/grad_sync.h"
#include "loong/io/image.h"
#include "loong/io/safetensors.h"
#include "loong/lm/batch.h"
#include "loong/lm/checkpoint.h"
#include "loong/lm/shards.h"
#include "loong/lm/vocab.h"
#include "loong/ops/adamw.h"
#include "loong/tokenizer/config.h"
#include "loong/store/checkpoints.h"
#include "loong/io/plot.h"

namespace fs = std::filesystem;

namespace loong::lm {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The step's batches come from this generator alone, so the step is the data position.
std::mt19937_64 step_rng(uint64_t seed, int64_t step) {
  return std::mt19937_64(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(step) + 1);
}

struct Point {  // one step of the loss history (for the plot)
  int64_t step;
  double ce, range[kRanges];
};

// ZeRO-1: which rank's optimizer updates each parameter. Greedy by size, in
// the model's order, so the shares are even and any rank can recompute the
// partition of any world size (to re-shard a checkpoint).
std::vector<int> optimizer_owners(const std::vector<torch::Tensor>& params, int world) {
  std::vector<int64_t> load(world, 0);
  std::vector<int> owner;
  for (const auto& p : params) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    owner.push_back(r);
    load[r] += p.numel();
  }
  return owner;
}

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

// The stem of a ZeRO-1 rank's optimizer file (store::save_optimizer adds .safetensors).
std::string optimizer_shard_name(int rank, int world) {
  char b[64];
  std::snprintf(b, sizeof b, "optimizer-%05d-of-%05d", rank, world);
  return b;
}

double json_or_nan(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : kNaN;
}

}  // namespace

struct LmTrainer::State {
  LmTrainConfig cfg;
  LmTrainerOptions opts;
  std::unique_ptr<ShardSet> shards;
  std::unique_ptr<Vocab> vocab;
  Llama model{nullptr};
  std::unique_ptr<torch::optim::AdamW> opt;
  std::vector<int64_t> image_pool;
  std::map<int, std::vector<int64_t>> clip_pools;  // latent frames -> samples
  int64_t tokens_per_frame = 0;
  int64_t step = 0, saved_step = -1, skipped = 0;
  int bad_in_row = 0;
  double elapsed_before = 0;
  Clock::time_point session_start = Clock::now();
  std::ofstream log;
  std::vector<Point> history;
  std::map<int, double> stage_ms;  // recent ms per step of each stage (for the ETA)
  dist::Group* group = nullptr;     // null: alone
  std::unique_ptr<dist::GradSync> sync;
  bool time_up = false;             // max_minutes passed (on any rank)
  std::vector<torch::Tensor> params;  // the model's, in order
  std::vector<int> owner;             // ZeRO-1: the rank whose optimizer updates params[k]; empty = every rank's

  bool zero() const { return !owner.empty(); }
  std::vector<torch::Tensor> owned_by(int r, const std::vector<int>& own) const {
    std::vector<torch::Tensor> out;
    for (size_t k = 0; k < params.size(); ++k)
      if (own[k] == r) out.push_back(params[k]);
    return out;
  }
  std::vector<torch::Tensor> mine() const { return zero() ? owned_by(rank(), owner) : params; }

  // AdamW over `ps`: no weight decay on the RMSNorm gains (1-D), as in LLaMA.
  std::unique_ptr<torch::optim::AdamW> make_optimizer(const std::vector<torch::Tensor>& ps) const {
    std::vector<torch::Tensor> decay, no_decay;
    for (const auto& p : ps) (p.dim() >= 2 ? decay : no_decay).push_back(p);
    auto o = torch::optim::AdamWOptions(cfg.stages[0].lr).betas({cfg.beta1, cfg.beta2}).weight_decay(cfg.weight_decay);
    auto o0 = o;
    o0.weight_decay(0);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    if (!decay.empty()) groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(o));
    if (!no_decay.empty()) groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(o0));
    return std::make_unique<torch::optim::AdamW>(std::move(groups), o);
  }

  // A checkpoint's optimizer state, whole (optimizer.safetensors) or in the shards of
  // a ZeRO-1 run of any world size, into this rank's optimizer: its share.
  void load_optimizer_state(const fs::path& ck, const nlohmann::json& tj) {
    const int shards = tj.value("optimizer_shards", 0);
    if (shards == 0 && !zero()) {
      store::load_optimizer(*opt, ck.string(), "optimizer");
      return;
    }
    const auto wanted = mine();
    if (shards == 0) {
      auto whole = make_optimizer(params);
      store::load_optimizer(*whole, ck.string(), "optimizer");
      move_optimizer_state(*whole, *opt, wanted);
      return;
    }
    const auto own = optimizer_owners(params, shards);
    for (int r = 0; r < shards; ++r) {
      auto part = make_optimizer(owned_by(r, own));
      store::load_optimizer(*part, ck.string(), optimizer_shard_name(r, shards));
      move_optimizer_state(*part, *opt, wanted);
    }
  }

  // ZeRO-1: each rank updated its share; every rank gets every share.
  void share_updated_parameters() {
    torch::NoGradGuard ng;
    for (int r = 0; r < world(); ++r) {
      const auto ps = owned_by(r, owner);
      std::vector<torch::Tensor> flat;
      for (const auto& p : ps) flat.push_back(p.detach().reshape({-1}).to(group->device()));
      auto buf = torch::cat(flat);
      group->broadcast(buf, r, "parameter broadcast of step " + std::to_string(step));
      if (r == rank()) continue;
      int64_t off = 0;
      for (const auto& p : ps) {
        p.detach().copy_(buf.narrow(0, off, p.numel()).view(p.sizes()));
        off += p.numel();
      }
    }
  }

  bool root() const { return !group || group->root(); }
  int rank() const { return group ? group->rank() : 0; }
  int world() const { return group ? group->size() : 1; }
  void print(const std::string& s) const {
    if (opts.print && root()) opts.print(s);
  }
  std::string last_good() const { return store::last_good_checkpoint(opts.run_dir); }
  double elapsed() const { return elapsed_before + seconds_since(session_start); }

  // Rough tokens per step of a stage, for scaling the ETA of stages not yet run.
  double stage_tokens(int i) const {
    const auto& st = cfg.stages[i];
    const double f = st.frames == 1 ? 1.0 : st.image_fraction;
    return st.batch_size * st.grad_accum * ((1 - f) * cfg.latent_frames(st.frames) + f) * tokens_per_frame;
  }

  double eta_seconds() const {
    const int cur = cfg.stage_index(std::max<int64_t>(0, step - 1));
    auto it = stage_ms.find(cur);
    if (it == stage_ms.end()) return kNaN;
    double total = 0;
    for (int i = cur; i < static_cast<int>(cfg.stages.size()); ++i) {
      const int64_t start = cfg.stage_start(i), end = start + cfg.stages[i].steps;
      const int64_t left = end - std::max(start, step);
      if (left <= 0) continue;
      auto known = stage_ms.find(i);
      const double ms = known != stage_ms.end() ? known->second : it->second * stage_tokens(i) / stage_tokens(cur);
      total += left * ms / 1000;
    }
    return total;
  }

  void write_plot() const {
#ifdef LOONG_WITH_PNG
    if (history.empty()) return;
    const double alpha = std::min(1.0, 2.0 / (history.size() / 100.0 + 1));
    static const std::array<uint8_t, 3> colors[kRanges] = {{214, 39, 40}, {44, 160, 44}, {31, 119, 180}};
    static const char* labels[kRanges] = {"frame 1", "frames 2-17", "frames 18-65"};
    std::vector<plot::Series> series;
    for (int r = 0; r < kRanges; ++r) {
      plot::Series s{labels[r], colors[r], {}, {}};
      std::vector<double> raw;
      for (const auto& p : history) s.x.push_back(static_cast<double>(p.step)), raw.push_back(p.range[r]);
      s.y = plot::ema_smooth(raw, alpha);
      series.push_back(std::move(s));
    }
    image::write_png((fs::path(opts.run_dir) / "loss_curves.png").string(),
                     plot::line_plot(series, "step", "video token loss (cross-entropy)"));
#endif
  }

  // The log of an earlier session, cut back to the steps before `step` (the
  // ones after the checkpoint are trained again; none for a new run).
  void load_history() {
    for (const auto& j : store::cut_training_log(opts.run_dir, step))
      history.push_back({j["step"].get<int64_t>(), json_or_nan(j, "ce"),
                         {json_or_nan(j, "loss_frame_1"), json_or_nan(j, "loss_frames_2_17"),
                          json_or_nan(j, "loss_frames_18_65")}});
  }
};

LmTrainConfig LmTrainer::run_config(const std::string& run_dir) {
  const std::string path = (fs::path(run_dir) / "run.json").string();
  if (!fs::exists(path)) fail(run_dir, "not a training run folder: no run.json (start one with --config)");
  return LmTrainConfig::from_json(read_json_file(path), path);
}

LmTrainer::LmTrainer(LmTrainConfig config, LmTrainerOptions opts) : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.cfg = std::move(config);
  s.opts = std::move(opts);
  auto& cfg = s.cfg;
  cfg.validate("training config");
  const fs::path run(s.opts.run_dir);
  s.group = s.opts.group.get();
  for (size_t i = 0; i < cfg.stages.size(); ++i)
    if (cfg.stages[i].batch_size < s.world())
      fail("training config: stages[" + std::to_string(i) + "] (" + cfg.stages[i].name + ")",
           "key 'batch_size': " + std::to_string(cfg.stages[i].batch_size) + " sequences per micro-batch cannot be shared by " +
               std::to_string(s.world()) + " ranks (each needs at least one; the batch is global, docs/distributed.md)");

  if (s.opts.resume && !s.opts.init_model.empty())
    fail("--init", "starts a new run from a model's weights and --resume continues a run from its own checkpoint; "
                   "give one of them");
  std::string resume_from;
  if (s.opts.resume) {
    resume_from = store::newest_checkpoint(s.opts.run_dir);
    if (resume_from.empty())
      fail(s.opts.run_dir, "nothing to resume: no complete checkpoint in " + (run / "checkpoints").string());
  } else if (!store::list_checkpoints(s.opts.run_dir).empty()) {
    fail(s.opts.run_dir, "already holds checkpoints; pass --resume to continue that run, or choose a new --out");
  }

  // Data, and the vocabulary every part must agree on.
  if (cfg.data.empty()) fail("training config", "key 'data': missing (a folder of token shards from `loong tokenize`)");
  s.shards = std::make_unique<ShardSet>(cfg.data);
  if (!cfg.text_vocab_given) cfg.model.text_vocab = s.shards->text_vocab();
  if (!cfg.video_vocab_given) cfg.model.video_vocab = s.shards->video_vocab();
  cfg.text_vocab_given = cfg.video_vocab_given = true;
  s.shards->check_vocab(cfg.model.text_vocab, cfg.model.video_vocab, "the training config's model");
  if (!cfg.text_tokenizer.empty()) {
    const int n = text::recorded_vocab_size(cfg.text_tokenizer);
    if (n != s.shards->text_vocab())
      fail((fs::path(cfg.text_tokenizer) / "text.json").string(), "the text tokenizer has " + std::to_string(n) + " pieces but the shards in " + cfg.data + " were made with " +
                   std::to_string(s.shards->text_vocab()) + " (tokenize again with this tokenizer, or name the one used)");
  }
  if (!cfg.video_tokenizer.empty()) {
    const std::string tc = (fs::path(store::resolve_model_dir(cfg.video_tokenizer)) / "config.json").string();
    const auto t = tokenizer::TokenizerConfig::load(tc);
    if (t.codebook_size != s.shards->video_vocab())
      fail(tc, "the video tokenizer has " + std::to_string(t.codebook_size) + " codes but the shards in " + cfg.data +
                   " were made with " + std::to_string(s.shards->video_vocab()) +
                   " (tokenize again with this tokenizer, or name the one used)");
    if (t.temporal_factor() != cfg.temporal_factor)
      fail(tc, "the video tokenizer compresses time " + std::to_string(t.temporal_factor()) +
                   "x; the training config's temporal_factor is " + std::to_string(cfg.temporal_factor));
  }
  s.vocab = std::make_unique<Vocab>(cfg.model.text_vocab, cfg.model.video_vocab);

  // Sample pools per stage. Images are the image samples, or, where the data
  // has none, the first frame of every clip (the tokenizer encodes it alone).
  if (s.shards->size() == 0) fail(cfg.data, "the shards hold no samples");
  s.image_pool = s.shards->images();
  if (s.image_pool.empty()) s.image_pool = s.shards->with_frames(1);
  s.tokens_per_frame = s.shards->at(0).tokens_per_frame();
  if (cfg.model.rope_3d()) {  // the grid of 3D positions is the shards' latent frame, like the vocabulary
    const auto first = s.shards->at(0);
    if (cfg.model.rope_rows == 0) {
      cfg.model.rope_rows = first.height;
      cfg.model.rope_cols = first.width;
    } else if (cfg.model.rope_rows != first.height || cfg.model.rope_cols != first.width) {
      fail("training config", "key 'model.rope_grid': [" + std::to_string(cfg.model.rope_rows) + ", " +
                                  std::to_string(cfg.model.rope_cols) + "] but the latent frames in " + cfg.data +
                                  " are " + std::to_string(first.height) + " x " + std::to_string(first.width));
    }
  }
  int longest = 0;
  int64_t longest_text = 0;
  for (int64_t i = 0; i < s.shards->size(); ++i) {
    const auto v = s.shards->at(i);
    longest = std::max(longest, v.frames);
    longest_text = std::max(longest_text, v.text_len);
    if (v.tokens_per_frame() != s.tokens_per_frame)
      fail(cfg.data, "samples have latent frames of " + std::to_string(s.tokens_per_frame) + " and " +
                         std::to_string(v.tokens_per_frame()) + " tokens: one model trains on one resolution");
  }
  for (size_t i = 0; i < cfg.stages.size(); ++i) {
    const auto& st = cfg.stages[i];
    const int lat = cfg.latent_frames(st.frames);
    const std::string sw = "training config: stages[" + std::to_string(i) + "] (" + st.name + ")";
    if (st.frames > 1 && !s.clip_pools.count(lat)) {
      std::vector<int64_t> pool;
      for (auto k : s.shards->with_frames(lat))
        if (s.shards->at(k).kind == SampleKind::Video) pool.push_back(k);
      if (pool.empty())
        fail(sw, "needs " + std::to_string(st.frames) + "-frame clips (" + std::to_string(lat) +
                     " latent frames), but the longest sample in " + cfg.data + " has " + std::to_string(longest) +
                     " latent frames (tokenize with --chunk " + std::to_string(st.frames) + " or longer)");
      s.clip_pools[lat] = std::move(pool);
    }
    const int64_t need = Vocab::prefix_length(longest_text) + lat * s.tokens_per_frame + 1;
    if (need > cfg.model.max_seq_len)
      fail(sw, "its sequences reach " + std::to_string(need) + " tokens (" + std::to_string(lat) + " latent frames of " +
                   std::to_string(s.tokens_per_frame) + " + text), more than the model's max_seq_len " +
                   std::to_string(cfg.model.max_seq_len));
  }

  // The --init model is loaded and checked before anything is written.
  Llama init{nullptr};
  if (!s.opts.init_model.empty()) {
    init = load_lm(store::bundle_part_or_self(s.opts.init_model, "lm"), s.opts.device);
    store::check_init_architecture(cfg.model.to_json(), init->config.to_json(), s.opts.init_model,
                                   "--init needs the architecture and vocabulary the run trains (text_vocab and "
                                   "video_vocab come from the shards)");
  }

  if (s.group) {
    // Every rank must train the same thing: the config (its data path aside), the
    // data as files, the checkpoint it starts from, and the binary.
    nlohmann::json files = nlohmann::json::array();
    std::error_code ec;
    for (const auto& f : list_shards(cfg.data))
      files.push_back({{"name", fs::path(f).filename().string()}, {"bytes", static_cast<int64_t>(fs::file_size(f, ec))}});
    auto c = cfg.to_json();
    c.erase("data");
    s.group->check_same("training setup", {{"config", c},
                                           {"data", {{"samples", s.shards->size()}, {"files", files}}},
                                           {"resume_from", fs::path(resume_from).filename().string()},
                                           {"init", s.opts.init_model},
                                           {"binary", build_info()}});
    s.group->set_hint([&s] { return s.last_good(); });
  }
  if (s.root()) store::prepare_checkpoint_dir(s.opts.run_dir);
  torch::manual_seed(cfg.seed);
  s.model = Llama(cfg.model);
  if (init) {
    store::copy_weights(*s.model, *init);  // widens f16/bf16 weights
    s.print("initialised from " + s.opts.init_model);
  }
  s.model->to(s.opts.device);
  s.model->train();
  s.model->checkpoint_blocks = cfg.activation_checkpointing;
  s.params = s.model->parameters();
  if (s.group && cfg.zero >= 1) {
    if (static_cast<int>(s.params.size()) < s.world())
      fail("training config", "key 'zero': " + std::to_string(s.params.size()) + " parameter tensors cannot be shared by " +
                                  std::to_string(s.world()) + " ranks");
    s.owner = optimizer_owners(s.params, s.world());
  }
  s.opt = s.make_optimizer(s.mine());

  if (!resume_from.empty()) {
    const fs::path ck(resume_from);
    const std::string tj_path = (ck / "trainer.json").string();
    auto tj = read_json_file(tj_path);
    if (!tj.contains("config")) fail(tj_path, "key 'config': missing");
    auto saved = LmTrainConfig::from_json(tj["config"], tj_path + ": config");
    if (saved.model.to_json() != cfg.model.to_json())
      fail(s.opts.run_dir, "the model config differs from the checkpoint's (" + resume_from +
                               "); a run can only be resumed with the same model");
    s.step = store::checkpoint_step(tj, tj_path, ck.string());
    s.elapsed_before = get_number(tj, "elapsed_s", tj_path);
    s.skipped = get_int(tj, "skipped_steps", tj_path);
    s.bad_in_row = static_cast<int>(get_int(tj, "bad_in_row", tj_path));
    const std::string weights = (ck / "model.safetensors").string();
    store::load_named_tensors(*s.model, safetensors::load(weights), weights);
    s.load_optimizer_state(ck, tj);
    const std::string ts = (ck / "trainer.safetensors").string();
    auto state = safetensors::load(ts);
    auto rng = state.find("rng.cpu");
    if (rng == state.end()) fail(ts, "missing tensor 'rng.cpu' (the random generator's state)");
    at::Generator gen = at::detail::getDefaultCPUGenerator();  // a handle to the process's generator
    gen.set_state(rng->second);
    const int64_t samples = tj.value("data_samples", int64_t(-1));
    if (samples != s.shards->size())
      s.print("warning: the checkpoint was trained on " + std::to_string(samples) + " samples, " + cfg.data + " holds " +
              std::to_string(s.shards->size()) + "; the batches after step " + std::to_string(s.step) +
              " differ from the original run's");
    s.saved_step = s.step;
    s.print("resumed from " + resume_from + " at step " + std::to_string(s.step));
  }
  if (s.group) {
    dist::broadcast_module(*s.group, *s.model);
    s.sync = std::make_unique<dist::GradSync>(*s.group, s.model->parameters(),
                                              static_cast<int64_t>(cfg.bucket_mb * (1 << 20)));
  }
  if (!s.root()) return;
  write_json_file((run / "run.json").string(), cfg.to_json());
  s.load_history();
  s.log.open(run / "log.jsonl", std::ios::app);
  if (!s.log) fail((run / "log.jsonl").string(), "cannot open the training log for writing");
}

LmTrainer::~LmTrainer() {
  if (s_->group) s_->group->set_hint(nullptr);
}
int64_t LmTrainer::global_step() const { return s_->step; }
int64_t LmTrainer::skipped_steps() const { return s_->skipped; }
Llama LmTrainer::model() const { return s_->model; }
const LmTrainConfig& LmTrainer::config() const { return s_->cfg; }

nlohmann::json LmTrainer::step() {
  State& s = *s_;
  const auto& cfg = s.cfg;
  const auto t0 = Clock::now();
  const int si = cfg.stage_index(s.step);
  const LmStage& st = cfg.stages[si];
  const double lr = cfg.lr_at(s.step);
  store::set_lr(*s.opt, lr);

  // Micro-batches: each one all images or all clips, drawn from the stage's mix.
  // Every rank draws the whole step (the global batch) from (seed, step) and
  // builds its share of each micro-batch, in passes of at most micro_batch.
  auto rng = step_rng(cfg.seed, s.step);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<Batch> micro;
  int image_batches = 0;
  int64_t video_tokens = 0;  // of the global batch: Eq. 2's denominator
  int64_t my_video_tokens = 0;
  const int64_t world = s.world(), rank = s.rank();
  for (int m = 0; m < st.grad_accum; ++m) {
    const bool image = st.frames == 1 || u(rng) < st.image_fraction;
    const auto& pool = image ? s.image_pool : s.clip_pools.at(cfg.latent_frames(st.frames));
    std::uniform_int_distribution<size_t> pick(0, pool.size() - 1);
    std::vector<SampleView> samples;
    for (int b = 0; b < st.batch_size; ++b) samples.push_back(s.shards->at(pool[pick(rng)]));
    BatchOptions bo;
    bo.latent_frames = image ? 1 : cfg.latent_frames(st.frames);
    bo.caption_dropout = cfg.caption_dropout;
    bo.lambda = st.lambda;
    bo.weighted_frames = cfg.latent_frames(cfg.weighted_frames);
    if (!image && st.given_frames > 0) bo.given_latent_frames = cfg.latent_frames(st.given_frames);
    const auto drop = draw_caption_dropout(samples.size(), bo.caption_dropout, rng);
    // Splices: a clip whose given start is another sample's (a story's prompt change).
    std::vector<SampleView> starts;
    if (!image && st.splice_fraction > 0)
      for (const auto& v : samples) {
        const bool splice = u(rng) < st.splice_fraction;
        const size_t donor = pick(rng);  // drawn either way: the draws do not depend on the fraction
        starts.push_back(splice ? s.shards->at(pool[donor]) : v);
      }
    const int64_t learned = bo.latent_frames - bo.given_latent_frames;
    for (const auto& v : samples) video_tokens += learned * v.tokens_per_frame();
    const int64_t n = st.batch_size, lo = n * rank / world, hi = n * (rank + 1) / world;
    const int64_t pass = cfg.micro_batch > 0 ? cfg.micro_batch : hi - lo;
    for (int64_t a = lo; a < hi; a += pass) {
      const int64_t e = std::min(hi, a + pass);
      const std::vector<SampleView> share_starts =
          starts.empty() ? std::vector<SampleView>{} : std::vector<SampleView>(starts.begin() + a, starts.begin() + e);
      micro.push_back(make_batch({samples.begin() + a, samples.begin() + e}, *s.vocab, bo,
                                 std::vector<bool>(drop.begin() + a, drop.begin() + e),
                                 starts.empty() ? nullptr : &share_starts));
      my_video_tokens += micro.back().video_tokens;
      for (int64_t k = a; k < e; ++k) my_video_tokens -= learned * samples[k].tokens_per_frame();
    }
    image_batches += image;
  }
  if (my_video_tokens != 0) fail("training", "internal error: a batch's video tokens differ from its samples'");
  int64_t tokens = 0;
  for (const auto& b : micro) tokens += b.tokens;
  const double data_ms = seconds_since(t0) * 1000;

  // Eq. 2 over the whole step: sum of weighted CE / video tokens of all micro-batches.
  const bool amp = s.opts.device.is_cuda() && cfg.mixed_precision;
  s.opt->zero_grad();
  if (s.zero()) s.model->zero_grad();  // the gradients of parameters other ranks update, too
  double loss = 0, range_sum[kRanges] = {0, 0, 0};
  int64_t range_n[kRanges] = {0, 0, 0};
  double comm_ms = 0;
  for (size_t i = 0; i < micro.size(); ++i) {
    const auto& b = micro[i];
    LossParts parts;
    {
      CudaAutocast autocast(amp);
      auto logits = s.model->forward(b.input.to(s.opts.device));
      parts = video_loss(logits, b);
    }
    auto scaled = parts.loss * (static_cast<double>(b.video_tokens) / std::max<int64_t>(1, video_tokens));
    if (s.sync && i + 1 == micro.size()) s.sync->arm("gradient all-reduce of step " + std::to_string(s.step));
    // Fault injection for the tests: "RANK:STEP" dies as kill -9 would, mid-step;
    // "RANK:STEP:stop" stops (a hung rank).
    if (const char* k = std::getenv("LOONG_TEST_KILL_RANK"); k && s.group && i + 1 == micro.size()) {
      const std::string at = std::to_string(s.rank()) + ":" + std::to_string(s.step);
      if (k == at) ::raise(SIGKILL);
      if (k == at + ":stop") ::raise(SIGSTOP);
    }
    scaled.backward();
    loss += scaled.item<double>();
    for (int r = 0; r < kRanges; ++r)
      if (parts.range_tokens[r] > 0) range_sum[r] += parts.range_loss[r] * parts.range_tokens[r], range_n[r] += parts.range_tokens[r];
  }
  // A time limit reached on any rank ends the run on all of them, at the same step.
  bool time_up = cfg.max_minutes > 0 && seconds_since(s.session_start) > cfg.max_minutes * 60;
  if (s.group) {
    // Gradients summed over the ranks (each rank's loss is already a share of
    // the global Eq. 2), then the step's figures, so every rank takes the
    // same clipping and skip decisions.
    s.sync->finish();
    const auto tc = Clock::now();
    auto stats = torch::tensor({loss, range_sum[0], range_sum[1], range_sum[2], double(range_n[0]), double(range_n[1]),
                                double(range_n[2]), double(tokens), double(time_up)},
                               torch::kDouble)
                     .to(s.group->device());
    s.group->allreduce(stats, "loss all-reduce of step " + std::to_string(s.step));
    stats = stats.cpu();
    auto v = stats.accessor<double, 1>();
    loss = v[0];
    for (int r = 0; r < kRanges; ++r) range_sum[r] = v[1 + r], range_n[r] = static_cast<int64_t>(v[4 + r]);
    tokens = static_cast<int64_t>(v[7]);
    time_up = v[8] > 0;
    comm_ms = s.sync->wait_ms() + seconds_since(tc) * 1000;
  }
  s.time_up = time_up;
  const double grad_norm = dist::clip_gradients(s.group, s.params, cfg.grad_clip);
  const bool finite = std::isfinite(loss) && std::isfinite(grad_norm);
  if (finite) {
    adamw_step(*s.opt, cfg.fused_adamw);
    if (s.zero()) s.share_updated_parameters();
    s.bad_in_row = 0;
  } else {
    ++s.skipped;
    ++s.bad_in_row;
  }

  nlohmann::json rec;
  const double ms = seconds_since(t0) * 1000;
  int64_t all_n = 0;
  double all_sum = 0;
  rec["step"] = s.step;
  rec["stage"] = si + 1;
  rec["frames"] = st.frames;
  rec["lr"] = lr;
  rec["loss"] = loss;
  for (int r = 0; r < kRanges; ++r) {
    rec[std::string("loss_") + range_name(r)] = range_n[r] ? range_sum[r] / range_n[r] : kNaN;
    all_sum += range_sum[r], all_n += range_n[r];
  }
  rec["ce"] = all_n ? all_sum / all_n : kNaN;  // unweighted: comparable across lambda
  rec["grad_norm"] = grad_norm;
  rec["tokens"] = tokens;
  rec["video_tokens"] = video_tokens;
  rec["image_batches"] = image_batches;
  rec["micro_batches"] = st.grad_accum;
  rec["tokens_per_s"] = tokens / std::max(1e-9, ms / 1000);  // of all ranks together
  rec["ms"] = ms;
  rec["data_ms"] = data_ms;
  rec["world_size"] = world;
  rec["peak_rss_mb"] = peak_rss_mb();  // this process's (rank 0's)
  {
    double bytes = 0;  // AdamW's moments on this rank: all of them, or its share with ZeRO-1
    for (const auto& [key, st] : s.opt->state()) {
      const auto& a = static_cast<const torch::optim::AdamWParamState&>(*st);
      if (a.exp_avg().defined()) bytes += a.exp_avg().numel() * a.exp_avg().element_size();
      if (a.exp_avg_sq().defined()) bytes += a.exp_avg_sq().numel() * a.exp_avg_sq().element_size();
    }
    rec["optimizer_state_mb"] = bytes / (1 << 20);
  }
  if (s.group) rec["comm_ms"] = comm_ms;  // waiting on communication the backward pass did not hide
  if (!finite) rec["skipped"] = true;
  ++s.step;
  if (!finite && s.bad_in_row >= cfg.max_bad_steps) {
    fail("training", std::to_string(s.bad_in_row) + " steps in a row (up to step " + std::to_string(s.step - 1) +
                         ") had a non-finite loss or gradient; stopped: " + s.last_good() +
                         "; lower the stage's lr or set grad_clip, then --resume");
  }
  return rec;
}

void LmTrainer::save_checkpoint() {
  State& s = *s_;
  // Rank 0 writes (the optimizer state is the same on every rank, or with
  // ZeRO-1 each rank writes its share into the folder first); the others wait
  // for it, so none runs ahead of a checkpoint that failed.
  const std::string at = "checkpoint of step " + std::to_string(s.step);
  if (s.zero()) {
    const std::string partial = store::partial_checkpoint_dir(s.opts.run_dir, s.step);
    if (s.root()) {
      fs::remove_all(partial);
      fs::create_directories(partial);
    }
    s.group->barrier(at + " (its folder)");
    store::save_optimizer(partial, optimizer_shard_name(s.rank(), s.world()), *s.opt);
    s.group->barrier(at + " (the optimizer shards)");
  }
  if (s.root())
  store::write_checkpoint(s.opts.run_dir, s.step, s.cfg.keep_checkpoints, [&](const std::string& dir) {
    // Every rank's optimizer shard must be here before the folder counts as a checkpoint.
    for (int r = 0; s.zero() && r < s.world(); ++r)
      if (!store::has_optimizer(dir, optimizer_shard_name(r, s.world())))
        fail(dir, "rank " + std::to_string(r) + "'s optimizer shard (" + optimizer_shard_name(r, s.world()) +
                      ") is not here: the run folder must be on a file system every rank shares (docs/distributed.md)");
    save_lm(dir, s.model, {{"step", std::to_string(s.step)}});
    if (!s.zero()) store::save_optimizer(dir, "optimizer", *s.opt);
    safetensors::save((fs::path(dir) / "trainer.safetensors").string(),
                      {{"rng.cpu", at::detail::getDefaultCPUGenerator().get_state()}});
    nlohmann::json tj = {{"format", "loong-lm-trainer"},
                         {"step", s.step},
                         {"stage", s.cfg.stage_index(std::max<int64_t>(0, s.step - 1)) + 1},
                         {"elapsed_s", s.elapsed()},
                         {"skipped_steps", s.skipped},
                         {"bad_in_row", s.bad_in_row},
                         {"data_samples", s.shards->size()},
                         {"optimizer_shards", s.zero() ? s.world() : 0},
                         {"data_position", "batches are drawn from a generator seeded with (seed, step)"},
                         {"config", s.cfg.to_json()}};
    write_json_file((fs::path(dir) / "trainer.json").string(), tj);
  }, /*fresh=*/!s.zero());
  if (s.group) s.group->barrier(at);
  s.saved_step = s.step;
}

int64_t LmTrainer::run() {
  State& s = *s_;
  const auto& cfg = s.cfg;
  const int64_t total = cfg.total_steps();
  s.session_start = Clock::now();
  {
    const auto& m = cfg.model;
    char head[512];
    std::snprintf(head, sizeof head,
                  "lm: %.2fM parameters (dim %d, %d layers, %d heads), vocabulary %d (text %d + video %d + %d); "
                  "%lld steps in %zu stage(s); device %s, %d thread(s)",
                  m.parameter_count() / 1e6, m.dim, m.n_layers, m.n_heads, m.vocab_size(), m.text_vocab, m.video_vocab,
                  kSpecialTokens, static_cast<long long>(total), cfg.stages.size(), s.opts.device.str().c_str(),
                  at::get_num_threads());
    s.print(head);
    if (s.group)
      s.print("distributed: " + std::to_string(s.world()) + " ranks (" + s.group->env().launcher + "), " +
              s.group->backend() + ", " + std::to_string(s.sync->buckets()) + " gradient bucket(s); batches are global");
    s.print("data: " + cfg.data + ": " + std::to_string(s.shards->size()) + " samples, " +
            std::to_string(s.shards->images().size()) + " images, " + std::to_string(s.tokens_per_frame) +
            " tokens per latent frame");
  }
  int current = -1;
  const int64_t end = s.opts.stop_at >= 0 ? std::min(total, s.opts.stop_at) : total;
  while (s.step < end) {
    if (s.time_up) {
      s.print("stopping at step " + std::to_string(s.step) + ": max_minutes (" + std::to_string(cfg.max_minutes) +
              ") reached; --resume continues");
      break;
    }
    const int si = cfg.stage_index(s.step);
    if (si != current) {
      current = si;
      const auto& st = cfg.stages[si];
      char line[256];
      std::snprintf(line, sizeof line,
                    "stage %d/%zu (%s): %d frames, %lld steps, batch %d x %d, images %.0f%%, lr %.1e, lambda %g", si + 1,
                    cfg.stages.size(), st.name.c_str(), st.frames, static_cast<long long>(st.steps), st.batch_size,
                    st.grad_accum, 100 * (st.frames == 1 ? 1.0 : st.image_fraction), st.lr, st.lambda);
      s.print(line);
    }
    auto rec = step();
    rec["elapsed_s"] = s.elapsed();
    if (s.root()) {
      s.log << rec.dump() << "\n";
      s.log.flush();
    }
    const int64_t done = s.step;
    s.history.push_back({rec["step"].get<int64_t>(), json_or_nan(rec, "ce"),
                         {json_or_nan(rec, "loss_frame_1"), json_or_nan(rec, "loss_frames_2_17"),
                          json_or_nan(rec, "loss_frames_18_65")}});
    auto& avg = s.stage_ms[si];
    avg = avg == 0 ? rec["ms"].get<double>() : 0.9 * avg + 0.1 * rec["ms"].get<double>();
    const std::string eta = format_duration(s.eta_seconds());
    if (done % cfg.log_every == 0 || done == total) {
      auto r3 = [&](const char* k) {
        const double v = json_or_nan(rec, k);
        char b[16];
        if (std::isfinite(v)) std::snprintf(b, sizeof b, "%.3f", v);
        else std::snprintf(b, sizeof b, "-");
        return std::string(b);
      };
      char line[384];
      std::snprintf(line, sizeof line,
                    "step %lld/%lld s%d  loss %.4f ce %s | f1 %s f2-17 %s f18-65 %s | gnorm %.3f lr %.2e | %.0f tok/s "
                    "%.0f ms | ETA %s%s",
                    static_cast<long long>(done), static_cast<long long>(total), si + 1, rec["loss"].get<double>(),
                    r3("ce").c_str(), r3("loss_frame_1").c_str(), r3("loss_frames_2_17").c_str(),
                    r3("loss_frames_18_65").c_str(), rec["grad_norm"].get<double>(), rec["lr"].get<double>(),
                    rec["tokens_per_s"].get<double>(), rec["ms"].get<double>(), eta.c_str(),
                    rec.contains("skipped") ? "  [skipped: non-finite]" : "");
      s.print(line);
    }
    if (s.opts.status && s.root()) {
      const int width = 30;
      const int filled = static_cast<int>(width * done / total);
      char bar[160];
      std::snprintf(bar, sizeof bar, "[%s%s] %3d%%  step %lld/%lld  stage %d/%zu  ETA %s",
                    std::string(filled, '#').c_str(), std::string(width - filled, '.').c_str(),
                    static_cast<int>(100 * done / total), static_cast<long long>(done), static_cast<long long>(total),
                    si + 1, cfg.stages.size(), eta.c_str());
      s.opts.status(bar);
    }
    if (cfg.plot_every > 0 && done % cfg.plot_every == 0 && s.root()) s.write_plot();
    if (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0 && done < end) save_checkpoint();
  }
  if (s.step < total && s.step == end) s.print("stopping at step " + std::to_string(s.step) + " (--stop-at); --resume continues");
  if (s.saved_step != s.step) save_checkpoint();
  if (s.root()) s.write_plot();
  if (s.skipped > 0) s.print("skipped " + std::to_string(s.skipped) + " step(s) with a non-finite loss or gradient");
  s.print("checkpoint: " + store::newest_checkpoint(s.opts.run_dir));
  return s.step;
}

}  // namespace loong::lm
