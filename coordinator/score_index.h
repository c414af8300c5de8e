// The scoring index of one commit of a repository: what each file is (code, prose,
// translation, release notes, generated, vendored), the definitions universal-ctags finds in
// the code with each function's size, nesting and branches, the call sites of every defined
// name, and the auth/PII and concurrency keywords of each code file (in code and in comments
// apart). Built once per base commit, kept on disk and in memory, and what scoring reads
// instead of the repository's text. A new base's index is updated from an indexed commit near
// it when one is cached: only the files that differ are read and parsed again.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "coordinator/scoring.h"

namespace polyphony {

// What a file is, by its path (and for generated files its first lines). Only kCode counts for
// the code dimensions; the others can be touched but measure nothing.
enum class FileKind { kCode, kProse, kTranslation, kReleaseNotes, kGenerated, kVendored, kOther };

// "code", "prose", "translation", "release notes", "generated", "vendored", "other".
const char* file_kind_name(FileKind k);

// The kind of `path` whose text begins with `head` (the first few hundred bytes are enough).
FileKind classify_file(const std::string& path, std::string_view head);

// A keyword's occurrences in one file: in code (identifiers, strings) and in comments.
struct KeywordCount {
  int in_code = 0;
  int in_comments = 0;
};

struct IndexedFile {
  std::string path;
  FileKind kind = FileKind::kOther;
  int lines_of_code = 0;                            // non-blank lines
  int nesting = 0;                                  // deepest brace scope, or indentation level without braces
  std::map<std::string, KeywordCount> security;     // code files only
  std::map<std::string, KeywordCount> concurrency;  // code files only
  // Call sites here of each callable name the index defines (see CallSites): what this file
  // adds to ScoreIndex::calls, kept so that an update can drop or keep it with the file.
  std::map<std::string, int> calls;
  // A Bloom filter of every name this code file calls, defined in the index or not: which
  // unchanged files an update reads again when a change defines a new name (no false negatives).
  std::vector<uint64_t> called;
};

// A definition universal-ctags reported in a code file.
struct Definition {
  std::string name;
  std::string kind;  // ctags' kind name: "function", "method", "macro", "struct", ...
  int file = 0;      // index into ScoreIndex::files
  int line = 0;
  int end = 0;       // last line when ctags knows it, else == line
  int lines = 0;     // non-blank lines from line to end
  int nesting = 0;   // deepest scope inside the definition, relative to where it starts
  int branches = 0;  // if/for/while/case/catch/&&/||/?: inside it (cyclomatic complexity - 1)
};

// Where a defined name is called: occurrences of `name(` in code outside its definitions.
struct CallSites {
  int sites = 0;
  int files = 0;
};

// How the indexed text was read (RepoText's counts, and the limits they were read under): what
// an update from this index needs to give what a full read would.
struct IndexScan {
  int files_read = 0;
  int skipped_binary = 0;
  int skipped_large = 0;
  int skipped_over_cap = 0;
  uint64_t bytes_read = 0;
  ScanLimits limits;
};

struct ScoreIndex {
  std::string commit;              // the indexed commit (hex), or empty for a work tree
  std::string source;              // "<repo> at <rev> (<short commit>)"
  std::vector<IndexedFile> files;  // sorted by path
  std::vector<Definition> definitions;
  std::unordered_map<std::string, CallSites> calls;  // by defined name: the files' `calls` added up
  int files_in_repo = 0;                             // before any sampling
  std::string scan_note;                             // what was skipped or sampled, for the explanation
  std::string parser;                                // "universal-ctags 5.9.0", or why no parser ran
  double build_ms = 0;                               // how long the build took (0 when loaded)
  // Built for one task only (IndexOptions::focus): every file is listed, but only the code files
  // that contain a name the task gives, or whose name it gives, were parsed and measured. What
  // the task's score reads is the same as in the full index; other tasks must not use it.
  bool focused = false;
  int files_parsed = 0;  // code files measured and given to the parser
  IndexScan scan;
  // Updated from the index of this commit (hex) rather than built in full: its unchanged files'
  // entries, definitions and call sites were kept, and `files_reparsed` code files were
  // measured and parsed again. Empty for a full build.
  std::string built_from;
  int files_reparsed = 0;
  std::string build_phases;  // where the build's time went (not stored)
  bool loaded_from_cache = false;

  // Definitions of `name` (exact), functions and macros first.
  std::vector<const Definition*> find(const std::string& name) const;
  const IndexedFile* file(const std::string& path) const;
};

struct IndexOptions {
  std::string ctags = "ctags";  // program, searched on PATH
  std::chrono::milliseconds ctags_timeout{std::chrono::seconds(20)};
  const std::atomic<bool>* cancel = nullptr;
  bool remember_in_memory = true;  // false: only the disk cache (how a test sees a process restart)
  // True: build a focused index (ScoreIndex::focused) over only the code files whose text
  // contains one of `focus` or whose base name (with or without extension) is one of them.
  bool focused = false;
  std::vector<std::string> focus;
};

// The words a focused index for `task` needs: the identifiers it names (backticks, name(),
// snake_case/camelCase) and the base names of the paths it names (see collect_signals).
std::vector<std::string> task_focus(const TaskRequest& task);

// Builds the index of a repository's text: classifies every file, runs universal-ctags (argv,
// with a timeout) over the code files written to a scratch directory, and measures what it
// found. When ctags is missing or fails the index still holds files and keywords, and
// `parser` says why no definition was found. Errors: "io" (scratch directory).
Result<ScoreIndex> build_score_index(const RepoText& text, const IndexOptions& options = {});

// The index of a commit whose files differ from `base`'s commit by `change`, the same as a full
// build of it would give (files, definitions, call sites, keywords, notes): `base`'s entries
// for the files not in the change are kept, the added ones classified, measured and parsed.
// `read_unchanged` gives the contents of unchanged paths of the new commit, asked only for the
// code files that may call a name the change newly defines. Errors "stale" when `base` cannot
// be updated exactly (focused, sampled, parsed without universal-ctags or by another version,
// or the change crosses the scan limits): build in full instead; "process" when ctags fails.
using ReadFiles = std::function<Result<std::vector<std::string>>(const std::vector<std::string>& paths)>;
Result<ScoreIndex> update_score_index(const ScoreIndex& base, const RepoChange& change, const ReadFiles& read_unchanged,
                                      const IndexOptions& options = {});

// The index as text (a line-based format with a version header), and back. A text that is not
// an index of this version is an error "parse".
std::string serialize_index(const ScoreIndex& index);
Result<ScoreIndex> parse_index(const std::string& text);

// Indexes by commit, on disk under `dir` (one file per repository and commit) and the last few
// in memory. Thread-safe.
class ScoreIndexCache {
 public:
  explicit ScoreIndexCache(std::filesystem::path dir, ScanLimits limits = {}, IndexOptions options = {})
      : dir_(std::move(dir)), limits_(limits), options_(std::move(options)) {}

  // The index of `rev` in `repo` (a git directory or work tree): from memory, else from disk,
  // else updated from the index of a commit of the same repository cached here whose tree
  // differs in at most a third of the files (the closest of the last few indexed), else read
  // through libgit2 and built; then stored. Errors: "git" (no such repository or rev),
  // "io".
  Result<std::shared_ptr<const ScoreIndex>> at(const std::filesystem::path& repo, const std::string& rev);

  // For scoring one task: the full index when it is in memory or on disk, or when it can be
  // updated from a cached one as at() does (then stored); else an index focused
  // on this task (parsing only the files its names lead to; not stored). The caller builds the
  // full index afterwards, off its path (at(); the coordinator does it as a background job).
  Result<std::shared_ptr<const ScoreIndex>> for_task(const std::filesystem::path& repo, const std::string& rev,
                                                     const TaskRequest& task);

  const std::filesystem::path& dir() const { return dir_; }

 private:
  struct Found {
    std::string commit, name, key;
    std::shared_ptr<const ScoreIndex> index;  // null: not cached
  };
  Result<Found> cached(const std::filesystem::path& repo, const std::string& rev);
  Result<std::shared_ptr<const ScoreIndex>> build_and_store(const std::filesystem::path& repo, const std::string& rev,
                                                            const Found& where, const IndexOptions& options,
                                                            const std::string& not_updated);
  // The index of `where` updated from the nearest cached one, or null when none is near enough
  // or the update cannot be exact (`why` says which).
  std::shared_ptr<const ScoreIndex> update_from_nearest(const std::filesystem::path& repo, const std::string& rev,
                                                        const Found& where, std::string& why);
  Found lookup(const std::filesystem::path& repo, const std::string& commit);
  std::shared_ptr<const ScoreIndex> store(const std::filesystem::path& repo, const Found& where, ScoreIndex built);
  std::string repo_key(const std::filesystem::path& repo) const;

  static constexpr size_t kNearestTried = 4;  // cached commits compared with a new one

  std::filesystem::path dir_;
  ScanLimits limits_;
  IndexOptions options_;
};

// The commit `rev` names in `repo` (hex). Error "git" naming both.
Result<std::string> resolve_commit(const std::filesystem::path& repo, const std::string& rev);

}  // namespace polyphony
