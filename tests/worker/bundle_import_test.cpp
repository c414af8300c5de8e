// The agent's branch taken in as data: bundle headers, and bundles streamed into pinned.git.
#include "worker-agent/bundle_import.h"

#include <catch2/catch.hpp>

#include "common/process.h"
#include "test_support.h"
#include "worker-agent/workspaces.h"

namespace polyphony {
namespace {

namespace fs = std::filesystem;
using testing::git;
using testing::make_bare_repo;
using testing::TempDir;
using testing::write_file;

const std::string kA(40, 'a');
const std::string kB(40, 'b');

TEST_CASE("a bundle header gives its prerequisites and refs, and anything else is bad_bundle") {
  auto h = parse_bundle_header("# v2 git bundle\n-" + kA + " base\n" + kB + " refs/heads/x\n");
  REQUIRE(h.ok());
  CHECK(h->prerequisites == std::vector<std::string>{kA});
  REQUIRE(h->refs.size() == 1);
  CHECK(h->refs[0] == std::pair<std::string, std::string>{kB, "refs/heads/x"});
  for (const std::string& bad :
       std::vector<std::string>{"# v3 git bundle\n", "# v2 git bundle\nnot-an-id refs/heads/x\n",
                                "# v2 git bundle\n" + kB + "\n", "# v2 git bundle\n" + kB.substr(1) + "g x\n"}) {
    auto r = parse_bundle_header(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "bad_bundle");
  }
}

struct Fixture {
  TempDir tmp{"polyphony-bundle"};
  fs::path origin = tmp / "origin.git";
  std::unique_ptr<Workspaces> workspaces = make_git_workspaces(tmp / "root");
  Workspace ws;

  Fixture() {
    make_bare_repo(origin, {{"README.md", "hello\n"}});
    auto p = workspaces->provision({"t1", origin.string(), "main", "polyphony/t1"});
    REQUIRE(p.ok());
    ws = *p;
  }

  // What the container's `git bundle create` writes for `ref` of the clone.
  std::string bundle(const std::string& ref) const {
    auto r =
        run_process({"git", "-C", ws.repo_dir.string(), "bundle", "create", "--quiet", "-", "^" + ws.base_commit, ref});
    REQUIRE(r.ok());
    REQUIRE(r->exit_code == 0);
    return r->out;
  }

  std::string commit_in_clone(const std::string& file) const {
    write_file(ws.repo_dir / file, file + "\n");
    git(ws.repo_dir, {"add", file});
    git(ws.repo_dir, {"-c", "user.name=a", "-c", "user.email=a@a", "commit", "-q", "-m", file});
    std::string head = git(ws.repo_dir, {"rev-parse", "HEAD"});
    return head.substr(0, 40);
  }

  Result<std::string> import(const std::string& data, size_t max_bytes = 1 << 20, size_t chunk = 7) {
    auto import = workspaces->import_branch(ws, max_bytes);
    if (!import.ok()) return import.error();
    for (size_t at = 0; at < data.size(); at += chunk) {
      if (auto s = (*import)->add(std::string_view(data).substr(at, chunk)); !s.ok()) return s.error();
    }
    return workspaces->pin_import(ws, **import);
  }
};

TEST_CASE("a bundle of the branch streamed in pieces is pinned, and land pushes the pinned commit") {
  Fixture f;
  const std::string head = f.commit_in_clone("one.txt");
  auto pinned = f.import(f.bundle("refs/heads/polyphony/t1"));
  INFO((pinned.ok() ? "" : pinned.error().to_string()));
  REQUIRE(pinned.ok());
  CHECK(*pinned == head);
  CHECK(f.workspaces->head_commit(f.ws).value() == head);
  CHECK(f.workspaces->commits_ahead(f.ws).value() == 1);
  // The clone moves on; the pin does not.
  f.commit_in_clone("two.txt");
  auto landed = f.workspaces->land(f.ws);
  REQUIRE(landed.ok());
  CHECK(landed->merged_commit == head);
  CHECK(git(f.origin, {"rev-parse", "main"}).substr(0, 40) == head);
}

TEST_CASE("a bundle of another ref, a garbled one and one over the limit are refused, pinning nothing") {
  Fixture f;
  f.commit_in_clone("one.txt");
  git(f.ws.repo_dir, {"branch", "other"});
  auto other = f.import(f.bundle("refs/heads/other"));
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().code == "bad_bundle");
  auto garbled = f.import("# v2 git bundle\nnonsense\n\nPACK");
  REQUIRE_FALSE(garbled.ok());
  CHECK(garbled.error().code == "bad_bundle");
  const std::string whole = f.bundle("refs/heads/polyphony/t1");
  auto big = f.import(whole, whole.size() - 1);
  REQUIRE_FALSE(big.ok());
  CHECK(big.error().code == "too_big");
  CHECK(f.workspaces->head_commit(f.ws).value() == f.ws.base_commit);
}

}  // namespace
}  // namespace polyphony
