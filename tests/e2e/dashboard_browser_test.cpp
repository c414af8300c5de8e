// The dashboard in a real browser: headless Chromium driven by puppeteer-core
// (tests/browser/dashboard_browser.js) against a running `polyphony serve` with real tasks in
// real containers. scripts/setup.sh installs both; without them the test fails.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

TEST_CASE("in headless Chromium behind a token the board lands a task live, the task page follows and cancels") {
  const std::string chromium = env_or("POLYPHONY_CHROMIUM", "/usr/bin/chromium");
  const std::string modules =
      env_or("POLYPHONY_BROWSER_TEST_DIR", "/var/cache/polyphony/browser-test") + "/node_modules";
  INFO("run scripts/setup.sh: it installs chromium (apt) and puppeteer-core (npm, into " << modules << ")");
  REQUIRE(std::filesystem::exists(chromium));
  REQUIRE(std::filesystem::exists(std::filesystem::path(modules) / "puppeteer-core"));

  // Off loopback, so every request needs the token; the browser still talks to 127.0.0.1 only.
  SingleBox box(sample_repo(), "coordinator: {http_listen: \"0.0.0.0:0\", http_token_file: keys/http.token}\n");
  REQUIRE(box.cli({"keys", "gen", "--http"}).exit_code == 0);
  const std::string token = trim(read_file(box.home() / "keys/http.token"));
  box.serve();
  const auto url_file = box.home() / "dashboard.url";
  REQUIRE(eventually([&] { return std::filesystem::exists(url_file); }, std::chrono::seconds(20)));
  std::string url = trim(read_file(url_file));
  REQUIRE(url.rfind("http://0.0.0.0:", 0) == 0);
  url.replace(7, 7, "127.0.0.1");

  const std::filesystem::path artifacts = std::filesystem::path(POLYPHONY_ARTIFACTS_DIR) / "dashboard";
  std::filesystem::create_directories(artifacts);
  ProcessOptions o;
  o.env = {{"DASHBOARD_URL", url}, {"TOKEN", token},       {"ORIGIN", box.origin().string()},
           {"CHROMIUM", chromium}, {"NODE_PATH", modules}, {"ARTIFACTS", artifacts.string()}};
  o.timeout = std::chrono::minutes(8);
  auto run = run_process({"node", POLYPHONY_BROWSER_SCRIPT}, o);
  REQUIRE(run.ok());
  INFO(run->err);
  INFO(box.serve_log());
  REQUIRE(run->exit_code == 0);
  const auto result = nlohmann::json::parse(run->out);

  // What the browser saw is what the state DB holds.
  const auto landed = box.task(result["landed"]);
  CHECK(landed["state"] == "LANDED");
  CHECK(landed["title"] == result["title"]);
  CHECK(git(box.origin(), {"show", "main:board.txt"}) == "hello from the board\n");
  CHECK(box.task(result["cancelled"])["state"] == "CANCELLED");
  CHECK(box.no_containers_left(result["cancelled"]));
  for (const char* shot : {"dashboard-board.png", "dashboard-task.png", "dashboard-workers.png"}) {
    CHECK(std::filesystem::file_size(artifacts / shot) > 1000);
  }
}
