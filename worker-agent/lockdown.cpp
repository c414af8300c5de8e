// The worker's own limits and allow-list for containers, and the checks behind them.
#include "worker-agent/lockdown.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace polyphony {

namespace fs = std::filesystem;

std::string ContainerLimits::id() const {
  std::string s = "pids=" + std::to_string(pids_limit) + ",fsize=" + std::to_string(workspace_limit_bytes) +
                  ",ro=" + (read_only_root ? "1" : "0") + ",caps=";
  for (const auto& c : cap_add) s += c + ' ';
  return s;
}

namespace {

bool listed(const std::vector<std::string>& list, const std::string& value) {
  for (const auto& v : list) {
    if (v == value) return true;
  }
  return false;
}

std::string joined(const std::vector<std::string>& list) {
  std::string s;
  for (const auto& v : list) s += (s.empty() ? "" : ", ") + v;
  return s.empty() ? "(nothing)" : s;
}

// `path` with symlinks resolved as far as it exists; lexically normal otherwise.
fs::path resolved(const fs::path& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(path, ec);
  return ec ? path.lexically_normal() : p;
}

bool under(const fs::path& path, const fs::path& root) {
  auto rel = path.lexically_relative(root);
  return !rel.empty() && *rel.begin() != "..";
}

std::optional<std::string> mount_refusal(const std::vector<protocol::Mount>& mounts, const std::string& field,
                                         const AllowList& allowed) {
  for (size_t i = 0; i < mounts.size(); ++i) {
    const fs::path source = resolved(mounts[i].host_path);
    bool ok = false;
    for (const auto& root : allowed.mount_roots) ok = ok || under(source, resolved(root));
    if (!ok) {
      std::string roots;
      for (const auto& r : allowed.mount_roots) roots += (roots.empty() ? "" : ", ") + r.string();
      return field + "[" + std::to_string(i) + "].host_path: " + mounts[i].host_path +
             (source.string() != mounts[i].host_path ? " (" + source.string() + ")" : "") +
             " is outside this worker's mount roots (" + (roots.empty() ? "none" : roots) +
             "; container.allowed_mount_roots)";
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> refusal(const protocol::RunSpec& spec, const AllowList& allowed) {
  if (!listed(allowed.images, spec.image)) {
    return "image: " + spec.image + " is not an image this worker runs (" + joined(allowed.images) +
           "; container.allowed_images)";
  }
  if (!listed(allowed.networks, spec.network_mode)) {
    return "network_mode: " + spec.network_mode + " is not a network this worker allows (" + joined(allowed.networks) +
           "; container.allowed_networks)";
  }
  if (auto r = mount_refusal(spec.agent.mounts, "agent.mounts", allowed)) return r;
  return mount_refusal(spec.reviewer.mounts, "reviewer.mounts", allowed);
}

int64_t disk_usage(const fs::path& dir, int64_t stop_after) {
  struct stat top {};
  if (::lstat(dir.c_str(), &top) != 0) return 0;
  int64_t total = 0;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    if (st.st_dev != top.st_dev) {
      if (S_ISDIR(st.st_mode)) it.disable_recursion_pending();
      continue;
    }
    total += static_cast<int64_t>(st.st_blocks) * 512;
    if (stop_after > 0 && total > stop_after) break;
  }
  return total;
}

std::optional<int64_t> pids_limit_refusals(int host_pid) {
  if (host_pid <= 0) return std::nullopt;
  std::ifstream groups("/proc/" + std::to_string(host_pid) + "/cgroup");
  std::string line;
  while (std::getline(groups, line)) {
    // "N:controllers:/path": v1's pids hierarchy, or v2's single "0::/path".
    auto a = line.find(':');
    auto b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    fs::path events;
    if (controllers == "pids" || controllers.find("pids,") == 0 || controllers.find(",pids") != std::string::npos) {
      events = fs::path("/sys/fs/cgroup/pids") / fs::path(path).relative_path() / "pids.events";
    } else if (controllers.empty() && line.rfind("0::", 0) == 0) {
      events = fs::path("/sys/fs/cgroup") / fs::path(path).relative_path() / "pids.events";
    } else {
      continue;
    }
    std::ifstream in(events);
    std::string key;
    int64_t count = 0;
    while (in >> key >> count) {
      if (key == "max") return count;
    }
  }
  return std::nullopt;
}

std::string human_bytes(int64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  int64_t v = bytes;
  while (u < 4 && v >= 1024 && v % 1024 == 0) {
    v /= 1024;
    ++u;
  }
  return std::to_string(v) + " " + units[u];
}

Result<std::string> read_untrusted_file(const fs::path& path, int64_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT) return make_error("not_found", "there is no file", path.string());
    if (e == ELOOP) return make_error("untrusted_file", "it is a symbolic link, which is not followed", path.string());
    return make_error("untrusted_file", std::string("it cannot be opened: ") + std::strerror(e), path.string());
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return make_error("untrusted_file", std::string("fstat: ") + std::strerror(errno), path.string());
  if (!S_ISREG(st.st_mode)) {
    const char* what = S_ISFIFO(st.st_mode)   ? "a FIFO"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISDIR(st.st_mode)  ? "a directory"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                                              : "not a regular file";
    return make_error("untrusted_file", std::string("it is ") + what + ", not a regular file", path.string());
  }
  if (st.st_size > max_bytes) {
    return make_error(
        "untrusted_file",
        "it is " + std::to_string(st.st_size) + " bytes, more than the " + human_bytes(max_bytes) + " allowed",
        path.string());
  }
  std::string text;
  char buf[8192];
  while (static_cast<int64_t>(text.size()) <= max_bytes) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return make_error("untrusted_file", std::string("read: ") + std::strerror(errno), path.string());
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  // It grew while being read (a writer still at it): as good as too large.
  if (static_cast<int64_t>(text.size()) > max_bytes) {
    return make_error("untrusted_file", "it grew past the " + human_bytes(max_bytes) + " allowed while being read",
                      path.string());
  }
  return text;
}

}  // namespace polyphony
