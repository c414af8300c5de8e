// Reading a repository's text files for scoring, bounded: from a commit through libgit2, or
// from a work tree on disk.
#include <algorithm>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>

#include "common/git_handles.h"
#include "coordinator/score_index.h"
#include "coordinator/scoring.h"

namespace polyphony {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBinarySniffBytes = 8000;

struct Candidate {
  std::string path;
  uint64_t size = 0;
  git_oid object{};  // the blob (read from a commit); zero for a work tree file
};

bool looks_binary(std::string_view content) {
  return content.substr(0, kBinarySniffBytes).find('\0') != std::string_view::npos;
}

// Sorts by path and keeps what the limits allow, sampling evenly when there are more files than
// max_files; counts what they drop and keeps the dropped paths.
std::vector<Candidate> select(std::vector<Candidate> all, const ScanLimits& limits, RepoText& out) {
  std::sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) { return a.path < b.path; });
  size_t fitting = 0;
  for (const auto& c : all) fitting += c.size <= limits.max_file_bytes ? 1 : 0;
  const double stride = fitting > limits.max_files && limits.max_files > 0
                            ? static_cast<double>(fitting) / static_cast<double>(limits.max_files)
                            : 1.0;
  std::vector<Candidate> keep;
  uint64_t total = 0;
  double next = 0;
  size_t seen = 0;
  for (auto& c : all) {
    if (c.size > limits.max_file_bytes) {
      ++out.skipped_large;
      out.unread_paths.push_back(c.path);
      continue;
    }
    const bool sampled = static_cast<double>(seen++) >= next;
    if (!sampled || keep.size() >= limits.max_files || total + c.size > limits.max_total_bytes) {
      ++out.skipped_over_cap;
      out.unread_paths.push_back(c.path);
    } else {
      next += stride;
      total += c.size;
      keep.push_back(std::move(c));
    }
  }
  out.bytes_read = total;
  return keep;
}

void add_text(RepoText& out, std::string path, std::string content) {
  if (looks_binary(content)) {
    ++out.skipped_binary;
    return;
  }
  out.files.push_back({std::move(path), std::move(content)});
}

using detail::libgit2_error;

// The blobs of `tree` with their sizes, as `git ls-tree -r -l` lists them; symlinks and
// submodules are not text.
Result<std::vector<Candidate>> list_blobs(git_repository* repo, git_tree* tree, const fs::path& where) {
  git_odb* odb_raw = nullptr;
  if (git_repository_odb(&odb_raw, repo) != 0) return libgit2_error("opening the object database", where);
  detail::Odb odb(odb_raw);
  struct Walk {
    git_odb* odb;
    std::vector<Candidate> all;
    bool failed = false;
  } walk{odb.get(), {}};
  auto visit = [](const char* root, const git_tree_entry* entry, void* payload) -> int {
    auto& w = *static_cast<Walk*>(payload);
    if (git_tree_entry_type(entry) != GIT_OBJECT_BLOB || git_tree_entry_filemode(entry) == GIT_FILEMODE_LINK) return 0;
    size_t size = 0;
    git_object_t type;
    if (git_odb_read_header(&size, &type, w.odb, git_tree_entry_id(entry)) != 0) {
      w.failed = true;
      return -1;
    }
    w.all.push_back({std::string(root) + git_tree_entry_name(entry), size, *git_tree_entry_id(entry)});
    return 0;
  };
  if (git_tree_walk(tree, GIT_TREEWALK_PRE, visit, &walk) != 0 || walk.failed) {
    return libgit2_error("listing the files", where);
  }
  return std::move(walk.all);
}

}  // namespace

namespace {

// The last reads, by repository, commit and limits: tasks spawned one after another on a base
// that did not move share one read, and each costs one lookup of the base. Small reads only,
// so the cache never weighs much.
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
  detail::ensure_libgit2();
  const std::string r = rev.empty() ? "HEAD" : rev;
  auto not_found = [&] {
    return make_error("git", "no branch or commit '" + r + "' in " + repo.string() + " (is it a git repository?)",
                      repo.string());
  };
  // Found as `git -C repo` finds it: the directory or one above it.
  git_repository* repo_raw = nullptr;
  if (git_repository_open_ext(&repo_raw, repo.c_str(), 0, nullptr) != 0) return not_found();
  detail::Repository handle(repo_raw);
  git_object* peeled_raw = nullptr;
  if (git_revparse_single(&peeled_raw, handle.get(), (r + "^{commit}").c_str()) != 0) return not_found();
  detail::Commit commit(reinterpret_cast<git_commit*>(peeled_raw));
  const std::string oid = detail::oid_hex(*git_commit_id(commit.get()));
  const std::string source = repo.string() + " at " + r + " (" + oid.substr(0, 12) + ")";
  if (auto hit = cached_read(repo.string(), oid, limits)) {
    hit->source = source;
    return *hit;
  }
  git_tree* tree_raw = nullptr;
  if (git_commit_tree(&tree_raw, commit.get()) != 0) return libgit2_error("reading the tree of " + r, repo);
  detail::Tree tree(tree_raw);
  auto all = list_blobs(handle.get(), tree.get(), repo);
  if (!all.ok()) return all.error();
  RepoText text;
  text.source = source;
  for (const auto& f : select(std::move(*all), limits, text)) {
    git_blob* blob_raw = nullptr;
    if (git_blob_lookup(&blob_raw, handle.get(), &f.object) != 0) {
      return libgit2_error("reading " + f.path, repo);
    }
    detail::Blob blob(blob_raw);
    add_text(text, f.path,
             std::string(static_cast<const char*>(git_blob_rawcontent(blob.get())), git_blob_rawsize(blob.get())));
  }
  remember_read(repo.string(), oid, limits, text);
  return text;
}

Result<std::string> resolve_commit(const fs::path& repo, const std::string& rev) {
  detail::ensure_libgit2();
  const std::string r = rev.empty() ? "HEAD" : rev;
  git_repository* repo_raw = nullptr;
  git_object* peeled_raw = nullptr;
  if (git_repository_open_ext(&repo_raw, repo.c_str(), 0, nullptr) != 0) {
    return make_error("git", "no git repository at " + repo.string(), repo.string());
  }
  detail::Repository handle(repo_raw);
  if (git_revparse_single(&peeled_raw, handle.get(), (r + "^{commit}").c_str()) != 0) {
    return make_error("git", "no branch or commit '" + r + "' in " + repo.string(), repo.string());
  }
  detail::Commit commit(reinterpret_cast<git_commit*>(peeled_raw));
  return detail::oid_hex(*git_commit_id(commit.get()));
}

namespace {

using Diff = detail::GitHandle<git_diff, git_diff_free>;

bool is_regular_blob(uint32_t mode) {
  return (mode & 0170000) == 0100000;  // a file, not a symlink, tree or submodule
}

Result<detail::Repository> open_repo(const fs::path& repo) {
  detail::ensure_libgit2();
  git_repository* raw = nullptr;
  if (git_repository_open_ext(&raw, repo.c_str(), 0, nullptr) != 0) {
    return make_error("git", "no git repository at " + repo.string(), repo.string());
  }
  return detail::Repository(raw);
}

Result<detail::Tree> tree_of(git_repository* repo, const std::string& commit, const fs::path& where) {
  auto oid = detail::parse_oid(commit, where);
  if (!oid.ok()) return oid.error();
  git_commit* commit_raw = nullptr;
  if (git_commit_lookup(&commit_raw, repo, &*oid) != 0) return detail::libgit2_error("reading commit " + commit, where);
  detail::Commit c(commit_raw);
  git_tree* tree_raw = nullptr;
  if (git_commit_tree(&tree_raw, c.get()) != 0) return detail::libgit2_error("reading the tree of " + commit, where);
  return detail::Tree(tree_raw);
}

Result<Diff> diff_commits(git_repository* repo, const std::string& from, const std::string& to, const fs::path& where) {
  auto old_tree = tree_of(repo, from, where);
  if (!old_tree.ok()) return old_tree.error();
  auto new_tree = tree_of(repo, to, where);
  if (!new_tree.ok()) return new_tree.error();
  git_diff* raw = nullptr;
  if (git_diff_tree_to_tree(&raw, repo, old_tree->get(), new_tree->get(), nullptr) != 0) {
    return detail::libgit2_error("comparing " + from + " with " + to, where);
  }
  return Diff(raw);
}

}  // namespace

Result<size_t> count_changed_files(const fs::path& repo, const std::string& from, const std::string& to) {
  auto handle = open_repo(repo);
  if (!handle.ok()) return handle.error();
  auto diff = diff_commits(handle->get(), from, to, repo);
  if (!diff.ok()) return diff.error();
  return git_diff_num_deltas(diff->get());
}

Result<RepoChange> read_repo_change(const fs::path& repo, const std::string& from, const std::string& to,
                                    const ScanLimits& limits) {
  auto handle = open_repo(repo);
  if (!handle.ok()) return handle.error();
  auto diff = diff_commits(handle->get(), from, to, repo);
  if (!diff.ok()) return diff.error();
  RepoChange change;
  for (size_t i = 0; i < git_diff_num_deltas(diff->get()); ++i) {
    const git_diff_delta* d = git_diff_get_delta(diff->get(), i);
    if (d->status != GIT_DELTA_ADDED && is_regular_blob(d->old_file.mode)) {
      change.removed.push_back(d->old_file.path);
      git_blob* raw = nullptr;
      if (git_blob_lookup(&raw, handle->get(), &d->old_file.id) != 0) {
        return detail::libgit2_error(std::string("reading ") + d->old_file.path + " of " + from, repo);
      }
      detail::Blob old_blob(raw);
      const uint64_t size = git_blob_rawsize(old_blob.get());
      if (size <= limits.max_file_bytes) change.removed_bytes += size;
    }
    if (d->status == GIT_DELTA_DELETED || !is_regular_blob(d->new_file.mode)) continue;
    git_blob* raw = nullptr;
    if (git_blob_lookup(&raw, handle->get(), &d->new_file.id) != 0) {
      return detail::libgit2_error(std::string("reading ") + d->new_file.path + " of " + to, repo);
    }
    detail::Blob blob(raw);
    const uint64_t size = git_blob_rawsize(blob.get());
    if (size > limits.max_file_bytes) {
      ++change.added.skipped_large;
      change.added.unread_paths.push_back(d->new_file.path);
      continue;
    }
    change.added.bytes_read += size;
    add_text(change.added, d->new_file.path,
             std::string(static_cast<const char*>(git_blob_rawcontent(blob.get())), size));
  }
  std::sort(change.added.files.begin(), change.added.files.end(),
            [](const RepoText::File& a, const RepoText::File& b) { return a.path < b.path; });
  return change;
}

Result<std::vector<std::string>> read_repo_files(const fs::path& repo, const std::string& commit,
                                                 const std::vector<std::string>& paths) {
  auto handle = open_repo(repo);
  if (!handle.ok()) return handle.error();
  auto tree = tree_of(handle->get(), commit, repo);
  if (!tree.ok()) return tree.error();
  std::vector<std::string> out;
  out.reserve(paths.size());
  for (const auto& p : paths) {
    git_tree_entry* entry_raw = nullptr;
    if (git_tree_entry_bypath(&entry_raw, tree->get(), p.c_str()) != 0) {
      return detail::libgit2_error("finding " + p + " in " + commit, repo);
    }
    detail::TreeEntry entry(entry_raw);
    git_blob* raw = nullptr;
    if (git_blob_lookup(&raw, handle->get(), git_tree_entry_id(entry.get())) != 0) {
      return detail::libgit2_error("reading " + p + " of " + commit, repo);
    }
    detail::Blob blob(raw);
    out.emplace_back(static_cast<const char*>(git_blob_rawcontent(blob.get())), git_blob_rawsize(blob.get()));
  }
  return out;
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
    all.push_back({fs::relative(it->path(), dir, ec).generic_string(), it->file_size(ec), {}});
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
