#include "loong/dist/grad_sync.h"

#include <cmath>
#include <mutex>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include "loong/core/clock.h"
#include "loong/core/error.h"

namespace loong::dist {

struct GradSync::State {
  Group* group = nullptr;
  std::vector<torch::Tensor> params;
  struct Bucket {
    std::vector<size_t> members;  // indices into params
    torch::Tensor flat;
    Pending pending;
    int left = 0;
  };
  std::vector<Bucket> buckets;
  std::vector<int> bucket_of;
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: the hooks live on them
  std::mutex mutex;
  bool armed = false;
  std::vector<bool> seen;
  size_t next = 0;  // the next bucket to launch
  int early = 0;
  std::string what, error;
  double last_wait_ms = 0;

  void launch(size_t b) {
    auto& bk = buckets[b];
    int64_t off = 0;
    torch::NoGradGuard ng;
    for (size_t i : bk.members) {
      const auto& p = params[i];
      auto slot = bk.flat.narrow(0, off, p.numel());
      if (p.grad().defined()) slot.copy_(p.grad().reshape({-1}));
      else slot.zero_();
      off += p.numel();
    }
    bk.pending = group->allreduce_async(bk.flat, what);
  }

  void launch_ready() {  // under mutex
    while (next < buckets.size() && buckets[next].left == 0) launch(next++);
  }

  void ready(size_t i) {
    std::lock_guard<std::mutex> lk(mutex);
    if (!armed || seen[i] || !error.empty()) return;
    seen[i] = true;
    --buckets[bucket_of[i]].left;
    try {
      const size_t before = next;
      launch_ready();
      early += static_cast<int>(next - before);
    } catch (const std::exception& e) {
      error = e.what();  // rethrown by finish(), outside the autograd engine
    }
  }
};

namespace {

// Called by the autograd engine once a parameter's AccumulateGrad has run.
struct ReadyHook : torch::autograd::FunctionPostHook {
  std::weak_ptr<GradSync::State> state;
  size_t index;
  ReadyHook(std::weak_ptr<GradSync::State> s, size_t i) : state(std::move(s)), index(i) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    if (auto s = state.lock()) s->ready(index);
    return outputs;
  }
};

}  // namespace

GradSync::GradSync(Group& group, std::vector<torch::Tensor> params, int64_t bucket_bytes)
    : s_(std::make_shared<State>()) {
  State& s = *s_;
  s.group = &group;
  s.params = std::move(params);
  s.bucket_of.assign(s.params.size(), -1);
  s.seen.assign(s.params.size(), false);
  // Reverse order: the last layers' gradients are final first.
  int64_t bytes = 0;
  for (size_t k = s.params.size(); k-- > 0;) {
    const auto& p = s.params[k];
    if (!p.requires_grad()) continue;
    const bool new_bucket = s.buckets.empty() || bytes >= bucket_bytes ||
                            s.params[s.buckets.back().members.front()].scalar_type() != p.scalar_type();
    if (new_bucket) {
      s.buckets.emplace_back();
      bytes = 0;
    }
    s.buckets.back().members.push_back(k);
    s.bucket_of[k] = static_cast<int>(s.buckets.size() - 1);
    bytes += p.numel() * p.element_size();
  }
  for (auto& b : s.buckets) {
    int64_t n = 0;
    for (size_t i : b.members) n += s.params[i].numel();
    const auto& first = s.params[b.members.front()];
    b.flat = torch::zeros({n}, first.options().device(group.device()).requires_grad(false));
  }
  for (size_t k = 0; k < s.params.size(); ++k) {
    if (s.bucket_of[k] < 0) continue;
    auto acc = torch::autograd::impl::grad_accumulator(s.params[k]);
    if (!acc) fail("gradient synchronisation", "a parameter that is not a leaf tensor");
    acc->add_post_hook(std::make_unique<ReadyHook>(s_, k));
    s.accumulators.push_back(std::move(acc));
  }
}

GradSync::~GradSync() = default;

void GradSync::arm(const std::string& what) {
  State& s = *s_;
  std::lock_guard<std::mutex> lk(s.mutex);
  s.armed = true;
  s.what = what;
  s.error.clear();
  s.next = 0;
  s.early = 0;
  std::fill(s.seen.begin(), s.seen.end(), false);
  for (auto& b : s.buckets) b.left = static_cast<int>(b.members.size());
}

void GradSync::finish(double scale) {
  State& s = *s_;
  const auto t0 = Clock::now();
  {
    std::lock_guard<std::mutex> lk(s.mutex);
    s.armed = false;
    if (!s.error.empty()) throw Error(s.error);
    for (auto& b : s.buckets) b.left = 0;  // parameters without a gradient this step count as zeros
    s.launch_ready();
  }
  torch::NoGradGuard ng;
  for (auto& b : s.buckets) {
    s.group->wait(b.pending, s.what);
    if (scale != 1.0) b.flat.mul_(scale);
    int64_t off = 0;
    for (size_t i : b.members) {
      auto& p = s.params[i];
      auto sum = b.flat.narrow(0, off, p.numel()).view(p.sizes());
      if (p.grad().defined()) p.mutable_grad().copy_(sum);
      else p.mutable_grad() = sum.to(p.device()).clone();
      off += p.numel();
    }
  }
  s.last_wait_ms = seconds_since(t0) * 1000;
}

double GradSync::wait_ms() const { return s_->last_wait_ms; }
int GradSync::buckets() const { return static_cast<int>(s_->buckets.size()); }
int GradSync::launched_early() const { return s_->early; }

double clip_gradients(Group* group, const std::vector<torch::Tensor>& params, double max_norm) {
  if (!group) return torch::nn::utils::clip_grad_norm_(params, max_norm > 0 ? max_norm : 1e30);
  double norm = torch::nn::utils::clip_grad_norm_(params, 1e30);  // the norm; the gradients times 1
  auto t = torch::tensor({norm}, torch::kDouble).to(group->device());
  group->broadcast(t, 0, "gradient norm");
  norm = t.cpu().item<double>();
  const double coef = max_norm / (norm + 1e-6);
  if (max_norm > 0 && std::isfinite(norm) && coef < 1) {
    torch::NoGradGuard ng;
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(coef);
  }
  return norm;
}

void broadcast_module(Group& group, torch::nn::Module& m, int root) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> all = m.parameters();
  for (auto& b : m.buffers()) all.push_back(b);
  for (auto& t : all) {
    auto x = t.detach().to(group.device()).contiguous();
    group.broadcast(x, root, "broadcast of the initial weights");
    t.detach().copy_(x);
  }
}

}  // namespace loong::dist
