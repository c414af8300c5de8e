// The worker-agent loop: one thread owns the sockets; attempts run on threads of their own.
#include "worker-agent/worker.h"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <zmq_addon.hpp>

#include "common/ids.h"
#include "worker-agent/task_cleanup.h"
#include "worker-agent/task_run.h"

namespace polyphony {

namespace {

int64_t clock_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

// The wall clock a heartbeat carries, so the coordinator can tell how far apart the clocks are.
int64_t wall_clock_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string unique_outbox_endpoint() {
  static std::atomic<int> counter{0};
  return "inproc://polyphony-worker-outbox-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

// The /etc/hosts of task containers without a network (the engine writes none for them):
// <workspace_root>/hosts, written at start (all may read it). "" when there is no root or it
// cannot be written (the containers then have the image's own file).
std::string write_hosts_file(const std::string& workspace_root) {
  if (workspace_root.empty()) return "";
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(workspace_root, ec);
  const fs::path path = fs::absolute(fs::path(workspace_root) / "hosts", ec);
  fs::path partial = path;
  partial += ".partial";
  {
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    out << "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    if (!out.flush()) {
      spdlog::warn("cannot write {}: containers without a network keep their image's /etc/hosts", partial.string());
      return "";
    }
  }
  fs::permissions(partial,
                  fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read, ec);
  fs::rename(partial, path, ec);
  if (ec) {
    spdlog::warn("cannot write {}: {}", path.string(), ec.message());
    return "";
  }
  return path.string();
}

// Free bytes for an unprivileged user on the file system that holds `path`, or holds its
// nearest existing ancestor (the workspace root may not exist yet); 0 when unknown.
int64_t free_disk_bytes(const std::string& path) {
  if (path.empty()) return 0;
  for (std::filesystem::path p = path;; p = p.parent_path()) {
    struct statvfs fs {};
    if (::statvfs(p.c_str(), &fs) == 0) return static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
    if (p == p.parent_path()) return 0;
  }
}

}  // namespace

Result<std::string> persisted_worker_id(const std::filesystem::path& home) {
  namespace fs = std::filesystem;
  const fs::path file = home / "worker-id";
  std::error_code ec;
  if (fs::exists(file, ec)) {
    std::ifstream in(file);
    std::string id;
    std::getline(in, id);
    while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
    if (!protocol::is_valid_peer_id(id)) {
      return make_error("config",
                        "the worker id kept here is not a valid id (" + id +
                            "); fix or delete the file (a new one is made), or pass --id",
                        file.string());
    }
    return id;
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::string id;
  for (char c : std::string(host)) id += (std::isalnum(static_cast<unsigned char>(c)) || c == '-') ? c : '-';
  static constexpr char kHex[] = "0123456789abcdef";
  std::random_device random;
  id = (id.empty() ? "worker" : id) + "-";
  for (int i = 0; i < 6; ++i) id += kHex[random() % 16];
  fs::create_directories(home, ec);
  const fs::path partial = file.string() + ".partial";
  {
    std::ofstream out(partial, std::ios::trunc);
    out << id << "\n";
    if (!out.flush()) return make_error("io", "cannot write this worker's id; pass --id instead", partial.string());
  }
  fs::rename(partial, file, ec);
  if (ec)
    return make_error("io", "cannot write this worker's id: " + ec.message() + "; pass --id instead", file.string());
  spdlog::info("this worker's id is {} (kept in {})", id, file.string());
  return id;
}

WorkerAgent::WorkerAgent(zmq::context_t& context, WorkerOptions options, DockerClient& docker, Workspaces& workspaces)
    : context_(context),
      options_(std::move(options)),
      docker_(docker),
      workspaces_(workspaces),
      outbox_(context, zmq::socket_type::pull),
      outbox_endpoint_(unique_outbox_endpoint()) {
  outbox_.set(zmq::sockopt::linger, 0);
  outbox_.bind(outbox_endpoint_);
}

WorkerAgent::~WorkerAgent() {
  join_cleanup();
  for (auto& [id, run] : runs_) {
    run->cancelled = true;
    if (run->thread.joinable()) run->thread.join();
  }
  pool_.reset();  // after the runs: they hand their containers to it
}

void WorkerAgent::connect() {
  monitor_.reset();
  dealer_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::dealer);
  dealer_->set(zmq::sockopt::routing_id, options_.worker_id);
  dealer_->set(zmq::sockopt::linger, 0);
  dealer_->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxFrameBytes));
  if (options_.curve) protocol::make_curve_client(*dealer_, *options_.curve);
  static std::atomic<int> monitors{0};
  const std::string monitor =
      "inproc://polyphony-worker-monitor-" + std::to_string(getpid()) + "-" + std::to_string(monitors++);
  const int events =
      ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
  if (zmq_socket_monitor(dealer_->handle(), monitor.c_str(), events) == 0) {
    monitor_ = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::pair);
    monitor_->set(zmq::sockopt::linger, 0);
    monitor_->connect(monitor);
  } else {
    spdlog::warn("cannot watch the connection's handshakes: {}", zmq_strerror(zmq_errno()));
  }
  dealer_->connect(options_.coordinator_endpoint);
  last_heard_ms_ = clock_ms();
  send_hello();
}

void WorkerAgent::send_hello() {
  protocol::Hello h;
  h.worker_id = options_.worker_id;
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  h.hostname = host;
  h.version = POLYPHONY_VERSION;
  h.capacity = options_.capacity;
  h.labels = options_.labels;
  auto present = docker_.image_exists(options_.image);
  h.image_present = present.ok() && *present;
  h.free_disk_bytes = free_disk_bytes(options_.workspace_root);
  for (const auto& [id, run] : runs_) {
    if (!run->finished) h.running.push_back({id, run->spec.attempt, run->spec.epoch});
  }
  for (const auto& [id, result] : unacked_results_) h.running.push_back({id, result.attempt, result.epoch});
  send(h);
}

void WorkerAgent::send(const protocol::Message& m) {
  try {
    const std::string body = protocol::encode(m);
    dealer_->send(zmq::buffer(body), zmq::send_flags::dontwait);
    last_sent_ms_ = clock_ms();
  } catch (const zmq::error_t& e) {
    spdlog::warn("cannot send {} to the coordinator: {}", protocol::type_name(m), e.what());
  }
}

// Containers labelled with this worker's id that no current run owns were left by an earlier
// life of this worker (killed mid-run): remove them. Their tasks are retried by the coordinator.
void WorkerAgent::reap_orphans() {
  auto list = docker_.list_containers({{"polyphony.worker", options_.worker_id}});
  if (!list.ok()) {
    spdlog::warn("cannot list containers to reap: {}", list.error().to_string());
    return;
  }
  // Spares of an earlier life are stale (and their warm containers go below).
  if (runs_.empty()) {
    auto cleared = workspaces_.clear_spares();
    if (!cleared.ok())
      spdlog::warn("cannot clear stale spare workspaces: {}", cleared.error().to_string());
    else if (*cleared > 0)
      spdlog::info("removed {} stale spare workspace(s)", *cleared);
    remove_dead_runs_workspaces();
  }
  for (const auto& c : *list) {
    auto task = c.labels.count("polyphony.task") ? c.labels.at("polyphony.task") : std::string();
    // A warm container a run took carries the task in its name only: polyphony.<task>.e<epoch>.
    if (task.empty() && c.name.rfind("polyphony.", 0) == 0) {
      task =
          c.name.substr(10, c.name.find('.', 10) == std::string::npos ? std::string::npos : c.name.find('.', 10) - 10);
    }
    if (!task.empty() && runs_.count(task)) continue;
    spdlog::info("reaping orphaned container {}{}", c.id.substr(0, 12), task.empty() ? " (warm)" : " of task " + task);
    (void)docker_.remove_container(c.id);
  }
}

namespace {

// In a task's workspace: its run ended (LANDED, failed, refused); absent while a run works there.
constexpr const char* kEndedMark = "ended";

}  // namespace

void WorkerAgent::mark_ended(const std::string& task_id) {
  if (options_.workspace_root.empty()) return;
  const auto dir = std::filesystem::path(options_.workspace_root) / "tasks" / task_id;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return;
  std::ofstream mark(dir / kEndedMark);
  if (!mark) spdlog::warn("task {}: cannot mark its workspace ended in {}", task_id, dir.string());
}

void WorkerAgent::remove_dead_runs_workspaces() {
  if (options_.workspace_root.empty()) return;
  auto tasks = workspaces_.list();
  if (!tasks.ok()) {
    spdlog::warn("cannot list task workspaces: {}", tasks.error().to_string());
    return;
  }
  for (const auto& task_id : *tasks) {
    std::error_code ec;
    const auto mark = std::filesystem::path(options_.workspace_root) / "tasks" / task_id / kEndedMark;
    if (std::filesystem::exists(mark, ec)) continue;
    spdlog::info("task {}: removing the workspace of a run that died with an earlier life of this worker", task_id);
    if (auto s = workspaces_.remove(task_id); !s.ok()) {
      spdlog::warn("task {}: cannot remove its workspace: {}", task_id, s.error().to_string());
    }
  }
}

void WorkerAgent::run(const std::atomic<bool>& stop) {
  reap_orphans();
  hosts_file_ = write_hosts_file(options_.workspace_root);
  auto runner = options_.workspace_root.empty() ? find_runner() : install_runner(options_.workspace_root);
  if (runner.ok()) {
    runner_ = runner->string();
  } else {
    spdlog::error("no task can run on this worker: {}", runner.error().to_string());
  }
  if (options_.warm_containers > 0 && !pool_) {
    // Refills and removals wait for a quarter second without a task starting or ending (1 s at
    // most): a container's create or removal costs the engine a few hundred ms of CPU, which
    // tasks starting or landing together would otherwise share.
    pool_ = std::make_unique<ContainerPool>(
        docker_, workspaces_,
        ContainerPool::Options{options_.worker_id, options_.warm_containers, 2, std::chrono::milliseconds(250),
                               std::chrono::seconds(1)});
  }
  connect();
  spdlog::info("worker {} connecting to {} (capacity {})", options_.worker_id, options_.coordinator_endpoint,
               options_.capacity);
  while (!stop.load()) {
    // A held frame waits for room on the connection (POLLOUT), and the outbox for it.
    zmq::pollitem_t items[] = {{dealer_->handle(), 0, static_cast<short>(ZMQ_POLLIN | (held_ ? ZMQ_POLLOUT : 0)), 0},
                               {outbox_.handle(), 0, static_cast<short>(held_ ? 0 : ZMQ_POLLIN), 0},
                               {monitor_ ? monitor_->handle() : nullptr, 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, monitor_ ? 3 : 2, std::chrono::milliseconds(100));
      if (monitor_ && (items[2].revents & ZMQ_POLLIN)) read_connection_events();
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("worker poll: {}", e.what());
    }
    for (int i = 0; i < 1000 && (items[0].revents & ZMQ_POLLIN); ++i) {
      zmq::message_t frame;
      if (!dealer_->recv(frame, zmq::recv_flags::dontwait)) break;
      last_heard_ms_ = clock_ms();
      reconnect_delay_ms_ = 250;
      auto msg = protocol::decode(frame.to_string_view());
      if (!msg.ok()) {
        spdlog::warn("dropped a frame from the coordinator: {} (field {})", msg.error().message, msg.error().where);
        continue;
      }
      handle(*msg);
    }
    forward_outbox();
    reap_finished_runs();
    resend_results();
    const int64_t now = clock_ms();
    if (now - last_sent_ms_ >= options_.heartbeat_interval_ms) {
      protocol::Heartbeat hb;
      hb.seq = ++heartbeat_seq_;
      hb.load = static_cast<int>(runs_.size());
      hb.sent_ms = wall_clock_ms();
      send(hb);
    }
    if (now - last_heard_ms_ > options_.heartbeat_interval_ms * options_.liveness) {
      fence_runs(now - last_heard_ms_);
      spdlog::warn("coordinator silent for {} ms; reconnecting in {} ms{}", now - last_heard_ms_, reconnect_delay_ms_,
                   options_.curve ? " (if this lasts: is this worker's .pub in the coordinator's allowed_workers_dir, "
                                    "and is the coordinator's key right?)"
                                  : "");
      std::this_thread::sleep_for(std::chrono::milliseconds(reconnect_delay_ms_));
      reconnect_delay_ms_ = std::min<int64_t>(reconnect_delay_ms_ * 2, 30000);
      connect();
    }
  }
  say_goodbye();
  for (auto& [id, run] : runs_) run->cancelled = true;
  // The outbox is drained while the runs end: one blocked on a full outbox could not end.
  auto all_finished = [&] {
    return std::all_of(runs_.begin(), runs_.end(), [](const auto& r) { return r.second->finished.load(); });
  };
  while (!all_finished()) {
    forward_outbox(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& [id, run] : runs_) {
    if (run->thread.joinable()) run->thread.join();
  }
  join_cleanup();
  pool_.reset();  // removes the warm containers and what the runs handed it
  forward_outbox(true);
  spdlog::info("worker {} stopped", options_.worker_id);
}

void WorkerAgent::handle(const protocol::Message& m) {
  if (const auto* d = std::get_if<protocol::Dispatch>(&m)) {
    on_dispatch(*d);
  } else if (const auto* ack = std::get_if<protocol::ResultAck>(&m)) {
    auto it = unacked_results_.find(ack->task_id);
    if (it != unacked_results_.end() && it->second.epoch == ack->epoch) unacked_results_.erase(it);
  } else if (const auto* g = std::get_if<protocol::LandGrant>(&m)) {
    auto it = runs_.find(g->task_id);
    if (it == runs_.end() || it->second->spec.epoch != g->epoch) return;
    std::lock_guard lock(it->second->grant_mutex);
    it->second->grant = *g;
    it->second->grant_ready.notify_all();
  } else if (const auto* c = std::get_if<protocol::Cancel>(&m)) {
    on_cancel(*c);
  } else if (const auto* c = std::get_if<protocol::CleanupRequest>(&m)) {
    on_cleanup(*c);
  } else if (std::holds_alternative<protocol::Welcome>(m)) {
    const auto& w = std::get<protocol::Welcome>(m);
    options_.heartbeat_interval_ms = w.heartbeat_interval_ms;
    options_.liveness = w.liveness;
    spdlog::info("worker {} registered with coordinator {} at {} (capacity {})", options_.worker_id, w.coordinator_id,
                 options_.coordinator_endpoint, options_.capacity);
  }
}

// A cancel names one epoch: a run of another epoch of the same task is not touched. With no
// run left (it ended, or died with an earlier life of this worker) the leftovers go now;
// otherwise when the run has stopped.
void WorkerAgent::on_cancel(const protocol::Cancel& c) {
  auto it = runs_.find(c.task_id);
  if (it != runs_.end()) {
    if (it->second->spec.epoch != c.epoch) return;
    spdlog::info("task {}: cancel of epoch {} requested ({})", c.task_id, c.epoch, c.reason);
    it->second->cancelled = true;
    it->second->clean_up = true;
    return;
  }
  spdlog::info("task {}: cancel of epoch {} ({}); no run holds it, removing what is left", c.task_id, c.epoch,
               c.reason);
  clean_up_task(c.task_id);
}

void WorkerAgent::clean_up_task(const std::string& task_id) {
  auto list = task_containers(docker_, task_id, options_.worker_id);
  if (list.ok()) {
    for (const auto& container : *list) (void)docker_.remove_container(container.id);
  } else {
    spdlog::warn("task {}: cannot list its containers: {}", task_id, list.error().to_string());
  }
  auto s = workspaces_.remove(task_id);
  if (!s.ok()) spdlog::warn("task {}: cannot remove its workspace: {}", task_id, s.error().to_string());
}

void WorkerAgent::read_connection_events() {
  for (int i = 0; i < 100; ++i) {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(*monitor_, std::back_inserter(frames), zmq::recv_flags::dontwait)) return;
    if (frames.size() != 2 || frames[0].size() < 6) continue;
    uint16_t event = 0;
    uint32_t value = 0;
    std::memcpy(&event, frames[0].data(), sizeof event);
    std::memcpy(&value, static_cast<const char*>(frames[0].data()) + 2, sizeof value);
    if (!every_30s_.allow(std::to_string(event), clock_ms())) continue;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
      spdlog::error(
          "the coordinator at {} refused this worker's CURVE key (ZAP status {}): add this worker's .pub "
          "to the coordinator's coordinator.allowed_workers_dir (or allowed_worker_keys); retrying",
          options_.coordinator_endpoint, value);
    } else {
      spdlog::error(
          "the CURVE handshake with the coordinator at {} failed ({} {}): is "
          "worker.coordinator_public_key_file (or --coordinator-key) the coordinator's public key?; "
          "retrying",
          options_.coordinator_endpoint, event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error" : "no detail",
          value);
    }
  }
}

void WorkerAgent::say_goodbye() {
  if (said_goodbye_ || !dealer_) return;
  protocol::Goodbye g;
  g.reason = "stopping";
  send(g);
  said_goodbye_ = true;
  // The goodbye leaves before the socket closes; nothing is sent after it.
  dealer_->set(zmq::sockopt::linger, 1000);
  spdlog::info("worker {} said goodbye to the coordinator; stopping its {} attempt(s)", options_.worker_id,
               runs_.size());
}

void WorkerAgent::join_cleanup() {
  if (cleanup_thread_.joinable()) cleanup_thread_.join();
}

void WorkerAgent::on_cleanup(const protocol::CleanupRequest& m) {
  join_cleanup();
  // Only runs still at work keep their workspace and container. A run that has sent its result
  // is done with both, though its entry waits to be reaped and its result to be acked: the
  // coordinator may already call the task finished, and its leftovers are what cleanup is for.
  std::set<std::string> keep;
  for (const auto& [id, run] : runs_) {
    if (!run->reported.load()) keep.insert(id);
  }
  cleanup_thread_ = std::thread([this, m, keep] {
    const CleanupCount count = clean_up_finished_tasks(docker_, workspaces_, options_.worker_id, keep, m.dry_run);
    protocol::CleanupReport r;
    r.request_id = m.request_id;
    r.worker_id = options_.worker_id;
    r.workspaces = count.workspaces;
    r.containers = count.containers;
    for (const auto& e : count.errors) r.error += (r.error.empty() ? "" : "; ") + e;
    spdlog::info("cleanup {}: {} {} workspace(s) and {} container(s) of finished tasks{}", m.request_id,
                 m.dry_run ? "would remove" : "removed", r.workspaces, r.containers,
                 r.error.empty() ? "" : " (" + r.error + ")");
    zmq::socket_t push(context_, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 2000);
    push.connect(outbox_endpoint_);
    const std::string body = protocol::encode(r);
    push.send(zmq::buffer(body), zmq::send_flags::none);
  });
}

void WorkerAgent::on_dispatch(const protocol::Dispatch& d) {
  const auto& spec = d.spec;
  join_cleanup();  // a cleanup under way must not take the new attempt's workspace
  if (auto it = runs_.find(spec.task_id); it != runs_.end()) {
    if (it->second->spec.epoch == spec.epoch) return;  // a duplicate of what we already run
    spdlog::warn("task {}: new lease epoch {} replaces {}; stopping the old attempt", spec.task_id, spec.epoch,
                 it->second->spec.epoch);
    it->second->cancelled = true;
    if (it->second->thread.joinable()) it->second->thread.join();
    runs_.erase(it);
  }
  // A run that has sent its result still sits in runs_ until reaped, and its thread may not
  // have ended yet when the coordinator, hearing the result, dispatches the next task: reap
  // what has ended, and count only runs that have not reported and are not landing (the
  // coordinator dispatches the next task once a run asks to land), so that dispatch is not
  // refused as "full" (which would cost the task an attempt).
  reap_finished_runs();
  const auto busy = std::count_if(runs_.begin(), runs_.end(), [](const auto& r) {
    return !r.second->reported.load() && !r.second->landing.load();
  });
  if (busy >= options_.capacity) {
    protocol::TaskResult r;
    r.task_id = spec.task_id;
    r.attempt = spec.attempt;
    r.epoch = spec.epoch;
    r.branch = spec.branch;
    r.outcome = "failed";
    r.failure_kind = protocol::to_string(protocol::FailureKind::kInfra);
    r.reason = "worker " + options_.worker_id + " is full (capacity " + std::to_string(options_.capacity) + ")";
    unacked_results_[spec.task_id] = r;
    send(r);
    return;
  }
  start_run(spec);
}

void WorkerAgent::start_run(const protocol::RunSpec& spec) {
  auto run = std::make_unique<Run>();
  run->spec = spec;
  Run* raw = run.get();
  spdlog::info("task {}: starting attempt {} (epoch {}) with agent {}", spec.task_id, spec.attempt, spec.epoch,
               spec.agent.name);
  run->thread = std::thread([this, raw] {
    zmq::socket_t push(context_, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 2000);
    push.connect(outbox_endpoint_);
    auto emit = [&push](const protocol::Message& m) {
      const std::string body = protocol::encode(m);
      push.send(zmq::buffer(body), zmq::send_flags::none);
    };
    RunContext ctx{options_.worker_id,
                   docker_,
                   workspaces_,
                   options_.container_uid,
                   options_.container_gid,
                   emit,
                   &raw->cancelled,
                   [raw, &emit]() { return wait_for_land_grant(*raw, emit); },
                   pool_.get(),
                   hosts_file_,
                   runner_,
                   options_.limits,
                   options_.allowed};
    protocol::TaskResult result;
    try {
      result = execute_run(raw->spec, ctx);
    } catch (const std::exception& e) {
      result.task_id = raw->spec.task_id;
      result.attempt = raw->spec.attempt;
      result.epoch = raw->spec.epoch;
      result.branch = raw->spec.branch;
      result.outcome = "failed";
      result.failure_kind = protocol::to_string(protocol::FailureKind::kInfra);
      result.reason = std::string("worker error: ") + e.what();
    }
    // A cancelled attempt leaves nothing behind: its container is already gone, and so goes its
    // workspace (a later attempt would start from a fresh clone anyway).
    if (result.outcome == "failed" && result.failure_kind == protocol::to_string(protocol::FailureKind::kCancelled)) {
      auto removed = workspaces_.remove(raw->spec.task_id);
      if (!removed.ok())
        spdlog::warn("task {}: cannot remove its workspace: {}", raw->spec.task_id, removed.error().to_string());
      if (raw->fenced.load()) {
        // Not a user's cancel: the lease lapsed. Should the coordinator still hold this epoch
        // (it restarted, say), the attempt is retried by the usual rules.
        result.failure_kind = protocol::to_string(protocol::FailureKind::kInfra);
        result.reason = "worker " + options_.worker_id +
                        " lost the coordinator past its lease and stopped the attempt (" + result.reason + ")";
      }
    }
    mark_ended(raw->spec.task_id);
    raw->reported = true;
    emit(result);
    raw->finished = true;
  });
  runs_[spec.task_id] = std::move(run);
}

// Sends the land request and waits for the coordinator's answer, asking again every few
// seconds (a request can be lost with a reconnect or a coordinator restart).
Status WorkerAgent::wait_for_land_grant(Run& run, const std::function<void(const protocol::Message&)>& emit) {
  protocol::LandRequest request;
  request.task_id = run.spec.task_id;
  request.attempt = run.spec.attempt;
  request.epoch = run.spec.epoch;
  run.landing = true;  // set before the request leaves, so the dispatch it frees is never refused
  std::unique_lock lock(run.grant_mutex);
  run.grant.reset();
  const auto deadline = std::chrono::steady_clock::now() + kLandGrantWait;
  while (true) {
    lock.unlock();
    emit(request);
    lock.lock();
    const auto ask_again = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (!run.grant && !run.cancelled.load() && std::chrono::steady_clock::now() < ask_again) {
      run.grant_ready.wait_for(lock, std::chrono::milliseconds(200));
    }
    if (run.cancelled.load()) return make_error("cancelled", "cancelled while waiting to land");
    if (run.grant) {
      if (run.grant->granted) return ok_status();
      return make_error("refused", run.grant->reason.empty() ? "landing refused" : run.grant->reason);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return make_error("timeout",
                        "no answer to the land request within " +
                            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kLandGrantWait).count()) +
                            " s");
    }
  }
}

void WorkerAgent::forward_outbox(bool drop_when_full) {
  for (int i = 0; i < 10000; ++i) {
    if (!held_) {
      zmq::message_t frame;
      if (!outbox_.recv(frame, zmq::recv_flags::dontwait)) return;
      auto msg = protocol::decode(frame.to_string_view());
      if (msg.ok()) {
        if (const auto* r = std::get_if<protocol::TaskResult>(&*msg)) unacked_results_[r->task_id] = *r;
      }
      held_ = std::move(frame);
    }
    if (said_goodbye_) {  // the coordinator has let this worker go: what its runs say is moot
      held_.reset();
      continue;
    }
    try {
      if (!dealer_->send(*held_, zmq::send_flags::dontwait)) {
        if (!drop_when_full) return;  // tried again on the next turn of the loop
        spdlog::warn("dropped a message to the coordinator while shutting down: the connection is full");
      } else {
        last_sent_ms_ = clock_ms();
      }
    } catch (const zmq::error_t& e) {
      spdlog::warn("cannot forward a message to the coordinator: {}", e.what());
    }
    held_.reset();
  }
}

void WorkerAgent::fence_runs(int64_t silent_ms) {
  for (auto& [task_id, run] : runs_) {
    if (run->finished.load() || run->reported.load() || run->cancelled.load()) continue;
    {
      std::lock_guard lock(run->grant_mutex);
      if (run->grant && run->grant->granted) continue;  // pushing under its grant
    }
    spdlog::warn(
        "task {}: coordinator silent for {} ms, past the lease: stopping attempt {} (epoch {}) so that it "
        "never runs beside an attempt dispatched elsewhere",
        task_id, silent_ms, run->spec.attempt, run->spec.epoch);
    run->fenced = true;
    run->cancelled = true;
  }
}

void WorkerAgent::reap_finished_runs() {
  for (auto it = runs_.begin(); it != runs_.end();) {
    if (it->second->finished) {
      if (it->second->thread.joinable()) it->second->thread.join();
      const bool clean_up = it->second->clean_up;
      const std::string task_id = it->first;
      it = runs_.erase(it);
      if (clean_up) clean_up_task(task_id);
    } else {
      ++it;
    }
  }
}

void WorkerAgent::resend_results() {
  const int64_t now = clock_ms();
  if (now - last_resend_ms_ < options_.result_resend_ms) return;
  last_resend_ms_ = now;
  for (const auto& [id, r] : unacked_results_) send(r);
}

}  // namespace polyphony
