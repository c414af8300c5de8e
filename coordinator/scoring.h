// The complexity score: five dimensions of 0-2 (0-10 in all) with the evidence behind each,
// the signals it is computed from, and how those signals are read from a repository.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/result.h"
#include "coordinator/task.h"

namespace polyphony {

// A file the task touches: named in its text (also with another extension), or defining a
// symbol it names. Only code files count for the code dimensions.
struct TouchedFile {
  std::string path;
  std::string kind = "code";  // file_kind_name(): "code", "prose", "translation", ...
  int lines_of_code = 0;      // non-blank lines (-1: not read, the repository was sampled)
  int nesting = 0;            // deepest brace scope; indentation levels in files without braces
  std::string why;            // "named in the task", "defines cJSON_Parse()"
  bool counts() const { return kind == "code" && lines_of_code >= 0; }
};

// A function (or other definition) the task names that the repository defines: its size and
// shape as the parser found it, and how often it is called.
struct SymbolUse {
  std::string name;
  int call_sites = 0;  // calls in code, outside its definitions
  int files_calling = 0;
  std::vector<std::string> defined_in;  // "cJSON.c:120-180"
  int lines = 0;                        // non-blank lines of its definition(s)
  int nesting = 0;                      // deepest scope inside it
  int branches = 0;                     // decision points inside it
  std::string why;                      // "in backticks", "written name()", "identifier in the task"
};

// A keyword found in the task text or the touched code, weighted by where: the task 4, touched
// code 2, touched comments 1 (a keyword counts once, at its heaviest place).
struct KeywordHit {
  std::string keyword;
  std::vector<std::string> found_in;  // "task", "src/a.c (2)", "src/a.c comments (1)"
  int weight = 1;
};

inline constexpr int kTaskKeywordWeight = 4;
inline constexpr int kCodeKeywordWeight = 2;
inline constexpr int kCommentKeywordWeight = 1;

// Everything the score is computed from. Collected from a repository's index, or built by hand.
struct Signals {
  std::vector<TouchedFile> files;
  std::vector<SymbolUse> symbols;
  std::vector<KeywordHit> security;
  std::vector<KeywordHit> concurrency;
  std::string risk;
  std::string task_type;
  std::string type_inferred;             // when the task gave no type: the word it was inferred from
  bool named_nothing = false;            // the task names no file or symbol the repository has
  int task_words = 0;                    // words in the title and description
  std::vector<std::string> scope_words;  // "add", "implement", "refactor", ... found in the task
  std::vector<std::string> notes;        // what was capped or could not be read
  int files_scanned = 0;
  std::string scan_note;  // what the bounded scan skipped or sampled
  std::string parser;     // "universal-ctags 5.9.0", or why none ran
};

enum class Dimension { kCyclomaticDepth, kFanOut, kSecurityBoundary, kConcurrency, kDomainInvariants };
inline constexpr size_t kDimensionCount = 5;

// "cyclomatic_depth", "fan_out", "security_boundary", "concurrency", "domain_invariants".
const char* dimension_name(Dimension d);

struct DimensionScore {
  Dimension dimension = Dimension::kCyclomaticDepth;
  int value = 0;                      // 0, 1 or 2
  std::vector<std::string> evidence;  // the files, counts and keywords behind the value
};

struct Score {
  std::array<DimensionScore, kDimensionCount> dimensions;
  int total = 0;  // 0..10
};

// 0 below `c.one`, 1 below `c.two`, else 2.
int cut(int measure, const ScoreCutOffs& c);

// Domain invariants before capping: risk high 2, medium 1; task type migration, security,
// billing or payments +1; capped at 2 by score(). An inferred type counts like a given one.
int domain_points(const std::string& risk, const std::string& task_type);

// The score of the signals under the policy's cut-offs. Pure.
Score score(const Signals& signals, const ScoringPolicy& policy);

// The score in one line for the task's history: each dimension's value and its first evidence
// line ("cyclomatic_depth 1: 50 lines in 2 touched definition(s) ...; fan_out 0: ...").
std::string score_summary(const Score& score);

// The plan a total calls for: solo up to solo_max, review up to review_max, else strong.
Plan plan_for(int total, const ScoringPolicy& policy);

// A repository's text files as read for scoring.
struct RepoText {
  struct File {
    std::string path;
    std::string content;
  };
  std::vector<File> files;  // sorted by path
  int skipped_binary = 0;
  int skipped_large = 0;
  int skipped_over_cap = 0;
  std::vector<std::string> unread_paths;  // skipped over the cap or size limit: known, not read
  std::string source;                     // "<repo> at <commit>" or "<dir> (work tree)"
  uint64_t bytes_read = 0;                // the sizes of the files read (text and binary)
};

// Bounds on a scan: files larger than max_file_bytes and binary files (a NUL byte in the first
// 8000) are skipped; at most max_files files and max_total_bytes are read. A repository over
// the limits is sampled evenly across its paths (every k-th file), not cut off at a letter.
struct ScanLimits {
  uint64_t max_file_bytes = 1 << 20;
  size_t max_files = 5000;
  uint64_t max_total_bytes = 64ull << 20;
};

// The text files of `rev` (a branch, tag or commit; "HEAD" by default) in a bare or non-bare
// repository (or a directory in one), read through libgit2. Error "git" naming the repo and rev.
Result<RepoText> read_repo_at(const std::filesystem::path& repo, const std::string& rev, const ScanLimits& limits = {});

// The text files under a work tree directory (.git and symlinks skipped).
Result<RepoText> read_work_tree(const std::filesystem::path& dir, const ScanLimits& limits = {});

// What changed in a repository's files from one commit to another (read_repo_change).
struct RepoChange {
  // Paths whose version in `from` is gone: deleted, modified, renamed away or no longer a file.
  std::vector<std::string> removed;
  uint64_t removed_bytes = 0;  // the sizes of those old versions within max_file_bytes
  // The versions in `to` of the added, modified and renamed files, read as read_repo_at reads
  // (binary and oversized files counted, not read), never sampled.
  RepoText added;
};

// The number of files that differ between the trees of commits `from` and `to` (hex) of `repo`.
// Errors "git" naming the repository.
Result<size_t> count_changed_files(const std::filesystem::path& repo, const std::string& from, const std::string& to);

// The files that differ between commits `from` and `to` (hex) of `repo`, by libgit2's tree diff
// (no rename detection: a rename is a removal and an addition). Errors "git".
Result<RepoChange> read_repo_change(const std::filesystem::path& repo, const std::string& from, const std::string& to,
                                    const ScanLimits& limits = {});

// The contents of `paths` (files of commit `commit`, hex) in `repo`, in the same order. Errors
// "git" naming the path that cannot be read.
Result<std::vector<std::string>> read_repo_files(const std::filesystem::path& repo, const std::string& commit,
                                                 const std::vector<std::string>& paths);

struct ScoreIndex;

// The signals of a task against a repository's scoring index (score_index.h). Pure.
Signals collect_signals(const TaskRequest& task, const ScoreIndex& index);

// The same against a repository's text: builds its index first (runs universal-ctags).
Signals collect_signals(const TaskRequest& task, const RepoText& repo);

}  // namespace polyphony
