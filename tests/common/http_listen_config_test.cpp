// coordinator.http_listen and http_token_file: the dashboard's address, checked at load time.
#include <catch2/catch.hpp>

#include "common/config.h"
#include "common/endpoint_policy.h"
#include "test_support.h"

using namespace polyphony;
using polyphony::testing::TempDir;
using polyphony::testing::write_file;

namespace {

Result<Settings> load_coordinator(const TempDir& dir, const std::string& coordinator_yaml) {
  for (const auto& [name, text] : default_config_files()) write_file(dir / name, text);
  write_file(dir / "config.yaml", "coordinator:\n" + coordinator_yaml);
  return load_settings(dir.path());
}

}  // namespace

TEST_CASE("the dashboard listens on loopback port 7780 unless config.yaml says otherwise") {
  TempDir dir;
  auto s = load_coordinator(dir, "  heartbeat_liveness: 5\n");
  REQUIRE(s.ok());
  CHECK(s->config.http_listen == "127.0.0.1:7780");
  CHECK(s->config.http_token_file.empty());
  auto off = load_coordinator(dir, "  http_listen: \"\"\n");
  REQUIRE(off.ok());
  CHECK(off->config.http_listen.empty());
}

TEST_CASE("a malformed http_listen is refused at its file and line") {
  TempDir dir;
  for (const char* bad : {"7780", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:http", "::1:7780"}) {
    auto s = load_coordinator(dir, "  heartbeat_liveness: 5\n  http_listen: \"" + std::string(bad) + "\"\n");
    INFO(bad);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().where == (dir / "config.yaml").string() + ":3:16");
    CHECK_THAT(s.error().message, Catch::Contains("HOST:PORT"));
  }
}

TEST_CASE("an http_listen off loopback needs a token file") {
  TempDir dir;
  auto refused = load_coordinator(dir, "  http_listen: 0.0.0.0:7780\n");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().where == (dir / "config.yaml").string() + ":2:16");
  CHECK_THAT(refused.error().message, Catch::Contains("http_token_file") && Catch::Contains("keys gen --http"));
  auto allowed = load_coordinator(dir, "  http_listen: 0.0.0.0:7780\n  http_token_file: keys/http.token\n");
  REQUIRE(allowed.ok());
  CHECK(allowed->config.http_token_file == dir / "keys/http.token");
}

TEST_CASE("HTTP listen addresses split into host and port, IPv6 in brackets") {
  CHECK(parse_http_listen("127.0.0.1:7780") == std::pair<std::string, int>{"127.0.0.1", 7780});
  CHECK(parse_http_listen("[::1]:0") == std::pair<std::string, int>{"::1", 0});
  CHECK(parse_http_listen("localhost:80") == std::pair<std::string, int>{"localhost", 80});
  CHECK_FALSE(parse_http_listen(":80"));
  CHECK_FALSE(parse_http_listen("host:"));
  CHECK(is_loopback_host("::1"));
  CHECK(is_loopback_host("127.9.0.1"));
  CHECK_FALSE(is_loopback_host("0.0.0.0"));
}
