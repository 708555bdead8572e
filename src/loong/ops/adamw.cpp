#include "loong/ops/adamw.h"

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <tuple>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "loong/core/error.h"
#include "loong/core/torch_compat.h"

namespace loong {

bool fused_adamw_available() { return LOONG_HAS_FUSED_ADAMW; }

namespace {

// An optimizer's state is keyed by the parameter's TensorImpl: its address
// printed as a string in LibTorch 1.13 (c10::guts::to_string, an ostream's
// `<<`, which 2.x no longer has), the address itself in 2.x. The key type
// says which.
using StateKey = typename std::decay_t<decltype(std::declval<torch::optim::Optimizer&>().state())>::key_type;

template <class Key>
Key key_of(const at::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream os;
    os << p.unsafeGetTensorImpl();
    return os.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}

StateKey state_key(const at::Tensor& p) { return key_of<StateKey>(p); }

}  // namespace

void move_optimizer_state(torch::optim::Optimizer& from, torch::optim::Optimizer& to,
                          const std::vector<at::Tensor>& params) {
  for (const auto& p : params) {
    auto it = from.state().find(state_key(p));
    if (it == from.state().end() || !it->second) continue;
    to.state()[state_key(p)] = std::move(it->second);
    from.state().erase(it);
  }
}

std::vector<std::pair<std::string, at::Tensor>> adamw_state_tensors(const torch::optim::Optimizer& opt) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  const auto& groups = opt.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& ps = groups[g].params();
    for (size_t i = 0; i < ps.size(); ++i) {
      auto it = opt.state().find(state_key(ps[i]));
      if (it == opt.state().end() || !it->second) continue;
      const auto& st = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      const std::string k = std::to_string(g) + "." + std::to_string(i) + ".";
      out.emplace_back(k + "step", torch::tensor(static_cast<int64_t>(st.step()), torch::kLong));
      out.emplace_back(k + "exp_avg", st.exp_avg());
      out.emplace_back(k + "exp_avg_sq", st.exp_avg_sq());
      if (st.max_exp_avg_sq().defined()) out.emplace_back(k + "max_exp_avg_sq", st.max_exp_avg_sq());
    }
  }
  return out;
}

void load_adamw_state(torch::optim::Optimizer& opt, const std::map<std::string, at::Tensor>& tensors,
                      const std::string& where) {
  std::set<std::string> used;
  auto& groups = opt.param_groups();
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& ps = groups[g].params();
    for (size_t i = 0; i < ps.size(); ++i) {
      const at::Tensor& p = ps[i];
      const std::string k = std::to_string(g) + "." + std::to_string(i) + ".";
      auto find = [&](const char* name) -> const at::Tensor* {
        auto it = tensors.find(k + name);
        if (it == tensors.end()) return nullptr;
        used.insert(it->first);
        return &it->second;
      };
      const at::Tensor* step = find("step");
      const at::Tensor* m = find("exp_avg");
      const at::Tensor* v = find("exp_avg_sq");
      const at::Tensor* mx = find("max_exp_avg_sq");
      if (!step && !m && !v && !mx) continue;  // a parameter not updated yet
      if (!step || !m || !v) fail(where, "parameter " + k + " has only part of its optimizer state");
      if (step->dim() != 0 || step->scalar_type() != torch::kLong || step->item<int64_t>() < 0)
        fail(where, "tensor " + squote(k + "step") + ": expected a non-negative int64 scalar");
      auto moment = [&](const at::Tensor* x, const char* name) {
        if (!x->is_floating_point() || x->sizes() != p.sizes())
          fail(where, "tensor " + squote(k + name) + " is " + std::string(c10::toString(x->scalar_type())) + " " +
                          c10::str(x->sizes()) + "; its parameter is " + c10::str(p.sizes()) +
                          " (written for another model, or another number of ranks?)");
        return x->to(p.device(), p.scalar_type()).contiguous();
      };
      auto st = std::make_unique<torch::optim::AdamWParamState>();
      st->step(step->item<int64_t>());
      st->exp_avg(moment(m, "exp_avg"));
      st->exp_avg_sq(moment(v, "exp_avg_sq"));
      if (mx) st->max_exp_avg_sq(moment(mx, "max_exp_avg_sq"));
      opt.state()[state_key(p)] = std::move(st);
    }
  }
  for (const auto& kv : tensors)
    if (!used.count(kv.first))
      fail(where, "unexpected tensor " + squote(kv.first) + " (written for another model, or another number of ranks?)");
}

void adamw_step(torch::optim::AdamW& opt, bool fused) {
#if LOONG_HAS_FUSED_ADAMW
  bool amsgrad = false;
  for (auto& group : opt.param_groups())
    amsgrad = amsgrad || static_cast<const torch::optim::AdamWOptions&>(group.options()).amsgrad();
  if (fused && !amsgrad) {
    torch::NoGradGuard ng;
    for (auto& group : opt.param_groups()) {
      const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
      // The kernel takes one device and type per call.
      struct Lists {
        std::vector<at::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
      };
      std::map<std::pair<std::string, int>, Lists> by_kind;
      std::map<std::pair<std::string, int64_t>, at::Tensor> step_tensors;  // the kernel only reads them
      for (auto& p : group.params()) {
        if (!p.grad().defined()) continue;
        auto& slot = opt.state()[p.unsafeGetTensorImpl()];
        if (!slot) {
          auto st = std::make_unique<torch::optim::AdamWParamState>();
          st->exp_avg(torch::zeros_like(p, at::MemoryFormat::Preserve));
          st->exp_avg_sq(torch::zeros_like(p, at::MemoryFormat::Preserve));
          slot = std::move(st);
        }
        auto& st = static_cast<torch::optim::AdamWParamState&>(*slot);
        st.step(st.step() + 1);  // the kernel reads the step after this update, as AdamW counts it
        auto& l = by_kind[{p.device().str(), static_cast<int>(p.scalar_type())}];
        l.params.push_back(p);
        l.grads.push_back(p.grad());
        l.exp_avgs.push_back(st.exp_avg());
        l.exp_avg_sqs.push_back(st.exp_avg_sq());
        auto& step = step_tensors[{p.device().str(), st.step()}];
        if (!step.defined())
          step = torch::full({}, static_cast<double>(st.step()), torch::TensorOptions().dtype(torch::kFloat).device(p.device()));
        l.steps.push_back(step);
      }
      for (auto& [kind, l] : by_kind)
        at::_fused_adamw_(l.params, l.grads, l.exp_avgs, l.exp_avg_sqs, {}, l.steps, o.lr(), std::get<0>(o.betas()),
                          std::get<1>(o.betas()), o.weight_decay(), o.eps(), false, false);
    }
    return;
  }
#endif
  (void)fused;
  opt.step();
}

}  // namespace loong
