#include "loong/ops/adamw.h"

#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <tuple>
#include <utility>
#include <vector>

#include <torch/torch.h>

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
