// Private to the scoring index's files (score_index*.cpp): what building, updating and storing
// an index share. Not for use outside them.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/result.h"
#include "coordinator/score_index.h"

namespace polyphony::score_index_internal {

bool ends_with(const std::string& s, std::string_view suffix);
std::string extension(const std::string& path);
std::string base_name(const std::string& path);

// Comment syntax of a code file.
enum class Comments { kC, kHash, kDashDash, kNone };

Comments comment_style(const std::string& ext, const std::string& name);

// A code file split by what each character is: comment text, string text, and code with both
// blanked out (newlines kept, so line numbers hold).
struct SplitText {
  std::string code;
  std::string comments;
  std::string strings;
};

SplitText split_text(const std::string& in, Comments style);

bool callable_kind(const std::string& kind);

// The code files written where ctags can read them.
struct Scratch {
  std::filesystem::path dir;
  ~Scratch() {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
};

Result<std::filesystem::path> make_scratch();

struct CtagsTag {
  std::string name, kind, file;
  int line = 0, end = 0;
};

std::string ctags_version(const IndexOptions& o);

// Per code file, what the measuring passes need.
struct CodeFile {
  size_t index = 0;  // into ScoreIndex::files
  SplitText split;
  std::vector<size_t> starts;
  bool braces = false;
};

void add_definitions(ScoreIndex& idx, const std::vector<CtagsTag>& tags,
                     std::unordered_map<std::string, CodeFile*>& by_path);

// Per file, the lines that define a callable name there (sorted), so a definition is not its own call.
using DefinedAt = std::vector<std::pair<int, std::string_view>>;

std::vector<DefinedAt> callable_lines(const ScoreIndex& idx);

using NameSet = std::unordered_set<std::string_view>;

bool may_call(const std::vector<uint64_t>& called, std::string_view name);

// Every name, for count_calls.
struct AnyName {
  size_t count(std::string_view) const { return 1; }
};

// Adds to `out` the occurrences of `name(` in `code` (comments and strings blanked) of each of
// `names`, leaving out the lines `defs` say define that name; and when `called` is given, sets
// it to the filter of every name called (see IndexedFile::called).
template <class Names>
void count_calls(std::string_view text, const DefinedAt& defs, const Names& names, std::map<std::string, int>& out,
                 std::vector<uint64_t>* called = nullptr);
extern template void count_calls(std::string_view, const DefinedAt&, const NameSet&, std::map<std::string, int>&,
                                 std::vector<uint64_t>*);
extern template void count_calls(std::string_view, const DefinedAt&, const AnyName&, std::map<std::string, int>&,
                                 std::vector<uint64_t>*);

// ScoreIndex::calls from the files' own counts.
void total_calls(ScoreIndex& idx);

// Definitions in file order, each file's in the parser's order: the same whichever share of
// the parsing processes a file fell to.
void sort_definitions(ScoreIndex& idx);

std::string note_of(const IndexScan& scan);

int files_in_repo(const IndexScan& scan);

// How many ctags processes a build over `code_files` runs: up to one per core (at most 4), one
// per 200 files.
size_t parser_shares(size_t code_files);

// The entry of a file as read, measured when `measured` (then `code` holds what the definition
// and call-site passes need; its `index` is set once the files are sorted).
IndexedFile index_file(const RepoText::File& f, FileKind kind, bool measured, std::optional<CodeFile>& code);

// Writes `files[share], files[share + shares], ...` flat into `dir` as "<n>-<base name>" (ctags
// picks the language by the name) and runs ctags over them; each tag's file is then the path.
Result<std::vector<CtagsTag>> parse_share(const std::filesystem::path& dir,
                                          const std::vector<const RepoText::File*>& files, size_t share, size_t shares,
                                          const IndexOptions& options);

// The time since the last call (or since made), as "<n> ms": a build's phases.
struct Lap {
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  std::string operator()() {
    const auto now = std::chrono::steady_clock::now();
    const double ms = std::chrono::duration<double, std::milli>(now - last).count();
    last = now;
    return std::to_string(static_cast<long long>(ms + 0.5)) + " ms";
  }
};

}  // namespace polyphony::score_index_internal
