#include "loong/serve/studio.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include <ATen/Parallel.h>
#include <httplib.h>

#include "loong/core/atomic_file.h"
#include "loong/core/error.h"
#include "loong/core/json_util.h"
#include "loong/gen/bundle.h"
#include "loong/gen/generate.h"
#include "loong/serve/request.h"

namespace loong::serve {

namespace fs = std::filesystem;
using json = nlohmann::json;

extern const char* const kStudioPage;  // studio.html, embedded by CMake (studio_page.cpp.in)

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string percent_encoded(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else out += {'%', hex[c >> 4], hex[c & 15]};
  }
  return out;
}

enum class State { queued, running, done, failed, cancelled };

const char* name_of(State s) {
  switch (s) {
    case State::queued: return "queued";
    case State::running: return "running";
    case State::done: return "done";
    case State::failed: return "failed";
    case State::cancelled: return "cancelled";
  }
  return "?";
}

// A report as clients see it: without the server's paths.
json public_report(json report) {
  report.erase("out");
  report.erase("model");
  return report;
}

bool finished(State s) { return s == State::done || s == State::failed || s == State::cancelled; }

// Result and job names are made by the server only: "YYYYMMDD-HHMMSS-N".
// A request may name one (continue_from, /results/NAME/...), never a path.
bool is_result_name(const std::string& s) {
  static const std::regex re("[0-9]{8}-[0-9]{6}-[0-9]{1,9}");
  return s.size() < 40 && std::regex_match(s, re);
}

const std::map<std::string, std::string>& result_files() {
  static const std::map<std::string, std::string> files = {{"video.mp4", "video/mp4"},
                                                           {"sheet.png", "image/png"},
                                                           {"report.json", "application/json"},
                                                           {"job.json", "application/json"}};
  return files;
}

struct Job {
  std::string id;
  json request;  // the fields as the client sent them
  gen::GenerateRequest gen;
  std::string continue_from;
  State state = State::queued;
  std::atomic<bool> cancel{false};
  gen::GenerateProgress progress;
  int64_t clips = 0, clips_written = 0, frames = 0, total_frames = 0;
  double submitted_ms = 0, started_ms = 0, first_clip_ms = 0, finished_ms = 0;
  std::string error, error_field;
  std::vector<std::string> warnings;
  std::string bytes;  // the fragmented MP4 as written so far
  bool bytes_dropped = false;   // freed after the job (the file has it)
  bool bytes_overflow = false;  // longer than kMaxStreamBytes: not kept (streams end; the file has it)
  json report;
};

// A running job's video is kept in memory for its readers up to this size
// (a 10-minute video at 8x upscale is about this); past it they are cut off
// and read the file once the job is done.
constexpr size_t kMaxStreamBytes = size_t{512} << 20;

}  // namespace

struct Studio::Impl {
  ServeOptions o;
  fs::path out;
  gen::Bundle bundle;
  json info;
  const std::string& host = host_tag();  // as AtomicFile's temporaries: host name and PID namespace

  httplib::Server svr;
  int port = 0;
  std::thread worker;

  std::mutex m;
  std::condition_variable changed;  // any job's state, bytes or the queue
  std::deque<std::shared_ptr<Job>> queue;
  std::shared_ptr<Job> running;
  std::map<std::string, std::shared_ptr<Job>> jobs;
  std::deque<std::shared_ptr<Job>> done;  // finished, oldest first
  bool stopping = false;
  int64_t counter = 0;
  std::atomic<size_t> streams{0};
  std::atomic<bool> in_run{false};  // run() is in (or about to enter) httplib's accept loop
  std::mutex stop_m;
  int threads = at::get_num_threads();  // the intra-op threads of the thread that made the studio

  explicit Impl(ServeOptions opts) : o(std::move(opts)) {
    if (o.out.empty()) fail("--out", "a folder for the results is required");
    out = o.out;
    std::error_code ec;
    fs::create_directories(out, ec);
    if (!fs::is_directory(out)) fail("--out", o.out + " is not a folder that can be created");
    if (::access(out.c_str(), W_OK) != 0) fail("--out", o.out + " is not writable");
    remove_dead_jobs();
    const std::string dir = gen::model_or_default(o.model);
    bundle = gen::load_bundle(dir, o.device);
    gen::SamplingOptions s;
    double first = 0;
    gen::resolve_sampling(bundle.info, {}, s, first);
    info = {{"model", {{"name", bundle.info.name},
                       {"dir", dir},
                       {"fps", bundle.info.fps},
                       {"clip_frames", bundle.info.clip_frames},
                       {"size", bundle.tokenizer->config.image_size}}},
            {"defaults",
             {{"seconds", 10},
              {"seed", s.seed},
              {"cfg", s.cfg_scale},
              {"first_clip_cfg", first},
              {"top_k", s.top_k},
              {"top_p", s.top_p},
              {"temperature", s.temperature},
              {"upscale", 1},
              {"upscale_method", "bicubic"}}},
            {"limits",
             {{"max_seconds", o.max_seconds},
              {"max_queue", o.max_queue},
              {"max_prompt_chars", o.max_prompt_chars},
              {"max_upscale", o.max_upscale}}},
            {"device", o.device.str()}};
  }

  // Folders ".job-HOST-PID-NAME" of servers on this host that are gone.
  void remove_dead_jobs() {
    const std::string prefix = ".job-" + host + "-";
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(out, ec)) {
      const std::string n = e.path().filename().string();
      if (n.rfind(prefix, 0) != 0) continue;
      const long pid = std::atol(n.c_str() + prefix.size());
      if (pid <= 0 || pid == ::getpid()) continue;
      if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
    }
  }

  // --- requests -------------------------------------------------------------

  // A request's fields (request.h), and the result it continues, which must
  // exist now (checked again when the job runs).
  std::shared_ptr<Job> parse_job(const json& body) {
    JobRequest req = parse_request(body, o);
    if (!req.continue_from.empty()) continue_video(req.continue_from);
    auto job = std::make_shared<Job>();
    job->gen = std::move(req.gen);
    job->continue_from = std::move(req.continue_from);
    job->request = body;
    return job;
  }

  // The video of result NAME, for --init-video: only a name the server made,
  // a real folder inside OUT (no symlink), with a real video file.
  fs::path continue_video(const std::string& name) const {
    if (!is_result_name(name))
      fail("--init-video", "continue_from must name a result in the gallery (YYYYMMDD-HHMMSS-N), got " + squote(name));
    const fs::path dir = out / name, video = dir / "video.mp4";
    std::error_code ec;
    if (!fs::is_directory(fs::symlink_status(dir, ec)) || !fs::is_regular_file(fs::symlink_status(video, ec)))
      fail("--init-video", "no result " + squote(name) + " in the gallery");
    return video;
  }

  std::string new_id() {  // under m
    char stamp[32];
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    localtime_r(&t, &tm);
    std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    for (;;) {
      const std::string id = std::string(stamp) + "-" + std::to_string(++counter);
      std::error_code ec;
      if (!jobs.count(id) && !fs::exists(out / id, ec)) return id;
    }
  }

  json job_json(const Job& j) const {  // under m
    json r = {{"id", j.id},
              {"state", name_of(j.state)},
              {"request", j.request},
              {"submitted_ms", j.submitted_ms},
              {"clips", j.clips},
              {"clips_written", j.clips_written},
              {"frames", j.frames},
              {"total_frames", j.total_frames},
              {"bytes", j.bytes.size()},
              {"warnings", j.warnings}};
    if (j.started_ms > 0) r["started_ms"] = j.started_ms;
    if (j.first_clip_ms > 0) r["first_clip_ms"] = j.first_clip_ms;
    if (j.finished_ms > 0) r["finished_ms"] = j.finished_ms;
    if (j.state == State::queued) {
      const auto it = std::find_if(queue.begin(), queue.end(), [&](const auto& q) { return q.get() == &j; });
      r["position"] = it - queue.begin() + 1;
    }
    if (j.state == State::running || finished(j.state)) {
      const auto& p = j.progress;
      r["progress"] = {{"done", p.done},     {"total", p.total},        {"clip", p.clip},
                       {"clips", p.clips},   {"elapsed_s", p.elapsed_s}, {"codes_per_s", p.codes_per_s},
                       {"eta_s", p.eta_s}};
    }
    if (j.state == State::done) {
      r["result"] = j.id;
      r["report"] = public_report(j.report);
    }
    if (!j.error.empty()) {
      r["error"] = j.error;
      r["field"] = j.error_field;
    }
    return r;
  }

  // --- the worker -------------------------------------------------------------

  void work() {
    // OpenMP's thread count is a per-thread setting: this thread takes the
    // one init_threads() gave the thread that made the studio.
    at::set_num_threads(threads);
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(m);
        changed.wait(lk, [&] { return stopping || !queue.empty(); });
        if (stopping) return;
        job = queue.front();
        queue.pop_front();
        running = job;
        job->state = State::running;
        job->started_ms = now_ms();
      }
      changed.notify_all();
      execute(*job);
      {
        std::lock_guard<std::mutex> lk(m);
        running.reset();
        job->finished_ms = now_ms();
        done.push_back(job);
        // Finished jobs are kept to be asked about; only the newest keep
        // their stream in memory (the gallery has the files).
        size_t with_bytes = 0;
        for (auto it = done.rbegin(); it != done.rend(); ++it)
          if (!(*it)->bytes.empty() && ++with_bytes > 4) {
            std::string().swap((*it)->bytes);
            (*it)->bytes_dropped = true;
          }
        while (done.size() > 200) {
          jobs.erase(done.front()->id);
          done.pop_front();
        }
      }
      changed.notify_all();
    }
  }

  void execute(Job& job) {
    const fs::path tmp = out / (".job-" + host + "-" + std::to_string(::getpid()) + "-" + job.id);
    gen::GenerateRequest r = job.gen;
    r.out = (tmp / "video.mp4").string();
    r.sheet = (tmp / "sheet.png").string();
    // report.json is written below, naming the final path rather than the temporary one.
    r.bundle = &bundle;
    r.device = o.device;
    std::ifstream stream;  // the file as it is written: its new bytes go to the job's readers
    auto pull = [&] {
      if (!stream.is_open()) return;
      stream.clear();
      std::string got;
      char buf[1 << 16];
      while (stream.read(buf, sizeof buf) || stream.gcount() > 0) {
        got.append(buf, static_cast<size_t>(stream.gcount()));
        if (stream.eof()) break;
      }
      if (got.empty()) return;
      {
        std::lock_guard<std::mutex> lk(m);
        if (job.bytes.size() + got.size() > kMaxStreamBytes) {  // readers get the file when it is done
          job.bytes_overflow = true;
          std::string().swap(job.bytes);
        } else if (!job.bytes_overflow) {
          job.bytes += got;
        }
      }
      changed.notify_all();
    };
    gen::GenerateEvents ev;
    ev.started = [&](const gen::GenerateStart& s) {
      stream.open(s.writing.empty() ? s.out : s.writing, std::ios::binary);
      std::lock_guard<std::mutex> lk(m);
      job.clips = s.clips;
      job.total_frames = s.frames;
    };
    ev.clip_written = [&](const gen::ClipWritten& c) {
      pull();
      {
        std::lock_guard<std::mutex> lk(m);
        job.clips_written = c.clip + 1;
        job.frames = c.last + 1;
        if (job.first_clip_ms == 0) job.first_clip_ms = now_ms();
      }
      changed.notify_all();
      for (double waited = 0; waited < o.clip_delay_s && !job.cancel; waited += 0.02)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    };
    ev.progress = [&](const gen::GenerateProgress& p) {
      std::lock_guard<std::mutex> lk(m);
      job.progress = p;
    };
    ev.warning = [&](const std::string& w) {
      std::lock_guard<std::mutex> lk(m);
      job.warnings.push_back(w);
    };
    ev.cancelled = [&] { return job.cancel.load(); };

    State state = State::done;
    std::string error;
    json report;
    std::error_code ec;
    try {
      fs::create_directories(tmp);
      if (!job.continue_from.empty()) r.init_video = continue_video(job.continue_from).string();
      auto res = gen::generate_video(r, ev);
      pull();  // the container's end, written by close() (the same file, renamed)
      report = std::move(res.report);
      report["out"] = (out / job.id / "video.mp4").string();
      write_json_file((tmp / "report.json").string(), report);
      json meta = {{"id", job.id},
                   {"request", job.request},
                   {"submitted_ms", job.submitted_ms},
                   {"started_ms", job.started_ms},
                   {"finished_ms", now_ms()},
                   {"warnings", job.warnings}};
      if (!job.continue_from.empty()) meta["continue_from"] = job.continue_from;
      write_json_file((tmp / "job.json").string(), meta);
      fs::rename(tmp, out / job.id);  // the gallery shows it from here on, complete
    } catch (const gen::Cancelled&) {
      state = State::cancelled;
    } catch (const Error& e) {
      state = State::failed;
      error = first_line(e.what());
    } catch (const std::exception& e) {
      state = State::failed;
      error = "internal error: " + first_line(e.what());
    }
    if (state != State::done) fs::remove_all(tmp, ec);
    std::lock_guard<std::mutex> lk(m);
    job.state = state;
    job.report = std::move(report);
    if (!error.empty()) {
      job.error = error;
      job.error_field = field_of_error(error);
    }
  }

  // --- HTTP -------------------------------------------------------------------

  static void send_json(httplib::Response& res, int status, const json& j) {
    res.status = status;
    res.set_header("Cache-Control", "no-store");
    // Messages may quote a request's bytes, which need not be UTF-8.
    res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
  }
  static void send_error(httplib::Response& res, int status, const std::string& msg, const std::string& field = "") {
    send_json(res, status, {{"error", msg}, {"field", field}});
  }

  std::shared_ptr<Job> find(const std::string& id) {
    std::lock_guard<std::mutex> lk(m);
    const auto it = jobs.find(id);
    return it == jobs.end() ? nullptr : it->second;
  }

  bool authorized(const httplib::Request& req) const {
    if (o.token.empty()) return true;
    auto same = [&](const std::string& given) {  // the time does not tell how much matched
      if (given.size() != o.token.size()) return false;
      unsigned diff = 0;
      for (size_t i = 0; i < given.size(); ++i) diff |= static_cast<unsigned>(given[i] ^ o.token[i]);
      return diff == 0;
    };
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0 && same(auth.substr(7))) return true;
    return req.has_param("token") && same(req.get_param_value("token"));
  }

  // Other web sites' pages, which the user's browser would let reach this
  // server: a request from another origin (browsers name it in Origin), and,
  // on a loopback server without a token, a Host that is not loopback (a DNS
  // name rebound to 127.0.0.1). "" when the request may go on.
  std::string foreign(const httplib::Request& req) const {
    const std::string host = req.get_header_value("Host");
    const std::string origin = req.get_header_value("Origin");
    if (!origin.empty() && origin != "http://" + host)
      return "requests from other origins are refused (" + origin + ")";
    const bool loopback = o.host == "127.0.0.1" || o.host == "localhost" || o.host == "::1";
    if (o.token.empty() && loopback && !host.empty()) {
      const auto colon = host.rfind(':');
      const std::string name = colon != std::string::npos && host.find(']', colon) == std::string::npos
                                   ? host.substr(0, colon) : host;
      if (name != "127.0.0.1" && name != "localhost" && name != "[::1]")
        return "this server answers requests for 127.0.0.1, localhost or [::1], not " + name;
    }
    return "";
  }

  void routes() {
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (const std::string why = foreign(req); !why.empty()) {
        send_error(res, 403, why);
        return httplib::Server::HandlerResponse::Handled;
      }
      if (authorized(req)) return httplib::Server::HandlerResponse::Unhandled;
      send_error(res, 401, "this server needs its token: the Authorization header 'Bearer TOKEN' or ?token=TOKEN");
      return httplib::Server::HandlerResponse::Handled;
    });
    svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 404) send_error(res, 404, "not found");
      else if (res.status == 413) send_error(res, 413, "request too large");
      else send_error(res, res.status, "HTTP " + std::to_string(res.status));
    });
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string msg = "internal error";
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        msg += ": " + first_line(e.what());
      } catch (...) {
      }
      send_error(res, 500, msg);
    });

    svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Cache-Control", "no-store");
      res.set_content(kStudioPage, "text/html; charset=utf-8");
    });
    svr.Get("/api/info", [this](const httplib::Request&, httplib::Response& res) { send_json(res, 200, info); });

    svr.Post("/api/jobs", [this](const httplib::Request& req, httplib::Response& res) {
      // JSON only: a form post from another page, which needs no permission, cannot submit.
      if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0)
        return send_error(res, 415, "send the job as JSON, with the header 'Content-Type: application/json'");
      json body;
      try {
        body = json::parse(req.body);
      } catch (const std::exception& e) {
        return send_error(res, 400, "request: not JSON (" + first_line(e.what()) + ")");
      }
      std::shared_ptr<Job> job;
      try {
        job = parse_job(body);
      } catch (const Error& e) {
        return send_error(res, 400, first_line(e.what()), field_of_error(e.what()));
      }
      std::unique_lock<std::mutex> lk(m);
      if (stopping) return send_error(res, 503, "the server is stopping");
      if (queue.size() >= o.max_queue) {
        res.set_header("Retry-After", "10");
        return send_error(res, 429,
                          "the queue is full (" + std::to_string(queue.size()) + " jobs waiting); try again later");
      }
      job->id = new_id();
      job->submitted_ms = now_ms();
      jobs[job->id] = job;
      queue.push_back(job);
      const json j = job_json(*job);
      lk.unlock();
      changed.notify_all();
      send_json(res, 201, j);
    });

    svr.Get("/api/jobs", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard<std::mutex> lk(m);
      json list = json::array();
      if (running) list.push_back(job_json(*running));
      for (const auto& j : queue) list.push_back(job_json(*j));
      for (auto it = done.rbegin(); it != done.rend() && list.size() < 50; ++it) list.push_back(job_json(**it));
      send_json(res, 200, {{"jobs", list}});
    });

    svr.Get(R"(/api/jobs/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      auto job = find(req.matches[1]);
      if (!job) return send_error(res, 404, "no job " + squote(req.matches[1]));
      std::lock_guard<std::mutex> lk(m);
      send_json(res, 200, job_json(*job));
    });

    svr.Post(R"(/api/jobs/([^/]+)/cancel)", [this](const httplib::Request& req, httplib::Response& res) {
      auto job = find(req.matches[1]);
      if (!job) return send_error(res, 404, "no job " + squote(req.matches[1]));
      std::unique_lock<std::mutex> lk(m);
      if (finished(job->state))
        return send_error(res, 409, "job " + job->id + " is already " + name_of(job->state));
      if (job->state == State::queued) {  // frees its place at once
        queue.erase(std::remove(queue.begin(), queue.end(), job), queue.end());
        job->state = State::cancelled;
        job->finished_ms = now_ms();
        done.push_back(job);
      } else if (job->state == State::running) {
        job->cancel = true;  // the worker stops at the next code and removes its files
      }
      const json j = job_json(*job);
      lk.unlock();
      changed.notify_all();
      send_json(res, 200, j);
    });

    svr.Get(R"(/api/jobs/([^/]+)/video)", [this](const httplib::Request& req, httplib::Response& res) {
      auto job = find(req.matches[1]);
      if (!job) return send_error(res, 404, "no job " + squote(req.matches[1]));
      {
        std::lock_guard<std::mutex> lk(m);
        if (job->bytes_dropped || (job->bytes_overflow && finished(job->state))) {
          if (job->state != State::done) return send_error(res, 410, "job " + job->id + " is " + name_of(job->state));
          res.set_redirect("/results/" + job->id + "/video.mp4" +
                           (o.token.empty() ? "" : "?token=" + percent_encoded(o.token)));
          return;
        }
        if (finished(job->state) && job->bytes.empty())
          return send_error(res, 410, "job " + job->id + " is " + name_of(job->state) + " and made no video");
      }
      if (++streams > o.max_streams) {
        --streams;
        return send_error(res, 503, "too many video streams open; try again later");
      }
      res.set_header("Cache-Control", "no-store");
      res.set_chunked_content_provider(
          "video/mp4",
          [this, job](size_t offset, httplib::DataSink& sink) {
            std::string chunk;
            bool end = false;
            {
              std::unique_lock<std::mutex> lk(m);
              changed.wait_for(lk, std::chrono::milliseconds(500), [&] {
                return stopping || job->bytes.size() > offset || finished(job->state) || job->bytes_dropped ||
                       job->bytes_overflow;
              });
              if (job->bytes_dropped || job->bytes_overflow) return false;  // not the whole video: abort, not end
              if (job->bytes.size() > offset) chunk = job->bytes.substr(offset, size_t{1} << 20);
              end = stopping || (finished(job->state) && offset + chunk.size() >= job->bytes.size());
            }
            if (!chunk.empty() && !sink.write(chunk.data(), chunk.size())) return false;  // the client left
            if (end) sink.done();
            else if (chunk.empty() && !sink.is_writable()) return false;
            return true;
          },
          [this](bool) { --streams; });
    });

    svr.Get("/api/results", [this](const httplib::Request&, httplib::Response& res) {
      json list = json::array();
      std::vector<std::string> names;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(out, ec)) {
        const std::string n = e.path().filename().string();
        if (is_result_name(n) && fs::is_directory(fs::symlink_status(e.path(), ec))) names.push_back(n);
      }
      std::sort(names.rbegin(), names.rend());
      for (const auto& n : names) {
        if (list.size() >= 500) break;
        if (!fs::is_regular_file(fs::symlink_status(out / n / "video.mp4", ec))) continue;  // removed by someone
        try {
          json report = read_json_file((out / n / "report.json").string());
          json meta = read_json_file((out / n / "job.json").string());
          list.push_back({{"name", n},
                          {"request", meta.value("request", json::object())},
                          {"continue_from", meta.value("continue_from", "")},
                          {"finished_ms", meta.value("finished_ms", 0.0)},
                          {"report", public_report(std::move(report))}});
        } catch (const std::exception&) {
          // not a complete result (someone else's folder): not shown
        }
      }
      send_json(res, 200, {{"results", list}});
    });

    svr.Get(R"(/results/([^/]+)/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string name = req.matches[1], file = req.matches[2];
      const auto type = result_files().find(file);
      if (!is_result_name(name) || type == result_files().end()) return send_error(res, 404, "not found");
      const fs::path dir = out / name, path = dir / file;
      std::error_code ec;
      if (!fs::is_directory(fs::symlink_status(dir, ec)) || !fs::is_regular_file(fs::symlink_status(path, ec)))
        return send_error(res, 404, "not found");
      const auto size = fs::file_size(path, ec);
      auto in = std::make_shared<std::ifstream>(path, std::ios::binary);
      if (ec || !*in) return send_error(res, 500, "cannot read " + name + "/" + file);
      if (req.has_param("download"))
        res.set_header("Content-Disposition", "attachment; filename=\"loong-" + name + "-" + file + "\"");
      // Read as it is sent (and by ranges, for seeking), never whole into memory.
      res.set_content_provider(static_cast<size_t>(size), type->second,
                               [in](size_t offset, size_t length, httplib::DataSink& sink) {
                                 char buf[1 << 16];
                                 in->clear();
                                 in->seekg(static_cast<std::streamoff>(offset));
                                 in->read(buf, static_cast<std::streamsize>(std::min(length, sizeof buf)));
                                 const auto got = in->gcount();
                                 return got > 0 && sink.write(buf, static_cast<size_t>(got));
                               });
    });
  }
};

Studio::Studio(ServeOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->svr.new_task_queue = [n = impl_->o.max_streams + 8] { return new httplib::ThreadPool(n); };
  impl_->svr.set_payload_max_length(impl_->o.max_body_bytes);
  impl_->routes();
}

Studio::~Studio() {
  stop();
  // run() may still be leaving httplib's loop on another thread (its streams
  // use this object): wait for it.
  while (impl_->in_run) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

int Studio::bind() {
  auto& I = *impl_;
  if (I.o.port < 0 || I.o.port > 65535) fail("--port", "must be 0 to 65535, got " + std::to_string(I.o.port));
  if (I.o.port == 0) {
    I.port = I.svr.bind_to_any_port(I.o.host);
    if (I.port < 0) I.port = 0;
  } else {
    I.port = I.svr.bind_to_port(I.o.host, I.o.port) ? I.o.port : 0;
  }
  if (I.port <= 0)
    fail("--port", "cannot listen on " + I.o.host + ":" + std::to_string(I.o.port) +
                       " (in use, or not an address of this machine)");
  if (!I.worker.joinable()) I.worker = std::thread([&I] { I.work(); });
  return I.port;
}

void Studio::run() {
  auto& I = *impl_;
  {
    std::lock_guard<std::mutex> lk(I.m);
    if (I.stopping) return;
    I.in_run = true;
  }
  I.svr.listen_after_bind();
  I.in_run = false;
}

void Studio::stop() {
  auto& I = *impl_;
  std::lock_guard<std::mutex> once(I.stop_m);  // callers in turn: the first stops, joins; the others find it done
  {
    std::lock_guard<std::mutex> lk(I.m);
    I.stopping = true;
    if (I.running) I.running->cancel = true;
    for (auto& j : I.queue) {
      j->state = State::cancelled;
      j->finished_ms = now_ms();
    }
    I.queue.clear();
  }
  I.changed.notify_all();
  // httplib's stop() does nothing before its accept loop has started: wait
  // for run() to get there (or to give up) first.
  while (I.in_run && !I.svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  I.svr.stop();
  if (I.worker.joinable()) I.worker.join();
}

std::string Studio::url() const {
  const std::string& h = impl_->o.host;
  const bool v6 = h.find(':') != std::string::npos;
  std::string u = "http://" + (v6 ? "[" + h + "]" : h) + ":" + std::to_string(impl_->port) + "/";
  if (!impl_->o.token.empty()) u += "?token=" + percent_encoded(impl_->o.token);
  return u;
}

const json& Studio::info() const { return impl_->info; }

}  // namespace loong::serve
