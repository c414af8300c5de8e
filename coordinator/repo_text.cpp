// Reading a repository's text files for scoring, bounded: from a commit through `git`, or
// from a work tree on disk.
#include <algorithm>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>

#include "common/process.h"
#include "coordinator/scoring.h"

namespace polyphony {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBinarySniffBytes = 8000;
constexpr auto kGitTimeout = std::chrono::seconds(60);

struct Candidate {
  std::string path;
  uint64_t size = 0;
  std::string object;  // blob id (git) or empty (work tree)
};

bool looks_binary(std::string_view content) {
  return content.substr(0, kBinarySniffBytes).find('\0') != std::string_view::npos;
}

// Sorts by path and keeps what the limits allow; counts what they drop.
std::vector<Candidate> select(std::vector<Candidate> all, const ScanLimits& limits, RepoText& out) {
  std::sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) { return a.path < b.path; });
  std::vector<Candidate> keep;
  uint64_t total = 0;
  for (auto& c : all) {
    if (c.size > limits.max_file_bytes) {
      ++out.skipped_large;
    } else if (keep.size() >= limits.max_files || total + c.size > limits.max_total_bytes) {
      ++out.skipped_over_cap;
    } else {
      total += c.size;
      keep.push_back(std::move(c));
    }
  }
  return keep;
}

void add_text(RepoText& out, std::string path, std::string content) {
  if (looks_binary(content)) {
    ++out.skipped_binary;
    return;
  }
  out.files.push_back({std::move(path), std::move(content)});
}

Result<ProcessResult> git(const fs::path& repo, std::vector<std::string> args, const std::string& input = "") {
  std::vector<std::string> argv{"git", "-c", "safe.directory=*", "-C", repo.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions o;
  o.timeout = kGitTimeout;
  o.stdin_data = input;
  return run_checked(argv, o, "git");
}

// "<mode> <type> <object> <size>\t<path>" entries of `git ls-tree -r -l -z`.
std::vector<Candidate> parse_ls_tree(const std::string& out) {
  std::vector<Candidate> all;
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find('\0', start);
    if (end == std::string::npos) end = out.size();
    std::string entry = out.substr(start, end - start);
    start = end + 1;
    size_t tab = entry.find('\t');
    if (tab == std::string::npos) continue;
    std::istringstream meta(entry.substr(0, tab));
    std::string mode, type, object, size;
    meta >> mode >> type >> object >> size;
    if (type != "blob" || mode == "120000") continue;  // symlinks and submodules are not text
    all.push_back({entry.substr(tab + 1), std::stoull(size), object});
  }
  return all;
}

// Splits `git cat-file --batch` output ("<oid> blob <size>\n<content>\n" each) in order.
Status parse_batch(const std::string& out, const std::vector<Candidate>& files, RepoText& text) {
  size_t pos = 0;
  for (const auto& f : files) {
    size_t nl = out.find('\n', pos);
    if (nl == std::string::npos) return make_error("git", "git cat-file ended early, before " + f.path);
    std::istringstream header(out.substr(pos, nl - pos));
    std::string oid, type;
    uint64_t size = 0;
    header >> oid >> type >> size;
    if (type != "blob") return make_error("git", "git cat-file gave '" + type + "' for " + f.path);
    add_text(text, f.path, out.substr(nl + 1, size));
    pos = nl + 1 + size + 1;
  }
  return {};
}

}  // namespace

namespace {

// The last reads, by repository, commit and limits: tasks spawned one after another on a base
// that did not move share one read, and each costs one `git rev-parse` instead of three
// processes. Small reads only, so the cache never weighs much.
constexpr size_t kCachedReads = 2;
constexpr uint64_t kMaxCachedBytes = 8ull << 20;

struct CachedRead {
  std::string repo;
  std::string oid;
  ScanLimits limits;
  RepoText text;
};

bool same_limits(const ScanLimits& a, const ScanLimits& b) {
  return a.max_file_bytes == b.max_file_bytes && a.max_files == b.max_files && a.max_total_bytes == b.max_total_bytes;
}

std::mutex cache_mutex;
std::deque<CachedRead> cached_reads;

std::optional<RepoText> cached_read(const std::string& repo, const std::string& oid, const ScanLimits& limits) {
  std::lock_guard guard(cache_mutex);
  for (const auto& c : cached_reads) {
    if (c.repo == repo && c.oid == oid && same_limits(c.limits, limits)) return c.text;
  }
  return std::nullopt;
}

void remember_read(const std::string& repo, const std::string& oid, const ScanLimits& limits, const RepoText& text) {
  uint64_t bytes = 0;
  for (const auto& f : text.files) bytes += f.content.size() + f.path.size();
  if (bytes > kMaxCachedBytes) return;
  std::lock_guard guard(cache_mutex);
  cached_reads.push_front({repo, oid, limits, text});
  if (cached_reads.size() > kCachedReads) cached_reads.pop_back();
}

}  // namespace

Result<RepoText> read_repo_at(const fs::path& repo, const std::string& rev, const ScanLimits& limits) {
  const std::string r = rev.empty() ? "HEAD" : rev;
  auto commit = git(repo, {"rev-parse", "--verify", "--quiet", "--end-of-options", r + "^{commit}"});
  if (!commit.ok()) {
    return make_error("git", "no branch or commit '" + r + "' in " + repo.string() + " (is it a git repository?)",
                      repo.string());
  }
  std::string oid = commit->out.substr(0, commit->out.find('\n'));
  const std::string source = repo.string() + " at " + r + " (" + oid.substr(0, 12) + ")";
  if (auto hit = cached_read(repo.string(), oid, limits)) {
    hit->source = source;
    return *hit;
  }
  auto tree = git(repo, {"ls-tree", "-r", "-l", "-z", oid});
  if (!tree.ok()) return tree.error();
  RepoText text;
  text.source = source;
  auto files = select(parse_ls_tree(tree->out), limits, text);
  if (!files.empty()) {
    std::string input;
    for (const auto& f : files) input += f.object + "\n";
    auto blobs = git(repo, {"cat-file", "--batch"}, input);
    if (!blobs.ok()) return blobs.error();
    POLY_TRY(parse_batch(blobs->out, files, text));
  }
  remember_read(repo.string(), oid, limits, text);
  return text;
}

Result<RepoText> read_work_tree(const fs::path& dir, const ScanLimits& limits) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return make_error("io", dir.string() + " is not a directory", dir.string());
  std::vector<Candidate> all;
  auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) return make_error("io", "cannot list " + dir.string() + ": " + ec.message(), dir.string());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return make_error("io", "cannot list " + dir.string() + ": " + ec.message(), dir.string());
    if (it->path().filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
    all.push_back({fs::relative(it->path(), dir, ec).generic_string(), it->file_size(ec), ""});
  }
  RepoText text;
  text.source = dir.string() + " (work tree)";
  for (auto& f : select(std::move(all), limits, text)) {
    std::ifstream in(dir / f.path, std::ios::binary);
    if (!in) return make_error("io", "cannot read " + (dir / f.path).string(), (dir / f.path).string());
    std::stringstream ss;
    ss << in.rdbuf();
    add_text(text, f.path, ss.str());
  }
  return text;
}

}  // namespace polyphony
