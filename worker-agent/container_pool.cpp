// Task containers and the warm pool.
#include "worker-agent/container_pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace polyphony {

namespace fs = std::filesystem;

namespace {

// A key whose warm containers keep failing (a repo gone, an image missing) stops being made after
// this many failures in a row, until one is made for it again.
constexpr int kMaxFailures = 3;

// The longest a maker waiting for a quiet moment sleeps before it reads the clock again.
constexpr std::chrono::milliseconds kQuietSlice{100};

// The hardening every task container gets (see task_container_spec).
void lock_down(ContainerSpec& cs, const WarmKey& key) {
  const ContainerLimits& l = key.limits;
  cs.drop_all_caps = true;
  cs.cap_add = l.cap_add;
  cs.no_new_privileges = true;
  cs.pids_limit = l.pids_limit;
  cs.file_size_limit = l.workspace_limit_bytes;
  if (!l.read_only_root) return;
  cs.read_only_root = true;
  const std::string size = l.workspace_limit_bytes > 0 ? ",size=" + std::to_string(l.workspace_limit_bytes) : "";
  const auto colon = key.user.find(':');
  const std::string uid = key.user.substr(0, colon);
  const std::string gid = colon == std::string::npos ? uid : key.user.substr(colon + 1);
  // exec: the engine's tmpfs default is noexec, and builds and test suites run what they make
  // in /tmp (the workspace is executable anyway).
  cs.tmpfs["/tmp"] = "rw,exec,nosuid,nodev,mode=1777" + size;
  cs.tmpfs["/home/agent"] = "rw,exec,nosuid,nodev,mode=0700,uid=" + uid + ",gid=" + gid + size;
}

}  // namespace

std::string WarmKey::id() const {
  std::string s = image + '\n' + user + '\n' + network_mode + '\n' + std::to_string(memory_bytes) + '\n' +
                  std::to_string(nano_cpus) + '\n' + repo_url + '\n' + base_branch + '\n' + runner + '\n' + limits.id();
  for (const auto& m : mounts) {
    s += '\n' + m.host_path + ':' + m.container_path + (m.read_only ? ":ro" : ":rw");
  }
  return s;
}

ContainerSpec task_container_spec(const WarmKey& key, const fs::path& repo_dir, const fs::path& meta_dir,
                                  const fs::path& mirror_dir, std::map<std::string, std::string> labels) {
  ContainerSpec cs;
  cs.image = key.image;
  cs.user = key.user;
  cs.working_dir = "/workspace";
  cs.labels = std::move(labels);
  cs.mounts.push_back({repo_dir.string(), "/workspace", false});
  cs.mounts.push_back({meta_dir.string(), "/polyphony", true});
  // The clone borrows its objects from the mirror through an absolute path.
  cs.mounts.push_back({mirror_dir.string(), mirror_dir.string(), true});
  for (const auto& m : key.mounts) cs.mounts.push_back({m.host_path, m.container_path, true});
  cs.memory_bytes = key.memory_bytes;
  cs.nano_cpus = key.nano_cpus;
  cs.network_mode = key.network_mode;
  if (key.runner.empty()) {
    cs.cmd = {"sleep", "infinity"};
  } else {
    cs.mounts.push_back({key.runner, kRunnerInContainer, true});
    cs.cmd = {kRunnerInContainer, kRunnerSocketInContainer};
  }
  cs.env = {"HOME=/home/agent"};
  lock_down(cs, key);
  return cs;
}

Result<RunnerContainer> start_task_container(DockerClient& docker, const WarmKey& key, const ContainerSpec& cs,
                                             const fs::path& meta_dir) {
  if (key.runner.empty()) {
    return make_error("no_runner",
                      "this worker has no polyphony-runner to start task containers with (its start-up "
                      "log says why): install it beside polyphony-worker or set POLYPHONY_RUNNER");
  }
  return start_with_runner(docker, cs, meta_dir);
}

std::string task_container_name(const std::string& task_id, int64_t epoch) {
  return "polyphony." + task_id + ".e" + std::to_string(epoch);
}

Result<std::vector<ContainerInfo>> task_containers(DockerClient& docker, const std::string& task_id,
                                                   const std::string& worker_id) {
  std::map<std::string, std::string> by_label{{"polyphony.task", task_id}};
  std::map<std::string, std::string> warm{{"polyphony.role", "warm"}};
  if (!worker_id.empty()) {
    by_label["polyphony.worker"] = worker_id;
    warm["polyphony.worker"] = worker_id;
  }
  auto labelled = docker.list_containers(by_label);
  if (!labelled.ok()) return labelled.error();
  auto taken = docker.list_containers(warm);
  if (!taken.ok()) return taken.error();
  const std::string prefix = "polyphony." + task_id + ".";
  for (auto& c : *taken) {
    if (c.name.rfind(prefix, 0) == 0) labelled->push_back(std::move(c));
  }
  return labelled;
}

ContainerPool::ContainerPool(DockerClient& docker, Workspaces& workspaces, Options options, const Clock& clock)
    : docker_(docker), workspaces_(workspaces), options_(std::move(options)), clock_(clock) {
  const int makers = std::max(1, std::min(options_.makers, std::max(options_.size, 1)));
  for (int i = 0; i < makers; ++i) makers_.emplace_back([this] { maker_loop(false); });
  // Removals have a thread of their own: a finished task's container never waits behind a make.
  makers_.emplace_back([this] { maker_loop(true); });
}

ContainerPool::~ContainerPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : makers_) t.join();
  for (const auto& r : ready_) destroy(r.slot);
  for (const auto& d : disposals_) destroy(d);
}

std::optional<WarmSlot> ContainerPool::take(const WarmKey& key) {
  if (options_.size <= 0) return std::nullopt;
  const std::string id = key.id();
  std::optional<WarmSlot> found;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    last_activity_ = clock_.steady_ms();
    auto it = std::find_if(ready_.begin(), ready_.end(), [&](const Ready& r) { return r.key_id == id; });
    if (it != ready_.end()) {
      found = std::move(it->slot);
      ready_.erase(it);
    }
    auto failed = failures_.find(id);
    if (failed == failures_.end() || failed->second < kMaxFailures) {
      // A hit replaces what it took; a miss means demand outran the pool: warm up to its size.
      const auto making = making_.find(id);
      const int pending = static_cast<int>(std::count_if(wanted_.begin(), wanted_.end(),
                                                         [&](const WarmKey& k) { return k.id() == id; })) +
                          (making == making_.end() ? 0 : making->second);
      int to_add = found ? 1 : options_.size - pending;
      to_add = std::min(to_add, options_.size - pending -
                                    static_cast<int>(std::count_if(ready_.begin(), ready_.end(),
                                                                   [&](const Ready& r) { return r.key_id == id; })));
      for (; to_add > 0; --to_add) {
        if (static_cast<int>(ready_.size() + wanted_.size()) + making_total_ >= options_.size) {
          // Full: the oldest warm container of another key makes room.
          auto other = std::find_if(ready_.begin(), ready_.end(), [&](const Ready& r) { return r.key_id != id; });
          if (other == ready_.end()) break;
          disposals_.push_back(std::move(other->slot));
          disposals_at_.push_back(last_activity_);
          ready_.erase(other);
        }
        wanted_.push_back(key);
        wanted_at_.push_back(last_activity_);
      }
    }
  }
  wake_.notify_all();
  return found;
}

void ContainerPool::dispose(const std::string& container_id) {
  if (container_id.empty()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    last_activity_ = clock_.steady_ms();
    disposals_.push_back({container_id, {}, nullptr});
    disposals_at_.push_back(last_activity_);
  }
  wake_.notify_all();
}

int ContainerPool::ready(const WarmKey& key) const {
  const std::string id = key.id();
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(std::count_if(ready_.begin(), ready_.end(), [&](const Ready& r) { return r.key_id == id; }));
}

bool ContainerPool::settle(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mutex_);
  return settled_.wait_for(lock, timeout, [&] { return wanted_.empty() && disposals_.empty() && busy_ == 0; });
}

bool ContainerPool::wait_for_quiet(std::unique_lock<std::mutex>& lock, const std::deque<int64_t>& queued) {
  while (!stopping_ && !queued.empty()) {
    const int64_t due = std::min(last_activity_ + options_.quiet.count(), queued.front() + options_.max_delay.count());
    const int64_t now = clock_.steady_ms();
    if (now >= due) return true;
    // In slices: a clock other than the system's (a test's) moves without waking anyone.
    wake_.wait_for(lock, std::min(std::chrono::milliseconds(due - now), kQuietSlice));
  }
  return false;
}

void ContainerPool::maker_loop(bool disposer) {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || (disposer ? !disposals_.empty() : !wanted_.empty()); });
    if (stopping_) return;
    if (options_.quiet.count() > 0 && !wait_for_quiet(lock, disposer ? disposals_at_ : wanted_at_)) continue;
    ++busy_;
    if (disposer) {
      WarmSlot gone = std::move(disposals_.front());
      disposals_.pop_front();
      disposals_at_.pop_front();
      lock.unlock();
      destroy(gone);
      lock.lock();
    } else {
      WarmKey key = wanted_.front();
      wanted_.pop_front();
      wanted_at_.pop_front();
      const std::string id = key.id();
      ++making_[id];
      ++making_total_;
      lock.unlock();
      auto made = make(key);
      lock.lock();
      if (--making_[id] == 0) making_.erase(id);
      --making_total_;
      if (!made.ok()) {
        ++failures_[id];
        spdlog::warn("cannot make a warm container for {}: {}", key.repo_url, made.error().to_string());
      } else if (stopping_) {
        lock.unlock();
        destroy(*made);
        lock.lock();
      } else {
        failures_.erase(id);
        ready_.push_back({id, std::move(*made)});
      }
    }
    --busy_;
    settled_.notify_all();
  }
}

Result<WarmSlot> ContainerPool::make(const WarmKey& key) {
  auto spare = workspaces_.make_spare(key.repo_url, key.base_branch);
  if (!spare.ok()) return spare.error();
  ContainerSpec cs = task_container_spec(key, spare->dir / "repo", spare->dir / "meta", spare->mirror_dir,
                                         {{"polyphony.worker", options_.worker_id}, {"polyphony.role", "warm"}});
  auto started = start_task_container(docker_, key, cs, spare->dir / "meta");
  if (!started.ok()) {
    (void)workspaces_.discard_spare(*spare);
    return started.error();
  }
  return WarmSlot{started->id, *spare, started->runner};
}

void ContainerPool::destroy(const WarmSlot& slot) {
  // Its runner exits first, and with it everything in the container.
  if (slot.runner) slot.runner->hang_up();
  if (!slot.container_id.empty()) {
    auto s = docker_.remove_container(slot.container_id);
    if (!s.ok()) spdlog::warn("cannot remove container {}: {}", slot.container_id.substr(0, 12), s.error().to_string());
  }
  if (!slot.spare.dir.empty()) (void)workspaces_.discard_spare(slot.spare);
}

}  // namespace polyphony
