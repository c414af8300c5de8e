// `polyphony keys gen --http`: the dashboard's bearer token file, private and never overwritten.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "common/process.h"
#include "dashboard/dashboard.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

ProcessResult keys_gen(const TempDir& home, const std::vector<std::string>& flags) {
  std::vector<std::string> argv{POLYPHONY_CLI, "keys", "gen"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  ProcessOptions o;
  o.env["POLYPHONY_HOME"] = home.path().string();
  auto r = run_process(argv, o);
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("keys gen --http writes a private token file the dashboard accepts, and keeps an existing one") {
  TempDir home;
  const auto file = home / "keys/http.token";
  auto r = keys_gen(home, {"--http"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains(file.string()) && Catch::Contains("http_token_file"));
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto token = dashboard::read_token_file(file);
  REQUIRE(token.ok());
  CHECK(token->size() == 64);
  CHECK(token->find_first_not_of("0123456789abcdef") == std::string::npos);

  auto again = keys_gen(home, {"--http"});
  CHECK(again.exit_code != 0);
  CHECK_THAT(again.err, Catch::Contains("--force"));
  CHECK(dashboard::read_token_file(file).value() == *token);
  REQUIRE(keys_gen(home, {"--http", "--force"}).exit_code == 0);
  CHECK(dashboard::read_token_file(file).value() != *token);
}

TEST_CASE("a token file that other users can read is refused") {
  TempDir dir;
  write_file(dir / "open.token", std::string(64, 'a') + "\n");
  ::chmod((dir / "open.token").c_str(), 0644);
  auto token = dashboard::read_token_file(dir / "open.token");
  REQUIRE_FALSE(token.ok());
  CHECK_THAT(token.error().message, Catch::Contains("chmod 600"));
}
