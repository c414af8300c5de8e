// The cache of scoring indexes: on disk by repository and commit, the last few in memory.
#include "coordinator/score_index.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/score_index_internal.h"

namespace polyphony {

namespace fs = std::filesystem;
using namespace score_index_internal;

namespace {

constexpr size_t kIndexesInMemory = 4;

struct Remembered {
  std::string key;
  std::shared_ptr<const ScoreIndex> index;
};

std::mutex memory_mutex;
std::deque<Remembered> in_memory;

std::shared_ptr<const ScoreIndex> recall(const std::string& key) {
  std::lock_guard guard(memory_mutex);
  for (const auto& r : in_memory) {
    if (r.key == key) return r.index;
  }
  return nullptr;
}

void remember(const std::string& key, std::shared_ptr<const ScoreIndex> index) {
  std::lock_guard guard(memory_mutex);
  in_memory.push_front({key, std::move(index)});
  if (in_memory.size() > kIndexesInMemory) in_memory.pop_back();
}

// Index files of one repository are "<hash of its path>-<commit>.idx".
std::string repo_prefix(const fs::path& repo) {
  std::error_code ec;
  const std::string abs = fs::weakly_canonical(repo, ec).string();
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(abs));
  return hash;
}

// Per repository (cache directory, path and limits), the commits indexed last, newest first:
// where an update looks first.
constexpr size_t kRecentPerRepo = 4;
std::mutex recent_mutex;
std::map<std::string, std::deque<std::string>> recent_commits;

void note_indexed(const std::string& repo_key, const std::string& commit) {
  std::lock_guard guard(recent_mutex);
  auto& recent = recent_commits[repo_key];
  recent.erase(std::remove(recent.begin(), recent.end(), commit), recent.end());
  recent.push_front(commit);
  if (recent.size() > kRecentPerRepo) recent.pop_back();
}

std::vector<std::string> recently_indexed(const std::string& repo_key) {
  std::lock_guard guard(recent_mutex);
  auto it = recent_commits.find(repo_key);
  return it == recent_commits.end() ? std::vector<std::string>{}
                                    : std::vector<std::string>(it->second.begin(), it->second.end());
}

// The commits indexed on disk under `dir` for the repository `prefix` names, newest first.
std::vector<std::string> indexed_on_disk(const fs::path& dir, const std::string& prefix) {
  std::vector<std::pair<fs::file_time_type, std::string>> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() != prefix.size() + 1 + 40 + 4 || name.rfind(prefix + "-", 0) != 0 || !ends_with(name, ".idx")) {
      continue;
    }
    std::error_code time_ec;
    found.emplace_back(it->last_write_time(time_ec), name.substr(prefix.size() + 1, 40));
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& f : found) out.push_back(std::move(f.second));
  return out;
}

bool same_limits(const ScanLimits& a, const ScanLimits& b) {
  return a.max_file_bytes == b.max_file_bytes && a.max_files == b.max_files && a.max_total_bytes == b.max_total_bytes;
}

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

std::string whole_ms(double ms) {
  return std::to_string(static_cast<long long>(ms + 0.5)) + " ms";
}

}  // namespace

std::string ScoreIndexCache::repo_key(const fs::path& repo) const {
  return (dir_ / repo_prefix(repo)).string() + "|" + std::to_string(limits_.max_files);
}

ScoreIndexCache::Found ScoreIndexCache::lookup(const fs::path& repo, const std::string& commit) {
  Found f;
  f.commit = commit;
  f.name = repo_prefix(repo) + "-" + commit + ".idx";
  f.key = (dir_ / f.name).string() + "|" + std::to_string(limits_.max_files);
  if (options_.remember_in_memory) {
    if (auto hit = recall(f.key)) {
      f.index = hit;
      return f;
    }
  }
  std::error_code ec;
  const fs::path file = dir_ / f.name;
  if (fs::exists(file, ec)) {
    std::ifstream in(file, std::ios::binary | std::ios::ate);
    std::string bytes(static_cast<size_t>(std::max<std::streamoff>(0, in.tellg())), '\0');
    in.seekg(0);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    auto parsed = parse_index(bytes);  // an index of another format version is built again
    if (parsed.ok() && parsed->commit == commit) {
      f.index = std::make_shared<const ScoreIndex>(std::move(*parsed));
      if (options_.remember_in_memory) remember(f.key, f.index);
      note_indexed(repo_key(repo), commit);
    }
  }
  return f;
}

Result<ScoreIndexCache::Found> ScoreIndexCache::cached(const fs::path& repo, const std::string& rev) {
  auto commit = resolve_commit(repo, rev);
  if (!commit.ok()) return commit.error();
  return lookup(repo, *commit);
}

std::shared_ptr<const ScoreIndex> ScoreIndexCache::store(const fs::path& repo, const Found& where, ScoreIndex built) {
  const auto started = std::chrono::steady_clock::now();
  std::error_code ec;
  fs::create_directories(dir_, ec);
  const fs::path partial = dir_ / (where.name + ".partial" + std::to_string(::getpid()));
  {
    std::ofstream out(partial, std::ios::binary);
    out << serialize_index(built);
  }
  fs::rename(partial, dir_ / where.name, ec);  // a cache that cannot be written only costs the next build
  if (ec) fs::remove(partial, ec);
  built.build_phases += ", stored " + whole_ms(ms_since(started));
  auto shared = std::make_shared<const ScoreIndex>(std::move(built));
  if (options_.remember_in_memory) remember(where.key, shared);
  note_indexed(repo_key(repo), where.commit);
  return shared;
}

Result<std::shared_ptr<const ScoreIndex>> ScoreIndexCache::build_and_store(const fs::path& repo, const std::string& rev,
                                                                           const Found& where,
                                                                           const IndexOptions& options,
                                                                           const std::string& not_updated) {
  const auto read_started = std::chrono::steady_clock::now();
  auto text = read_repo_at(repo, where.commit, limits_);
  if (!text.ok()) return text.error();
  const double read_ms = ms_since(read_started);
  auto built = build_score_index(*text, options);
  if (!built.ok()) return built.error();
  built->build_phases = "not updated (" + not_updated + "); read " + whole_ms(read_ms) + " (libgit2, " +
                        std::to_string(text->files.size()) + " files), " + built->build_phases;
  built->commit = where.commit;
  built->source = repo.string() + " at " + rev + " (" + where.commit.substr(0, 12) + ")";
  built->scan.limits = limits_;
  if (built->focused) return std::make_shared<const ScoreIndex>(std::move(*built));  // one task's: not kept
  return store(repo, where, std::move(*built));
}

std::shared_ptr<const ScoreIndex> ScoreIndexCache::update_from_nearest(const fs::path& repo, const std::string& rev,
                                                                       const Found& where, std::string& why) {
  const auto started = std::chrono::steady_clock::now();
  std::vector<std::string> candidates = recently_indexed(repo_key(repo));
  for (auto& c : indexed_on_disk(dir_, repo_prefix(repo))) {
    if (std::find(candidates.begin(), candidates.end(), c) == candidates.end()) candidates.push_back(std::move(c));
  }
  candidates.erase(std::remove(candidates.begin(), candidates.end(), where.commit), candidates.end());
  if (candidates.size() > kNearestTried) candidates.resize(kNearestTried);
  std::string nearest;
  size_t fewest = 0;
  for (const auto& c : candidates) {
    auto changed = count_changed_files(repo, c, where.commit);
    if (changed.ok() && (nearest.empty() || *changed < fewest)) {
      nearest = c;
      fewest = *changed;
    }
  }
  if (nearest.empty()) {
    why = "no index of this repository cached";
    return nullptr;
  }
  auto base = lookup(repo, nearest).index;
  if (!base) {
    why = "the index of " + nearest.substr(0, 12) + " could not be read";
    return nullptr;
  }
  if (fewest * 3 > static_cast<size_t>(base->files_in_repo) || !same_limits(base->scan.limits, limits_)) {
    why = std::to_string(fewest) + " of " + std::to_string(base->files_in_repo) + " files changed since " +
          nearest.substr(0, 12) + (same_limits(base->scan.limits, limits_) ? "" : ", under other scan limits");
    return nullptr;
  }
  auto change = read_repo_change(repo, nearest, where.commit, limits_);
  if (!change.ok()) {
    why = change.error().message;
    return nullptr;
  }
  const double read_ms = ms_since(started);
  auto read_unchanged = [&](const std::vector<std::string>& paths) {
    return read_repo_files(repo, where.commit, paths);
  };
  auto updated = update_score_index(*base, *change, read_unchanged, options_);
  if (!updated.ok()) {
    why = updated.error().message;
    return nullptr;
  }
  updated->commit = where.commit;
  updated->source = repo.string() + " at " + rev + " (" + where.commit.substr(0, 12) + ")";
  updated->build_phases = "diff and read " + whole_ms(read_ms) + ", " + updated->build_phases;
  updated->build_ms = ms_since(started);
  return store(repo, where, std::move(*updated));
}

Result<std::shared_ptr<const ScoreIndex>> ScoreIndexCache::at(const fs::path& repo, const std::string& rev) {
  auto found = cached(repo, rev);
  if (!found.ok()) return found.error();
  if (found->index) return found->index;
  std::string why;
  if (auto updated = update_from_nearest(repo, rev, *found, why)) return updated;
  IndexOptions full = options_;
  full.focused = false;
  return build_and_store(repo, rev, *found, full, why);
}

Result<std::shared_ptr<const ScoreIndex>> ScoreIndexCache::for_task(const fs::path& repo, const std::string& rev,
                                                                    const TaskRequest& task) {
  auto found = cached(repo, rev);
  if (!found.ok()) return found.error();
  if (found->index) return found->index;
  std::string why;
  if (auto updated = update_from_nearest(repo, rev, *found, why)) return updated;
  IndexOptions focused = options_;
  focused.focused = true;
  focused.focus = task_focus(task);
  return build_and_store(repo, rev, *found, focused, why);
}

}  // namespace polyphony
