// Landing end to end: a base that moves after verify (the rebased tree fails verify; the
// agent's authorship survives the rebases), two workers racing to push into one origin, and an
// origin whose pre-receive hook refuses once. An origin with a receive hook takes the real
// `git push --atomic` path (worker-agent/landing.cpp), never the in-process one.
#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

namespace fs = std::filesystem;

const std::map<std::string, std::string> kRepo{
    {"README.md", "# landing\n"},
    {".polyphony.yaml", "verify: sh verify.sh\n"},
    {"verify.sh",
     "set -e\ntest -f done.txt\n"
     "if [ -f forbid.txt ]; then echo 'forbid.txt is on the base: done.txt may not land' >&2; exit 1; fi\n"},
};

bool held_in(const SingleBox& box, const std::string& id, const std::string& state) {
  return eventually(
      [&] { return box.serve_log().find("task " + id + ": test hold in " + state + " starts") != std::string::npos; },
      std::chrono::seconds(120));
}

int commits_with_subject(const fs::path& origin, const std::string& subject) {
  const std::string log = git(origin, {"log", "--format=%s", "main"});
  int n = 0;
  for (size_t pos = 0; (pos = log.find(subject + "\n", pos)) != std::string::npos; pos += subject.size()) ++n;
  return n;
}

bool history_has(const SingleBox& box, const std::string& id, const std::string& text) {
  auto show = nlohmann::json::parse(box.cli({"show", id, "--json"}).out);
  for (const auto& e : show["events"]) {
    if (e["reason"].get<std::string>().find(text) != std::string::npos) return true;
  }
  return box.cli({"logs", id}).out.find(text) != std::string::npos;
}

void install_hook(const fs::path& origin, const std::string& name, const std::string& script) {
  const fs::path hook = origin / "hooks" / name;
  write_file(hook, script);
  fs::permissions(hook, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
}

}  // namespace

TEST_CASE(
    "a base that moves after verify is rebased and verified again: a tree that then fails verify never lands and says "
    "why") {
  SingleBox box(kRepo, "max_attempts: 1\n");
  TempDir gate("polyphony-gate");
  const fs::path release = gate.path() / "release";
  const std::string id = box.spawn("Add done.txt", "```sh\necho done > done.txt\n```\n");
  box.serve({{"POLYPHONY_TEST_HOLD_LANDING_UNTIL", release.string()}});
  REQUIRE(held_in(box, id, "LANDING"));  // verified and granted its landing, not yet landed
  const std::string moved = commit_to_bare(box.origin(), {{"forbid.txt", "no\n"}}, "Forbid done.txt");
  write_file(release, "");
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(box.cli({"logs", id}).out);
  REQUIRE(states[id] == "BLOCKED");
  auto t = box.task(id);
  CHECK(t["failure_kind"] == "verify");
  CHECK_THAT(t["reason"].get<std::string>(), Catch::Contains("forbid.txt is on the base: done.txt may not land"));
  CHECK(history_has(box, id, "rebased the branch onto it; verifying again before landing"));
  // Nothing of the task reached the base, which is where the test moved it.
  CHECK(trim(git(box.origin(), {"rev-parse", "main"})) == moved);
  CHECK(commits_with_subject(box.origin(), "Add done.txt") == 0);
  CHECK(box.no_containers_left(id));
}

TEST_CASE("the agent's commit keeps its author, date and message through a rebase while it worked and one at landing") {
  SingleBox box(kRepo);
  TempDir gate("polyphony-gate");
  const fs::path release = gate.path() / "release";
  // The agent commits as someone else, with a date of its own; nothing is left for the scripted
  // agent to commit after it.
  const std::string id = box.spawn(
      "Authored change",
      std::string("```sh\n") + kWaitForGo +
          "echo done > done.txt\ngit add done.txt\n"
          "GIT_AUTHOR_DATE='2001-02-03T04:05:06Z' git -c user.name='Ada Lovelace' -c user.email=ada@example.org "
          "commit -q -m 'Ada writes done.txt' -m 'With a body line.'\n```\n");
  box.serve({{"POLYPHONY_TEST_HOLD_LANDING_UNTIL", release.string()}});
  REQUIRE(box.wait_state(id, "RUNNING"));
  commit_to_bare(box.origin(), {{"while-working.txt", "1\n"}}, "Moved while the agent worked");
  let_agent_go(box, id);
  REQUIRE(held_in(box, id, "LANDING"));
  const std::string moved = commit_to_bare(box.origin(), {{"at-landing.txt", "2\n"}}, "Moved at landing");
  write_file(release, "");
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(box.cli({"logs", id}).out);
  REQUIRE(states[id] == "LANDED");
  CHECK(history_has(box, id, "rebased the branch onto it; verifying again before landing"));
  // The landed commit sits on the moved base and is still Ada's.
  CHECK(trim(git(box.origin(), {"rev-parse", "main^"})) == moved);
  CHECK(trim(git(box.origin(), {"log", "-1", "--format=%an <%ae>", "main"})) == "Ada Lovelace <ada@example.org>");
  CHECK(trim(git(box.origin(), {"log", "-1", "--format=%aI", "main"})) == "2001-02-03T04:05:06+00:00");
  CHECK(trim(git(box.origin(), {"log", "-1", "--format=%B", "main"})) == "Ada writes done.txt\n\nWith a body line.");
  CHECK(commits_with_subject(box.origin(), "Ada writes done.txt") == 1);
  CHECK(git(box.origin(), {"show", "main:done.txt"}) == "done\n");
  CHECK(git(box.origin(), {"show", "main:while-working.txt"}) == "1\n");
}

TEST_CASE("two workers racing to push into one origin both land exactly once, the loser after rebasing again") {
  // Two boxes (two coordinators, two workers) share the first box's origin, so no merge queue
  // serializes them. Its pre-receive hook holds each push until both have arrived: they race
  // for main with the same old value, and git lets exactly one of them move it.
  SingleBox a(kRepo);
  SingleBox b(kRepo);
  TempDir gate("polyphony-gate");
  const fs::path arrivals = gate.path() / "arrivals";
  fs::create_directories(arrivals);
  install_hook(a.origin(), "pre-receive",
               "#!/bin/sh\n"
               "d='" +
                   arrivals.string() +
                   "'\n"
                   "mktemp \"$d/push.XXXXXX\" >/dev/null\n"
                   "i=0\n"
                   "while [ \"$(ls \"$d\" | wc -l)\" -lt 2 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
                   "exit 0\n");
  const std::string ida = a.spawn("Worker A lands", "```sh\necho a > a.txt\necho done > done.txt\n```\n");
  // b's task names a's origin.
  auto rb = b.cli({"spawn", "Worker B lands", "--repo", a.origin().string(), "--agent", "scripted", "--body",
                   "```sh\necho b > b.txt\necho done > done.txt\n```\n"});
  REQUIRE(rb.exit_code == 0);
  const std::string idb_on_a = trim(rb.out);
  a.serve();
  b.serve();
  auto sa = a.wait_finished({ida}, std::chrono::seconds(240));
  auto sb = b.wait_finished({idb_on_a}, std::chrono::seconds(240));
  INFO(a.serve_log());
  INFO(b.serve_log());
  CHECK(sa[ida] == "LANDED");
  CHECK(sb[idb_on_a] == "LANDED");
  CHECK(commits_with_subject(a.origin(), "Worker A lands") == 1);
  CHECK(commits_with_subject(a.origin(), "Worker B lands") == 1);
  CHECK(git(a.origin(), {"show", "main:a.txt"}) == "a\n");
  CHECK(git(a.origin(), {"show", "main:b.txt"}) == "b\n");
  // One after the other on main (a fast-forward each), and the loser said it went round again.
  CHECK(trim(git(a.origin(), {"rev-list", "--count", "--merges", "main"})) == "0");
  const bool a_raced = history_has(a, ida, "landing raced another");
  const bool b_raced = history_has(b, idb_on_a, "landing raced another");
  CHECK((a_raced || b_raced));
  // Both pushes went through receive-pack (the hook ran for each), not the in-process path.
  size_t pushes = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(arrivals)) ++pushes;
  CHECK(pushes >= 3);  // two that raced, and the loser's second push
}

TEST_CASE(
    "an origin whose pre-receive hook refuses once: the task fails with the hook's words, and a retry lands it through "
    "git push") {
  SingleBox box(kRepo);
  TempDir gate("polyphony-gate");
  const fs::path seen = gate.path() / "refused-once";
  install_hook(box.origin(), "pre-receive",
               "#!/bin/sh\n"
               "if [ ! -e '" +
                   seen.string() +
                   "' ]; then\n"
                   "  : > '" +
                   seen.string() +
                   "'\n"
                   "  echo 'origin is busy: push again later' >&2\n"
                   "  exit 1\n"
                   "fi\n"
                   "echo accepted >> '" +
                   seen.string() +
                   "'\n"
                   "exit 0\n");
  const std::string id = box.spawn("Through the hook", "```sh\necho done > done.txt\n```\n");
  box.serve();
  auto first = box.wait_finished({id});
  INFO(box.serve_log());
  // The documented policy: a push the origin refuses fails at once, kind landing, not retried.
  REQUIRE(first[id] == "FAILED");
  auto t = box.task(id);
  CHECK(t["failure_kind"] == "landing");
  CHECK(t["attempt"] == 1);
  CHECK_THAT(t["reason"].get<std::string>(),
             Catch::Contains("origin is busy: push again later") && Catch::Contains("pre-receive hook declined"));
  CHECK(commits_with_subject(box.origin(), "Through the hook") == 0);
  // Nothing half-landed: neither the base nor the task branch moved on the origin.
  CHECK_THROWS(git(box.origin(), {"rev-parse", "--verify", "refs/heads/" + t["branch"].get<std::string>()}));

  auto r = box.cli({"retry", id});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  auto second = box.wait_finished({id});
  REQUIRE(second[id] == "LANDED");
  CHECK(box.task(id)["attempt"] == 2);
  CHECK(commits_with_subject(box.origin(), "Through the hook") == 1);
  CHECK(read_file(seen) == "accepted\n");  // the hook ran for the landing: the push path
  CHECK(git(box.origin(), {"rev-parse", "main"}).substr(0, 40) == box.task(id)["merged_commit"].get<std::string>());
}
