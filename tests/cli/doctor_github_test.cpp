// `polyphony doctor`'s GitHub checks against the real gh and the stand-in GitHub server.
#include <catch2/catch.hpp>

#include "cli/doctor.h"
#include "fake_github/fake_github.h"

using namespace polyphony;
using namespace polyphony::cli;
using namespace polyphony::testing;

namespace {

const Finding& named(const std::vector<Finding>& findings, const std::string& check) {
  for (const auto& f : findings) {
    if (f.check == check) return f;
  }
  FAIL("no finding " << check);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("doctor reports gh's version and that it is logged in to github.host") {
  FakeGithub github;
  auto findings = check_github(github.config());
  REQUIRE(findings.size() == 2);
  const Finding& gh = named(findings, "gh");
  CHECK(gh.health == Health::kOk);
  CHECK_THAT(gh.message, Catch::StartsWith("gh 2."));
  CHECK(gh.where == "github.gh");
  const Finding& login = named(findings, "gh login");
  INFO(login.message);
  CHECK(login.health == Health::kOk);
  CHECK_THAT(login.message, Catch::Contains("Logged in to " + github.host()) && Catch::Contains("polyphony-bot"));
}

TEST_CASE("doctor reports gh not logged in to github.host as a problem, with the command that fixes it") {
  FakeGithub github;
  github.fail("auth");
  auto findings = check_github(github.config());
  const Finding& login = named(findings, "gh login");
  INFO(login.message);
  CHECK(login.health == Health::kProblem);
  CHECK_THAT(login.message,
             Catch::Contains("gh auth login --hostname " + github.host()) && Catch::Contains("GH_ENTERPRISE_TOKEN"));
  CHECK(login.where == "github.host");
  CHECK(has_problem(findings));
}

TEST_CASE("doctor reports a github.gh that does not run as a problem naming it") {
  GithubConfig g;
  g.repo = "acme/widgets";
  g.gh = "/nonexistent/gh";
  auto findings = check_github(g);
  REQUIRE(findings.size() == 1);
  CHECK(findings[0].health == Health::kProblem);
  CHECK_THAT(findings[0].message, Catch::Contains("/nonexistent/gh") && Catch::Contains("install gh 2.x"));
}
