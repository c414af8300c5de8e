// `polyphony serve` (coordinator + embedded worker) and `polyphony-worker` (a remote worker).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

#include <spdlog/spdlog.h>

#include "cli/cli.h"
#include "cli/client_connection.h"
#include "cli/dashboard_link.h"
#include "cli/doctor.h"
#include "cli/task_views.h"
#include "common/endpoint_policy.h"
#include "common/log.h"
#include "common/private_files.h"
#include "coordinator/coordinator.h"
#include "worker-agent/task_cleanup.h"
#include "worker-agent/worker.h"

namespace polyphony::cli {

namespace fs = std::filesystem;

namespace {

std::atomic<bool> g_stop{false};

void on_signal(int) {
  g_stop = true;
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

// A Docker client that answers, with the worker image present; else a clear error.
Result<std::unique_ptr<DockerClient>> ready_docker(const Config& config) {
  auto host = resolve_docker_host(config.docker_host);
  if (!host.ok()) return host.error();
  auto docker = make_docker_client(*host);
  if (auto s = docker->ping(); !s.ok()) {
    return make_error("docker_unreachable",
                      "no Docker engine answers at " + *host + " (" + s.error().message +
                          "); start it or run scripts/ensure-docker.sh",
                      "docker_host");
  }
  auto present = docker->image_exists(config.container.image);
  if (!present.ok()) return present.error();
  if (!*present) {
    return make_error(
        "config", "the worker image " + config.container.image + " is missing; build it with: polyphony image build",
        "container.image");
  }
  return docker;
}

// The worker's allow-list: config.yaml's, else the configured image, the configured network and
// none, the workspace root and the identities' mount sources.
AllowList allow_list(const Settings& settings) {
  const ContainerConfig& c = settings.config.container;
  AllowList a;
  a.images = c.allowed_images.empty() ? std::vector<std::string>{c.image} : c.allowed_images;
  // No network is always allowed: it can only take away.
  a.networks = c.allowed_networks.empty() ? std::vector<std::string>{c.network, "none"} : c.allowed_networks;
  if (!c.allowed_mount_roots.empty()) {
    for (const auto& r : c.allowed_mount_roots) a.mount_roots.emplace_back(r);
    return a;
  }
  a.mount_roots.push_back(settings.config.workspace_root);
  for (const auto& [name, identity] : settings.identities) {
    for (const auto& m : identity.mounts) a.mount_roots.push_back(resolve_path(m.host_path, "/"));
  }
  return a;
}

WorkerOptions worker_options(const Settings& settings, const std::string& id, const std::string& endpoint,
                             int capacity) {
  const Config& config = settings.config;
  WorkerOptions o;
  o.worker_id = id;
  o.coordinator_endpoint = endpoint;
  o.capacity = capacity;
  o.labels = config.worker_labels;
  o.image = config.container.image;
  o.container_uid = config.container.uid;
  o.container_gid = config.container.gid;
  o.heartbeat_interval_ms = config.heartbeat_interval_ms;
  o.liveness = config.heartbeat_liveness;
  o.workspace_root = config.workspace_root.string();
  o.warm_containers = config.container.warm < 0 ? capacity : config.container.warm;
  o.limits.pids_limit = config.container.pids_limit;
  o.limits.workspace_limit_bytes = config.container.workspace_limit_bytes;
  o.limits.output_limit_bytes = config.container.output_limit_bytes;
  o.limits.read_only_root = config.container.read_only_root;
  o.limits.cap_add = config.container.cap_add;
  o.allowed = allow_list(settings);
  return o;
}

std::unique_ptr<Workspaces> local_workspaces(const Config& config) {
  const bool root = geteuid() == 0;
  return make_git_workspaces(config.workspace_root, {}, root ? config.container.uid : -1,
                             root ? config.container.gid : -1);
}

// The embedded worker's id: stable across restarts of the same POLYPHONY_HOME, distinct
// between homes, so it reaps only its own leftovers.
std::string embedded_worker_id(const Config& config) {
  size_t h = std::hash<std::string>{}(config.home.string());
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08zx", h & 0xffffffffu);
  return std::string("local-") + buf;
}

// The worker's CURVE keys: from the flags when given, else from config.yaml `worker:`. A
// tcp:// coordinator without keys is allowed only on loopback with `insecure`.
Result<std::optional<protocol::CurveClientKeys>> worker_curve(const Args& args, const Config& config,
                                                              const std::string& endpoint) {
  if (args.has("secret-key") || args.has("coordinator-key")) return client_keys(args, endpoint);
  const WorkerSecurity& s = config.worker_security;
  if (!crosses_host(endpoint)) return std::optional<protocol::CurveClientKeys>();
  if (!s.curve()) {
    const std::string where = args.has("coordinator")        ? "--coordinator"
                              : s.where.count("coordinator") ? s.where.at("coordinator")
                                                             : "worker.coordinator";
    POLY_TRY(check_plain_endpoint(endpoint, s.insecure || args.has("insecure"),
                                  "worker.secret_key_file (or --secret-key)", "worker.insecure (or --insecure)",
                                  where));
    return std::optional<protocol::CurveClientKeys>();
  }
  return protocol::load_worker_keys(s);
}

// The home's serve lock: one `polyphony serve` per POLYPHONY_HOME. A second would take the
// socket and reap the first's containers as orphans. The lock is an flock, so it goes with the
// process however it ends; the file keeps the holder's pid for the message. A worker takes
// one per worker id (worker-<id>.lock), which `polyphony-worker cleanup` respects.
class ServeLock {
 public:
  static Result<std::unique_ptr<ServeLock>> take(const fs::path& home, const std::string& file = "serve.lock",
                                                 const std::string& holder = "polyphony serve") {
    std::error_code ec;
    fs::create_directories(home, ec);
    const fs::path path = home / file;
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
      return make_error("io", std::string("cannot open the serve lock: ") + std::strerror(errno), path.string());
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      char buf[32] = {};
      const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
      ::close(fd);
      const std::string pid = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "?";
      return make_error("busy",
                        "another " + holder + " (pid " + pid + ") is " +
                            (file == "serve.lock" ? "serving this home" : "running with this home") +
                            "; stop it first, or set POLYPHONY_HOME to another directory",
                        file == "serve.lock" ? home.string() : path.string());
    }
    const std::string pid = std::to_string(::getpid());
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      spdlog::warn("cannot write the pid into {}: {}", path.string(), std::strerror(errno));
    }
    return std::unique_ptr<ServeLock>(new ServeLock(fd));
  }
  ~ServeLock() { ::close(fd_); }
  ServeLock(const ServeLock&) = delete;
  ServeLock& operator=(const ServeLock&) = delete;

 private:
  explicit ServeLock(int fd) : fd_(fd) {}
  int fd_;
};

Result<std::unique_ptr<ServeLock>> take_worker_lock(const fs::path& home, const std::string& worker_id) {
  return ServeLock::take(home, "worker-" + worker_id + ".lock", "polyphony-worker " + worker_id);
}

// `polyphony doctor`'s checks, run beside serve's start: what is not fine is logged as a
// warning, and never stops serve. The workers' clocks are not measured: none has registered yet.
std::jthread start_checks(const Settings& settings, bool embedded) {
  return std::jthread([settings, embedded] {
    DoctorOptions options;
    options.worker_host = embedded;
    options.measure_clocks = false;
    size_t fine = 0;
    for (const auto& f : run_doctor(settings, options)) {
      if (f.health == Health::kOk) {
        ++fine;
        continue;
      }
      spdlog::warn("doctor: {} {}: {}{}", health_name(f.health), f.check, f.message,
                   f.where.empty() ? "" : " (" + f.where + ")");
    }
    spdlog::info("doctor: {} check(s) fine at start; `polyphony doctor` runs them again", fine);
  });
}

}  // namespace

bool serve_is_running(const fs::path& home) {
  const int fd = ::open((home / "serve.lock").c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  const bool held = ::flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  ::close(fd);
  return held;
}

namespace {

int serve(const Args& args) {
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  const Config config = settings->config;
  if (auto s = secure_home(config); !s.ok()) return report(s.error());
  auto lock = ServeLock::take(config.home);
  if (!lock.ok()) return report(lock.error());
  const bool embedded = config.embedded_worker && !args.has("no-embedded-worker");
  std::unique_ptr<DockerClient> docker;
  if (embedded) {
    auto d = ready_docker(config);
    if (!d.ok()) return report(d.error());
    docker = std::move(*d);
  }
  install_signal_handlers();
  zmq::context_t context;
  std::vector<std::string> endpoints{kEmbeddedWorkerEndpoint};
  if (!config.worker_endpoint.empty()) endpoints.push_back(config.worker_endpoint);
  std::vector<std::string> client_endpoints{local_client_endpoint(config.home)};
  if (!config.client_endpoint.empty()) client_endpoints.push_back(config.client_endpoint);
  auto coordinator = Coordinator::create(context, *settings, endpoints, client_endpoints);
  if (!coordinator.ok()) return report(coordinator.error());
  // Clients on other hosts see what status, show, logs and route --explain show here.
  (*coordinator)->serve_views([views = *settings](const protocol::ViewQuery& q) { return answer_view(q, views); });
  // A taken port leaves serve running without the dashboard; a bad token setting stops it.
  auto dashboard = start_dashboard(context, config);
  if (!dashboard.ok() && dashboard.error().code != "io") return report(dashboard.error());
  if (!dashboard.ok()) spdlog::warn("dashboard: {}", dashboard.error().to_string());
  std::unique_ptr<Workspaces> workspaces;
  std::unique_ptr<WorkerAgent> worker;
  std::thread worker_thread;
  if (embedded) {
    workspaces = local_workspaces(config);
    worker = std::make_unique<WorkerAgent>(
        context, worker_options(*settings, embedded_worker_id(config), kEmbeddedWorkerEndpoint, config.max_concurrency),
        *docker, *workspaces);
    worker_thread = std::thread([&] { worker->run(g_stop); });
  }
  std::jthread checks = start_checks(*settings, embedded);
  (*coordinator)->run(g_stop);
  if (worker_thread.joinable()) worker_thread.join();
  return kExitOk;
}

int worker(const Args& args) {
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  Config config = settings->config;
  if (auto s = secure_home(config); !s.ok()) return report(s.error());
  int capacity = config.worker_capacity;
  if (args.has("capacity")) {
    try {
      capacity = std::stoi(args.get("capacity"));
    } catch (const std::exception&) {
      capacity = 0;
    }
    if (capacity < 1 || capacity > 4096) return report(make_error("usage", "--capacity must be 1..4096", "--capacity"));
  }
  for (const auto& l : args.all("label")) config.worker_labels.push_back(l);
  const std::string endpoint = args.get("coordinator", config.coordinator_endpoint);
  auto curve = worker_curve(args, config, endpoint);
  if (!curve.ok()) return report(curve.error());
  auto docker = ready_docker(config);
  if (!docker.ok()) return report(docker.error());
  install_signal_handlers();
  zmq::context_t context;
  auto workspaces = local_workspaces(config);
  settings->config = config;  // with the flags' labels
  auto id = args.has("id") ? Result<std::string>(args.get("id")) : persisted_worker_id(config.home);
  if (!id.ok()) return report(id.error());
  auto worker_lock = take_worker_lock(config.home, *id);
  if (!worker_lock.ok()) return report(worker_lock.error());
  WorkerOptions options = worker_options(*settings, *id, endpoint, capacity);
  options.curve = *curve;
  WorkerAgent agent(context, options, **docker, *workspaces);
  agent.run(g_stop);
  return kExitOk;
}

// `polyphony-worker cleanup`: what finished tasks left on this host, removed while no worker of
// this id runs (a running one is asked through `polyphony cleanup` on the coordinator).
int worker_cleanup(const Args& args) {
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  const Config& config = settings->config;
  auto id = args.has("id") ? Result<std::string>(args.get("id")) : persisted_worker_id(config.home);
  if (!id.ok()) return report(id.error());
  auto lock = take_worker_lock(config.home, *id);
  if (!lock.ok()) {
    return report(make_error("busy",
                             lock.error().message + " (a running worker cleans up when the coordinator asks: "
                                                    "run `polyphony cleanup` there)",
                             lock.error().where));
  }
  auto host = resolve_docker_host(config.docker_host);
  if (!host.ok()) return report(host.error());
  auto docker = make_docker_client(*host);
  auto workspaces = local_workspaces(config);
  const bool dry = args.has("dry-run");
  const CleanupCount count = clean_up_finished_tasks(*docker, *workspaces, *id, {}, dry);
  for (const auto& e : count.errors) std::cerr << "polyphony-worker: " << e << "\n";
  std::cerr << "polyphony-worker: worker " << *id << ": " << (dry ? "would remove " : "removed ") << count.workspaces
            << " workspace(s) and " << count.containers << " container(s) of finished tasks\n";
  return count.errors.empty() ? kExitOk : kExitFailed;
}

}  // namespace

void add_serve(Command& polyphony) {
  polyphony.add("serve", "run the coordinator with an embedded local worker", serve)
      .flag("--no-embedded-worker", "run the coordinator alone: remote workers (polyphony-worker) run the tasks");
}

CommandLine worker_command_line() {
  CommandLine line("polyphony-worker",
                   "Registers with a coordinator and runs the tasks it dispatches in containers on this host's Docker "
                   "engine. Settings come from $POLYPHONY_HOME/config.yaml (worker:); flags override them.",
                   worker);
  Command root = line.root();
  root.option("--coordinator", "ENDPOINT", "the coordinator's worker endpoint, e.g. tcp://coord:7701")
      .option("--id", "ID", "this worker's id (default: made on first start and kept in $POLYPHONY_HOME/worker-id)")
      .option("--capacity", "N", "tasks run at once (1-4096)")
      .repeatable("--label", "L", "a label tasks can require with needs:L (repeatable), e.g. gpu");
  add_client_security_flags(root);
  root.add("cleanup",
           "remove the workspaces and containers of finished tasks on this host (no worker of this id "
           "may be running)",
           worker_cleanup)
      .option("--id", "ID", "the worker's id (default: the one kept in $POLYPHONY_HOME/worker-id)")
      .flag("--dry-run", "say what would be removed, and remove nothing");
  return line;
}

int worker_main(const std::vector<std::string>& argv) {
  set_program_name("polyphony-worker");
  init_logging("info");
  return worker_command_line().run(argv);
}

}  // namespace polyphony::cli
