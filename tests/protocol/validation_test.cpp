// The predicates that decide whether ids, branches, commits and texts from a frame are trusted.
#include "protocol/validation.h"

#include <catch2/catch.hpp>

#include "protocol/messages.h"

using namespace polyphony::protocol;

TEST_CASE("task ids are 1-64 characters from A-Z a-z 0-9 _ -", "[validation]") {
  const auto [id, valid] = GENERATE(table<std::string, bool>({
      {"task-42_b", true},
      {"A", true},
      {std::string(64, 'z'), true},
      {"", false},
      {std::string(65, 'z'), false},
      {"../x", false},
      {"a/b", false},
      {"a.b", false},
      {"a b", false},
      {"é", false},
      {std::string("a\0b", 3), false},
  }));
  INFO(id);
  CHECK(is_valid_task_id(id) == valid);
}

TEST_CASE("peer ids allow dots and colons but do not start with a dot", "[validation]") {
  CHECK(is_valid_peer_id("box-1.example.org"));
  CHECK(is_valid_peer_id("coord.example.org:4242"));
  CHECK(is_valid_peer_id(std::string(255, 'w')));
  CHECK_FALSE(is_valid_peer_id(".hidden"));
  CHECK_FALSE(is_valid_peer_id(".."));
  CHECK_FALSE(is_valid_peer_id(""));
  CHECK_FALSE(is_valid_peer_id(std::string(256, 'w')));
  CHECK_FALSE(is_valid_peer_id("w/1"));
  CHECK_FALSE(is_valid_peer_id("w 1"));
}

TEST_CASE("UTF-8 checking accepts well-formed text and finds the first bad byte", "[validation]") {
  const auto [text, valid] = GENERATE(table<std::string, bool>({
      {"", true},
      {"plain ascii", true},
      {"é € 😀 \xf4\x8f\xbf\xbf", true},
      {std::string("nul\0ok", 6), true},
      {"\x80", false},              // lone continuation byte
      {"\xc3", false},              // truncated sequence
      {"\xc0\xaf", false},          // overlong '/'
      {"\xe0\x80\xaf", false},      // overlong, three bytes
      {"\xed\xa0\x80", false},      // UTF-16 surrogate
      {"\xf4\x90\x80\x80", false},  // above U+10FFFF
      {"\xf5\x80\x80\x80", false},  // invalid lead byte
      {"\xe2\x82", false},          // truncated euro sign
      {"\xe2\x28\xa1", false},      // bad continuation
  }));
  INFO(text);
  CHECK((detail::utf8_error_offset(text) == std::string::npos) == valid);
}

TEST_CASE("the offset of the first ill-formed byte is reported", "[validation]") {
  CHECK(detail::utf8_error_offset("ab\xc3\xa9\xff") == 4);
  CHECK(detail::utf8_error_offset("\xe2\x82") == 0);
}

TEST_CASE("wire text has no ill-formed UTF-8 and no NUL, and repair replaces them", "[validation]") {
  CHECK(detail::is_wire_text("é ✓"));
  CHECK_FALSE(detail::is_wire_text(std::string("a\0b", 3)));
  CHECK_FALSE(
      detail::is_wire_text("a\xff"
                           "b"));
  CHECK(detail::to_wire_text("é ✓") == "é ✓");
  CHECK(detail::to_wire_text(std::string("a\0b\xff", 4)) ==
        "a\xef\xbf\xbd"
        "b\xef\xbf\xbd");
  CHECK(detail::to_wire_text("\xf0\x9f\x98") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
}

TEST_CASE("task branches are valid git branch names under polyphony/", "[validation]") {
  const auto [name, valid] = GENERATE(table<std::string, bool>({
      {"polyphony/task-1-fix", true},
      {"polyphony/a/b", true},
      {"polyphony/" + std::string(245, 'a'), true},
      {"polyphony/" + std::string(246, 'a'), false},
      {"polyphony/", false},
      {"polyphony", false},
      {"main", false},
      {"feature/polyphony/x", false},
      {"polyphony/../x", false},
      {"polyphony/a..b", false},
      {"polyphony/.hidden", false},
      {"polyphony/x.lock", false},
      {"polyphony//x", false},
      {"polyphony/x/", false},
      {"polyphony/x.", false},
      {"polyphony/x@{1}", false},
      {"polyphony/a b", false},
      {"polyphony/a~1", false},
      {"polyphony/a^", false},
      {"polyphony/a:b", false},
      {"polyphony/a?", false},
      {"polyphony/a*", false},
      {"polyphony/a[1]", false},
      {"polyphony/a\\b", false},
      {"polyphony/a\tb", false},
  }));
  INFO(name);
  CHECK(is_valid_task_branch(name) == valid);
}

TEST_CASE("commit ids are 40 or 64 lowercase hex digits", "[validation]") {
  CHECK(is_valid_commit_id(std::string(40, 'a')));
  CHECK(is_valid_commit_id(std::string(64, '0')));
  CHECK_FALSE(is_valid_commit_id(std::string(39, 'a')));
  CHECK_FALSE(is_valid_commit_id(std::string(40, 'A')));
  CHECK_FALSE(is_valid_commit_id(std::string(40, 'g')));
  CHECK_FALSE(is_valid_commit_id(""));
}
