// `polyphony mcp` end to end: an MCP client drives it over stdin and stdout against a running
// coordinator with real containers and the scripted agent.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <set>

#include "mcp_client.h"
#include "model_net.h"
#include "single_box.h"
#include "worker-agent/docker_client.h"

using namespace polyphony;
using namespace polyphony::testing;
using nlohmann::json;

namespace {

std::string sh_block(const std::string& script) {
  return "Do it.\n\n```sh\n" + script + "\n```\n";
}

// `polyphony mcp` on the box's home, past the initialize handshake.
std::unique_ptr<McpClient> mcp_session(const SingleBox& box, const TempDir& dir) {
  auto client = std::make_unique<McpClient>(std::vector<std::string>{POLYPHONY_CLI, "mcp"},
                                            std::map<std::string, std::string>{{"POLYPHONY_HOME", box.home().string()}},
                                            dir / "mcp.stderr");
  json init = client->request("initialize", {{"protocolVersion", "2025-11-25"},
                                             {"capabilities", json::object()},
                                             {"clientInfo", {{"name", "e2e"}, {"version", "1"}}}});
  INFO(init.dump());
  REQUIRE(init["result"]["protocolVersion"] == "2025-11-25");
  CHECK(init["result"]["serverInfo"]["name"] == "polyphony");
  CHECK(init["result"]["capabilities"]["tools"].is_object());
  client->notify("notifications/initialized");
  return client;
}

std::string text_of(const json& result) {
  return result["content"][0]["text"].get<std::string>();
}

}  // namespace

TEST_CASE("polyphony mcp lists its tools, explains a route, spawns a task, waits until it LANDED and shows it") {
  SingleBox box(sample_repo());
  box.serve();
  TempDir dir;
  auto mcp = mcp_session(box, dir);
  INFO(read_file(dir / "mcp.stderr"));

  json listed = mcp->request("tools/list", json::object());
  std::set<std::string> names;
  for (const auto& t : listed["result"]["tools"]) {
    names.insert(t["name"].get<std::string>());
    CHECK(t["inputSchema"]["type"] == "object");
    CHECK(t["outputSchema"]["type"] == "object");
  }
  CHECK(names ==
        std::set<std::string>{"spawn", "status", "show", "logs", "wait", "cancel", "retry", "route_explain", "team"});

  json route = mcp->call("route_explain", {{"title", "Add a farewell script"}, {"repo", box.origin().string()}});
  INFO(route.dump());
  REQUIRE(route["isError"] == false);
  CHECK(route["structuredContent"]["total"].is_number_integer());
  CHECK(route["structuredContent"]["dimensions"].size() > 0);
  CHECK(route["structuredContent"]["plan"].is_string());
  CHECK(box.status().empty());  // explaining queued nothing

  const std::string body = sh_block(
      "echo 'echo \"Bye, $1!\"' > bye.sh\n"
      "echo 'test \"$(sh bye.sh Ada)\" = \"Bye, Ada!\"' > tests/bye.test");
  json spawned = mcp->call(
      "spawn",
      {{"title", "Add a farewell script"}, {"repo", box.origin().string()}, {"agent", "scripted"}, {"body", body}});
  INFO(spawned.dump());
  REQUIRE(spawned["isError"] == false);
  const std::string id = spawned["structuredContent"]["id"];
  CHECK(id.size() == 8);
  CHECK(json::parse(text_of(spawned))["id"] == id);

  json waited = mcp->call("wait", {{"id", id}, {"timeout_s", 240}}, std::chrono::seconds(260));
  INFO(waited.dump());
  INFO(box.serve_log());
  REQUIRE(waited["structuredContent"]["state"] == "LANDED");
  CHECK(waited["structuredContent"]["finished"] == true);
  CHECK(waited["structuredContent"]["merged_commit"] == trim(git(box.origin(), {"rev-parse", "main"})));
  CHECK(git(box.origin(), {"show", "main:bye.sh"}) == "echo \"Bye, $1!\"\n");

  // show and status give what `show --json` and `status --json` print.
  json shown = mcp->call("show", {{"id", id}});
  REQUIRE(shown["isError"] == false);
  json cli_show = json::parse(box.cli({"show", id, "--json"}).out);
  CHECK(shown["structuredContent"] == cli_show);
  CHECK(shown["structuredContent"]["events"].back()["to"] == "LANDED");
  json status = mcp->call("status", {{"ids", {id}}});
  REQUIRE(status["structuredContent"]["tasks"].size() == 1);
  CHECK(status["structuredContent"]["tasks"][0]["state"] == "LANDED");

  // logs: a bounded tail by default, and pages from an offset that add up to what `logs` prints.
  const std::string cli_logs = box.cli({"logs", id}).out;
  REQUIRE(cli_logs.size() > 100);
  json tail = mcp->call("logs", {{"id", id}, {"max_bytes", 64}});
  REQUIRE(tail["isError"] == false);
  const json& t = tail["structuredContent"];
  CHECK(t["total_bytes"] == cli_logs.size());
  CHECK(t["next_offset"] == cli_logs.size());
  CHECK(t["text"].get<std::string>().size() <= 64);
  CHECK(cli_logs.substr(t["offset"].get<size_t>()) == t["text"].get<std::string>());
  std::string paged;
  for (size_t offset = 0; offset < cli_logs.size();) {
    json page = mcp->call("logs", {{"id", id}, {"offset", offset}, {"max_bytes", 1000}})["structuredContent"];
    REQUIRE(page["next_offset"].get<size_t>() > offset);
    paged += page["text"].get<std::string>();
    offset = page["next_offset"];
  }
  CHECK(paged == cli_logs);
  CHECK_THAT(paged, Catch::Contains("==> attempt 1 agent <==") && Catch::Contains("running sh"));

  CHECK(mcp->close() == 0);
}

TEST_CASE("polyphony mcp spawns a team on one base branch, and answers bad input with the CLI's errors") {
  std::map<std::string, std::string> files = sample_repo();
  SingleBox box(files);
  commit_to_bare(box.origin(), {{"FEATURE.md", "# the feature\n"}}, "Start the feature", "feature");
  box.serve();
  TempDir dir;
  auto mcp = mcp_session(box, dir);
  INFO(read_file(dir / "mcp.stderr"));

  const json tasks{{{"title", "Add one"}, {"agent", "scripted"}, {"body", sh_block("echo 1 > one.txt")}},
                   {{"title", "Add two"}, {"agent", "scripted"}, {"body", sh_block("echo 2 > two.txt")}}};
  json team = mcp->call("team", {{"repo", box.origin().string()}, {"base", "feature"}, {"tasks", tasks}});
  INFO(team.dump());
  REQUIRE(team["isError"] == false);
  const json ids = team["structuredContent"]["ids"];
  REQUIRE(ids.size() == 2);
  for (const auto& id : ids) {
    json waited = mcp->call("wait", {{"id", id}, {"timeout_s", 240}}, std::chrono::seconds(260));
    INFO(box.serve_log());
    CHECK(waited["structuredContent"]["state"] == "LANDED");
  }
  CHECK(git(box.origin(), {"show", "feature:one.txt"}) == "1\n");
  CHECK(git(box.origin(), {"show", "feature:two.txt"}) == "2\n");
  CHECK_THROWS(git(box.origin(), {"show", "main:one.txt"}));  // the team landed on its base, not on main

  // retry and cancel when they apply: a task whose verify fails ends FAILED or BLOCKED; retry
  // queues it again, and cancel stops it.
  json failing = mcp->call("spawn", {{"title", "Add a failing test"},
                                     {"repo", box.origin().string()},
                                     {"agent", "scripted"},
                                     {"body", sh_block("echo false > tests/fails.test")}});
  REQUIRE(failing["isError"] == false);
  const std::string bad = failing["structuredContent"]["id"];
  json ended = mcp->call("wait", {{"id", bad}, {"timeout_s", 240}}, std::chrono::seconds(260));
  INFO(ended.dump());
  const std::string end_state = ended["structuredContent"]["state"];
  REQUIRE((end_state == "BLOCKED" || end_state == "FAILED"));
  json retried = mcp->call("retry", {{"id", bad}});
  INFO(retried.dump());
  REQUIRE(retried["isError"] == false);
  CHECK(retried["structuredContent"]["state"] == "CLAIMED");
  json stopped = mcp->call("cancel", {{"id", bad}});
  INFO(stopped.dump());
  REQUIRE(stopped["isError"] == false);
  CHECK(stopped["structuredContent"]["state"] == "CANCELLED");

  // The coordinator's refusal reads as the CLI's, with the argument in place of the flag.
  const auto cli = box.cli({"spawn", "t", "--repo", "/nonexistent/repo"});
  REQUIRE(cli.exit_code == 2);
  const std::string prefix = "polyphony: --repo: ";
  REQUIRE(cli.err.rfind(prefix, 0) == 0);
  json refused = mcp->call("spawn", {{"title", "t"}, {"repo", "/nonexistent/repo"}});
  CHECK(refused["isError"] == true);
  CHECK(text_of(refused) + "\n" == "repo: " + cli.err.substr(prefix.size()));

  json cancel = mcp->call("cancel", {{"id", ids[0]}});
  CHECK(cancel["isError"] == true);
  CHECK_THAT(text_of(cancel), Catch::StartsWith(ids[0].get<std::string>() + ": cancel refused: "));
  json unknown = mcp->call("show", {{"id", "zzzzzzzz"}});
  CHECK(text_of(unknown) == "zzzzzzzz: no task with this id (see `polyphony status`)");

  // Malformed input and unknown tools are errors; the server goes on answering.
  mcp->send_line("{not json");
  CHECK(mcp->read()["error"]["code"] == -32700);
  json no_tool = mcp->request("tools/call", {{"name", "deploy"}, {"arguments", json::object()}});
  CHECK(no_tool["error"]["code"] == -32602);
  CHECK(mcp->request("ping", json::object())["result"] == json::object());
  CHECK(mcp->close() == 0);
}

namespace {

// An agent's binary the worker image was built from ($POLYPHONY_CACHE_DIR/agents/<prefix>*, the
// image build's npm cache, at `relative` inside), or the one $`override_env` names.
std::string agent_binary(const char* override_env, const std::string& prefix, const std::string& relative) {
  if (const char* given = std::getenv(override_env); given != nullptr && *given != '\0') return given;
  const char* cache = std::getenv("POLYPHONY_CACHE_DIR");
  const std::filesystem::path agents =
      std::filesystem::path(cache != nullptr && *cache != '\0' ? cache : "/var/cache/polyphony") / "agents";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(agents, ec)) {
    const auto binary = entry.path() / relative;
    if (entry.path().filename().string().rfind(prefix, 0) == 0 && std::filesystem::exists(binary)) {
      return binary.string();
    }
  }
  return "";
}

// The model's turns for a real agent using polyphony mcp: spawn the farewell script task, wait on
// the id spawn returned, then a final message.
json farewell_script(const SingleBox& box) {
  const json spawn_input{{"title", "Add a farewell script"},
                         {"repo", box.origin().string()},
                         {"agent", "scripted"},
                         {"body", sh_block("echo 'echo \"Bye, $1!\"' > bye.sh")}};
  return json{
      {"model", "fake-model-1"},
      {"steps",
       {{{"tool", {{"name", "mcp__polyphony__spawn"}, {"input", spawn_input}}}},
        {{"tool", {{"name", "mcp__polyphony__wait"}, {"input", {{"id", "{{result.id}}"}, {"timeout_s", 240}}}}}},
        {{"final", "The task landed."}}}}};
}

// Runs `argv` in the model net (loopback only; `polyphony mcp` reaches the coordinator over its
// unix socket, which no network namespace hides), in dir/work, asked to add the farewell script.
Result<ProcessResult> run_in_model_net(const ModelNet& net, const TempDir& dir, std::vector<std::string> argv,
                                       std::map<std::string, std::string> env) {
  auto pid = make_docker_client(test_docker_host())->container_pid(net.network_mode().substr(10));
  if (!pid.ok()) return pid.error();
  argv.insert(argv.begin(), {"/usr/bin/nsenter", "--net=/proc/" + std::to_string(*pid) + "/ns/net"});
  ProcessOptions o;
  o.cwd = dir / "work";
  o.timeout = std::chrono::seconds(300);
  o.stdin_data = "Add a farewell script to the sample repository through Polyphony, and wait until it lands.";
  o.env = std::move(env);
  return run_process(argv, o);
}

// What the agent's run left when it followed farewell_script: the task LANDED with its file on
// main, and the agent said so. Returns the model requests that offered tools (the agent's own
// turns: exactly three, for the tools, spawn's answer and wait's).
std::vector<json> check_farewell_landed(const SingleBox& box, const ProcessResult& run, const ModelNet& net,
                                        const std::string& provider) {
  INFO(run.out);
  INFO(run.err);
  INFO(box.serve_log());
  CHECK(run.exit_code == 0);
  const json tasks = box.status();
  REQUIRE(tasks.size() == 1);
  CHECK(tasks[0]["state"] == "LANDED");
  CHECK(tasks[0]["title"] == "Add a farewell script");
  CHECK(git(box.origin(), {"show", "main:bye.sh"}) == "echo \"Bye, $1!\"\n");
  CHECK_THAT(run.out, Catch::Contains("The task landed."));
  std::vector<json> main_requests;
  for (auto& r : net.requests(provider)) {
    const json& body = r["body"];
    if (body.is_object() && body.contains("tools") && !body["tools"].empty()) main_requests.push_back(r);
  }
  REQUIRE(main_requests.size() == 3);
  return main_requests;
}

}  // namespace

TEST_CASE("real claude with polyphony mcp as its MCP server spawns a task, waits for it, and the task lands") {
  const std::string claude =
      agent_binary("POLYPHONY_TEST_CLAUDE", "claude-", "node_modules/@anthropic-ai/claude-code-linux-x64/claude");
  INFO("no Claude Code binary: build the worker image (polyphony image build) or set POLYPHONY_TEST_CLAUDE");
  REQUIRE_FALSE(claude.empty());
  SingleBox box(sample_repo());
  box.serve();
  ModelNet net;
  TempDir dir;
  const int port = net.serve("anthropic", farewell_script(box));
  // Claude Code's --mcp-config: the server `claude mcp add polyphony -- polyphony mcp` registers.
  const json server{{"command", POLYPHONY_CLI}, {"args", {"mcp"}}, {"env", {{"POLYPHONY_HOME", box.home().string()}}}};
  write_file(dir / "mcp.json", json{{"mcpServers", {{"polyphony", server}}}}.dump(2));
  std::filesystem::create_directories(dir / "config");
  std::filesystem::create_directories(dir / "work");
  auto run = run_in_model_net(
      net, dir,
      {claude, "-p", "--mcp-config", (dir / "mcp.json").string(), "--strict-mcp-config", "--allowedTools",
       "mcp__polyphony__spawn,mcp__polyphony__wait", "--output-format", "stream-json", "--verbose"},
      {{"HOME", (dir / "config").string()},
       {"CLAUDE_CONFIG_DIR", (dir / "config").string()},
       {"ANTHROPIC_BASE_URL", "http://127.0.0.1:" + std::to_string(port)},
       {"ANTHROPIC_API_KEY", "test-anthropic-key-5150"},
       {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"},
       {"DISABLE_AUTOUPDATER", "1"},
       {"DISABLE_TELEMETRY", "1"},
       {"DISABLE_ERROR_REPORTING", "1"},
       {"CLAUDE_CODE_MAX_RETRIES", "0"},
       {"MCP_TOOL_TIMEOUT", "280000"}});
  REQUIRE(run.ok());
  const auto main_requests = check_farewell_landed(box, *run, net, "anthropic");
  // The model saw the tools, then the id from spawn, then wait's answer: LANDED. Claude Code
  // offers MCP tools to the model by name (it may defer their schemas to a tool search).
  CHECK_THAT(main_requests[0]["body"].dump(), Catch::Contains("mcp__polyphony__spawn"));
  const std::string id = box.status()[0]["id"];
  CHECK_THAT(main_requests[1]["body"]["messages"].dump(), Catch::Contains(id));
  CHECK_THAT(main_requests[2]["body"]["messages"].dump(), Catch::Contains("LANDED"));
}

TEST_CASE("real codex with polyphony mcp in its config.toml spawns a task, waits for it, and the task lands") {
  const std::string codex =
      agent_binary("POLYPHONY_TEST_CODEX", "codex-",
                   "node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex");
  {
    INFO("no Codex binary: build the worker image (polyphony image build) or set POLYPHONY_TEST_CODEX");
    REQUIRE_FALSE(codex.empty());
  }
  SingleBox box(sample_repo());
  box.serve();
  ModelNet net;
  TempDir dir;
  // Codex offers MCP tools to a model it does not know in a namespace (fake_model/README.md).
  const int port = net.serve("openai", farewell_script(box));
  // The README's [mcp_servers.polyphony], beside the stand-in provider.
  std::filesystem::create_directories(dir / "codex");
  std::filesystem::create_directories(dir / "home");
  std::filesystem::create_directories(dir / "work");
  write_file(dir / "codex/config.toml",
             "model = \"fake-model-1\"\nmodel_provider = \"fake\"\napproval_policy = \"never\"\n"
             "sandbox_mode = \"danger-full-access\"\ncheck_for_update_on_startup = false\nweb_search = \"disabled\"\n"
             "[model_providers.fake]\nname = \"Fake\"\nbase_url = \"http://127.0.0.1:" +
                 std::to_string(port) +
                 "/v1\"\nenv_key = \"FAKE_MODEL_API_KEY\"\nwire_api = \"responses\"\nrequest_max_retries = 0\n"
                 "stream_max_retries = 0\n[analytics]\nenabled = false\n[feedback]\nenabled = false\n"
                 "[features]\nplugins = false\n"
                 "[mcp_servers.polyphony]\ncommand = \"" +
                 std::string(POLYPHONY_CLI) +
                 "\"\nargs = [\"mcp\"]\n"
                 "env = { POLYPHONY_HOME = \"" +
                 box.home().string() + "\" }\ntool_timeout_sec = 300\n");
  auto run = run_in_model_net(
      net, dir, {codex, "exec", "--json", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox"},
      {{"HOME", (dir / "home").string()},
       {"CODEX_HOME", (dir / "codex").string()},
       {"FAKE_MODEL_API_KEY", "test-openai-key-6160"},
       {"LANG", "C.UTF-8"}});
  REQUIRE(run.ok());
  const auto main_requests = check_farewell_landed(box, *run, net, "openai");
  // The model saw polyphony's tools, then the id from spawn, then wait's answer: LANDED.
  CHECK_THAT(main_requests[0]["body"]["tools"].dump(), Catch::Contains("mcp__polyphony") && Catch::Contains("spawn"));
  const std::string id = box.status()[0]["id"];
  CHECK_THAT(main_requests[1]["body"]["input"].dump(), Catch::Contains(id));
  CHECK_THAT(main_requests[2]["body"]["input"].dump(), Catch::Contains("LANDED"));
}

TEST_CASE("polyphony mcp reaches a coordinator on another host over CURVE with polyphony-submit's flags") {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_loopback_port());
  SingleBox box(sample_repo(), "coordinator: {client_endpoint: \"" + endpoint +
                                   "\", secret_key_file: keys/coordinator.key, allowed_clients_dir: keys/clients}\n");
  const auto keys = box.home() / "keys";
  TempDir elsewhere;  // the client's machine: its own (empty) POLYPHONY_HOME and keys
  for (const auto& [name, dir] :
       std::map<std::string, std::filesystem::path>{{"coordinator", keys}, {"alice", elsewhere / "keys"}}) {
    auto gen = box.cli({"keys", "gen", "--name", name, "--out", dir.string()});
    INFO(gen.err);
    REQUIRE(gen.exit_code == 0);
  }
  std::filesystem::create_directories(keys / "clients");
  std::filesystem::copy_file(elsewhere / "keys/alice.pub", keys / "clients/alice.pub");
  box.serve();
  McpClient mcp({POLYPHONY_CLI, "mcp", "--coordinator", endpoint, "--secret-key",
                 (elsewhere / "keys/alice.key").string(), "--coordinator-key", (keys / "coordinator.pub").string()},
                {{"POLYPHONY_HOME", (elsewhere / "home").string()}}, elsewhere / "mcp.stderr");
  json init = mcp.request("initialize", {{"protocolVersion", "2025-06-18"},
                                         {"capabilities", json::object()},
                                         {"clientInfo", {{"name", "e2e"}, {"version", "1"}}}});
  REQUIRE(init["result"]["protocolVersion"] == "2025-06-18");
  mcp.notify("notifications/initialized");
  INFO(read_file(elsewhere / "mcp.stderr"));

  json spawned = mcp.call("spawn", {{"title", "Add a remote file"},
                                    {"repo", box.origin().string()},
                                    {"agent", "scripted"},
                                    {"body", sh_block("echo remote > remote.txt")}});
  INFO(spawned.dump());
  REQUIRE(spawned["isError"] == false);
  const std::string id = spawned["structuredContent"]["id"];
  json waited = mcp.call("wait", {{"id", id}, {"timeout_s", 240}}, std::chrono::seconds(260));
  INFO(box.serve_log());
  CHECK(waited["structuredContent"]["state"] == "LANDED");
  CHECK(git(box.origin(), {"show", "main:remote.txt"}) == "remote\n");
  // status, show, logs and route_explain: the coordinator's views over CURVE (its home is not on
  // this machine), the same as the CLI gives on the coordinator's host.
  json status = mcp.call("status", {{"ids", {id}}});
  CHECK(status["structuredContent"]["tasks"][0]["state"] == "LANDED");
  json listed = mcp.call("status", {{"states", {"landed"}}});
  INFO(listed.dump());
  REQUIRE(listed["isError"] == false);
  CHECK(listed["structuredContent"]["tasks"] == json::parse(box.cli({"status", "--json", "--state", "landed"}).out));
  json shown = mcp.call("show", {{"id", id}});
  INFO(shown.dump());
  REQUIRE(shown["isError"] == false);
  CHECK(shown["structuredContent"] == json::parse(box.cli({"show", id, "--json"}).out));
  CHECK(shown["structuredContent"]["events"].back()["to"] == "LANDED");
  const std::string cli_logs = box.cli({"logs", id}).out;
  REQUIRE(cli_logs.size() > 100);
  json tail = mcp.call("logs", {{"id", id}, {"max_bytes", 64}});
  REQUIRE(tail["isError"] == false);
  CHECK(tail["structuredContent"]["total_bytes"] == cli_logs.size());
  CHECK(cli_logs.substr(tail["structuredContent"]["offset"].get<size_t>()) == tail["structuredContent"]["text"]);
  std::string paged;
  for (size_t offset = 0; offset < cli_logs.size();) {
    json page = mcp.call("logs", {{"id", id}, {"offset", offset}, {"max_bytes", 700}})["structuredContent"];
    REQUIRE(page["next_offset"].get<size_t>() > offset);
    paged += page["text"].get<std::string>();
    offset = page["next_offset"];
  }
  CHECK(paged == cli_logs);
  json route = mcp.call("route_explain", {{"title", "Add a farewell script"}, {"repo", box.origin().string()}});
  INFO(route.dump());
  REQUIRE(route["isError"] == false);
  CHECK(route["structuredContent"] ==
        json::parse(
            box.cli({"route", "--explain", "--json", "Add a farewell script", "--repo", box.origin().string()}).out));
  CHECK(box.status().size() == 1);  // explaining queued nothing
  // Errors read as the CLI's on the coordinator's host.
  json unknown = mcp.call("show", {{"id", "zzzzzzzz"}});
  CHECK(unknown["isError"] == true);
  CHECK(text_of(unknown) == "zzzzzzzz: no task with this id (see `polyphony status`)");
  json bad_attempt = mcp.call("logs", {{"id", id}, {"attempt", 9}});
  CHECK(bad_attempt["isError"] == true);
  CHECK_THAT(text_of(bad_attempt), Catch::StartsWith("attempt: task " + id + " has 1 attempt(s) so far"));
  CHECK(mcp.close() == 0);

  // Without the key pair, the flags are refused before the server starts, as polyphony-submit does.
  auto plain = box.cli({"mcp", "--coordinator", endpoint, "--secret-key", (elsewhere / "keys/alice.key").string()});
  CHECK(plain.exit_code == 2);
  CHECK_THAT(plain.err, Catch::Contains("--secret-key and --coordinator-key go together"));
}
