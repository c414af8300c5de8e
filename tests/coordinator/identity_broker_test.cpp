// The identity broker: credential bundles become read-only mounts and env values, and every
// value is a secret from then on.
#include <catch2/catch.hpp>
#include <cstdlib>

#include "common/log.h"
#include "coordinator/identity_broker.h"
#include "test_support.h"

using namespace polyphony;
using polyphony::testing::TempDir;
using polyphony::testing::write_file;

TEST_CASE("an identity resolves to read-only mounts and env values from literals, host variables and files") {
  TempDir dir;
  write_file(dir / "creds/config.json", "{}\n");
  write_file(dir / "token", "file-secret-123\n");
  ::setenv("POLYPHONY_TEST_HOST_SECRET", "host-secret-456", 1);
  Identity id;
  id.name = "anthropic";
  id.mounts = {{(dir / "creds").string(), "/home/agent/.claude", 3}};
  id.env = {{"LITERAL", "literal-secret-789", "", "", 5, false},
            {"FROM_ENV", "", "POLYPHONY_TEST_HOST_SECRET", "", 6, false},
            {"FROM_FILE", "", "", (dir / "token").string(), 7, false}};
  auto r = resolve_identity(id, "/home/u/.polyphony/identities.yaml");
  REQUIRE(r.ok());
  REQUIRE(r->mounts.size() == 1);
  CHECK(r->mounts[0].host_path == (dir / "creds").string());
  CHECK(r->mounts[0].container_path == "/home/agent/.claude");
  CHECK(r->mounts[0].read_only);
  CHECK(r->env.at("LITERAL") == "literal-secret-789");
  CHECK(r->env.at("FROM_ENV") == "host-secret-456");
  CHECK(r->env.at("FROM_FILE") == "file-secret-123");  // trailing newline trimmed
  // Every value is redacted from whatever is logged from now on.
  const std::string line = redact("using literal-secret-789 and host-secret-456 and file-secret-123");
  CHECK(line.find("secret-") == std::string::npos);
  CHECK(line.find("***") != std::string::npos);
}

TEST_CASE("a missing mount path, host variable or file is an identity error naming the file and line") {
  TempDir dir;
  ::unsetenv("POLYPHONY_TEST_UNSET_VARIABLE");
  struct Case {
    Identity identity;
    std::string message;
    std::string where;
  };
  const std::vector<Case> cases = {
      {{"a", {{(dir / "nope").string(), "/x", 4}}, {}, 1, {}}, "does not exist on this host", "identities.yaml:4"},
      {{"b", {}, {{"KEY", "", "POLYPHONY_TEST_UNSET_VARIABLE", "", 9, false}}, 1, {}},
       "POLYPHONY_TEST_UNSET_VARIABLE, which is not set",
       "identities.yaml:9"},
      {{"c", {}, {{"KEY", "", "", (dir / "missing-token").string(), 12, false}}, 1, {}},
       "cannot be read",
       "identities.yaml:12"},
  };
  for (const auto& c : cases) {
    INFO(c.identity.name);
    auto r = resolve_identity(c.identity, "identities.yaml");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "identity");
    CHECK_THAT(r.error().message, Catch::Contains(c.message));
    CHECK(r.error().where == c.where);
  }
}

TEST_CASE(
    "identity files are shipped as contents, their tokens become secrets, and a missing one names file and line") {
  TempDir dir;
  write_file(
      dir / "auth.json",
      R"({"OPENAI_API_KEY":null,"tokens":{"access_token":"acc-tok-1234567890","refresh_token":"ref-tok-0987654321"}})");
  Identity id;
  id.name = "openai";
  id.files = {{(dir / "auth.json").string(), "auth.json", 4}};
  auto r = resolve_identity(id, "/h/identities.yaml");
  REQUIRE(r.ok());
  REQUIRE(r->files.size() == 1);
  CHECK(r->files[0].path == "auth.json");
  CHECK(r->files[0].mode == 0600);
  CHECK(r->files[0].content.find("acc-tok-1234567890") != std::string::npos);
  CHECK(redact("leaked acc-tok-1234567890 and ref-tok-0987654321").find("tok-") == std::string::npos);
  id.files = {{(dir / "absent.json").string(), "auth.json", 9}};
  auto missing = resolve_identity(id, "/h/identities.yaml");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "identity");
  CHECK(missing.error().where == "/h/identities.yaml:9");
  CHECK_THAT(missing.error().message, Catch::Contains("absent.json") && Catch::Contains("missing"));
}

TEST_CASE("optional credentials are alternatives: one set is enough, none set is refused naming them") {
  ::unsetenv("POLYPHONY_TEST_KEY_A");
  ::setenv("POLYPHONY_TEST_KEY_B", "key-b-value-123", 1);
  Identity id;
  id.name = "anthropic";
  id.line = 2;
  IdentityEnv a{"ANTHROPIC_API_KEY", "", "POLYPHONY_TEST_KEY_A", "", 3, true};
  IdentityEnv b{"CLAUDE_CODE_OAUTH_TOKEN", "", "POLYPHONY_TEST_KEY_B", "", 4, true};
  id.env = {a, b};
  auto r = resolve_identity(id, "ids.yaml");
  REQUIRE(r.ok());
  CHECK(r->env.count("ANTHROPIC_API_KEY") == 0);
  CHECK(r->env.at("CLAUDE_CODE_OAUTH_TOKEN") == "key-b-value-123");
  ::unsetenv("POLYPHONY_TEST_KEY_B");
  auto none = resolve_identity(id, "ids.yaml");
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().where == "ids.yaml:2");
  CHECK_THAT(none.error().message, Catch::Contains("POLYPHONY_TEST_KEY_A or POLYPHONY_TEST_KEY_B"));
}
