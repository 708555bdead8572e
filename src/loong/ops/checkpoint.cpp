#include "loong/ops/checkpoint.h"

#include <torch/csrc/autograd/custom_function.h>
#include <torch/torch.h>

#include "loong/core/torch_compat.h"

namespace loong {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Function;
using torch::autograd::variable_list;

struct Checkpoint : Function<Checkpoint> {
  // Backward runs after the caller's forward has returned, so the context
  // owns a copy of the block (saved_data holds it as an opaque capsule).
  struct Saved : torch::CustomClassHolder {
    Block block;
    bool autocast = false;
  };

  // The inputs come as a TensorList: autograd tracks tensors in one, not in
  // a std::vector.
  static at::Tensor forward(AutogradContext* ctx, at::TensorList list, const c10::intrusive_ptr<Saved>& saved) {
    const variable_list inputs(list.begin(), list.end());
    ctx->saved_data["block"] = c10::IValue::make_capsule(saved);
    ctx->save_for_backward(inputs);
    return saved->block(inputs);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = c10::static_intrusive_pointer_cast<Saved>(ctx->saved_data["block"].toCapsule());
    auto inputs = ctx->get_saved_variables();
    std::vector<at::Tensor> leaves;
    for (auto& x : inputs) {
      auto d = x.detach();
      if (x.requires_grad()) d.requires_grad_(true);
      leaves.push_back(d);
    }
    at::Tensor out;
    {
      torch::AutoGradMode grad(true);
      CudaAutocast autocast(saved->autocast);
      out = saved->block(leaves);
    }
    torch::autograd::backward({out}, {grads[0]});
    variable_list result;
    for (size_t i = 0; i < leaves.size(); ++i)
      result.push_back(inputs[i].requires_grad() ? leaves[i].grad() : at::Tensor());
    result.push_back(at::Tensor());  // the block
    return result;
  }
};

}  // namespace

at::Tensor checkpointed(const Block& block, const std::vector<at::Tensor>& inputs) {
  bool any = false;
  for (const auto& x : inputs) any = any || (x.defined() && x.requires_grad());
  if (!any || !torch::GradMode::is_enabled()) return block(inputs);
  auto saved = c10::make_intrusive<Checkpoint::Saved>();
  saved->block = block;
  saved->autocast = CudaAutocast::active();
  return Checkpoint::apply(at::TensorList(inputs), saved);
}

}  // namespace loong
