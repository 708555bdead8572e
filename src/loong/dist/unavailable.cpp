// The build without Gloo's headers (CMakeLists.txt): one process only. Every
// way into a process group ends here with one line saying what is missing.
#include <torch/nn/utils/clip_grad.h>

#include "loong/core/error.h"
#include "loong/dist/grad_sync.h"
#include "loong/dist/group.h"

namespace loong::dist {

namespace {
[[noreturn]] void unavailable() {
  fail("distributed training", "this loong was built without c10d's Gloo headers (install libgloo-dev and rebuild)");
}
}  // namespace

struct Group::Impl {};
Group::Group(const Env&, GroupOptions) { unavailable(); }
Group::~Group() = default;
int Group::rank() const { return 0; }
int Group::size() const { return 1; }
const Env& Group::env() const { unavailable(); }
std::string Group::backend() const { return "none"; }
c10::Device Group::device() const { return c10::Device(c10::kCPU); }
void Group::set_hint(std::function<std::string()>) {}
void Group::check_same(const std::string&, const nlohmann::json&) { unavailable(); }
void Group::allreduce(const torch::Tensor&, const std::string&, Op) { unavailable(); }
Pending Group::allreduce_async(const torch::Tensor&, const std::string&, Op) { unavailable(); }
void Group::wait(Pending&, const std::string&) { unavailable(); }
void Group::broadcast(const torch::Tensor&, int, const std::string&) { unavailable(); }
void Group::barrier(const std::string&) { unavailable(); }
void Group::finish() {}
std::string Group::who_stopped() { return ""; }
c10::Device rank_device(c10::Device requested, const Env&) { return requested; }

struct GradSync::State {};
GradSync::GradSync(Group&, std::vector<torch::Tensor>, int64_t) { unavailable(); }
GradSync::~GradSync() = default;
void GradSync::arm(const std::string&) {}
void GradSync::finish(double) {}
double GradSync::wait_ms() const { return 0; }
int GradSync::buckets() const { return 0; }
int GradSync::launched_early() const { return 0; }
void broadcast_module(Group&, torch::nn::Module&, int) { unavailable(); }
double clip_gradients(Group* group, const std::vector<torch::Tensor>& params, double max_norm) {
  if (group) unavailable();
  return torch::nn::utils::clip_grad_norm_(params, max_norm > 0 ? max_norm : 1e30);
}

}  // namespace loong::dist
