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
  id.env = {{"LITERAL", "literal-secret-789", "", "", 5},
            {"FROM_ENV", "", "POLYPHONY_TEST_HOST_SECRET", "", 6},
            {"FROM_FILE", "", "", (dir / "token").string(), 7}};
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
      {{"a", {{(dir / "nope").string(), "/x", 4}}, {}, 1}, "does not exist on this host", "identities.yaml:4"},
      {{"b", {}, {{"KEY", "", "POLYPHONY_TEST_UNSET_VARIABLE", "", 9}}, 1}, "POLYPHONY_TEST_UNSET_VARIABLE, which is not set",
       "identities.yaml:9"},
      {{"c", {}, {{"KEY", "", "", (dir / "missing-token").string(), 12}}, 1}, "cannot be read", "identities.yaml:12"},
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
