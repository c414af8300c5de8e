// Task ids, slugs and branch names made from hostile titles.
#include <catch2/catch.hpp>

#include <set>

#include "common/ids.h"

using namespace polyphony;

TEST_CASE("task ids are 8 hex characters and do not repeat") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = new_task_id();
    CHECK(id.size() == 8);
    CHECK(is_valid_id(id));
    seen.insert(id);
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("hostile titles become safe branch names") {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"Fix auth bug", "fix-auth-bug"},
      {"\"; rm -rf / #", "rm-rf"},
      {"../../x", "x"},
      {"$(reboot)", "reboot"},
      {"refs/heads/main..lock", "refs-heads-main-lock"},
      {"   ", "task"},
      {"Ünïcödé título", "n-c-d-t-tulo"},
      {"-leading dash", "leading-dash"},
      {"a\nb\tc", "a-b-c"},
  };
  for (const auto& [title, slug] : cases) {
    INFO(title);
    CHECK(slugify(title) == slug);
    const std::string branch = task_branch("ab12cd34", title);
    CHECK(branch == "polyphony/ab12cd34-" + slug);
    CHECK(is_valid_branch_name(branch));
  }
  CHECK(slugify(std::string(500, 'a')).size() == 40);
}

TEST_CASE("branch name validation follows git's rules") {
  for (const char* ok : {"main", "polyphony/ab-fix", "release/1.2"}) CHECK(is_valid_branch_name(ok));
  for (const char* bad : {"", "/x", "x/", "a..b", "a b", "a:b", "x.lock", "-x", "a//b", "@", "a@{b", ".x", "a/.b", "a~1"}) {
    INFO(bad);
    CHECK_FALSE(is_valid_branch_name(bad));
  }
}

TEST_CASE("utf-8 validation rejects malformed sequences") {
  CHECK(is_valid_utf8("plain"));
  CHECK(is_valid_utf8("h\xc3\xa9llo"));
  CHECK(is_valid_utf8("\xf0\x9f\x98\x80"));
  CHECK_FALSE(is_valid_utf8("\xff"));
  CHECK_FALSE(is_valid_utf8("\xc3"));
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));          // overlong
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
}
