// Loading the four config files: defaults, and errors that name file:line.
#include <catch2/catch.hpp>

#include <algorithm>

#include "common/config.h"
#include "test_support.h"

using namespace polyphony;
using polyphony::testing::TempDir;
using polyphony::testing::write_file;

namespace {

// Writes `files` into a fresh home and loads it.
Result<Settings> load_with(const TempDir& dir, const std::map<std::string, std::string>& files) {
  for (const auto& [name, text] : default_config_files()) write_file(dir / name, text);
  for (const auto& [name, text] : files) write_file(dir / name, text);
  return load_settings(dir.path());
}

}  // namespace

TEST_CASE("the files init writes load and give the documented defaults") {
  TempDir dir;
  auto s = load_with(dir, {});
  REQUIRE(s.ok());
  CHECK(s->config.workspace_root == dir.path() / "workspaces");
  CHECK(s->config.max_concurrency == 4);
  CHECK(s->config.container.network == "bridge");
  CHECK(s->config.container.memory_bytes == (4LL << 30));
  CHECK(s->config.container.uid == 1000);
  for (const char* agent : {"scripted", "claude", "codex", "kimi"}) CHECK(s->agents.count(agent) == 1);
  CHECK(s->agents.at("scripted").command.front() == "polyphony-scripted-agent");
  CHECK(s->agents.at("claude").identity == "anthropic");
  CHECK(s->routing.default_agent == "codex");
  CHECK_FALSE(s->routing.rules.empty());
}

TEST_CASE("a missing home loads as the defaults") {
  TempDir dir;
  auto s = load_settings(dir.path() / "absent");
  REQUIRE(s.ok());
  CHECK(s->agents.count("scripted") == 1);
}

TEST_CASE("config errors name the file, line and what is wrong") {
  struct Case {
    std::string file;
    std::string text;
    std::string where;    // expected suffix of Error::where ("config.yaml:3")
    std::string message;  // expected part of the message
  };
  const std::vector<Case> cases{
      {"config.yaml", "poll_interval_ms: 100\nmax_concurency: 3\n", "config.yaml:2:1", "unknown key 'max_concurency'"},
      {"config.yaml", "max_concurrency: lots\n", "config.yaml:1:18", "must be an integer"},
      {"config.yaml", "max_concurrency: 2\npoll_interval_ms: 50\nmax_concurrency: 3\n", "config.yaml:3:1",
       "duplicate key 'max_concurrency'"},
      {"config.yaml", "container:\n  memory: 4 gigs\n", "config.yaml:2:11", "size like 4g"},
      {"config.yaml", "container:\n  user: \"0:0\"\n", "config.yaml:2:9", "non-root"},
      {"config.yaml", "repos:\n  app:\n    verify: make\n", "config.yaml:2:3", "needs a url"},
      {"config.yaml", "workspace_root: [unclosed\n", "config.yaml:2:1", "malformed YAML"},
      {"agents.yaml", "agents:\n  x:\n    command: []\n", "agents.yaml:3:14", "must not be empty"},
      {"agents.yaml", "agents:\n  x:\n    command: [a]\n    tier: medium\n", "agents.yaml:4:11", "cheap or strong"},
      {"routing.yaml", "rules:\n  - match: {colour: red}\n    agent: scripted\n", "routing.yaml:2:13",
       "unknown key 'colour'"},
      {"routing.yaml", "rules:\n  - match: {risk: high}\n    agent: nobody\n", "routing.yaml:2", "agent 'nobody'"},
      {"routing.yaml", "default:\n  agent: ghost\n", "routing.yaml:2", "default agent 'ghost'"},
      {"identities.yaml", "identities:\n  a:\n    mounts:\n      - host: /x\n        container: rel\n",
       "identities.yaml:5:20", "absolute path"},
      {"identities.yaml", "identities:\n  a:\n    env:\n      K: {value: v, from_env: V}\n", "identities.yaml:4:10",
       "exactly one"},
      {"identities.yaml", "identities:\n  a:\n    files:\n      - {host: /x/auth.json, as: ../auth.json}\n",
       "identities.yaml:4:9", "relative path inside"},
      {"identities.yaml", "identities:\n  a:\n    files: /x/auth.json\n", "identities.yaml:3:12", "must be a list"},
      {"agents.yaml", "agents:\n  x:\n    command: [a]\n    output: xml\n", "agents.yaml:4:13",
       "text, claude-stream-json or codex-json"},
      {"agents.yaml", "agents:\n  x:\n    command: [a]\n    config_dir_env: \"A B\"\n", "agents.yaml:4:21",
       "variable name"},
      {"config.yaml", "budget:\n  max_turns: -1\n", "config.yaml:2:14", "budget.max_turns must be 0"},
      {"config.yaml", "budget:\n  max_turn: 3\n", "config.yaml:2:3", "unknown key 'max_turn'"},
      {"routing.yaml", "rules:\n  - match: {risk: high}\n    agent: scripted\n    budget: {max_tokenz: 5}\n",
       "routing.yaml:4:14", "unknown key 'max_tokenz'"},
  };
  for (const auto& c : cases) {
    INFO(c.file << ": " << c.text);
    TempDir dir;
    auto s = load_with(dir, {{c.file, c.text}});
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == "config");
    CHECK_THAT(s.error().where, Catch::Contains(c.where));
    CHECK_THAT(s.error().message, Catch::Contains(c.message));
  }
}

TEST_CASE("an agent naming an unknown identity is reported in agents.yaml") {
  TempDir dir;
  auto s = load_with(
      dir, {{"agents.yaml", "agents:\n  scripted:\n    command: [a]\n  x:\n    command: [b]\n    identity: nope\n"},
            {"routing.yaml", "default: {agent: scripted}\n"}});
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.error().where, Catch::EndsWith("agents.yaml:4"));
  CHECK_THAT(s.error().message, Catch::Contains("identity 'nope'"));
}

TEST_CASE("repos resolve relative paths against the home and are found by name or url") {
  TempDir dir;
  auto s = load_with(dir, {{"config.yaml", "repos:\n  app:\n    url: repos/app.git\n    verify: make test\n"}});
  REQUIRE(s.ok());
  const RepoConfig* by_name = find_repo(s->config, "app");
  REQUIRE(by_name != nullptr);
  CHECK(by_name->url == (dir.path() / "repos/app.git").string());
  CHECK(find_repo(s->config, by_name->url) == by_name);
  CHECK(find_repo(s->config, "other") == nullptr);
}

TEST_CASE("sizes parse with units") {
  CHECK(parse_bytes("512") == 512);
  CHECK(parse_bytes("4k") == 4096);
  CHECK(parse_bytes("2m") == (2LL << 20));
  CHECK(parse_bytes("4G") == (4LL << 30));
  CHECK_FALSE(parse_bytes("").has_value());
  CHECK_FALSE(parse_bytes("lots").has_value());
  CHECK_FALSE(parse_bytes("-1").has_value());
  CHECK_FALSE(parse_bytes("3 parsecs").has_value());
}

namespace {

constexpr const char* kKey = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

Result<Settings> load_config_text(const TempDir& dir, const std::string& config_yaml) {
  return load_with(dir, {{"config.yaml", config_yaml}});
}

}  // namespace

TEST_CASE("plain TCP on a non-loopback worker endpoint is a config error naming the key to set") {
  TempDir dir;
  for (bool insecure : {false, true}) {
    auto s = load_config_text(dir, std::string("coordinator:\n  worker_endpoint: tcp://0.0.0.0:7701\n") +
                                       (insecure ? "  insecure: true\n" : ""));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().message.find("coordinator.secret_key_file") != std::string::npos);
    CHECK(s.error().where == (dir / "config.yaml").string() + ":2:20");
  }
}

TEST_CASE("plain TCP on loopback needs insecure: true") {
  TempDir dir;
  auto refused = load_config_text(dir, "coordinator:\n  client_endpoint: tcp://127.0.0.1:7702\n");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().message.find("coordinator.insecure") != std::string::npos);
  auto allowed = load_config_text(dir, "coordinator:\n  client_endpoint: tcp://127.0.0.1:7702\n  insecure: true\n");
  REQUIRE(allowed.ok());
  CHECK(allowed->config.coordinator_security.insecure);
}

TEST_CASE("CURVE settings load with paths resolved against the home") {
  TempDir dir;
  auto s = load_config_text(dir, std::string("coordinator:\n"
                                             "  worker_endpoint: tcp://0.0.0.0:7701\n"
                                             "  secret_key_file: keys/coordinator.key\n"
                                             "  allowed_workers_dir: keys/workers\n"
                                             "  allowed_client_keys: [\"") +
                                     kKey +
                                     "\"]\n"
                                     "worker:\n"
                                     "  secret_key_file: /etc/polyphony/worker1.key\n"
                                     "  coordinator_public_key_file: keys/coordinator.pub\n");
  REQUIRE(s.ok());
  const auto& c = s->config.coordinator_security;
  CHECK(c.curve());
  CHECK(c.secret_key_file == dir.path() / "keys/coordinator.key");
  CHECK(c.allowed_workers_dir == dir.path() / "keys/workers");
  CHECK(c.allowed_client_keys == std::vector<std::string>{kKey});
  CHECK(c.where.at("secret_key_file") == (dir / "config.yaml").string() + ":3:20");
  const auto& w = s->config.worker_security;
  CHECK(w.secret_key_file == "/etc/polyphony/worker1.key");
  CHECK(w.coordinator_public_key_file == dir.path() / "keys/coordinator.pub");
}

TEST_CASE("CURVE settings that cannot work are config errors at their line") {
  struct Case {
    std::string yaml;
    std::string says;
    int line;
  };
  const std::vector<Case> cases{
      {"coordinator:\n  worker_endpoint: tcp://0.0.0.0:7701\n  secret_key_file: c.key\n", "no key is allowed", 2},
      {"coordinator:\n  allowed_worker_keys: [\"not-a-key\"]\n", "not a CURVE public key", 2},
      {"coordinator:\n  public_key_file: c.pub\n", "needs coordinator.secret_key_file", 2},
      {"worker:\n  secret_key_file: w.key\n", "coordinator's key", 2},
      {"worker:\n  coordinator_public_key_file: c.pub\n", "worker.secret_key_file", 2},
      {"worker:\n  coordinator_public_key: short\n", "not a CURVE public key", 2},
      {"coordinator:\n  insecure: maybe\n", "insecure", 2},
  };
  for (const auto& c : cases) {
    INFO(c.yaml);
    TempDir dir;
    auto s = load_config_text(dir, c.yaml);
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().message.find(c.says) != std::string::npos);
    CHECK(s.error().where.rfind((dir / "config.yaml").string() + ":" + std::to_string(c.line) + ":", 0) == 0);
  }
}

TEST_CASE(
    "the shipped claude and codex profiles read the task on stdin, parse structured output and get their own config "
    "dir") {
  TempDir dir;
  auto s = load_with(dir, {});
  REQUIRE(s.ok());
  const auto& claude = s->agents.at("claude");
  CHECK(claude.stdin_template == "{prompt}");
  CHECK(claude.output_format == "claude-stream-json");
  CHECK(claude.config_dir_env == "CLAUDE_CONFIG_DIR");
  CHECK(std::find(claude.command.begin(), claude.command.end(), "{prompt}") == claude.command.end());
  const auto& codex = s->agents.at("codex");
  CHECK(codex.output_format == "codex-json");
  CHECK(codex.config_dir_env == "CODEX_HOME");
  CHECK(std::find(codex.command.begin(), codex.command.end(), "--full-auto") == codex.command.end());
  CHECK(s->config.budget.max_turns == 0);
  // Credentials are alternatives: none is required by itself.
  for (const auto& e : s->identities.at("anthropic").env) CHECK(e.optional);
}

TEST_CASE("budgets load from config.yaml and from a routing rule, and identity files from a path or {host, as}") {
  TempDir dir;
  auto s = load_with(dir, {{"config.yaml", "budget:\n  max_turns: 20\n  max_tokens: 100000\n  max_wall_s: 600\n"},
                           {"routing.yaml",
                            "rules:\n  - match: {risk: high}\n    agent: scripted\n    budget: {max_turns: 5}\n"
                            "default:\n  agent: scripted\n"},
                           {"identities.yaml",
                            "identities:\n  anthropic:\n    files:\n      - ~/.claude/.credentials.json\n"
                            "      - {host: /etc/codex.toml, as: config.toml}\n"
                            "  openai: {}\n  moonshot: {}\n"}});
  REQUIRE(s.ok());
  CHECK(s->config.budget.max_turns == 20);
  CHECK(s->config.budget.max_tokens == 100000);
  CHECK(s->config.budget.max_wall_s == 600);
  REQUIRE(s->routing.rules.front().budget.has_value());
  CHECK(s->routing.rules.front().budget->max_turns == 5);
  const auto& files = s->identities.at("anthropic").files;
  REQUIRE(files.size() == 2);
  CHECK(files[0].host_path == "~/.claude/.credentials.json");
  CHECK(files[0].as == ".credentials.json");
  CHECK(files[1].as == "config.toml");
  CHECK(files[1].line == 5);
}
