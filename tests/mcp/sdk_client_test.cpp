// `polyphony mcp` driven by the reference MCP client library, @modelcontextprotocol/sdk from
// npm (tests/mcp/sdk/client.mjs, pinned by its package-lock.json), run with node.
#include <catch2/catch.hpp>

#include "common/process.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace fs = std::filesystem;

namespace {

// The client's directory in the build tree, its packages installed (`npm ci`) once for each
// version of the lock file.
fs::path installed_client() {
  const fs::path source = MCP_SDK_SOURCE_DIR;
  const fs::path work = MCP_SDK_WORK_DIR;
  fs::create_directories(work);
  const bool current = fs::exists(work / "node_modules/@modelcontextprotocol/sdk/package.json") &&
                       fs::exists(work / "package-lock.json") &&
                       read_file(work / "package-lock.json") == read_file(source / "package-lock.json");
  for (const char* name : {"package.json", "package-lock.json", "client.mjs"}) {
    fs::copy_file(source / name, work / name, fs::copy_options::overwrite_existing);
  }
  if (!current) {
    ProcessOptions o;
    o.cwd = work;
    o.timeout = std::chrono::minutes(5);
    auto npm = run_process({"npm", "ci", "--no-audit", "--no-fund"}, o);
    INFO((npm.ok() ? npm->out + npm->err : npm.error().to_string()));
    REQUIRE(npm.ok());
    REQUIRE(npm->exit_code == 0);
  }
  return work;
}

}  // namespace

TEST_CASE("the reference MCP client library connects to polyphony mcp, lists its tools and checks their results") {
  const fs::path client = installed_client();
  TempDir dir;
  ProcessOptions o;
  o.env["POLYPHONY_HOME"] = (dir / "home").string();
  o.timeout = std::chrono::seconds(60);
  auto init = run_process({POLYPHONY_CLI, "init"}, o);
  REQUIRE(init.ok());
  REQUIRE(init->exit_code == 0);
  make_bare_repo(dir / "origin.git", {{"greet.sh", "echo \"Hello, $1!\"\n"}, {"README.md", "# sample\n"}});
  o.cwd = client;
  auto run =
      run_process({"node", "client.mjs", POLYPHONY_CLI, (dir / "home").string(), (dir / "origin.git").string()}, o);
  REQUIRE(run.ok());
  INFO(run->out);
  INFO(run->err);
  CHECK(run->exit_code == 0);
  CHECK_THAT(run->out, Catch::Contains("tools: spawn status show logs wait cancel retry route_explain team") &&
                           Catch::Contains("sdk client: all checks passed"));
}
