// The agent is hostile: what it does to its clone's .git (config, layout) and what it leaves
// running must not reach the host through the worker's root process, nor change what lands.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace fs = std::filesystem;

namespace {

const std::map<std::string, std::string>& kSampleRepo = sample_repo();

std::string sh_block(const std::string& script) {
  return "Do it.\n\n```sh\n" + script + "\n```\n";
}

// Lets the agent of `waiting` (in kWaitForGo) go on once `first` has landed.
void release_after_landing(const SingleBox& box, const std::string& first, const std::string& waiting) {
  REQUIRE(box.wait_state(first, "LANDED"));
  let_agent_go(box, waiting);
}

std::vector<std::string> entries_of(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::recursive_directory_iterator(dir)) names.push_back(e.path().lexically_relative(dir));
  std::sort(names.begin(), names.end());
  return names;
}

// Lands the task and returns its log, failing the test with the server's log otherwise.
std::string require_landed(SingleBox& box, const std::string& id) {
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(box.cli({"logs", id}).out);
  REQUIRE(states[id] == "LANDED");
  return box.cli({"logs", id}).out;
}

}  // namespace

TEST_CASE("an agent that points core.worktree at a host directory lands only the repository's files") {
  SingleBox box(kSampleRepo);
  // Outside the box's home: the container has the mirror's path (under the home) mounted, so
  // the agent could not make the same path in it.
  TempDir host("polyphony-host-dir");
  const fs::path host_dir = host.path();
  write_file(host_dir / "secret.txt", "host secret\n");
  // The same path exists, empty, inside the container, so git there keeps working.
  const std::string id = box.spawn("Fix it", sh_block("echo fixed > fix.txt\n"
                                                      "git add fix.txt && git commit -q -m fix\n"
                                                      "mkdir -p " +
                                                      host_dir.string() +
                                                      "\n"
                                                      "git config core.worktree " +
                                                      host_dir.string()));
  require_landed(box, id);
  CHECK(git(box.origin(), {"show", "main:fix.txt"}) == "fixed\n");
  CHECK(git(box.origin(), {"show", "main:greet.sh"}) == "echo \"Hello, $1!\"\n");
  CHECK_THROWS(git(box.origin(), {"show", "main:secret.txt"}));
  CHECK(entries_of(host_dir) == std::vector<std::string>{"secret.txt"});
  CHECK(read_file(host_dir / "secret.txt") == "host secret\n");
}

TEST_CASE("an agent's fsmonitor, hooks and filters naming host programs never run on the host") {
  SingleBox box(kSampleRepo);
  const fs::path marker = box.home() / "ran-on-host";
  const fs::path tools = box.home() / "agent-tools";
  fs::create_directories(tools / "hooks");
  const std::string leave_marker = "#!/bin/sh\necho \"$0\" >> " + marker.string() + "\nexit 0\n";
  for (const char* name : {"fsmonitor", "filter", "hooks/pre-commit", "hooks/post-commit", "hooks/post-checkout",
                           "hooks/pre-push", "hooks/reference-transaction", "pager", "difftool"}) {
    write_file(tools / name, leave_marker);
    fs::permissions(tools / name, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  }
  const std::string t = tools.string();
  const std::string id = box.spawn("Fix it", sh_block("echo fixed > fix.txt\n"
                                                      "git config core.fsmonitor " +
                                                      t +
                                                      "/fsmonitor\n"
                                                      "git config core.hooksPath " +
                                                      t +
                                                      "/hooks\n"
                                                      "git config filter.evil.clean " +
                                                      t +
                                                      "/filter\n"
                                                      "git config filter.evil.smudge " +
                                                      t +
                                                      "/filter\n"
                                                      "echo '* filter=evil' > .git/info/attributes\n"
                                                      "git config core.pager " +
                                                      t +
                                                      "/pager\n"
                                                      "git config diff.external " +
                                                      t +
                                                      "/difftool\n"
                                                      "git config core.sshCommand " +
                                                      t +
                                                      "/pager\n"
                                                      "git remote set-url origin ext::" +
                                                      t + "/pager\n"));
  require_landed(box, id);
  CHECK(git(box.origin(), {"show", "main:fix.txt"}) == "fixed\n");
  CHECK_FALSE(fs::exists(marker));
}

TEST_CASE("an agent that swaps its objects directory for a symlink to a host path does not lead root there") {
  SingleBox box(kSampleRepo);
  TempDir host("polyphony-host-objects");
  const fs::path host_objects = host.path();
  // Inside the container the link's target is a working copy of the objects; on the host it is
  // an empty directory that root must neither read nor write.
  const std::string h = host_objects.string();
  const std::string id = box.spawn("Fix it", sh_block("echo fixed > fix.txt\n"
                                                      "git add fix.txt && git commit -q -m fix\n"
                                                      "mkdir -p " +
                                                      h + " && cp -a .git/objects/. " + h +
                                                      "/\n"
                                                      "rm -rf .git/objects && ln -s " +
                                                      h +
                                                      " .git/objects\n"
                                                      "echo more > more.txt"));
  require_landed(box, id);
  CHECK(git(box.origin(), {"show", "main:fix.txt"}) == "fixed\n");
  CHECK(git(box.origin(), {"show", "main:more.txt"}) == "more\n");
  CHECK(entries_of(host_objects).empty());
}

TEST_CASE("a process the agent's tests leave running that moves the branch after verify does not change what lands") {
  SingleBox box(kSampleRepo);
  // Verify runs tests/*.test, so the agent's test moves the branch then, and leaves a process
  // that goes on committing for a few seconds.
  const std::string mover =
      "git -C /workspace -c user.name=e -c user.email=e@e commit -q --allow-empty -m evil-now\n"
      "( i=0; while [ $i -lt 80 ]; do "
      "git -C /workspace -c user.name=e -c user.email=e@e commit -q --allow-empty -m \"evil $i\"; "
      "i=$((i+1)); sleep 0.05; done ) >/dev/null 2>&1 &\n";
  const std::string id = box.spawn("Add a test", sh_block("cat > tests/mover.test <<'EOF'\n" + mover +
                                                          "EOF\n"
                                                          "echo fixed > fix.txt"));
  require_landed(box, id);
  const auto t = box.task(id);
  const std::string branch = t["branch"];
  CHECK(git(box.origin(), {"show", "main:fix.txt"}) == "fixed\n");
  CHECK_THAT(git(box.origin(), {"log", "--format=%s", "main"}), !Catch::Contains("evil"));
  CHECK_THAT(git(box.origin(), {"log", "--format=%s", "refs/heads/" + branch}), !Catch::Contains("evil"));
  CHECK(git(box.origin(), {"rev-parse", "main"}).substr(0, 40) == t["merged_commit"].get<std::string>());
  // The move is refused out loud, in the task's history.
  CHECK_THAT(box.cli({"show", id}).out,
             Catch::Contains("branch moved during verify") && Catch::Contains("is what lands"));
  // The attack did happen: the clone's branch (read here by the test, never by the worker) moved.
  // What verify left running was killed as verify ended.
  CHECK_THAT(git(box.home() / "workspaces" / "tasks" / id / "repo", {"log", "--format=%s", branch}),
             Catch::Contains("evil"));
}

TEST_CASE("the reviewer's container runs nothing the implementer put in its git config") {
  SingleBox box(kSampleRepo);
  // The reviewer runs git diff and git status in /workspace, and approves only when nothing the
  // implementer named (diff.external, core.fsmonitor, core.pager) ran in its container.
  write_file(box.home() / "agents.yaml", R"(agents:
  scripted:
    command: [polyphony-scripted-agent, "{task_file}"]
    tier: cheap
  reviewer:
    command:
      - sh
      - -c
      - |
        cd /workspace
        git diff HEAD~1 > /tmp/review.diff 2>&1
        git -c core.pager=cat log -p -1 > /tmp/review.log 2>&1
        git status --porcelain > /dev/null 2>&1
        if [ -e /tmp/implementer-ran ]; then
          printf 'changes requested\nthe implementer ran here\n' > "$POLYPHONY_VERDICT_FILE"
        else
          printf 'approve\nclean\n' > "$POLYPHONY_VERDICT_FILE"
        fi
    tier: strong
)");
  write_file(box.home() / "routing.yaml",
             "rules:\n  - match: {task_type: reviewed}\n    agent: scripted\n    plan: review\n"
             "default:\n  agent: scripted\n");
  const std::string id = box.spawn_routed(
      "Fix it",
      sh_block("echo fixed > fix.txt\n"
               "printf '#!/bin/sh\\ntouch /tmp/implementer-ran\\n' > .git/evil.sh && chmod +x .git/evil.sh\n"
               "git config diff.external /workspace/.git/evil.sh\n"
               "git config core.fsmonitor /workspace/.git/evil.sh\n"
               "git config core.pager /workspace/.git/evil.sh\n"
               "git config core.hooksPath /workspace/.git"),
      {"--type", "reviewed"});
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(box.cli({"logs", id}).out);
  REQUIRE(states[id] == "LANDED");
  auto show = nlohmann::json::parse(box.cli({"show", id, "--json"}).out);
  bool approved_first = false;
  for (const auto& e : show["events"]) {
    approved_first |= e["reason"].get<std::string>().find("(round 1): approved") != std::string::npos;
  }
  CHECK(approved_first);
  CHECK(git(box.origin(), {"show", "main:fix.txt"}) == "fixed\n");
}

TEST_CASE(
    "a branch rebased on the worker's side reaches the container as data, and a host core.worktree stays untouched") {
  SingleBox box(kSampleRepo);
  TempDir host("polyphony-host-dir");
  write_file(host.path() / "secret.txt", "host secret\n");
  const std::string first = box.spawn("Add one", sh_block("echo one > one.txt"));
  // The second agent works until the first has landed, so its branch is rebased.
  const std::string second = box.spawn("Add two", sh_block(std::string(kWaitForGo) +
                                                           "echo two > two.txt\n"
                                                           "git add two.txt && git commit -q -m two\n"
                                                           "mkdir -p " +
                                                           host.path().string() +
                                                           "\n"
                                                           "git config core.worktree " +
                                                           host.path().string()));
  box.serve();
  release_after_landing(box, first, second);
  auto states = box.wait_finished({first, second});
  INFO(box.serve_log());
  INFO(box.cli({"logs", second}).out);
  REQUIRE(states[first] == "LANDED");
  REQUIRE(states[second] == "LANDED");
  CHECK_THAT(box.cli({"logs", second}).out, Catch::Contains("rebased onto it"));
  CHECK(git(box.origin(), {"show", "main:one.txt"}) == "one\n");
  CHECK(git(box.origin(), {"show", "main:two.txt"}) == "two\n");
  CHECK_THROWS(git(box.origin(), {"show", "main:secret.txt"}));
  CHECK(entries_of(host.path()) == std::vector<std::string>{"secret.txt"});
}

TEST_CASE(
    "verify sees the clone as the worker made it: the agent's filters, attributes, stat settings and objects are "
    "gone") {
  std::map<std::string, std::string> repo = kSampleRepo;
  repo[".polyphony.yaml"] =
      "verify: test -z \"$(git config --get filter.sneak.smudge)\" && test -z \"$(git config --get core.checkStat)\" "
      "&& "
      "! test -e .git/info/attributes && ! test -e .git/objects/planted && ! grep -q \"$(printf '\\r')\" greet.sh && "
      "for t in tests/*.test; do sh \"$t\" || exit 1; done\n";
  SingleBox box(repo);
  const std::string id =
      box.spawn("Fix it", sh_block("echo fixed > fix.txt\n"
                                   "git config filter.sneak.smudge cat\n"
                                   "git config filter.sneak.clean cat\n"
                                   "git config core.checkStat minimal\n"
                                   "git config core.trustctime false\n"
                                   "echo '* filter=sneak' > .git/info/attributes\n"
                                   "touch .git/objects/planted\n"
                                   // In its home too: a CRLF conversion would change what
                                   // verify reads from what lands.
                                   "git config --global core.autocrlf true\n"
                                   "mkdir -p ~/.config/git && echo '* text eol=crlf' > ~/.config/git/attributes"));
  require_landed(box, id);
  CHECK(git(box.origin(), {"show", "main:fix.txt"}) == "fixed\n");
}

TEST_CASE(
    "a background process swapping workspace directories for symlinks to a host directory gets nothing chowned there") {
  SingleBox box(kSampleRepo);
  TempDir host("polyphony-host-dir");
  write_file(host.path() / "owned-by-root.txt", "host file\n");
  const std::string first = box.spawn("Add one", sh_block("echo one > one.txt"));
  // While the first lands, the second's branch must be rebased and verified again: every step
  // where the root side once walked the clone. A loop keeps replacing directories of the clone
  // (tracked ones and .git's) with symlinks to the host directory, the race a chown walk loses.
  const std::string race =
      "while :; do for d in tests .git/refs/heads .git/objects/info; do rm -rf \"$d.x\"; mv \"$d\" \"$d.x\" "
      "2>/dev/null; "
      "ln -sfn " +
      host.path().string() + " \"$d\"; rm -f \"$d\"; mv \"$d.x\" \"$d\" 2>/dev/null; done; done";
  const std::string second =
      box.spawn("Add two", sh_block("(" + race + ") >/dev/null 2>&1 &\n" + kWaitForGo + "echo two > two.txt"));
  box.serve();
  release_after_landing(box, first, second);
  // The race may break its own commit (a directory moved away when the agent stopped), so verify
  // can fail and the task be retried: each retry is let go as well.
  auto states = finish_letting_go(box, {first, second});
  INFO(box.serve_log());
  INFO(box.cli({"logs", second}).out);
  CHECK(states[first] == "LANDED");
  CHECK((states[second] == "LANDED" || states[second] == "FAILED" || states[second] == "BLOCKED"));
  struct stat st {};
  REQUIRE(::lstat(host.path().c_str(), &st) == 0);
  CHECK(st.st_uid == 0);
  for (const auto& e : fs::recursive_directory_iterator(host.path())) {
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    INFO(e.path());
    CHECK(st.st_uid == 0);
  }
  CHECK(entries_of(host.path()) == std::vector<std::string>{"owned-by-root.txt"});
}

TEST_CASE("an ignored file the agent leaves beside its commit is gone before verify, so it cannot make verify pass") {
  auto repo = kSampleRepo;
  repo[".gitignore"] = "planted/\n";
  // Verify passes only when nothing but the commit is in the work tree; the agent plants an
  // ignored file (and an ignored nested repository) that would change the answer.
  repo[".polyphony.yaml"] = "verify: test ! -e planted && for t in tests/*.test; do sh \"$t\" || exit 1; done\n";
  SingleBox box(repo);
  const std::string id = box.spawn("Fix it", sh_block("echo fixed > fix.txt\n"
                                                      "mkdir -p planted/nested && echo x > planted/result\n"
                                                      "git -C planted/nested init -q"));
  require_landed(box, id);
  CHECK(git(box.origin(), {"show", "main:fix.txt"}) == "fixed\n");
}
