// The MCP tools against a coordinator on "another machine": its client endpoint on loopback TCP
// with CURVE, polyphony-submit's keys, and no POLYPHONY_HOME of its own to read. status, show,
// logs and route_explain come back as the coordinator's views (view_query), the same as the CLI
// gives on its host.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "cli/command_line.h"
#include "cli/task_views.h"
#include "coordinator/coordinator.h"
#include "mcp/tools.h"
#include "protocol/security.h"
#include "test_support.h"
#include "tool_calls.h"

using namespace polyphony;
using namespace polyphony::mcp;
using namespace polyphony::testing;
using nlohmann::json;

namespace {

// A coordinator (no workers) whose client endpoint is tcp:// on loopback with CURVE, answering
// views as `polyphony serve` does, and the MCP tools of a client holding an allowed key.
struct RemoteCoordinator {
  TempDir home{"polyphony-mcp-remote"};
  TempDir repo_dir{"polyphony-mcp-repo"};
  std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_loopback_port());
  Settings settings;
  zmq::context_t ctx;
  std::unique_ptr<Coordinator> coordinator;
  std::atomic<bool> stop{false};
  std::thread loop;
  std::unique_ptr<Server> tools;

  RemoteCoordinator() {
    make_bare_repo(repo_dir / "app.git", {{"README.md", "# app\n"}, {"src/pager.c", "int main(void) { return 0; }\n"}});
    const auto coordinator_keys = *protocol::generate_key_pair();
    const auto client_keys = *protocol::generate_key_pair();
    REQUIRE(protocol::write_key_pair(home / "keys", "coordinator", coordinator_keys, false).ok());
    REQUIRE(protocol::write_key_pair(home / "keys/clients", "alice", client_keys, false).ok());
    std::filesystem::remove(home / "keys/clients/alice.key");
    write_file(home / "config.yaml", "coordinator:\n  embedded_worker: false\n  client_endpoint: \"" + endpoint +
                                         "\"\n  secret_key_file: keys/coordinator.key\n"
                                         "  allowed_clients_dir: keys/clients\n");
    auto s = load_settings(home.path());
    REQUIRE(s.ok());
    settings = *s;
    auto c = Coordinator::create(ctx, settings, {}, {endpoint});
    REQUIRE(c.ok());
    coordinator = std::move(*c);
    coordinator->serve_views([this](const protocol::ViewQuery& q) { return cli::answer_view(q, settings); });
    loop = std::thread([this] { coordinator->run(stop); });
    ToolOptions options;
    options.target = {endpoint, protocol::CurveClientKeys{client_keys, coordinator_keys.public_key}};
    options.local = false;
    tools = server_for(options);
  }
  ~RemoteCoordinator() {
    stop = true;
    if (loop.joinable()) loop.join();
  }
};

}  // namespace

TEST_CASE("over CURVE the tools read the remote coordinator's views: status, show, logs and route_explain") {
  RemoteCoordinator r;
  const std::string repo = (r.repo_dir / "app.git").string();
  json spawned = call(*r.tools, "spawn", {{"title", "Fix the pager"}, {"repo", repo}, {"agent", "scripted"}});
  INFO(spawned.dump());
  REQUIRE(spawned["isError"] == false);
  const std::string id = spawned["structuredContent"]["id"];
  // With no worker it rests CLAIMED once scored: the views below compare a state that holds still.
  cli::Args none;
  REQUIRE(eventually([&] {
    auto tasks = cli::status_json(none, r.settings.config);
    return tasks.ok() && tasks->size() == 1 && (*tasks)[0]["state"] == "CLAIMED";
  }));

  // status lists every task (no ids needed), as `status --json` on the coordinator's host.
  json listed = call(*r.tools, "status", json::object());
  INFO(listed.dump());
  REQUIRE(listed["isError"] == false);
  CHECK(listed["structuredContent"]["tasks"] == *cli::status_json(none, r.settings.config));
  REQUIRE(listed["structuredContent"]["tasks"].size() == 1);
  CHECK(listed["structuredContent"]["tasks"][0]["id"] == id);
  json failed_only = call(*r.tools, "status", {{"states", {"failed"}}});
  CHECK(failed_only["structuredContent"]["tasks"].empty());

  json shown = call(*r.tools, "show", {{"id", id}});
  REQUIRE(shown["isError"] == false);
  CHECK(shown["structuredContent"] == *cli::show_json(id, r.settings.config));
  CHECK(shown["structuredContent"]["events"].size() >= 2);

  // logs: the coordinator's files, paged there.
  const std::string text = "editing pager.c\nmake test: ok \xc3\xa9\n";
  write_file(r.settings.config.log_dir / id / "1-agent.log", text);
  cli::Args logs_args;
  logs_args.positional = {id};
  const std::string whole = *cli::logs_text(logs_args, r.settings.config);
  REQUIRE(whole.find(text) != std::string::npos);
  json tail = call(*r.tools, "logs", {{"id", id}, {"max_bytes", 10}});
  REQUIRE(tail["isError"] == false);
  CHECK(tail["structuredContent"]["total_bytes"] == whole.size());
  CHECK(tail["structuredContent"]["next_offset"] == whole.size());
  CHECK(whole.substr(tail["structuredContent"]["offset"].get<size_t>()) == tail["structuredContent"]["text"]);
  std::string paged;
  for (size_t offset = 0; offset < whole.size();) {
    json page = call(*r.tools, "logs", {{"id", id}, {"offset", offset}, {"max_bytes", 7}})["structuredContent"];
    REQUIRE(page["next_offset"].get<size_t>() > offset);
    paged += page["text"].get<std::string>();
    offset = page["next_offset"];
  }
  CHECK(paged == whole);

  // route_explain scores the repository on the coordinator's host; nothing is queued.
  json route = call(*r.tools, "route_explain", {{"title", "Fix the pager"}, {"repo", repo}, {"type", "bugfix"}});
  INFO(route.dump());
  REQUIRE(route["isError"] == false);
  cli::Args explain;
  explain.positional = {"Fix the pager"};
  explain.values = {{"repo", {repo}}, {"type", {"bugfix"}}};
  CHECK(route["structuredContent"] == *cli::route_explain_json(explain, r.settings));
  CHECK(route["structuredContent"]["dimensions"].size() > 0);
  CHECK(cli::status_json(none, r.settings.config)->size() == 1);
}

TEST_CASE("over CURVE the remote views' errors are the CLI's, naming the argument") {
  RemoteCoordinator r;
  json unknown = call(*r.tools, "show", {{"id", "zzzzzzzz"}});
  CHECK(unknown["isError"] == true);
  CHECK(unknown["content"][0]["text"] == "zzzzzzzz: no task with this id (see `polyphony status`)");
  json no_logs = call(*r.tools, "logs", {{"id", "zzzzzzzz"}});
  CHECK(no_logs["content"][0]["text"] == "zzzzzzzz: no task with this id (see `polyphony status`)");
  json url = call(*r.tools, "route_explain", {{"title", "t"}, {"repo", "https://example.com/app.git"}});
  CHECK(url["isError"] == true);
  CHECK_THAT(url["content"][0]["text"].get<std::string>(),
             Catch::StartsWith("repo: route --explain reads the repository from a local path"));
  json bad_state = call(*r.tools, "status", {{"states", {"sleeping"}}});
  CHECK(bad_state["isError"] == true);
  CHECK_THAT(bad_state["content"][0]["text"].get<std::string>(), Catch::StartsWith("states: "));
}
