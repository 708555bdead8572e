// A process group on PyTorch's own distributed engine, c10d: a TCPStore for
// the rendezvous (hosted by rank 0, or by torchrun's agent), Gloo for CPU
// tensors and NCCL for CUDA ones where LibTorch has it. Everything a trainer
// needs from it, with c10d's failures turned into one-line loong::Errors that
// name the rank that stopped:
//  - joining: every rank must reach the store within the timeout, else the
//    others are told which ranks never came;
//  - start-up checks: check_same() compares a JSON description (config, data,
//    binary) across ranks and names the first difference;
//  - faults: a background thread bumps this rank's heartbeat counter in the
//    store every second; when a collective fails (a peer closed its sockets:
//    it died) or times out (a peer hangs), the counters that stopped moving
//    name the rank(s) at fault.
// The c10d API differences between LibTorch 1.13 and 2.x (ProcessGroup vs
// Backend) live in group.cpp alone.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>
#include <torch/types.h>

#include "loong/dist/env.h"

namespace loong::dist {

struct GroupOptions {
  // Joining, a collective, a start-up check: longer than this and the other
  // ranks give up with an error (a hung or missing rank).
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  c10::Device device{c10::kCPU};  // CUDA: NCCL (where built), else Gloo
  std::chrono::milliseconds heartbeat{1000};
};

// A collective in flight (Group::allreduce_async).
struct Pending {
  std::shared_ptr<void> work;
  bool valid() const { return work != nullptr; }
};

class Group {
 public:
  // Rendezvous as `env` says; throws loong::Error (naming MASTER_ADDR:PORT,
  // or the ranks that did not join) on failure.
  Group(const Env& env, GroupOptions o);
  ~Group();
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;

  int rank() const;
  int size() const;
  bool root() const { return rank() == 0; }
  const Env& env() const;
  std::string backend() const;  // "gloo" or "nccl"
  c10::Device device() const;   // where collective tensors must live

  // Appended to fault messages: what the user can do next (the trainer says
  // which checkpoint was the last good one).
  void set_hint(std::function<std::string()> hint);

  // Every rank passes its own `mine`; all must equal rank 0's, else every
  // rank throws, naming `what`, the first rank that differs and the first
  // key where it does.
  void check_same(const std::string& what, const nlohmann::json& mine);

  // Collectives, in the same order on every rank. `what` names the step in
  // fault messages ("the gradient all-reduce of step 12").
  enum class Op { Sum, Max };
  void allreduce(const torch::Tensor& t, const std::string& what, Op op = Op::Sum);  // in place
  Pending allreduce_async(const torch::Tensor& t, const std::string& what, Op op = Op::Sum);
  void wait(Pending& p, const std::string& what);
  void broadcast(const torch::Tensor& t, int root, const std::string& what);
  void barrier(const std::string& what);

  // A clean end: stops the heartbeat; rank 0 (when it hosts the store) waits
  // for every rank to be done with it before going. Call once, after the last
  // collective.
  void finish();

  // Names the rank(s) whose heartbeat stopped, e.g. "rank 1 stopped
  // responding (it died or hangs)"; used in fault messages.
  std::string who_stopped();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// For `--device cuda` under a launcher: each rank on its own GPU
// (cuda:LOCAL_RANK); CPU unchanged.
c10::Device rank_device(c10::Device requested, const Env& env);

}  // namespace loong::dist
