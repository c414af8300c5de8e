// `polyphony doctor` against the real engine, and failures that name their real cause: a
// network typo, the first failing line of verify, the program that reports an error.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include "single_box.h"
#include "worker-agent/docker_client.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

const std::map<std::string, std::string> kOneFile{{"README.md", "x\n"}};

std::string sh_block(const std::string& script) {
  return "Do it.\n\n```sh\n" + script + "\n```\n";
}

size_t line_count(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

// The findings of `doctor --json` whose check is `check`.
std::vector<nlohmann::json> findings_of(const nlohmann::json& doc, const std::string& check) {
  std::vector<nlohmann::json> out;
  for (const auto& f : doc["findings"]) {
    if (f["check"] == check) out.push_back(f);
  }
  return out;
}

}  // namespace

TEST_CASE("doctor says OK about a healthy home and exits 0") {
  SingleBox box(kOneFile);
  auto r = box.cli({"doctor"});
  INFO(r.out + r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("OK       docker: Docker engine ") && Catch::Contains(" answers at unix://"));
  CHECK_THAT(r.out, Catch::Contains("OK       image: the worker image polyphony-worker:latest is present"));
  CHECK_THAT(r.out, Catch::Contains("agent CLIs it holds: "));
  CHECK_THAT(r.out, Catch::Contains("OK       agent scripted: `polyphony-scripted-agent` is in the image"));
  CHECK_THAT(r.out, Catch::Contains("OK       network: network 'none' exists on the engine"));
  CHECK_THAT(r.out, Catch::Contains("OK       disk: ") && Catch::Contains(" GiB free in "));
  CHECK_THAT(r.out, Catch::Contains("SKIPPED  clock: not measurable: no `polyphony serve` is running"));
  CHECK_THAT(r.out, !Catch::Contains("PROBLEM"));

  auto j = box.cli({"doctor", "--json"});
  REQUIRE(j.exit_code == 0);
  auto doc = nlohmann::json::parse(j.out);
  CHECK(doc["ok"] == true);
  for (const char* check : {"docker", "image", "network", "disk", "clock"}) {
    INFO(check);
    REQUIRE(findings_of(doc, check).size() == 1);
  }
  CHECK(findings_of(doc, "docker")[0]["health"] == "ok");
  // The image the tests build holds no kimi: a warning, which keeps the exit 0.
  auto kimi = findings_of(doc, "agent kimi");
  REQUIRE(kimi.size() == 1);
  CHECK(kimi[0]["health"] == "warning");
  CHECK_THAT(kimi[0]["where"].get<std::string>(), Catch::Contains("agents.yaml:"));
}

TEST_CASE("doctor removes the probe container a doctor that died left, and no other") {
  SingleBox box(kOneFile);
  auto docker = make_docker_client(test_docker_host());
  // A pid that no process has now: a child that has ended and been waited for.
  const pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  REQUIRE(dead > 0);
  ::waitpid(dead, nullptr, 0);
  auto make = [&](const std::string& pid) {
    ContainerSpec spec;
    spec.image = "polyphony-worker:latest";
    spec.cmd = {"true"};
    spec.network_mode = "none";
    spec.labels = {{"polyphony.doctor", "probe"}, {"polyphony.doctor.pid", pid}};
    auto id = docker->create_container(spec);
    REQUIRE(id.ok());
    return *id;
  };
  const std::string orphan = make(std::to_string(dead));
  const std::string live = make(std::to_string(::getpid()));  // this test is alive
  auto r = box.cli({"doctor"});
  INFO(r.out + r.err);
  CHECK(r.exit_code == 0);
  auto gone = docker->container_pid(orphan);
  CHECK((!gone.ok() && gone.error().code == "not_found"));
  CHECK(docker->container_pid(live).ok());
  (void)docker->remove_container(live);
}

TEST_CASE("doctor names an identity variable that is not set with identities.yaml and its line, and exits 1") {
  SingleBox box(kOneFile);
  const std::string defaults = read_file(box.home() / "identities.yaml");
  write_file(box.home() / "identities.yaml",
             defaults + "  corp:\n    env:\n      CORP_TOKEN: {from_env: POLYPHONY_DOCTOR_TEST_UNSET}\n");
  const size_t line = line_count(defaults) + 3;
  auto r = box.cli({"doctor"});
  INFO(r.out + r.err);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("PROBLEM  identity corp: env CORP_TOKEN comes from the host variable "
                                    "POLYPHONY_DOCTOR_TEST_UNSET, which is not set"));
  CHECK_THAT(r.out, Catch::Contains("identities.yaml:" + std::to_string(line) + ")"));
  CHECK_THAT(r.err, Catch::Contains("polyphony: doctor: 1 problem(s)"));

  box.set_env("POLYPHONY_DOCTOR_TEST_UNSET", "set-now");
  auto fixed = box.cli({"doctor"});
  INFO(fixed.out);
  CHECK(fixed.exit_code == 0);
  CHECK_THAT(fixed.out, Catch::Contains("OK       identity corp: resolves on this host"));
  CHECK_THAT(fixed.out, !Catch::Contains("set-now"));
}

TEST_CASE("doctor reports a missing worker image with the command that builds it, and exits 1") {
  SingleBox box(kOneFile, "container: {image: 'polyphony-no-such-image:latest'}\n");
  auto r = box.cli({"doctor"});
  INFO(r.out + r.err);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.out, Catch::Contains("PROBLEM  image: the worker image polyphony-no-such-image:latest is missing") &&
                        Catch::Contains("polyphony image build") && Catch::Contains("container.image"));
}

TEST_CASE("doctor reports a network the engine does not have, naming it, and exits 1") {
  SingleBox box(kOneFile, "container: {network: brigde}\n");
  auto r = box.cli({"doctor", "--json"});
  INFO(r.out + r.err);
  CHECK(r.exit_code == 1);
  auto doc = nlohmann::json::parse(r.out);
  CHECK(doc["ok"] == false);
  auto network = findings_of(doc, "network");
  REQUIRE(network.size() == 1);
  CHECK(network[0]["health"] == "problem");
  CHECK_THAT(network[0]["message"].get<std::string>(), Catch::Contains("network 'brigde' not found on the engine"));
  CHECK_THAT(network[0]["where"].get<std::string>(), Catch::Contains("config.yaml container.network"));

  SingleBox container(kOneFile, "container: {network: 'container:polyphony-doctor-no-such-container'}\n");
  auto c = container.cli({"doctor"});
  CHECK(c.exit_code == 1);
  CHECK_THAT(c.out, Catch::Contains("PROBLEM  network: network 'container:polyphony-doctor-no-such-container': the "
                                    "engine has no container 'polyphony-doctor-no-such-container'"));
}

TEST_CASE("a task on a misspelt network fails with the engine's words about the network, not a missing image") {
  SingleBox box({{"README.md", "x\n"}, {".polyphony.yaml", "verify: 'true'\n"}}, "container: {network: brigde}\n");
  const std::string id = box.spawn("Add a file", sh_block("echo x > x.txt"));
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "FAILED");
  auto t = box.task(id);
  const std::string reason = t["reason"].get<std::string>();
  INFO(reason);
  CHECK(t["failure_kind"] == "config");
  CHECK_THAT(reason, Catch::Contains("network brigde not found") && Catch::Contains("container.network"));
  CHECK_THAT(reason, !Catch::Contains("is missing"));
  // serve's start checks say it too (beside the start, so perhaps after the task failed).
  const std::string said = "doctor: problem network: network 'brigde' not found on the engine";
  CHECK(eventually([&] { return box.serve_log().find(said) != std::string::npos; }));
  CHECK(box.no_containers_left(id));
}

TEST_CASE("a verify failure's reason quotes the first failing line, not the last line of output") {
  const std::map<std::string, std::string> repo{
      {"README.md", "x\n"},
      {"run.sh",
       "echo 'ok tests/a.test'\necho 'FAIL tests/b.test: expected 2, got 3'\n"
       "i=0; while [ $i -lt 60 ]; do echo \"ok tests/c$i.test\"; i=$((i+1)); done\nexit 1\n"},
      {".polyphony.yaml", "verify: sh run.sh\n"},
  };
  SingleBox box(repo, "max_attempts: 1\n");
  const std::string id = box.spawn("Add a file", sh_block("echo x > x.txt"));
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE((states[id] == "FAILED" || states[id] == "BLOCKED"));
  const std::string reason = box.task(id)["reason"].get<std::string>();
  INFO(reason);
  CHECK_THAT(reason, Catch::Contains("verify `sh run.sh` exited with status 1: ok tests/a.test\n"
                                     "FAIL tests/b.test: expected 2, got 3\nok tests/c0.test"));
  CHECK_THAT(reason, !Catch::Contains("ok tests/c59.test"));
}

TEST_CASE("doctor measures a running serve's worker clock from its heartbeats") {
  SingleBox box(kOneFile);
  box.serve();
  std::string out;
  eventually(
      [&] {
        auto r = box.cli({"doctor"});
        out = r.out + r.err;
        return out.find("OK       clock local-") != std::string::npos;
      },
      std::chrono::seconds(60));
  INFO(out);
  INFO(box.serve_log());
  CHECK_THAT(out, Catch::Contains("OK       clock local-") && Catch::Contains("ms of the coordinator's"));
}

TEST_CASE("polyphony-worker and polyphony-submit call themselves by their own names in errors") {
  SingleBox box(kOneFile);
  auto worker = box.run(POLYPHONY_WORKER_CLI, {"--colour", "red"});
  CHECK(worker.exit_code == 2);
  CHECK_THAT(worker.err, Catch::StartsWith("polyphony-worker: ") && Catch::Contains("--colour"));
  auto submit = box.run(POLYPHONY_SUBMIT_CLI, {"t", "--colour", "red"});
  CHECK(submit.exit_code == 2);
  CHECK_THAT(submit.err, Catch::StartsWith("polyphony-submit: ") && Catch::Contains("--colour"));
}

TEST_CASE("an error about a setting of a missing config file names the built-in default, not a file line") {
  SingleBox box(kOneFile);
  std::filesystem::remove(box.home() / "config.yaml");
  // The default worker.coordinator is plain TCP, which a worker refuses without `insecure`.
  auto worker = box.run(POLYPHONY_WORKER_CLI, {});
  INFO(worker.err);
  CHECK(worker.exit_code == 2);
  CHECK_THAT(worker.err, Catch::StartsWith("polyphony-worker: ") &&
                             Catch::Contains("config.yaml (missing: built-in default, line ") &&
                             !Catch::Contains("config.yaml:"));
}
