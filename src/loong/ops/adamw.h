// One AdamW step for both trainers: LibTorch's torch::optim::AdamW, or, where
// LibTorch has it (2.4 and later, CPU and CUDA; see core/torch_compat.h), the
// fused kernel at::_fused_adamw_, which updates every parameter of a group in
// one launch instead of about ten operations per parameter. The C++ AdamW
// options have no `fused` flag (Python's do), so this calls the kernel on the
// optimizer's own state: the same moments and step counts, so checkpoints
// (store/checkpoints.h) load and resume either way. The update is AdamW's
// (decoupled weight decay, bias-corrected moments); the fused kernel orders
// its arithmetic differently, so results agree to float rounding, not bits.
#pragma once
#include <vector>

#include <torch/optim/adamw.h>

namespace loong {

// Whether this build has the fused kernel.
bool fused_adamw_available();

// opt.step(), fused when `fused` and available. Parameters without a gradient
// are skipped, as torch::optim::AdamW does. With amsgrad on in any group the
// whole step is opt.step().
void adamw_step(torch::optim::AdamW& opt, bool fused);

// Moves the state (moments, step count) of each of `params` from `from` to
// `to`, two optimizers over the same parameter tensors: re-sharding
// optimizer state between ranks (dist, ZeRO-1). Parameters without state in
// `from` are left without state in `to`.
void move_optimizer_state(torch::optim::Optimizer& from, torch::optim::Optimizer& to,
                          const std::vector<at::Tensor>& params);

}  // namespace loong
