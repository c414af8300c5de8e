// What the benchmarks share: a POLYPHONY_HOME driven through the real programs.
#include "bench/bench_box.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "common/ids.h"
#include "coordinator/state_store.h"
#include "coordinator/work_source.h"

extern char** environ;

namespace polyphony::bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

double wall_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

double steady_now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string container_config(int max_concurrency, int poll_interval_ms) {
  return "poll_interval_ms: " + std::to_string(poll_interval_ms) + "\n" +
         "max_concurrency: " + std::to_string(max_concurrency) + "\n" +
         "container:\n  network: none\n  cpus: 1\n  memory: 512m\n  run_timeout_s: 300\n  verify_timeout_s: 300\n";
}

std::string docker_cli() {
  return fs::exists("/usr/bin/docker") ? "/usr/bin/docker" : "docker";
}

void progress(const std::string& line) {
  std::cerr << "bench: " << line << std::endl;
}

ProcessResult must_run(const std::vector<std::string>& argv, const ProcessOptions& options) {
  auto r = run_process(argv, options);
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
  if (!r.ok()) throw BenchError(cmd + ": " + r.error().to_string());
  if (r->exit_code != 0) {
    throw BenchError(cmd + " exited with status " + std::to_string(r->exit_code) + ": " + r->err.substr(0, 2000));
  }
  return *r;
}

double timed_run(const std::vector<std::string>& argv, const ProcessOptions& options) {
  const double start = steady_now();
  must_run(argv, options);
  return steady_now() - start;
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw BenchError("cannot write " + path.string());
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void make_origin(const fs::path& bare, const std::map<std::string, std::string>& files) {
  const fs::path seed = bare.parent_path() / (bare.filename().string() + ".seed");
  must_run({"git", "init", "-q", "--bare", "-b", "main", bare.string()});
  must_run({"git", "init", "-q", "-b", "main", seed.string()});
  for (const auto& [path, content] : files) write_text(seed / path, content);
  must_run({"git", "-C", seed.string(), "add", "-A"});
  must_run({"git", "-C", seed.string(), "-c", "user.name=Bench", "-c", "user.email=bench@localhost", "commit", "-qm",
            "Benchmark repository"});
  must_run({"git", "-C", seed.string(), "push", "-q", bare.string(), "main"});
  fs::remove_all(seed);
}

namespace {

template <typename Visit>
void walk(const fs::path& dir, const std::vector<std::string>& skip_top, Visit visit) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return;
  visit(st);
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it.depth() == 0 &&
        std::find(skip_top.begin(), skip_top.end(), it->path().filename().string()) != skip_top.end()) {
      it.disable_recursion_pending();
      continue;
    }
    if (::lstat(it->path().c_str(), &st) == 0) visit(st);
  }
}

}  // namespace

int64_t disk_usage(const fs::path& dir, const std::vector<std::string>& skip_top) {
  int64_t total = 0;
  std::set<std::pair<dev_t, ino_t>> seen;
  walk(dir, skip_top, [&](const struct stat& st) {
    if (st.st_nlink > 1 && !S_ISDIR(st.st_mode) && !seen.insert({st.st_dev, st.st_ino}).second) return;
    total += static_cast<int64_t>(st.st_blocks) * 512;
  });
  return total;
}

int64_t apparent_size(const fs::path& dir, const std::vector<std::string>& skip_top) {
  int64_t total = 0;
  walk(dir, skip_top, [&](const struct stat& st) {
    if (S_ISREG(st.st_mode)) total += st.st_size;
  });
  return total;
}

Background::Background(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                       const fs::path& log)
    : log_(log) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    if (!env.count(kv.substr(0, kv.find('=')))) env_strings.push_back(kv);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env_strings) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw BenchError("cannot open " + log.string());
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0) ::dup2(null_fd, 0);
    ::execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  ::close(fd);
  if (pid_ < 0) throw BenchError("cannot fork for " + argv[0]);
}

Background::~Background() {
  stop();
}

bool Background::running() {
  if (status_ || pid_ <= 0) return false;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    return false;
  }
  return true;
}

int Background::stop(std::chrono::seconds grace) {
  if (!running()) return status_.value_or(-1);
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (running() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(20ms);
  if (running()) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    status_ = -SIGKILL;
  }
  return *status_;
}

int64_t rss_bytes(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  }
  throw BenchError("no " + field + " for process " + std::to_string(pid) + " (did it exit?)");
}

double cpu_seconds(int pid) {
  const std::string stat = read_text("/proc/" + std::to_string(pid) + "/stat");
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis don't.
  const size_t close = stat.rfind(')');
  if (close == std::string::npos)
    throw BenchError("no CPU times for process " + std::to_string(pid) + " (did it exit?)");
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {  // fields 14 and 15: utime, stime in clock ticks
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw BenchError("cannot find a free loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

void wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout, const std::string& what,
                std::chrono::milliseconds every) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw BenchError("timed out after " + std::to_string(timeout.count() / 1000) + " s waiting for " + what);
    }
    std::this_thread::sleep_for(every);
  }
}

Box::Box(const BenchOptions& options, const fs::path& dir, const std::string& config_yaml,
         const std::string& extra_agents_yaml)
    : options_(options), dir_(dir), home_(dir / "home") {
  fs::remove_all(dir_);
  fs::create_directories(dir_);
  cli({"init"});
  write_text(home_ / "config.yaml", "docker_host: \"" + options_.docker_host + "\"\n" + config_yaml);
  if (!extra_agents_yaml.empty()) {
    std::ofstream out(home_ / "agents.yaml", std::ios::app);
    out << extra_agents_yaml;
  }
}

Box::~Box() {
  stop_serving();
}

std::map<std::string, std::string> Box::env() const {
  return {{"POLYPHONY_HOME", home_.string()}, {"DOCKER_HOST", options_.docker_host}, {"POLYPHONY_LOG_LEVEL", "info"}};
}

ProcessResult Box::cli(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{options_.polyphony};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions o;
  o.env = env();
  o.env["POLYPHONY_LOG_LEVEL"] = "warn";
  o.timeout = std::chrono::minutes(5);
  return must_run(argv, o);
}

std::string Box::spawn(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{"spawn"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string id = cli(argv).out;
  while (!id.empty() && (id.back() == '\n' || id.back() == '\r')) id.pop_back();
  if (id.size() != 8) throw BenchError("spawn printed '" + id + "', not a task id");
  return id;
}

void Box::serve(const std::vector<std::string>& extra) {
  std::vector<std::string> argv{options_.polyphony, "serve"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  server_ = std::make_unique<Background>(argv, env(), dir_ / "serve.log");
}

void Box::stop_serving() {
  if (server_) server_->stop();
  server_.reset();
}

std::unique_ptr<Background> Box::start(const std::vector<std::string>& argv, const std::string& log_name) const {
  return std::make_unique<Background>(argv, env(), dir_ / log_name);
}

namespace {

StateStore open_state(const fs::path& home) {
  auto store = StateStore::open(home / "state.db", true);
  if (!store.ok()) throw BenchError("cannot read the state DB: " + store.error().to_string());
  return std::move(*store);
}

}  // namespace

std::vector<Task> Box::tasks() const {
  if (!fs::exists(home_ / "state.db")) return {};
  auto list = open_state(home_).list();
  if (!list.ok()) throw BenchError("cannot list tasks: " + list.error().to_string());
  return *list;
}

std::optional<Task> Box::task(const std::string& id) const {
  if (!fs::exists(home_ / "state.db")) return std::nullopt;
  auto t = open_state(home_).get(id);
  if (!t.ok()) throw BenchError("cannot read task " + id + ": " + t.error().to_string());
  return *t;
}

std::vector<TaskEvent> Box::events(const std::string& id) const {
  auto e = open_state(home_).events(id);
  if (!e.ok()) throw BenchError("cannot read the events of task " + id + ": " + e.error().to_string());
  return *e;
}

std::vector<Task> Box::wait_finished(const std::vector<std::string>& ids, std::chrono::seconds timeout) const {
  std::vector<Task> out;
  wait_until(
      [&] {
        out.clear();
        std::map<std::string, Task> by_id;
        for (auto& t : tasks()) by_id[t.request.id] = std::move(t);
        for (const auto& id : ids) {
          auto it = by_id.find(id);
          if (it == by_id.end() || !is_finished(it->second.state)) return false;
          out.push_back(it->second);
        }
        return true;
      },
      timeout, std::to_string(ids.size()) + " task(s) to finish (serve log: " + (dir_ / "serve.log").string() + ")",
      std::chrono::milliseconds(100));
  return out;
}

void enqueue_tasks(const fs::path& queue_db, const fs::path& repo, int n) {
  auto queue = SqliteQueue::open(queue_db);
  if (!queue.ok()) throw BenchError("cannot open the queue: " + queue.error().to_string());
  for (int i = 0; i < n; ++i) {
    TaskRequest r;
    r.id = new_task_id();
    r.title = "Queued task " + std::to_string(i) + ": fix the flaky retry in the HTTP client";
    r.body =
        "The retry loop in src/http/client.cpp gives up after one attempt when the server answers 503.\n"
        "Make it back off and try again, and add a test.\n";
    r.repo = repo.string();
    r.agent = "scripted";
    r.source = "spawn";
    r.created_at_ms = now_ms();
    if (auto s = (*queue)->enqueue(r); !s.ok()) throw BenchError("cannot enqueue: " + s.error().to_string());
  }
}

size_t count_in_state(const fs::path& home, TaskState state) {
  if (!fs::exists(home / "state.db")) return 0;
  auto store = StateStore::open(home / "state.db", true);
  if (!store.ok()) return 0;
  auto list = store->list({state});
  return list.ok() ? list->size() : 0;
}

}  // namespace polyphony::bench
