// config.yaml `github:`: defaults, the remote it resolves to, and errors that name file:line.
#include <catch2/catch.hpp>

#include "common/config.h"
#include "test_support.h"

using namespace polyphony;
using polyphony::testing::TempDir;
using polyphony::testing::write_file;

TEST_CASE("without github: GitHub mode is off") {
  TempDir dir;
  auto c = load_config(dir / "config.yaml", dir.path());
  REQUIRE(c.ok());
  CHECK_FALSE(c->github.enabled());
}

TEST_CASE("a github: section takes its defaults and resolves the remote") {
  TempDir dir;
  write_file(dir / "config.yaml", "github:\n  repo: acme/widgets\n");
  auto c = load_config(dir / "config.yaml", dir.path());
  REQUIRE(c.ok());
  const GithubConfig& g = c->github;
  CHECK(g.enabled());
  CHECK(g.label == "polyphony");
  CHECK(g.claimed_label == "polyphony:claimed");
  CHECK(g.type_label_prefix == "type:");
  CHECK(g.risk_label_prefix == "risk:");
  CHECK(g.poll_interval_ms == 60000);
  CHECK(g.auto_merge.empty());
  CHECK(g.gh == "gh");
  CHECK(g.host == "github.com");
  CHECK(g.remote == "https://github.com/acme/widgets.git");

  // GitHub Enterprise: the host is gh's GH_HOST, and the default remote is on it.
  write_file(dir / "config.yaml", "github:\n  repo: acme/widgets\n  host: ghe.example.com:8443\n");
  c = load_config(dir / "config.yaml", dir.path());
  REQUIRE(c.ok());
  CHECK(c->github.host == "ghe.example.com:8443");
  CHECK(c->github.remote == "https://ghe.example.com:8443/acme/widgets.git");

  write_file(dir / "config.yaml",
             "repos:\n  widgets: {url: /srv/git/widgets.git}\n"
             "github:\n  repo: acme/widgets\n  remote: widgets\n  label: bot\n  filter_labels: [type:bugfix]\n"
             "  poll_interval_ms: 30000\n  auto_merge: squash\n");
  c = load_config(dir / "config.yaml", dir.path());
  REQUIRE(c.ok());
  CHECK(c->github.remote == "widgets");  // a repos: name, resolved like --repo
  CHECK(c->github.label == "bot");
  CHECK(c->github.filter_labels == std::vector<std::string>{"type:bugfix"});
  CHECK(c->github.auto_merge == "squash");

  write_file(dir / "config.yaml", "github:\n  repo: acme/widgets\n  remote: git/widgets.git\n");
  c = load_config(dir / "config.yaml", dir.path());
  REQUIRE(c.ok());
  CHECK(c->github.remote == (dir.path() / "git/widgets.git").string());
}

TEST_CASE("a wrong github: section is refused at its file:line") {
  struct Case {
    std::string yaml;
    std::string line;
    std::string message;
  };
  const std::vector<Case> cases{
      {"github:\n  repo: widgets\n", ":2:", "github.repo must be owner/name"},
      {"github:\n  repo: a/b\n  auto_merge: yes-please\n", ":3:", "merge, squash or rebase"},
      {"github:\n  repo: a/b\n  claimed_label: polyphony\n", ":3:", "differ from github.label"},
      {"github:\n  repo: a/b\n  poll_interval_ms: 1\n", ":3:", "at least 10"},
      {"github:\n  repo: a/b\n  colour: red\n", ":3:", "colour"},
      {"github:\n  repo: a/b\n  host: https://ghe.example.com/api/v3\n", ":3:", "no scheme, no path"},
  };
  for (const auto& c : cases) {
    TempDir dir;
    write_file(dir / "config.yaml", c.yaml);
    auto r = load_config(dir / "config.yaml", dir.path());
    INFO(c.yaml);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error().where, Catch::Contains("config.yaml" + c.line));
    CHECK_THAT(r.error().message, Catch::Contains(c.message));
  }
}
