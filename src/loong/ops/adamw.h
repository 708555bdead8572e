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
#include <map>
#include <string>
#include <utility>
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

// AdamW's state as named tensors, for a checkpoint: "G.I.step" (an int64
// scalar), "G.I.exp_avg", "G.I.exp_avg_sq" and, with amsgrad,
// "G.I.max_exp_avg_sq", for the I-th parameter of group G that has state.
std::vector<std::pair<std::string, at::Tensor>> adamw_state_tensors(const torch::optim::Optimizer& opt);

// The reverse, checked, so that no file can put a tensor of the wrong shape
// into the optimizer: every name must be one of those for a parameter of
// `opt`, each moment floating point with the parameter's shape, each step a
// non-negative int64 scalar. Moments move to their parameter's device and
// type. Errors name `where`.
void load_adamw_state(torch::optim::Optimizer& opt, const std::map<std::string, at::Tensor>& tensors,
                      const std::string& where);

}  // namespace loong
