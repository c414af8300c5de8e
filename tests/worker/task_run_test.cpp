// The pure parts of an attempt: telling an unavailable agent from a failing one, and reading a
// reviewer's verdict.
#include <catch2/catch.hpp>

#include "worker-agent/task_run.h"

using namespace polyphony;

TEST_CASE("an agent that cannot run is told apart from one that failed the task") {
  struct Case {
    int code;
    std::string tail;
    bool unavailable;
  };
  const std::vector<Case> cases = {
      {127, "sh: 1: claude: not found", true},
      {126, "permission denied", true},
      {139, "", true},   // segfault: crashed
      {134, "", true},   // abort: crashed
      {137, "", false},  // SIGKILL comes from outside (OOM, stop): not the agent's doing
      {1, "Error: 429 Too Many Requests", true},
      {1, "API error: rate limit reached, retry after 30s", true},
      {1, "Invalid API key provided", true},
      {2, "You are not logged in. Run `codex login`.", true},
      {1, "Error: 401 Unauthorized", true},
      {1, "test_auth.py::test_login FAILED", false},
      {1, "error: patch does not apply", false},
      {2, "usage: scripted-agent TASK_FILE", false},
      {128, "", false},
  };
  for (const auto& c : cases) {
    INFO("exit " << c.code << ": " << c.tail);
    CHECK(looks_unavailable(c.code, c.tail) == c.unavailable);
  }
}

TEST_CASE("a verdict file is read from its first line, with the rest as comments") {
  auto approve = parse_verdict("\n  Approve\nLooks right.\n");
  REQUIRE(approve);
  CHECK(approve->approved);
  CHECK(approve->comments == "Looks right.\n");

  for (const std::string text : {"changes requested\nAdd a test.\n", "## Changes requested\nAdd a test.\n",
                                 "CHANGES_REQUESTED\nAdd a test.\n", "Request changes:\nAdd a test.\n"}) {
    INFO(text);
    auto v = parse_verdict(text);
    REQUIRE(v);
    CHECK_FALSE(v->approved);
    CHECK(v->comments == "Add a test.\n");
  }
  CHECK(parse_verdict("LGTM")->approved);
  CHECK_FALSE(parse_verdict(""));
  CHECK_FALSE(parse_verdict("I think it is fine\n"));
}
