// Child processes: argv only, captured output, timeouts.
#include <catch2/catch.hpp>

#include "common/process.h"

using namespace polyphony;

TEST_CASE("a child's output, errors and exit code are captured") {
  auto r = run_process({"sh", "-c", "echo out; echo err >&2; exit 3"});
  REQUIRE(r.ok());
  CHECK(r->exit_code == 3);
  CHECK(r->out == "out\n");
  CHECK(r->err == "err\n");
}

TEST_CASE("arguments are passed as they are, never through a shell") {
  auto r = run_process({"printf", "%s|", "; rm -rf / #", "$(echo hi)"});
  REQUIRE(r.ok());
  CHECK(r->out == "; rm -rf / #|$(echo hi)|");
}

TEST_CASE("stdin, env and cwd reach the child") {
  ProcessOptions o;
  o.stdin_data = "fed";
  o.env["POLY_TEST_VAR"] = "v1";
  o.cwd = "/tmp";
  auto r = run_process({"sh", "-c", "cat; echo \" $POLY_TEST_VAR $(pwd)\""}, o);
  REQUIRE(r.ok());
  CHECK(r->out == "fed v1 /tmp\n");
}

TEST_CASE("a child past its timeout is killed and reported") {
  ProcessOptions o;
  o.timeout = std::chrono::milliseconds(200);
  auto r = run_process({"sleep", "5"}, o);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "timeout");
}

TEST_CASE("a missing program and a failing checked command are clear errors") {
  auto missing = run_process({"polyphony-no-such-program"});
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "not_found");
  auto failed = run_checked({"sh", "-c", "echo boom >&2; exit 2"}, {}, "git");
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().code == "git");
  CHECK_THAT(failed.error().message, Catch::Contains("status 2") && Catch::Contains("boom"));
}

TEST_CASE("variables can be removed from the inherited environment and overridden") {
  ::setenv("POLY_TEST_INHERITED", "parent", 1);
  ::setenv("POLY_TEST_OVERRIDDEN", "parent", 1);
  ProcessOptions o;
  o.unset_env = {"POLY_TEST_INHERITED"};
  o.env["POLY_TEST_OVERRIDDEN"] = "child";
  auto r = run_process(
      {"sh", "-c", "echo \"${POLY_TEST_INHERITED:-unset} $POLY_TEST_OVERRIDDEN\"; env | grep -c POLY_TEST_OVERRIDDEN"},
      o);
  REQUIRE(r.ok());
  CHECK(r->out == "unset child\n1\n");
  ::unsetenv("POLY_TEST_INHERITED");
  ::unsetenv("POLY_TEST_OVERRIDDEN");
}
