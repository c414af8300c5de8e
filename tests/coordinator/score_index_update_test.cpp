// Updating the scoring index of a commit from the index of a nearby one: the same index as a
// full build, field by field; and when the cache builds in full instead.
#include <catch2/catch.hpp>

#include <fstream>

#include "coordinator/score_index.h"
#include "test_support.h"

using namespace polyphony;
using polyphony::testing::git;
using polyphony::testing::TempDir;
using polyphony::testing::trim;

namespace fs = std::filesystem;

namespace {

void write(const fs::path& work, const std::string& path, const std::string& content) {
  fs::create_directories((work / path).parent_path());
  std::ofstream(work / path, std::ios::binary) << content;
}

std::string commit_all(const fs::path& work, const std::string& message) {
  git(work, {"add", "-A"});
  git(work, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", message});
  return trim(git(work, {"rev-parse", "HEAD"}));
}

// A repository with code calling across files, prose, a binary file and one over the size
// limit the tests use (kLimits).
const ScanLimits kLimits{2048, 5000, 64ull << 20};
constexpr int kUnchanged = 20;  // files no commit here changes, so that an update is worth it

std::string big_file(const std::string& word) {
  std::string s;
  while (s.size() < 3000) s += "int " + word + std::to_string(s.size()) + "(void) { return 0; }\n";
  return s;
}

std::string make_parent(const fs::path& work) {
  fs::create_directories(work);
  git(work, {"init", "-q", "--initial-branch=main"});
  write(work, "README.md", "# demo\nThe lock and the password.\n");
  write(work, "src/util.c",
        "/* fresh_fn() is only named here, in a comment */\nint helper(int n) {\n  if (n > 1) { return n; }\n"
        "  return 0;\n}\n");
  write(work, "src/caller.c",
        "#include <pthread.h>\nstatic pthread_mutex_t mutex;\nint call_all(void) {\n  pthread_mutex_lock(&mutex);\n"
        "  int t = helper(1) + gone_fn() + fresh_fn(3);\n  for (int i = 0; i < 3; i++) { t += helper(i); }\n"
        "  pthread_mutex_unlock(&mutex);\n  return t;\n}\n");
  write(work, "src/edit.c",
        "int changed_fn(int a) {\n  while (a > 0 && a < 9) { a = helper(a - 1); }\n  return a;\n}\n"
        "int gone_fn(void) { return helper(2); }\n");
  write(work, "src/deleted.c", "int deleted_fn(void) { return helper(4) + changed_fn(1); }\n");
  write(work, "src/old_name.c", "int renamed_fn(void) {\n  return changed_fn(helper(5));\n}\n");
  write(work, "tools/gen.py", "def token_check(x):\n    if x:\n        for y in x:\n            return y\n");
  write(work, "data/blob.bin", std::string("\0\1\2binary", 9));
  write(work, "data/large.c", big_file("large_a"));
  for (int i = 0; i < kUnchanged; ++i) {
    const std::string n = std::to_string(i);
    write(work, "src/unchanged/u" + n + ".c", "int u" + n + "(void) {\n  return helper(" + n + ");\n}\n");
  }
  return commit_all(work, "parent");
}

// The child: modified, deleted, renamed, added files (one defining a name an unchanged file
// already calls, one dropping a name another calls), a binary file replaced, the large file
// changed.
std::string make_child(const fs::path& work) {
  write(work, "src/edit.c",
        "int changed_fn(int a) {\n  if (a) {\n    switch (a) { case 1: return helper(a); }\n  }\n  return a;\n}\n");
  fs::remove(work / "src/deleted.c");
  git(work, {"mv", "src/old_name.c", "src/new_name.c"});
  write(work, "src/fresh.c", "// the password check\nint fresh_fn(int n) { return n > 0 ? helper(n) : 0; }\n");
  fs::remove(work / "data/blob.bin");
  write(work, "data/other.bin", std::string("\0\3binary", 8));
  write(work, "data/large.c", big_file("large_b"));
  write(work, "Documentation/new.adoc", "A page.\n");
  return commit_all(work, "child");
}

void check_same(const ScoreIndex& a, const ScoreIndex& b) {
  CHECK(a.commit == b.commit);
  CHECK(a.files_in_repo == b.files_in_repo);
  CHECK(a.files_parsed == b.files_parsed);
  CHECK(a.scan_note == b.scan_note);
  CHECK(a.parser == b.parser);
  CHECK(a.scan.files_read == b.scan.files_read);
  CHECK(a.scan.skipped_binary == b.scan.skipped_binary);
  CHECK(a.scan.skipped_large == b.scan.skipped_large);
  CHECK(a.scan.skipped_over_cap == b.scan.skipped_over_cap);
  CHECK(a.scan.bytes_read == b.scan.bytes_read);
  REQUIRE(a.files.size() == b.files.size());
  for (size_t i = 0; i < a.files.size(); ++i) {
    const IndexedFile& x = a.files[i];
    const IndexedFile& y = b.files[i];
    INFO(x.path);
    CHECK(x.path == y.path);
    CHECK(x.kind == y.kind);
    CHECK(x.lines_of_code == y.lines_of_code);
    CHECK(x.nesting == y.nesting);
    CHECK(x.calls == y.calls);
    CHECK(x.called == y.called);
    auto same_keywords = [](const std::map<std::string, KeywordCount>& p,
                            const std::map<std::string, KeywordCount>& q) {
      if (p.size() != q.size()) return false;
      for (const auto& [k, c] : p) {
        auto it = q.find(k);
        if (it == q.end() || it->second.in_code != c.in_code || it->second.in_comments != c.in_comments) return false;
      }
      return true;
    };
    CHECK(same_keywords(x.security, y.security));
    CHECK(same_keywords(x.concurrency, y.concurrency));
  }
  REQUIRE(a.definitions.size() == b.definitions.size());
  for (size_t i = 0; i < a.definitions.size(); ++i) {
    const Definition& x = a.definitions[i];
    const Definition& y = b.definitions[i];
    INFO(x.name << " in " << a.files[x.file].path);
    CHECK(x.name == y.name);
    CHECK(x.kind == y.kind);
    CHECK(x.file == y.file);
    CHECK(x.line == y.line);
    CHECK(x.end == y.end);
    CHECK(x.lines == y.lines);
    CHECK(x.nesting == y.nesting);
    CHECK(x.branches == y.branches);
  }
  REQUIRE(a.calls.size() == b.calls.size());
  for (const auto& [name, c] : a.calls) {
    INFO(name);
    REQUIRE(b.calls.count(name) == 1);
    CHECK(c.sites == b.calls.at(name).sites);
    CHECK(c.files == b.calls.at(name).files);
  }
}

}  // namespace

TEST_CASE("a commit's index updated from its parent's is the same as its full build") {
  TempDir dir;
  const fs::path work = dir / "work";
  const std::string parent = make_parent(work);
  const std::string child = make_child(work);
  IndexOptions o;
  o.remember_in_memory = false;  // each answer below is built or read from disk, never shared
  ScoreIndexCache updating(dir / "index-updating", kLimits, o);
  auto base = updating.at(work, parent);
  REQUIRE(base.ok());
  REQUIRE((*base)->built_from.empty());
  auto updated = updating.at(work, child);
  REQUIRE(updated.ok());
  ScoreIndexCache fresh(dir / "index-fresh", kLimits, o);
  auto full = fresh.at(work, child);
  REQUIRE(full.ok());

  INFO((*updated)->build_phases);
  CHECK((*updated)->built_from == parent);
  CHECK((*updated)->files_reparsed == 3);  // changes.c, new_name.c, fresh.c (large.c is not read)
  CHECK((*full)->built_from.empty());
  CHECK_THAT((*updated)->parser, Catch::StartsWith("universal-ctags"));
  // What the change exercises is in both.
  CHECK((*full)->calls.at("fresh_fn").sites == 1);  // from the unchanged caller.c
  CHECK((*full)->calls.count("gone_fn") == 0);      // no longer defined as a function
  CHECK((*full)->calls.at("helper").files == 4 + kUnchanged);
  CHECK((*full)->scan.skipped_binary == 1);
  CHECK((*full)->scan.skipped_large == 1);
  CHECK((*full)->file("src/old_name.c") == nullptr);
  REQUIRE((*full)->file("src/new_name.c") != nullptr);
  check_same(**updated, **full);

  // Stored with how it was built, and read back the same.
  ScoreIndexCache reread(dir / "index-updating", kLimits, o);
  auto back = reread.at(work, child);
  REQUIRE(back.ok());
  CHECK((*back)->loaded_from_cache);
  CHECK((*back)->built_from == parent);
  CHECK((*back)->files_reparsed == 3);
  check_same(**back, **full);
}

TEST_CASE("an index is updated back to an earlier commit the same as its full build") {
  TempDir dir;
  const fs::path work = dir / "work";
  const std::string parent = make_parent(work);
  const std::string child = make_child(work);
  IndexOptions o;
  o.remember_in_memory = false;
  // From the child to its parent: every change the other way round.
  ScoreIndexCache updating(dir / "index-updating", kLimits, o);
  REQUIRE(updating.at(work, child).ok());
  auto back = updating.at(work, parent);
  REQUIRE(back.ok());
  CHECK((*back)->built_from == child);
  ScoreIndexCache fresh(dir / "index-fresh", kLimits, o);
  auto full = fresh.at(work, parent);
  REQUIRE(full.ok());
  check_same(**back, **full);
}

TEST_CASE("an index is built in full when a third of the files changed since every cached one") {
  TempDir dir;
  const fs::path work = dir / "work";
  const std::string parent = make_parent(work);
  for (int i = 0; i < 15; ++i) write(work, "src/more" + std::to_string(i) + ".c", "int more(void) { return 0; }\n");
  const std::string child = commit_all(work, "many files");
  ScoreIndexCache cache(dir / "index", kLimits);
  REQUIRE(cache.at(work, parent).ok());
  auto built = cache.at(work, child);
  REQUIRE(built.ok());
  CHECK((*built)->built_from.empty());
  CHECK_THAT((*built)->build_phases, Catch::Contains("15 of 29 files changed since"));
}

TEST_CASE("a cached index of an older format is built again, never an error") {
  TempDir dir;
  const fs::path work = dir / "work";
  const std::string parent = make_parent(work);
  IndexOptions o;
  o.remember_in_memory = false;
  ScoreIndexCache cache(dir / "index", kLimits, o);
  REQUIRE(cache.at(work, parent).ok());
  int rewritten = 0;
  for (const auto& e : fs::directory_iterator(dir / "index")) {
    std::ofstream(e.path(), std::ios::trunc) << "polyphony-score-index 3\ncommit " << parent << "\nend\n";
    ++rewritten;
  }
  REQUIRE(rewritten == 1);
  auto again = cache.at(work, parent);
  REQUIRE(again.ok());
  CHECK_FALSE((*again)->loaded_from_cache);
  CHECK_FALSE((*again)->files.empty());
  // Nor is an update made from it: the child is built in full.
  const std::string child = make_child(work);
  for (const auto& e : fs::directory_iterator(dir / "index")) {
    std::ofstream(e.path(), std::ios::trunc) << "polyphony-score-index 3\ncommit " << parent << "\nend\n";
  }
  auto built = cache.at(work, child);
  REQUIRE(built.ok());
  CHECK((*built)->built_from.empty());
}
