// c10d's headers guard Gloo (and NCCL) behind these macros; LibTorch was built
// with them, so defining them here only makes the declarations visible.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#if defined(LOONG_WITH_NCCL) && !defined(USE_C10D_NCCL)
#define USE_C10D_NCCL 1
#endif
#include "loong/dist/group.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef LOONG_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/torch.h>

#include "loong/core/clock.h"
#include "loong/core/error.h"
#include "loong/core/torch_compat.h"

namespace loong::dist {

namespace {

// LibTorch 2.0 split c10d's ProcessGroup into a dispatching ProcessGroup and
// per-device Backends; Gloo and NCCL are Backends there and ProcessGroups in
// 1.13. Both have the collectives we call with the same signatures.
#if TORCH_VERSION_MAJOR >= 2
using Backend = c10d::Backend;
#else
using Backend = c10d::ProcessGroup;
#endif
using WorkPtr = c10::intrusive_ptr<c10d::Work>;

std::string first_line(const std::string& s) {
  auto nl = s.find('\n');
  return nl == std::string::npos ? s : s.substr(0, nl);
}

bool loopback(const std::string& host) {
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "::1";
}

std::string seconds(std::chrono::milliseconds ms) {
  char b[32];
  std::snprintf(b, sizeof b, "%g s", ms.count() / 1000.0);
  return b;
}

std::string rank_list(const std::vector<int>& r) {
  std::string s;
  for (size_t i = 0; i < r.size(); ++i) s += (i ? (i + 1 == r.size() ? " and " : ", ") : "") + std::to_string(r[i]);
  return (r.size() == 1 ? "rank " : "ranks ") + s;
}

// LibTorch 2.2 added a libuv TCPStore server (the default from 2.4), which
// Debian's 2.6 is built without: the classic one, 1.13's, serves everywhere.
template <class T, class = void>
struct HasUseLibUV : std::false_type {};
template <class T>
struct HasUseLibUV<T, std::void_t<decltype(std::declval<T&>().useLibUV)>> : std::true_type {};
template <class T>
void classic_server(T& o) {
  if constexpr (HasUseLibUV<T>::value) o.useLibUV = false;
}

// The store a rank talks to: a TCPStore (server on rank 0 unless torchrun's
// agent hosts it), under torchrun's key prefix when the agent does, then ours.
c10::intrusive_ptr<c10d::Store> open_store(const Env& env, bool server, std::chrono::milliseconds timeout,
                                           c10::intrusive_ptr<c10d::TCPStore>* tcp_out = nullptr) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(env.master_port);
  so.isServer = server;
  so.waitWorkers = false;  // joining is checked below, with a message naming who is missing
  so.timeout = timeout;
  classic_server(so);
  auto tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, so);
  if (tcp_out) *tcp_out = tcp;
  c10::intrusive_ptr<c10d::Store> s = tcp;
  // torchrun's Python workers put their keys under this prefix (torch.distributed.rendezvous).
  if (env.agent_store) s = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(env.restart_count), s);
  return c10::make_intrusive<c10d::PrefixStore>("loong", s);
}

int64_t counter(c10d::Store& s, const std::string& key) { return s.add(key, 0); }


}  // namespace

struct Group::Impl {
  Env env;
  GroupOptions opts;
  std::string endpoint;  // "MASTER_ADDR:PORT"
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<Backend> pg;
  std::string backend = "gloo";
  std::function<std::string()> hint;
  bool broken = false, finished = false;

  // The heartbeat: its own store connection (TCPStore clients are not shared
  // across threads), bumped every opts.heartbeat by a thread.
  c10::intrusive_ptr<c10d::Store> hb_store;
  std::mutex hb_mutex;  // hb_store, between the thread and who_stopped()
  std::thread hb_thread;
  std::mutex stop_mutex;
  std::condition_variable stop_cv;
  bool stop = false;
  std::atomic<bool> store_lost{false};

  std::string hb_key(int r) const { return "hb/" + std::to_string(r); }

  void heartbeat_loop() {
    std::unique_lock<std::mutex> lk(stop_mutex);
    while (!stop) {
      try {
        std::lock_guard<std::mutex> g(hb_mutex);
        hb_store->add(hb_key(env.rank), 1);
      } catch (const std::exception&) {
        store_lost = true;  // the store's host is gone; who_stopped() says so
        return;
      }
      stop_cv.wait_for(lk, opts.heartbeat, [&] { return stop; });
    }
  }

  void stop_heartbeat() {
    {
      std::lock_guard<std::mutex> lk(stop_mutex);
      stop = true;
    }
    stop_cv.notify_all();
    if (hb_thread.joinable()) hb_thread.join();
  }

  std::string store_host() const {
    return env.agent_store ? "torchrun's agent" : "rank 0";
  }

  [[noreturn]] void fault(Group& g, const std::string& what, const std::exception& e) {
    broken = true;
    std::string msg = "distributed " + what + " failed on " + env.describe() + ": " + g.who_stopped();
    const std::string cause = first_line(e.what());
    if (!cause.empty()) msg += " (c10d: " + cause + ")";
    if (hint) {
      const std::string h = hint();
      if (!h.empty()) msg += "; " + h;
    }
    throw Error(msg);
  }

  template <class F>
  auto guard(Group& g, const std::string& what, F&& f) -> decltype(f()) {
    if (broken) throw Error("distributed " + what + ": the process group already failed");
    try {
      return f();
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      fault(g, what, e);
    }
  }

  // Where collective tensors live: the GPU for NCCL, the host for Gloo.
  c10::Device where() const { return backend == "nccl" ? opts.device : c10::Device(c10::kCPU); }

  std::vector<at::Tensor> one(const torch::Tensor& t, const std::string& what) const {
    if (t.device() != where())
      throw Error("distributed " + what + ": a tensor on " + t.device().str() + ", the " + backend +
                  " group works on " + where().str());
    if (!t.is_contiguous()) throw Error("distributed " + what + ": the tensor must be contiguous");
    return {t};
  }
};

Group::Group(const Env& env, GroupOptions o) : impl_(std::make_unique<Impl>()) {
  Impl& s = *impl_;
  s.env = env;
  s.opts = o;
  s.endpoint = env.master_addr + ":" + std::to_string(env.master_port);
  const bool server = !env.agent_store && env.rank == 0;
  try {
    s.store = open_store(env, server, o.timeout);
    s.hb_store = open_store(env, false, o.timeout);
  } catch (const std::exception& e) {
    const std::string why = first_line(e.what());
    if (server)
      fail("MASTER_ADDR:MASTER_PORT " + s.endpoint,
           "rank 0 cannot host the rendezvous store there (" + why +
               "); is the port in use by another job? Choose another MASTER_PORT");
    fail("MASTER_ADDR:MASTER_PORT " + s.endpoint,
         "cannot reach the rendezvous store (hosted by " + s.store_host() + ") within " + seconds(o.timeout) + " (" +
             why + "); is it running, and is the address reachable from this machine?");
  }

  // Joining: every rank within the timeout, else name those missing.
  const auto t0 = Clock::now();
  auto joined = [&] {
    try {
      return counter(*s.store, "joined");
    } catch (const std::exception& e) {
      fail("MASTER_ADDR:MASTER_PORT " + s.endpoint, "the rendezvous store (hosted by " + s.store_host() +
                                                        ") stopped answering while the ranks joined (" +
                                                        first_line(e.what()) + ")");
    }
  };
  try {
    s.store->set("joined/" + std::to_string(env.rank), std::vector<uint8_t>{1});
    s.store->add("joined", 1);
  } catch (const std::exception& e) {
    fail("MASTER_ADDR:MASTER_PORT " + s.endpoint,
         "the rendezvous store (hosted by " + s.store_host() + ") refused this rank (" + first_line(e.what()) + ")");
  }
  while (joined() < env.world_size) {
    if (seconds_since(t0) * 1000 > o.timeout.count()) {
      std::vector<int> missing;
      for (int r = 0; r < env.world_size; ++r)
        if (!s.store->check({"joined/" + std::to_string(r)})) missing.push_back(r);
      fail("distributed start-up", rank_list(missing) + " of " + std::to_string(env.world_size) +
                                       " did not join within " + seconds(o.timeout) + " at " + s.endpoint +
                                       " (were they started, with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE?)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  s.hb_thread = std::thread([&s] { s.heartbeat_loop(); });

  auto pg_store = c10::make_intrusive<c10d::PrefixStore>("pg", s.store);
  try {
#ifdef LOONG_WITH_NCCL
    if (o.device.is_cuda()) {
      // This rank's GPU is the current one (NCCL's communicators and every
      // default-device call use it), and waits block until done or timed out,
      // so a dead or hung peer surfaces here as an error naming it rather than
      // as a hang and NCCL's watchdog aborting the process.
      c10::cuda::set_device(o.device.has_index() ? o.device.index() : 0);
      ::setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
      ::setenv("NCCL_BLOCKING_WAIT", "1", 0);  // its name before LibTorch 2.2
      auto no = c10d::ProcessGroupNCCL::Options::create();
      no->timeout = o.timeout;
      s.pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(pg_store, env.rank, env.world_size, no);
      s.backend = "nccl";
    }
#endif
    if (!s.pg) {
      // Without NCCL, CUDA training goes through Gloo too: collectives on host copies (device() is the CPU).
      auto go = c10d::ProcessGroupGloo::Options::create(o.timeout);
      if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      else if (loopback(env.master_addr))
        go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        go->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      s.pg = c10::make_intrusive<c10d::ProcessGroupGloo>(pg_store, env.rank, env.world_size, go);
    }
  } catch (const Error&) {
    s.stop_heartbeat();
    throw;
  } catch (const std::exception& e) {
    s.stop_heartbeat();
    fail("distributed start-up", "cannot connect the " + s.backend + " process group of " + env.describe() + " (" +
                                     first_line(e.what()) + ")" +
                                     (std::getenv("GLOO_SOCKET_IFNAME") ? "" : "; set GLOO_SOCKET_IFNAME to the network interface the ranks share"));
  }
}

Group::~Group() {
  Impl& s = *impl_;
  s.stop_heartbeat();
  // After a fault c10d's worker threads may still be blocked on a dead peer:
  // leave the group to the process's exit rather than join them.
  if (s.broken) {
    s.pg.release();
    s.store.release();
    s.hb_store.release();
  }
}

int Group::rank() const { return impl_->env.rank; }
int Group::size() const { return impl_->env.world_size; }
const Env& Group::env() const { return impl_->env; }
std::string Group::backend() const { return impl_->backend; }
c10::Device Group::device() const { return impl_->where(); }
void Group::set_hint(std::function<std::string()> hint) { impl_->hint = std::move(hint); }

std::string Group::who_stopped() {
  Impl& s = *impl_;
  if (s.store_lost) return "the rendezvous store at " + s.endpoint + " is gone (" + s.store_host() + ", which hosts it, stopped)";
  try {
    std::vector<int64_t> before(s.env.world_size);
    {
      std::lock_guard<std::mutex> g(s.hb_mutex);
      for (int r = 0; r < s.env.world_size; ++r) before[r] = counter(*s.hb_store, s.hb_key(r));
    }
    std::this_thread::sleep_for(std::max(std::chrono::milliseconds(1000), s.opts.heartbeat * 5 / 2));
    std::vector<int> stopped;
    {
      std::lock_guard<std::mutex> g(s.hb_mutex);
      for (int r = 0; r < s.env.world_size; ++r)
        if (r != s.env.rank && counter(*s.hb_store, s.hb_key(r)) == before[r]) stopped.push_back(r);
    }
    if (stopped.empty()) return "no rank's heartbeat stopped (a network fault, or a rank that failed and exited cleanly)";
    return rank_list(stopped) + " stopped responding (died or hangs)";
  } catch (const std::exception&) {
    s.store_lost = true;
    return "the rendezvous store at " + s.endpoint + " is gone (" + s.store_host() + ", which hosts it, stopped)";
  }
}

void Group::check_same(const std::string& what, const nlohmann::json& mine) {
  Impl& s = *impl_;
  const std::string base = "check/" + what + "/";
  const std::string text = mine.dump();
  std::vector<nlohmann::json> all(s.env.world_size);
  s.guard(*this, "start-up check of the " + what, [&] {
    s.store->set(base + std::to_string(s.env.rank), std::vector<uint8_t>(text.begin(), text.end()));
    std::vector<std::string> keys;
    for (int r = 0; r < s.env.world_size; ++r) keys.push_back(base + std::to_string(r));
    s.store->wait(keys, s.opts.timeout);
    for (int r = 0; r < s.env.world_size; ++r) {
      const auto v = s.store->get(keys[r]);
      all[r] = nlohmann::json::parse(std::string(v.begin(), v.end()));
    }
    // Everyone has read everything before anyone (rank 0, the store's host) may leave.
    s.store->add(base + "read", 1);
    const auto t0 = Clock::now();
    while (counter(*s.store, base + "read") < s.env.world_size && seconds_since(t0) * 1000 < s.opts.timeout.count())
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  });
  for (int r = 1; r < s.env.world_size; ++r) {
    if (all[r] == all[0]) continue;
    const auto patch = nlohmann::json::diff(all[0], all[r]);
    std::string where = "?", detail;
    if (!patch.empty()) {
      const auto& op = patch[0];
      where = op.value("path", std::string("?"));
      const nlohmann::json::json_pointer ptr(where);
      auto shown = [&](const nlohmann::json& j) {
        if (!j.contains(ptr)) return std::string("absent");
        std::string v = j.at(ptr).dump();
        return v.size() > 80 ? v.substr(0, 77) + "..." : v;
      };
      detail = " (" + shown(all[0]) + " on rank 0, " + shown(all[r]) + " on rank " + std::to_string(r) + ")";
    }
    throw Error("distributed start-up: rank " + std::to_string(r) + "'s " + what + " differs from rank 0's at '" +
                where + "'" + detail + "; every rank must run the same binary with the same config and data");
  }
}

void Group::allreduce(const torch::Tensor& t, const std::string& what, Op op) {
  Pending p = allreduce_async(t, what, op);
  wait(p, what);
}

Pending Group::allreduce_async(const torch::Tensor& t, const std::string& what, Op op) {
  Impl& s = *impl_;
  return s.guard(*this, what, [&] {
    auto v = s.one(t, what);
    c10d::AllreduceOptions ao;
    ao.reduceOp = op == Op::Max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
    WorkPtr w = s.pg->allreduce(v, ao);
    Pending p;
    p.work = std::make_shared<WorkPtr>(std::move(w));
    return p;
  });
}

void Group::wait(Pending& p, const std::string& what) {
  Impl& s = *impl_;
  if (!p.valid()) return;
  s.guard(*this, what, [&] {
    auto w = *std::static_pointer_cast<WorkPtr>(p.work);
    w->wait(s.opts.timeout);
  });
  p.work.reset();
}

void Group::broadcast(const torch::Tensor& t, int root, const std::string& what) {
  Impl& s = *impl_;
  s.guard(*this, what, [&] {
    auto v = s.one(t, what);
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    s.pg->broadcast(v, bo)->wait(s.opts.timeout);
  });
}

void Group::barrier(const std::string& what) {
  auto t = torch::zeros({1}, torch::TensorOptions().dtype(torch::kFloat).device(device()));
  allreduce(t, what);
}

void Group::finish() {
  Impl& s = *impl_;
  if (s.finished || s.broken) return;
  s.finished = true;
  s.stop_heartbeat();
  try {
    s.store->add("done", 1);
    if (!s.env.agent_store && s.env.rank == 0) {
      const auto t0 = Clock::now();
      while (counter(*s.store, "done") < s.env.world_size && seconds_since(t0) * 1000 < s.opts.timeout.count())
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  } catch (const std::exception&) {
    // The store's host left first: nothing is lost, every rank is past its last collective.
  }
}

c10::Device rank_device(c10::Device requested, const Env& env) {
  if (!requested.is_cuda() || !env.active() || requested.has_index()) return requested;
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
}

}  // namespace loong::dist
