// Updating a scoring index to a nearby commit: only the files that differ are read and parsed again.
#include "coordinator/score_index.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "coordinator/score_index_internal.h"

namespace polyphony {

using namespace score_index_internal;

namespace {

Error stale(const std::string& why) {
  return make_error("stale", "the index cannot be updated: " + why + "; build it in full", "index");
}

// The read counts of the new commit: the base's, less the removed versions (read, oversized or
// binary by how the base holds them), plus the added ones. Error "stale" when they cross the
// scan limits (the full read would sample) or do not add up.
Result<IndexScan> scan_after(const ScoreIndex& base, const RepoChange& change) {
  IndexScan scan = base.scan;
  for (const auto& p : change.removed) {
    const IndexedFile* f = base.file(p);
    int& count = f == nullptr ? scan.skipped_binary : f->lines_of_code < 0 ? scan.skipped_large : scan.files_read;
    --count;
  }
  scan.files_read += static_cast<int>(change.added.files.size());
  scan.skipped_binary += change.added.skipped_binary;
  scan.skipped_large += change.added.skipped_large;
  if (scan.files_read < 0 || scan.skipped_binary < 0 || scan.skipped_large < 0 ||
      change.removed_bytes > scan.bytes_read) {
    return stale("its counts do not match the change (an index of another commit?)");
  }
  scan.bytes_read = scan.bytes_read - change.removed_bytes + change.added.bytes_read;
  const auto fitting = static_cast<size_t>(scan.files_read + scan.skipped_binary);
  if (fitting > scan.limits.max_files || scan.bytes_read > scan.limits.max_total_bytes) {
    return stale("the new commit is over the scan limit");
  }
  return scan;
}

Status check_updatable(const ScoreIndex& base, const RepoChange& change, const std::string& version) {
  if (base.focused) return stale("it is focused on one task");
  if (base.scan.skipped_over_cap > 0) return stale("it indexes a sample of the repository");
  if (version.empty() || base.parser.rfind(version, 0) != 0 || base.parser.find(" failed") != std::string::npos) {
    return stale("it was not parsed by " + (version.empty() ? std::string("universal-ctags") : version));
  }
  auto odd = [](const std::string& p) { return p.find('\n') != std::string::npos; };
  bool any_odd = std::any_of(change.removed.begin(), change.removed.end(), odd) ||
                 std::any_of(change.added.unread_paths.begin(), change.added.unread_paths.end(), odd);
  for (const auto& f : change.added.files) any_odd = any_odd || odd(f.path);
  if (any_odd) return stale("a changed path has a line break");
  return ok_status();
}

// The base's entries of the files the change keeps, and the added files' entries (measured
// code in `code`, `code_files` the texts to parse), sorted by path; `moved[i]` is where the
// base's file i went (-1: removed).
struct Merged {
  std::vector<CodeFile> code;
  std::vector<const RepoText::File*> code_files;
  std::vector<int> moved;
  size_t fresh_names = 0;  // names callable now and not before
  size_t read_again = 0;   // unchanged code files read to count them
};

Merged merge_files(const ScoreIndex& base, const RepoChange& change, ScoreIndex& idx) {
  Merged m;
  const std::unordered_set<std::string_view> removed(change.removed.begin(), change.removed.end());
  std::vector<long> origin;  // >= 0: the base's file; < 0: -1 - the added file's code index, or kNone
  constexpr long kNone = std::numeric_limits<long>::min();
  for (size_t i = 0; i < base.files.size(); ++i) {
    if (removed.count(base.files[i].path)) continue;
    idx.files.push_back(base.files[i]);
    origin.push_back(static_cast<long>(i));
  }
  for (const auto& f : change.added.files) {
    const FileKind kind = classify_file(f.path, std::string_view(f.content).substr(0, 400));
    std::optional<CodeFile> cf;
    idx.files.push_back(index_file(f, kind, kind == FileKind::kCode, cf));
    origin.push_back(cf ? -1 - static_cast<long>(m.code.size()) : kNone);
    if (cf) {
      m.code.push_back(std::move(*cf));
      m.code_files.push_back(&f);
    }
  }
  for (const auto& p : change.added.unread_paths) {
    idx.files.push_back({p, classify_file(p, {}), -1, 0, {}, {}, {}, {}});
    origin.push_back(kNone);
  }
  std::vector<size_t> order(idx.files.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return idx.files[a].path < idx.files[b].path; });
  std::vector<IndexedFile> sorted;
  sorted.reserve(order.size());
  m.moved.assign(base.files.size(), -1);
  for (size_t i = 0; i < order.size(); ++i) {
    const long o = origin[order[i]];
    if (o >= 0) m.moved[static_cast<size_t>(o)] = static_cast<int>(i);
    if (o < 0 && o != kNone) m.code[static_cast<size_t>(-1 - o)].index = i;
    sorted.push_back(std::move(idx.files[order[i]]));
  }
  idx.files = std::move(sorted);
  return m;
}

// The base's definitions of the kept files, moved to their new places, and the added code
// files' from ctags, in file order. Errors from ctags.
Status update_definitions(const ScoreIndex& base, Merged& m, const IndexOptions& options, ScoreIndex& idx) {
  for (const auto& d : base.definitions) {
    if (m.moved[d.file] < 0) continue;
    idx.definitions.push_back(d);
    idx.definitions.back().file = m.moved[d.file];
  }
  if (!m.code_files.empty()) {
    auto dir = make_scratch();
    if (!dir.ok()) return dir.error();
    Scratch scratch;
    scratch.dir = *dir;
    auto tags = parse_share(scratch.dir, m.code_files, 0, 1, options);
    if (!tags.ok()) return tags.error();
    std::unordered_map<std::string, CodeFile*> by_path;
    for (size_t i = 0; i < m.code.size(); ++i) by_path[m.code_files[i]->path] = &m.code[i];
    ScoreIndex added;
    add_definitions(added, *tags, by_path);
    sort_definitions(added);
    const size_t kept = idx.definitions.size();  // in file order already: the base's were
    idx.definitions.insert(idx.definitions.end(), std::make_move_iterator(added.definitions.begin()),
                           std::make_move_iterator(added.definitions.end()));
    std::inplace_merge(idx.definitions.begin(), idx.definitions.begin() + static_cast<long>(kept),
                       idx.definitions.end(), [](const Definition& a, const Definition& b) { return a.file < b.file; });
  }
  return ok_status();
}

// Those of `names` that a callable definition of `idx` names.
NameSet defined_among(const ScoreIndex& idx, const NameSet& names) {
  NameSet out;
  for (const auto& d : idx.definitions) {
    if (callable_kind(d.kind) && names.count(d.name)) out.insert(d.name);
  }
  return out;
}

void add_to(std::unordered_map<std::string, CallSites>& calls, const std::map<std::string, int>& file, int sign) {
  for (const auto& [name, n] : file) {
    CallSites& c = calls[name];
    c.sites += sign * n;
    c.files += sign;
  }
}

// The names that matter to an update's call sites: those that stop or start being callable.
struct NameChange {
  NameSet lost;   // callable in the base, no longer: every file's count of them goes
  NameSet fresh;  // callable now, not in the base: files kept may call them
  NameSet now;    // of the added files' call words and the names above, those callable now
};

// `words`: every name the added code files call.
NameChange name_change(const ScoreIndex& base, const Merged& m, const ScoreIndex& idx, const NameSet& words) {
  NameSet removed_names, added_names;
  for (const auto& d : base.definitions) {
    if (m.moved[d.file] < 0 && callable_kind(d.kind)) removed_names.insert(d.name);
  }
  std::vector<bool> added(idx.files.size(), false);
  for (const auto& cf : m.code) added[cf.index] = true;
  for (const auto& d : idx.definitions) {
    if (added[d.file] && callable_kind(d.kind)) added_names.insert(d.name);
  }
  NameSet asked = words;
  asked.insert(removed_names.begin(), removed_names.end());
  asked.insert(added_names.begin(), added_names.end());
  NameChange c;
  c.now = defined_among(idx, asked);
  const NameSet before = defined_among(base, added_names);
  for (auto n : removed_names) {
    if (!c.now.count(n)) c.lost.insert(n);
  }
  for (auto n : added_names) {
    if (!before.count(n)) c.fresh.insert(n);
  }
  return c;
}

// The kept code files that may call one of `fresh` (IndexedFile::called), read again and
// counted for those names; their counts go into `calls` too.
Status count_fresh(const NameSet& fresh, const std::vector<bool>& added, const std::vector<DefinedAt>& defined_at,
                   const ReadFiles& read_unchanged, Merged& m, ScoreIndex& idx) {
  std::vector<size_t> kept_code;
  std::vector<std::string> paths;
  for (size_t i = 0; i < idx.files.size(); ++i) {
    const IndexedFile& f = idx.files[i];
    if (added[i] || f.kind != FileKind::kCode || f.lines_of_code < 0) continue;
    if (std::none_of(fresh.begin(), fresh.end(), [&](std::string_view n) { return may_call(f.called, n); })) continue;
    kept_code.push_back(i);
    paths.push_back(f.path);
  }
  m.read_again = paths.size();
  if (paths.empty()) return ok_status();
  auto texts = read_unchanged(paths);
  if (!texts.ok()) return texts.error();
  if (texts->size() != paths.size()) return stale("the unchanged files could not be read");
  for (size_t k = 0; k < kept_code.size(); ++k) {
    IndexedFile& f = idx.files[kept_code[k]];
    const SplitText split = split_text((*texts)[k], comment_style(extension(f.path), base_name(f.path)));
    std::map<std::string, int> found;
    count_calls(split.code, defined_at[kept_code[k]], fresh, found);
    add_to(idx.calls, found, 1);
    f.calls.insert(found.begin(), found.end());
  }
  return ok_status();
}

// Call sites: the base's totals less the removed files' counts and the names no longer
// callable, plus the added files' counts, plus those of the kept files that may call a newly
// callable name (by IndexedFile::called), read again and counted for those names.
Status update_calls(const ScoreIndex& base, Merged& m, const ReadFiles& read_unchanged, ScoreIndex& idx) {
  const std::vector<DefinedAt> defined_at = callable_lines(idx);
  std::vector<bool> added(idx.files.size(), false);
  NameSet words;
  for (const auto& cf : m.code) {
    IndexedFile& f = idx.files[cf.index];
    count_calls(cf.split.code, defined_at[cf.index], AnyName{}, f.calls, &f.called);
    for (const auto& [name, n] : f.calls) words.insert(name);
    added[cf.index] = true;
  }
  const NameChange names = name_change(base, m, idx, words);
  for (const auto& cf : m.code) {
    auto& calls = idx.files[cf.index].calls;
    for (auto it = calls.begin(); it != calls.end();) it = names.now.count(it->first) ? std::next(it) : calls.erase(it);
  }
  idx.calls = base.calls;
  for (size_t i = 0; i < base.files.size(); ++i) {
    if (m.moved[i] < 0) add_to(idx.calls, base.files[i].calls, -1);
  }
  for (auto name : names.lost) {
    idx.calls.erase(std::string(name));
    for (auto& f : idx.files) {
      if (!f.calls.empty()) f.calls.erase(std::string(name));
    }
  }
  for (const auto& cf : m.code) add_to(idx.calls, idx.files[cf.index].calls, 1);
  m.fresh_names = names.fresh.size();
  if (!names.fresh.empty()) POLY_TRY(count_fresh(names.fresh, added, defined_at, read_unchanged, m, idx));
  for (auto it = idx.calls.begin(); it != idx.calls.end();)
    it = it->second.files > 0 ? std::next(it) : idx.calls.erase(it);
  return ok_status();
}

std::string parser_after(const std::string& version, int code_files) {
  if (code_files == 0) return "no parser needed: no code files";
  const size_t shares = parser_shares(static_cast<size_t>(code_files));
  return version + (shares > 1 ? " (" + std::to_string(shares) + " processes)" : "");
}

}  // namespace

Result<ScoreIndex> update_score_index(const ScoreIndex& base, const RepoChange& change, const ReadFiles& read_unchanged,
                                      const IndexOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  Lap lap;
  const std::string version = ctags_version(options);
  POLY_TRY(check_updatable(base, change, version));
  auto scan = scan_after(base, change);
  if (!scan.ok()) return scan.error();
  ScoreIndex idx;
  idx.commit = base.commit;
  idx.source = base.source;
  idx.scan = *scan;
  idx.scan_note = note_of(idx.scan);
  idx.files_in_repo = files_in_repo(idx.scan);
  idx.built_from = base.commit;
  Merged merged = merge_files(base, change, idx);
  idx.files_reparsed = static_cast<int>(merged.code.size());
  idx.files_parsed = static_cast<int>(std::count_if(idx.files.begin(), idx.files.end(), [](const IndexedFile& f) {
    return f.kind == FileKind::kCode && f.lines_of_code >= 0;
  }));
  idx.parser = parser_after(version, idx.files_parsed);
  std::string phases = "updated from " + base.commit.substr(0, 12) + ": " + std::to_string(change.removed.size()) +
                       " file(s) removed, " +
                       std::to_string(change.added.files.size() + change.added.unread_paths.size()) +
                       " added; kept and measured " + lap();
  POLY_TRY(update_definitions(base, merged, options, idx));
  phases += ", ctags over " + std::to_string(idx.files_reparsed) + " code file(s) and definitions " + lap();
  POLY_TRY(update_calls(base, merged, read_unchanged, idx));
  phases += ", call sites " + lap() + " (" + std::to_string(merged.fresh_names) + " new callable name(s), " +
            std::to_string(merged.read_again) + " unchanged code file(s) read for them)";
  idx.build_phases = phases;
  idx.build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  return idx;
}

}  // namespace polyphony
