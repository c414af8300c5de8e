// Builds the worker image without a registry: debootstrap (cached), npm installs of the pinned
// agent CLIs (cached), add the agent user, the scripted agent and the CLIs, tar the rootfs
// (cached), then `docker import` it with its config and check the CLIs run in it.
#include "worker-agent/image_builder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "common/data_dir.h"
#include "common/process.h"
#include "common/sha256.h"
#include "worker-agent/scripted_agent_text.h"

namespace polyphony {

namespace fs = std::filesystem;

// Bump when the build steps below change what goes into the image.
constexpr const char* kImageRecipe = "3";
// Bump when the debootstrap command (suite, variant, packages) changes.
constexpr const char* kBaseVersion = "bookworm-minbase-1";

std::string image_version(const std::vector<AgentPin>& agents) {
  return std::string(kImageRecipe) + "-" + std::string(detail::kScriptedAgentSha256).substr(0, 12) + "-" +
         agents_digest(agents);
}

namespace {

constexpr const char* kVersionLabel = "polyphony.image.version";
constexpr const char* kDefaultMirror = "http://deb.debian.org/debian";
constexpr const char* kCompleteMarker = ".polyphony-complete";
constexpr int kAgentUid = 1000;
constexpr auto kDebootstrapTimeout = std::chrono::minutes(20);
constexpr auto kTarTimeout = std::chrono::minutes(10);
constexpr auto kNpmTimeout = std::chrono::minutes(20);
constexpr auto kAgentCheckTimeout = std::chrono::seconds(60);
// Where the image keeps the agent CLIs; /usr/local/bin/<name> links into it.
constexpr const char* kAgentsHome = "/opt/polyphony/agents";

// ---- apt sources ----

struct AptSource {
  std::string uri;
  std::vector<std::string> suites;
};

std::vector<std::string> words_of(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// "deb [opts] uri suite components..." lines; deb-src and comments are skipped.
void parse_one_line_sources(const std::string& text, std::vector<AptSource>& out) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    line = line.substr(0, line.find('#'));
    auto open = line.find('[');
    if (open != std::string::npos) line.erase(open, line.find(']', open) - open + 1);
    auto w = words_of(line);
    if (w.size() >= 3 && w[0] == "deb") out.push_back({w[1], {w[2]}});
  }
}

void add_deb822_stanza(const std::map<std::string, std::string>& fields, std::vector<AptSource>& out) {
  auto get = [&](const std::string& k) { return fields.count(k) ? fields.at(k) : std::string(); };
  auto types = words_of(get("types"));
  if (std::find(types.begin(), types.end(), "deb") == types.end()) return;
  auto enabled = get("enabled");
  std::transform(enabled.begin(), enabled.end(), enabled.begin(), ::tolower);
  if (enabled == "no") return;
  for (const auto& uri : words_of(get("uris"))) out.push_back({uri, words_of(get("suites"))});
}

// Stanzas of "Field: value" lines separated by blank lines; field names are case-insensitive
// and a line starting with a space continues the previous value.
void parse_deb822_sources(const std::string& text, std::vector<AptSource>& out) {
  std::istringstream in(text);
  std::map<std::string, std::string> fields;
  std::string last;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.find_first_not_of(" \t") == std::string::npos) {
      add_deb822_stanza(fields, out);
      fields.clear();
    } else if (line[0] == '#') {
      continue;
    } else if ((line[0] == ' ' || line[0] == '\t') && !last.empty()) {
      fields[last] += " " + line;
    } else if (auto colon = line.find(':'); colon != std::string::npos) {
      last = line.substr(0, colon);
      std::transform(last.begin(), last.end(), last.begin(), ::tolower);
      auto words = words_of(line.substr(colon + 1));
      std::string value;
      for (const auto& w : words) value += (value.empty() ? "" : " ") + w;
      fields[last] = value;
    }
  }
  add_deb822_stanza(fields, out);
}

std::vector<AptSource> read_apt_sources(const fs::path& etc_apt) {
  std::vector<AptSource> sources;
  std::error_code ec;
  if (fs::is_regular_file(etc_apt / "sources.list", ec)) {
    parse_one_line_sources(read_text(etc_apt / "sources.list"), sources);
  }
  std::vector<fs::path> parts;
  for (const auto& e : fs::directory_iterator(etc_apt / "sources.list.d", ec)) parts.push_back(e.path());
  std::sort(parts.begin(), parts.end());  // apt reads them in this order too
  for (const auto& p : parts) {
    if (p.extension() == ".list") parse_one_line_sources(read_text(p), sources);
    if (p.extension() == ".sources") parse_deb822_sources(read_text(p), sources);
  }
  return sources;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// 0: a bookworm suite of a main archive, 1: some other Debian archive, 2: not usable.
int mirror_rank(const AptSource& s) {
  std::string uri = s.uri;
  while (ends_with(uri, "/")) uri.pop_back();
  if (uri.find("debian-security") != std::string::npos) return 2;
  bool bookworm = false;
  for (const auto& suite : s.suites) {
    if (ends_with(suite, "-security") || ends_with(suite, "/updates")) return 2;
    if (suite == "bookworm" || suite.rfind("bookworm-", 0) == 0) bookworm = true;
  }
  if (bookworm) return 0;
  return ends_with(uri, "/debian") ? 1 : 2;
}

}  // namespace

Result<std::string> apt_mirror_from_sources(const fs::path& etc_apt) {
  auto sources = read_apt_sources(etc_apt);
  const AptSource* best = nullptr;
  for (const auto& s : sources) {
    int rank = mirror_rank(s);
    if (rank < 2 && (best == nullptr || rank < mirror_rank(*best))) best = &s;
  }
  if (best == nullptr) {
    return make_error("not_found",
                      "no Debian archive found in apt's sources (sources.list, sources.list.d/"
                      "*.list, *.sources); pass a mirror such as " +
                          std::string(kDefaultMirror),
                      etc_apt.string());
  }
  std::string uri = best->uri;
  while (ends_with(uri, "/")) uri.pop_back();
  return uri;
}

namespace {

// ---- the build ----

struct BuildPaths {
  fs::path cache;
  fs::path agents;        // one npm install a pin, kept across image versions
  fs::path npm_cache;     // npm's own download cache
  fs::path base;          // the debootstrapped rootfs, reused across image versions
  fs::path base_partial;  // where debootstrap writes before the rename
  fs::path staging;       // a copy of base being customised
  fs::path tarball;       // the finished image rootfs
  fs::path tarball_partial;
};

BuildPaths paths_for(const fs::path& cache, const std::string& version) {
  std::string rootfs = "rootfs-" + version;
  return BuildPaths{cache,
                    cache / "agents",
                    cache / "npm",
                    cache / ("debootstrap-" + std::string(kBaseVersion)),
                    cache / ("debootstrap-" + std::string(kBaseVersion) + ".partial"),
                    cache / (rootfs + ".staging"),
                    cache / (rootfs + ".tar"),
                    cache / (rootfs + ".tar.partial")};
}

fs::path default_cache_dir() {
  const char* env = std::getenv("POLYPHONY_CACHE_DIR");
  return (env != nullptr && *env != '\0') ? fs::path(env) : fs::path("/var/cache/polyphony");
}

void say(const ImageBuildOptions& options, const std::string& line) {
  if (options.progress) options.progress(line);
}

Error io_error(const std::string& what, const fs::path& path, const std::error_code& ec) {
  return make_error("io", what + " " + path.string() + ": " + ec.message(), path.string());
}

// An exclusive flock on <cache>/.build.lock, released when destroyed.
class BuildLock {
 public:
  static Result<std::unique_ptr<BuildLock>> take(const fs::path& cache, const ImageBuildOptions& o) {
    fs::path path = cache / ".build.lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return io_error("cannot open the lock file", path, {errno, std::generic_category()});
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      say(o, "waiting for another image build using " + cache.string() + " to finish");
      if (::flock(fd, LOCK_EX) != 0) {
        std::error_code ec(errno, std::generic_category());
        ::close(fd);
        return io_error("cannot lock", path, ec);
      }
    }
    return std::unique_ptr<BuildLock>(new BuildLock(fd));
  }
  ~BuildLock() { ::close(fd_); }
  BuildLock(const BuildLock&) = delete;
  BuildLock& operator=(const BuildLock&) = delete;

 private:
  explicit BuildLock(int fd) : fd_(fd) {}
  int fd_;
};

Result<bool> image_is_current(DockerClient& docker, const std::string& tag, const std::string& version) {
  auto labels = docker.image_labels(tag);
  if (!labels.ok()) {
    if (labels.error().code == "not_found") return false;
    return labels.error();
  }
  auto it = labels->find(kVersionLabel);
  return it != labels->end() && it->second == version;
}

// The `docker build` context holding the registry-based Dockerfile, for hints: the installed
// copy (share/polyphony/docker), else the source tree's docker/.
std::string dockerfile_dir() {
  auto dir = data_dir();
  return dir ? (*dir / "docker").string() : std::string("docker");
}

Status require_root(const std::string& step) {
  if (::geteuid() == 0) return ok_status();
  const std::string context = dockerfile_dir();
  return make_error("permission", step +
                                      " needs root (it creates files owned by other users): run "
                                      "`sudo polyphony image build`, or build " +
                                      context +
                                      "/Dockerfile with "
                                      "`docker build -t polyphony-worker:latest " +
                                      context +
                                      "` where a registry "
                                      "is reachable");
}

Status remove_tree(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return io_error("cannot remove", path, ec);
  return ok_status();
}

// Mount points strictly below `root`, deepest first ("\040" escapes in /proc/self/mounts
// decoded).
std::vector<std::string> mounts_below(const fs::path& root) {
  std::ifstream in("/proc/self/mounts");
  std::string prefix = root.string() + "/";
  std::vector<std::string> found;
  for (std::string device, point, rest; in >> device >> point && std::getline(in, rest);) {
    for (size_t at; (at = point.find("\\040")) != std::string::npos;) point.replace(at, 4, " ");
    if (point.rfind(prefix, 0) == 0) found.push_back(point);
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  return found;
}

// A debootstrap that was killed leaves /proc, /sys (and sometimes a bind of the host's /dev)
// mounted inside its target: detach them before deleting, or remove_all would reach into them.
Status remove_rootfs(const fs::path& root) {
  for (const auto& point : mounts_below(root)) {
    if (::umount2(point.c_str(), MNT_DETACH) != 0) {
      return make_error("io",
                        "cannot unmount " + point + " left by an interrupted debootstrap: " + std::strerror(errno) +
                            "; unmount it by hand, then retry",
                        point);
    }
  }
  if (!mounts_below(root).empty()) {
    return make_error("io", "mounts remain below " + root.string() + "; unmount them, then retry", root.string());
  }
  return remove_tree(root);
}

std::string resolve_mirror(const ImageBuildOptions& options) {
  if (!options.mirror.empty()) return options.mirror;
  auto from_apt = apt_mirror_from_sources();
  if (from_apt.ok()) return *from_apt;
  say(options, "no Debian mirror in /etc/apt (" + from_apt.error().message + "); using " + kDefaultMirror);
  return kDefaultMirror;
}

// The last `n` lines of `text`, joined with "; ".
std::string last_lines(const std::string& text, size_t n) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  std::string out;
  for (size_t i = lines.size() > n ? lines.size() - n : 0; i < lines.size(); ++i) {
    out += (out.empty() ? "" : "; ") + lines[i];
  }
  return out;
}

Status run_debootstrap(const BuildPaths& p, const std::string& mirror) {
  ProcessOptions po;
  po.timeout = kDebootstrapTimeout;
  auto r = run_process({"debootstrap", "--variant=minbase", "--include=git,ca-certificates,patch", "bookworm",
                        p.base_partial.string(), mirror},
                       po);
  if (!r.ok() && r.error().code == "not_found") {
    return make_error("not_found", "debootstrap is not installed: run `apt-get install debootstrap`, or build " +
                                       dockerfile_dir() +
                                       "/Dockerfile with `docker build` where a registry is reachable");
  }
  if (!r.ok()) return r.error();
  if (r->exit_code == 0) return ok_status();
  // debootstrap reports its errors ("E: ...") on stdout.
  return make_error("process", "debootstrap of Debian bookworm from " + mirror + " exited with status " +
                                   std::to_string(r->exit_code) + ": " + last_lines(r->out + r->err, 4) +
                                   " (full log: " + (p.base_partial / "debootstrap/debootstrap.log").string() +
                                   "; pass another mirror if this one is unreachable)");
}

// The debootstrapped rootfs: reused when complete, else made in a .partial directory that is
// renamed only once finished, so an interrupted build never leaves a half rootfs behind.
Status ensure_base_rootfs(const BuildPaths& p, const ImageBuildOptions& options) {
  if (fs::exists(p.base / kCompleteMarker)) {
    say(options, "reusing the Debian rootfs in " + p.base.string());
    return ok_status();
  }
  POLY_TRY(require_root("debootstrap"));
  POLY_TRY(remove_rootfs(p.base_partial));
  POLY_TRY(remove_rootfs(p.base));
  std::string mirror = resolve_mirror(options);
  say(options, "debootstrapping Debian bookworm (minbase + git, ca-certificates, patch) from " + mirror + " into " +
                   p.base_partial.string() + "; this takes a few minutes");
  POLY_TRY(run_debootstrap(p, mirror));
  std::ofstream(p.base_partial / kCompleteMarker) << kBaseVersion << "\n";
  std::error_code ec;
  fs::rename(p.base_partial, p.base, ec);
  if (ec) return io_error("cannot rename the finished rootfs to", p.base, ec);
  return ok_status();
}

// ---- customising the rootfs ----

Status write_text(const fs::path& path, const std::string& text, bool append = false) {
  std::ofstream out(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc));
  out << text;
  out.close();
  if (!out) return make_error("io", "cannot write " + path.string(), path.string());
  return ok_status();
}

Status append_line_once(const fs::path& path, const std::string& prefix, const std::string& line) {
  std::istringstream in(read_text(path));
  for (std::string existing; std::getline(in, existing);) {
    if (existing.rfind(prefix, 0) == 0) return ok_status();
  }
  return write_text(path, line + "\n", /*append=*/true);
}

Status make_owned_dir(const fs::path& path, int uid, int gid, fs::perms mode) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return io_error("cannot create", path, ec);
  if (::chown(path.c_str(), uid, gid) != 0) {
    return io_error("cannot chown", path, {errno, std::generic_category()});
  }
  fs::permissions(path, mode, ec);
  if (ec) return io_error("cannot chmod", path, ec);
  return ok_status();
}

Status add_agent_user(const fs::path& root) {
  std::string id = std::to_string(kAgentUid);
  POLY_TRY(append_line_once(root / "etc/passwd",
                            "agent:", "agent:x:" + id + ":" + id + ":Polyphony agent:/home/agent:/bin/sh"));
  POLY_TRY(append_line_once(root / "etc/group", "agent:", "agent:x:" + id + ":"));
  POLY_TRY(append_line_once(root / "etc/shadow", "agent:", "agent:*:19000:0:99999:7:::"));
  return make_owned_dir(root / "home/agent", kAgentUid, kAgentUid, fs::perms(0755));
}

Status install_scripted_agent(const fs::path& root) {
  fs::path agent = root / "usr/local/bin/polyphony-scripted-agent";
  std::error_code ec;
  fs::create_directories(agent.parent_path(), ec);
  POLY_TRY(write_text(agent, detail::kScriptedAgentText));
  fs::permissions(agent, fs::perms(0755), ec);
  if (ec) return io_error("cannot chmod", agent, ec);
  return ok_status();
}

constexpr const char* kGitConfig =
    "[safe]\n\tdirectory = *\n"
    "[user]\n\tname = Polyphony Agent\n\temail = agent@polyphony.local\n"
    "[init]\n\tdefaultBranch = main\n"
    // A task's clone lives for one task: no `git maintenance run --auto` process after every
    // commit (about 12 ms each in a container), and no gc of a repository about to be removed.
    "[maintenance]\n\tauto = false\n"
    "[gc]\n\tauto = 0\n";

// Package lists, caches and documentation are not needed at run time.
Status shrink_rootfs(const fs::path& root) {
  for (const char* dir : {"var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "usr/share/info",
                          "var/cache/debconf"}) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(root / dir, ec)) {
      if (e.path().filename() == "partial" || e.path().filename() == "archives") continue;
      POLY_TRY(remove_tree(e.path()));
    }
  }
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root / "var/cache/apt/archives", ec)) {
    if (e.path().extension() == ".deb") POLY_TRY(remove_tree(e.path()));
  }
  return ok_status();
}

// ---- the agent CLIs ----

// One pin's npm install in the cache.
struct InstalledAgent {
  AgentPin pin;
  fs::path dir;  // holds node_modules/
};

std::string npm_spec(const AgentPin& pin) {
  return pin.package + "@" + pin.version;
}

// Keyed by the pin's whole line, so changing any of its fields installs afresh.
fs::path agent_install_dir(const BuildPaths& p, const AgentPin& pin) {
  return p.agents / (pin.name + "-" + pin.version + "-" + sha256_hex(pin.canonical()).substr(0, 12));
}

// Without install scripts: claude-code's postinstall only copies its native binary over a
// placeholder (we link the binary in the platform package directly), and no package's script
// runs as root on the build host.
Status run_npm_install(const AgentPin& pin, const fs::path& into, const BuildPaths& p,
                       const ImageBuildOptions& options) {
  ProcessOptions po;
  po.timeout = kNpmTimeout;
  po.cwd = into;  // not a node project the caller happens to be in
  auto r =
      run_process({options.npm, "install", "--prefix", into.string(), "--cache", p.npm_cache.string(),
                   "--ignore-scripts", "--omit=dev", "--no-audit", "--no-fund", "--no-update-notifier", npm_spec(pin)},
                  po);
  if (!r.ok() && r.error().code == "not_found") {
    return make_error("not_found",
                      "npm is not installed, and it installs the agent CLIs: run `apt-get install npm` "
                      "(scripts/setup.sh does), or build without them: --agents none",
                      options.npm);
  }
  if (!r.ok()) return r.error();
  if (r->exit_code == 0) return ok_status();
  return make_error("process",
                    "npm could not install " + npm_spec(pin) + " (agent " + pin.name + ", pinned in " +
                        kAgentsLockName + "), exit status " + std::to_string(r->exit_code) + ": " +
                        last_lines(r->out + "\n" + r->err, 6) + " (check that the version exists: `npm view " +
                        npm_spec(pin) + " version`, and that the npm registry is reachable)",
                    npm_spec(pin));
}

Status check_native_executable(const AgentPin& pin, const fs::path& dir) {
  fs::path exe = dir / "node_modules" / pin.native_executable;
  if (fs::is_regular_file(exe) && ::access(exe.c_str(), X_OK) == 0) return ok_status();
  return make_error("process",
                    "npm installed " + npm_spec(pin) + " but not the executable " + kAgentsLockName + " names for " +
                        pin.name + " (" + pin.native_executable +
                        "): npm installs the platform package of this machine (OS, CPU, libc) only; "
                        "correct the native-executable column for it",
                    exe.string());
}

// The pin's npm install: reused when complete, else made in a .partial directory that is
// renamed once it holds the native executable, so a failed install leaves nothing behind.
Result<InstalledAgent> ensure_agent_installed(const BuildPaths& p, const AgentPin& pin,
                                              const ImageBuildOptions& options) {
  fs::path dir = agent_install_dir(p, pin);
  if (fs::exists(dir / kCompleteMarker)) {
    say(options, "reusing " + pin.name + " " + pin.version + " (" + pin.package + ") from " + dir.string());
    return InstalledAgent{pin, dir};
  }
  fs::path partial = dir.string() + ".partial";
  POLY_TRY(remove_tree(partial));
  POLY_TRY(remove_tree(dir));
  std::error_code ec;
  fs::create_directories(partial, ec);
  if (ec) return io_error("cannot create", partial, ec);
  say(options,
      "installing " + pin.name + " " + pin.version + " (" + pin.package + ") with npm into " + partial.string());
  Status installed = run_npm_install(pin, partial, p, options);
  if (installed.ok()) installed = check_native_executable(pin, partial);
  if (installed.ok()) installed = write_text(partial / kCompleteMarker, pin.canonical() + "\n");
  if (!installed.ok()) {
    fs::remove_all(partial, ec);
    return installed.error();
  }
  fs::rename(partial, dir, ec);
  if (ec) return io_error("cannot rename the finished install to", dir, ec);
  return InstalledAgent{pin, dir};
}

Result<std::vector<InstalledAgent>> ensure_agents_installed(const BuildPaths& p, const std::vector<AgentPin>& agents,
                                                            const ImageBuildOptions& options) {
  std::vector<InstalledAgent> out;
  for (const auto& pin : agents) {
    auto installed = ensure_agent_installed(p, pin, options);
    if (!installed.ok()) return installed.error();
    out.push_back(*installed);
  }
  return out;
}

// The package holding the native executable goes to <kAgentsHome>/<name>/, and
// /usr/local/bin/<name> links to the executable in it (which finds its sibling files, such as
// codex's bundled rg, from its own path).
Status add_agent(const fs::path& root, const InstalledAgent& agent) {
  const AgentPin& pin = agent.pin;
  fs::path target = root / fs::path(kAgentsHome).relative_path() / pin.name / pin.native_package_dir();
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) return io_error("cannot create", target.parent_path(), ec);
  ProcessOptions po;
  po.timeout = kTarTimeout;
  fs::path package = agent.dir / "node_modules" / pin.native_package_dir();
  POLY_TRY(run_checked({"cp", "-a", package.string(), target.string()}, po));
  fs::path link = root / "usr/local/bin" / pin.name;
  fs::remove(link, ec);
  fs::create_symlink(fs::path(kAgentsHome) / pin.name / pin.native_executable, link, ec);
  if (ec) return io_error("cannot link", link, ec);
  return ok_status();
}

// <kAgentsHome>/agents.lock: what the image carries, in the lock file's format.
Status add_agents(const fs::path& root, const std::vector<InstalledAgent>& agents) {
  std::string lock = "# The agent CLIs in this image (from polyphony's docker/agents.lock)\n";
  for (const auto& agent : agents) {
    POLY_TRY(add_agent(root, agent));
    lock += agent.pin.canonical() + "\n";
  }
  fs::path home = root / fs::path(kAgentsHome).relative_path();
  std::error_code ec;
  fs::create_directories(home, ec);
  if (ec) return io_error("cannot create", home, ec);
  return write_text(home / "agents.lock", lock);
}

// ---- the image ----

Status customise_rootfs(const fs::path& root, const std::vector<InstalledAgent>& agents) {
  POLY_TRY(add_agent_user(root));
  POLY_TRY(make_owned_dir(root / "workspace", kAgentUid, kAgentUid, fs::perms(0755)));
  POLY_TRY(make_owned_dir(root / "polyphony", 0, 0, fs::perms(0755)));
  POLY_TRY(install_scripted_agent(root));
  POLY_TRY(add_agents(root, agents));
  POLY_TRY(write_text(root / "etc/gitconfig", kGitConfig));
  return shrink_rootfs(root);
}

Status copy_rootfs(const fs::path& from, const fs::path& to) {
  POLY_TRY(remove_rootfs(to));
  ProcessOptions po;
  po.timeout = kTarTimeout;
  POLY_TRY(run_checked({"cp", "-a", from.string(), to.string()}, po));
  std::error_code ec;
  fs::remove(to / kCompleteMarker, ec);
  return ok_status();
}

Status tar_rootfs(const BuildPaths& p) {
  ProcessOptions po;
  po.timeout = kTarTimeout;
  POLY_TRY(
      run_checked({"tar", "--numeric-owner", "-C", p.staging.string(), "-cf", p.tarball_partial.string(), "."}, po));
  std::error_code ec;
  fs::rename(p.tarball_partial, p.tarball, ec);
  if (ec) return io_error("cannot rename the finished tarball to", p.tarball, ec);
  return ok_status();
}

// Tarballs, staging copies and debootstrap trees of other versions are dead weight, and so
// are npm installs of pins the lock file no longer has, and npm's download cache (each
// install is kept whole in p.agents).
Status prune_cache(const BuildPaths& p) {
  std::error_code ec;
  std::vector<fs::path> stale{p.npm_cache};
  for (const auto& e : fs::directory_iterator(p.cache, ec)) {
    std::string name = e.path().filename().string();
    bool ours = name.rfind("rootfs-", 0) == 0 || name.rfind("debootstrap-", 0) == 0;
    if (ours && e.path() != p.tarball && e.path() != p.base) stale.push_back(e.path());
  }
  auto lock = builtin_agents_lock();
  for (const auto& e : fs::directory_iterator(p.agents, ec)) {
    bool pinned = false;
    for (const auto& pin : lock.ok() ? *lock : std::vector<AgentPin>{}) {
      pinned |= e.path() == agent_install_dir(p, pin);
    }
    if (!pinned) stale.push_back(e.path());
  }
  for (const auto& path : stale) POLY_TRY(remove_rootfs(path));
  return ok_status();
}

// The image's rootfs tarball, made from the debootstrapped rootfs and the agents' npm
// installs unless already cached.
Status ensure_tarball(const BuildPaths& p, const std::vector<AgentPin>& agents, const ImageBuildOptions& options) {
  if (!options.force && fs::exists(p.tarball)) {
    say(options, "reusing the image tarball " + p.tarball.string());
    return ok_status();
  }
  auto installed = ensure_agents_installed(p, agents, options);  // before minutes of debootstrap
  if (!installed.ok()) return installed.error();
  POLY_TRY(ensure_base_rootfs(p, options));
  POLY_TRY(require_root("preparing the rootfs"));
  say(options, "adding the agent user, /workspace, the scripted agent and " + describe_agents(agents) + " in " +
                   p.staging.string());
  POLY_TRY(copy_rootfs(p.base, p.staging));
  POLY_TRY(customise_rootfs(p.staging, *installed));
  say(options, "writing " + p.tarball.string());
  POLY_TRY(tar_rootfs(p));
  return prune_cache(p);
}

std::vector<std::string> image_changes(const std::string& version) {
  return {"USER agent", "WORKDIR /workspace", "ENV HOME=/home/agent",
          "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          std::string("LABEL ") + kVersionLabel + "=" + version};
}

// Untags (and deletes, when nothing else uses it) the image `tag` names now, so a rebuild
// does not leave the old one behind as an anonymous image.
Status remove_old_image(DockerClient& docker, const ImageBuildOptions& options) {
  auto exists = docker.image_exists(options.tag);
  if (!exists.ok()) return exists.error();
  if (!*exists) return ok_status();
  say(options, "removing the old " + options.tag);
  auto removed = docker.remove_image(options.tag);
  if (!removed.ok()) say(options, "the old image stays, untagged: " + removed.error().message);
  return ok_status();
}

Status import_tarball(DockerClient& docker, const BuildPaths& p, const std::string& version,
                      const ImageBuildOptions& options) {
  POLY_TRY(remove_old_image(docker, options));
  say(options, "importing " + p.tarball.string() + " as " + options.tag);
  POLY_TRY(docker.import_image(p.tarball, options.tag, image_changes(version)));
  auto current = image_is_current(docker, options.tag, version);
  if (!current.ok()) return current.error();
  if (!*current) {
    return make_error("docker",
                      "imported " + options.tag + " but it does not carry the label " + kVersionLabel + "=" + version,
                      docker.endpoint());
  }
  return ok_status();
}

// Starts the created container `id`, waits for it, and returns its exit code and output.
Result<std::pair<int, std::string>> run_to_end(DockerClient& docker, const std::string& id) {
  POLY_TRY(docker.start_container(id));
  auto code = docker.wait_container(id, kAgentCheckTimeout);
  if (!code.ok()) return code.error();
  std::string output;
  POLY_TRY(docker.stream_logs(id, false, [&](int, std::string_view data) {
    output.append(data);
    return true;
  }));
  return std::make_pair(*code, output);
}

// `<name> --version` in a container of `tag`, as the agent user and without network, must
// exit 0 and print the pinned version.
Status check_agent_runs(DockerClient& docker, const std::string& tag, const AgentPin& pin) {
  ContainerSpec spec;
  spec.image = tag;
  spec.cmd = {pin.name, "--version"};
  spec.user = std::to_string(kAgentUid) + ":" + std::to_string(kAgentUid);
  spec.network_mode = "none";
  spec.labels = {{"polyphony.image-check", pin.name}};
  auto id = docker.create_container(spec);
  if (!id.ok()) return id.error();
  auto ran = run_to_end(docker, *id);
  POLY_TRY(docker.remove_container(*id));
  if (!ran.ok()) return ran.error();
  auto [code, output] = *ran;
  if (code == 0 && output.find(pin.version) != std::string::npos) return ok_status();
  return make_error("process",
                    "`" + pin.name + " --version` in the new image (as uid " + std::to_string(kAgentUid) +
                        ", no network) exited with status " + std::to_string(code) +
                        " and did not print the pinned version " + pin.version + ": " + last_lines(output, 4),
                    npm_spec(pin));
}

// Every agent runs in the imported image; otherwise the image and its tarball are removed, so
// no broken image stays tagged and the next build starts from the npm installs again.
Status check_agents_run(DockerClient& docker, const BuildPaths& p, const std::vector<AgentPin>& agents,
                        const ImageBuildOptions& options) {
  for (const auto& pin : agents) {
    say(options, "checking `" + pin.name + " --version` in " + options.tag + " (as agent, no network)");
    auto ran = check_agent_runs(docker, options.tag, pin);
    if (ran.ok()) continue;
    auto removed = docker.remove_image(options.tag);
    if (!removed.ok()) say(options, "cannot remove the broken " + options.tag + ": " + removed.error().message);
    std::error_code ec;
    fs::remove(p.tarball, ec);
    return ran.error();
  }
  return ok_status();
}

// True when there is nothing to do: not forced, and the image carries the current version.
Result<bool> up_to_date(DockerClient& docker, const std::string& version, const ImageBuildOptions& options) {
  if (options.force) return false;
  return image_is_current(docker, options.tag, version);
}

Result<std::vector<AgentPin>> agents_to_install(const ImageBuildOptions& options) {
  if (options.agents) return *options.agents;
  return builtin_agents_lock();
}

}  // namespace

Result<bool> build_worker_image(DockerClient& docker, const ImageBuildOptions& options) {
  auto agents = agents_to_install(options);
  if (!agents.ok()) return agents.error();
  const std::string version = image_version(*agents);
  POLY_TRY(docker.ping());  // before minutes of debootstrap, not after
  auto done = up_to_date(docker, version, options);
  if (!done.ok()) return done.error();
  if (*done) return false;
  BuildPaths p = paths_for(options.cache_dir.empty() ? default_cache_dir() : options.cache_dir, version);
  std::error_code ec;
  fs::create_directories(p.cache, ec);
  if (ec) return io_error("cannot create the cache directory", p.cache, ec);
  auto lock = BuildLock::take(p.cache, options);
  if (!lock.ok()) return lock.error();
  done = up_to_date(docker, version, options);  // another build may have finished while we waited
  if (!done.ok()) return done.error();
  if (*done) return false;
  POLY_TRY(ensure_tarball(p, *agents, options));
  POLY_TRY(import_tarball(docker, p, version, options));
  POLY_TRY(check_agents_run(docker, p, *agents, options));
  say(options, options.tag + " is ready with " + describe_agents(*agents) + " (" + kVersionLabel + "=" + version + ")");
  return true;
}

}  // namespace polyphony
