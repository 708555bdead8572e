// Data-parallel gradients: after a step's last backward pass on this rank,
// every parameter's gradient is summed over the ranks, in buckets of about
// `bucket_bytes` launched while the backward pass is still running.
//
// Why not c10d::Reducer, the engine of Python's DDP: its constructor and
// hooks changed between LibTorch 1.13 and 2.x, and it expects DDP's Python
// side to rebuild buckets and find unused parameters. What the trainers need
// is small: one post-hook per parameter's gradient accumulator (the point
// where its .grad is final for this backward pass), buckets in reverse
// parameter order (the order gradients appear), each launched as a c10d
// all-reduce as soon as it is full, and in bucket order, so that every rank
// issues the same collectives in the same order.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "loong/dist/group.h"

namespace loong::dist {

class GradSync {
 public:
  GradSync(Group& group, std::vector<torch::Tensor> params, int64_t bucket_bytes = 25 << 20);
  ~GradSync();

  // The next backward pass is this rank's last of the step: launch buckets
  // as their gradients become final. `what` names the step in fault messages.
  void arm(const std::string& what);
  // After that backward pass: launches the buckets not yet launched, waits
  // for all, and writes the sums, times `scale`, into every parameter's .grad
  // (a parameter without a gradient on this rank counts as zeros). A loss
  // that is a mean over each rank's equal share takes scale 1 / world size.
  void finish(double scale = 1.0);

  double wait_ms() const;  // time the last finish() took: communication the backward pass did not hide
  int buckets() const;
  int launched_early() const;  // buckets the last step launched during its backward pass

  struct State;  // (grad_sync.cpp; its autograd hooks hold it weakly)

 private:
  std::shared_ptr<State> s_;
};

// torch::nn::utils::clip_grad_norm_(params, max_norm > 0 ? max_norm : inf),
// returning the global norm, exactly that with no group. With one, every rank
// scales by rank 0's norm: the gradients are the same on every rank, but a
// norm summed with another thread count can differ in its last bit, and the
// ranks' weights must stay identical.
double clip_gradients(Group* group, const std::vector<torch::Tensor>& params, double max_norm);

// Copies every parameter and buffer of `m` from rank `root` to the others
// (the same initial weights everywhere, whatever each rank drew).
void broadcast_module(Group& group, torch::nn::Module& m, int root = 0);

}  // namespace loong::dist
