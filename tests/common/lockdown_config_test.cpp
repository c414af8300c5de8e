// The container limits and allow-list of config.yaml, redaction of secrets and URL passwords,
// and a POLYPHONY_HOME that stays private whatever the umask.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "common/config.h"
#include "common/log.h"
#include "common/private_files.h"
#include "test_support.h"

using namespace polyphony;
using polyphony::testing::TempDir;
using polyphony::testing::write_file;
namespace fs = std::filesystem;

namespace {

int mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return static_cast<int>(st.st_mode & 07777);
}

}  // namespace

TEST_CASE("container limits and the allow-list default to locked down and load from config.yaml") {
  TempDir dir;
  auto defaults = load_config(dir / "absent.yaml", dir.path());
  REQUIRE(defaults.ok());
  CHECK(defaults->container.pids_limit == 512);
  CHECK(defaults->container.workspace_limit_bytes == (10LL << 30));
  CHECK(defaults->container.output_limit_bytes == (16LL << 20));
  CHECK(defaults->container.read_only_root);
  CHECK(defaults->container.cap_add.empty());
  CHECK(defaults->container.allowed_images.empty());

  write_file(dir / "config.yaml",
             "container:\n  pids_limit: 64\n  workspace_limit: 64m\n  output_limit: 1m\n  read_only_root: false\n"
             "  cap_add: [NET_BIND_SERVICE]\n  allowed_images: [a:1, b:2]\n  allowed_networks: [none]\n"
             "  allowed_mount_roots: [/srv/identities]\n");
  auto c = load_config(dir / "config.yaml", dir.path());
  REQUIRE(c.ok());
  CHECK(c->container.pids_limit == 64);
  CHECK(c->container.workspace_limit_bytes == (64LL << 20));
  CHECK(c->container.output_limit_bytes == (1LL << 20));
  CHECK_FALSE(c->container.read_only_root);
  CHECK(c->container.cap_add == std::vector<std::string>{"NET_BIND_SERVICE"});
  CHECK(c->container.allowed_images == std::vector<std::string>{"a:1", "b:2"});
  CHECK(c->container.allowed_networks == std::vector<std::string>{"none"});
  CHECK(c->container.allowed_mount_roots == std::vector<std::string>{"/srv/identities"});

  for (const auto& [text, message] : std::vector<std::pair<std::string, std::string>>{
           {"container:\n  workspace_limit: lots\n", "size like 10g"},
           {"container:\n  pids_limit: -1\n", "pids_limit"},
           {"container:\n  cap_add: [\"ALL; rm\"]\n", "capability names"},
           {"container:\n  allowed_mount_roots: [relative]\n", "absolute paths"}}) {
    write_file(dir / "config.yaml", text);
    auto bad = load_config(dir / "config.yaml", dir.path());
    INFO(text);
    REQUIRE_FALSE(bad.ok());
    CHECK_THAT(bad.error().message, Catch::Contains(message));
  }
}

TEST_CASE("redaction hides registered secrets and the passwords of URLs") {
  register_secret("sk-redact-test-41c9");
  CHECK(redact("token sk-redact-test-41c9 twice sk-redact-test-41c9") == "token *** twice ***");
  CHECK(redact("fetching https://bot:ghp_abc123XYZ@github.com/acme/w.git failed") ==
        "fetching https://bot:***@github.com/acme/w.git failed");
  CHECK(redact("remote 'http://u:p%40ss@host:8080/x' and ssh://git@host/x") ==
        "remote 'http://u:***@host:8080/x' and ssh://git@host/x");
  CHECK(redact("https://github.com/acme/w.git and a:b@c") == "https://github.com/acme/w.git and a:b@c");
  CHECK(redact("already https://u:***@host") == "already https://u:***@host");
}

TEST_CASE("POLYPHONY_HOME and what Polyphony keeps in it are private whatever the umask") {
  const mode_t old = ::umask(022);
  TempDir dir;
  Config c;
  c.home = dir / "home";
  c.state_db = c.home / "state.db";
  c.queue_db = c.home / "queue.db";
  c.log_dir = c.home / "logs";
  c.workspace_root = c.home / "workspaces";
  write_file(c.home / "config.yaml", "{}\n");
  write_file(c.home / "state.db", "");
  write_file(c.home / "state.db-wal", "");
  write_file(c.log_dir / "t1/1-agent.log", "out\n");
  write_file(c.home / "keys/w.key", "k\n");
  fs::create_directories(c.workspace_root / "tasks");
  REQUIRE(secure_home(c).ok());
  CHECK(mode_of(c.home) == 0700);
  CHECK(mode_of(c.home / "config.yaml") == 0600);
  CHECK(mode_of(c.home / "state.db") == 0600);
  CHECK(mode_of(c.home / "state.db-wal") == 0600);
  CHECK(mode_of(c.log_dir) == 0700);
  CHECK(mode_of(c.log_dir / "t1") == 0700);
  CHECK(mode_of(c.log_dir / "t1/1-agent.log") == 0600);
  CHECK(mode_of(c.home / "keys") == 0700);
  CHECK(mode_of(c.home / "keys/w.key") == 0600);
  CHECK(mode_of(c.workspace_root) == 0700);
  const int fd = open_private_append(c.log_dir / "t1/2-agent.log");
  REQUIRE(fd >= 0);
  ::close(fd);
  CHECK(mode_of(c.log_dir / "t1/2-agent.log") == 0600);
  ::umask(old);
}

TEST_CASE("output redacted piece by piece hides a secret or a URL password split anywhere across two pieces") {
  const std::string secret = "sk-split-test-90af";
  register_secret(secret);
  const std::string output = "before " + secret + " middle https://bot:" + secret + "x@example.com/r.git after\n";
  for (size_t cut = 0; cut <= output.size(); ++cut) {
    std::string held, stored;
    for (const std::string& piece : {output.substr(0, cut), output.substr(cut)}) {
      std::string text = redact(held + piece);
      const size_t keep = redaction_hold(text);
      held = text.substr(text.size() - keep);
      text.resize(text.size() - keep);
      stored += text;
    }
    stored += held;  // the attempt's end
    INFO("cut at " << cut << ": " << stored);
    CHECK(stored == "before *** middle https://bot:***@example.com/r.git after\n");
  }
  CHECK(redaction_hold("nothing to hold\n") == 0);
  CHECK(redaction_hold("a prefix sk-spl") == 6);
  CHECK(redaction_hold("see https://github.com/acme ok") == 0);
  CHECK(redaction_hold("see https:/") == 7);
}
