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
  for (const char* bad :
       {"", "/x", "x/", "a..b", "a b", "a:b", "x.lock", "-x", "a//b", "@", "a@{b", ".x", "a/.b", "a~1"}) {
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
  CHECK_FALSE(is_valid_utf8("\xc0\xaf"));      // overlong
  CHECK_FALSE(is_valid_utf8("\xed\xa0\x80"));  // surrogate
}

TEST_CASE("a task id is checked by one rule, and a bad one is a usage error naming it") {
  struct Case {
    std::string id;
    bool valid;
  };
  const auto c = GENERATE(values<Case>({
      {"ab12cd34", true},
      {"Task_1-x", true},
      {std::string(64, 'a'), true},
      {"", false},
      {std::string(65, 'a'), false},
      {"..", false},
      {"a/b", false},
      {"a b", false},
      {"\xc3\xa9", false},
      {std::string("a\0b", 3), false},
  }));
  INFO(c.id);
  CHECK(is_valid_task_id(c.id) == c.valid);
  CHECK(is_valid_id(c.id) == c.valid);
  const Status checked = check_task_id(c.id);
  CHECK(checked.ok() == c.valid);
  if (!checked.ok()) {
    CHECK(checked.error().code == "usage");
    CHECK(checked.error().where == c.id);
    CHECK_THAT(checked.error().message, Catch::Contains("1 to 64 characters from A-Z a-z 0-9 _ -"));
  }
}

TEST_CASE("utf-8 error offsets point at the first bad byte, and agree with the validator") {
  struct Case {
    std::string text;
    size_t bad;  // npos: well-formed
  };
  const auto c = GENERATE(values<Case>({
      {"", std::string::npos},
      {"plain", std::string::npos},
      {"h\xc3\xa9llo", std::string::npos},
      {"\xef\xbf\xbd", std::string::npos},
      {"\xf4\x8f\xbf\xbf", std::string::npos},  // U+10FFFF
      {"ab\xff", 2},
      {"ab\xc3\xa9\xc3", 4},    // truncated
      {"\xc1\xbf", 0},          // overlong
      {"x\xe0\x80\x80", 1},     // overlong
      {"\xed\xa0\x80", 0},      // surrogate
      {"\xf4\x90\x80\x80", 0},  // above U+10FFFF
      {"\xf5\x80\x80\x80", 0},
      {"a\xe2\x28\xa1", 1},  // bad continuation
  }));
  CHECK(utf8_error_offset(c.text) == c.bad);
  CHECK(is_valid_utf8(c.text) == (c.bad == std::string::npos));
}
