// GitHub mode against a scripted GhClient: what the stand-in gh program cannot do (time out,
// answer 5xx, answer garbage), with a clock moved by hand.
#include <catch2/catch.hpp>

#include "coordinator/github_source.h"
#include "fakes/fake_gh_client.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

const std::string kIssues = "repos/acme/widgets/issues?";

struct FakeGhHarness {
  TempDir dir{"pf-gh"};
  Settings settings;
  std::optional<StateStore> store;
  int64_t clock_ms = 1'700'000'000'000;
  FakeGhClient* gh = nullptr;  // owned by the source

  FakeGhHarness() {
    auto s = load_settings(dir.path());
    REQUIRE(s.ok());
    settings = *s;
    settings.config.state_db = dir / "state.db";
    settings.config.github.repo = "acme/widgets";
    settings.config.github.remote = "/srv/git/widgets.git";
    settings.config.github.poll_interval_ms = 1000;
    auto st = StateStore::open(settings.config.state_db);
    REQUIRE(st.ok());
    store.emplace(std::move(*st));
  }

  std::unique_ptr<GithubSource> source(std::vector<Result<GhResponse>> listing) {
    auto fake = std::make_unique<FakeGhClient>();
    fake->answer("GET", kIssues, std::move(listing));
    gh = fake.get();
    auto s = GithubSource::open(settings, std::move(fake), [this] { return clock_ms; });
    REQUIRE(s.ok());
    return std::move(*s);
  }
};

}  // namespace

TEST_CASE("GitHub mode backs off after a gh timeout and a 5xx, and is ok again once GitHub answers") {
  FakeGhHarness h;
  auto source = h.source({make_error("timeout", "gh api ran past 60 s and was killed"),
                          gh_response(502, R"({"message":"Bad Gateway"})"), gh_response(200, "[]")});
  const int64_t start = h.clock_ms;
  source->sync(*h.store);
  REQUIRE(h.gh->requests().size() == 1);
  CHECK(h.gh->requests()[0].path.rfind(kIssues, 0) == 0);
  CHECK(source->health().state == "error");
  CHECK_THAT(source->health().message, Catch::Contains("ran past 60 s"));
  CHECK(source->health().until_ms == start + 1000);  // one poll interval

  h.clock_ms = start + 999;
  source->sync(*h.store);
  CHECK(h.gh->requests().size() == 1);
  h.clock_ms = start + 1000;
  source->sync(*h.store);
  REQUIRE(h.gh->requests().size() == 2);
  CHECK_THAT(source->health().message, Catch::Contains("HTTP 502 Bad Gateway"));
  CHECK(source->health().until_ms == start + 3000);  // the wait doubled

  h.clock_ms = start + 2999;
  source->sync(*h.store);
  CHECK(h.gh->requests().size() == 2);
  h.clock_ms = start + 3000;
  source->sync(*h.store);
  CHECK(h.gh->requests().size() == 3);
  CHECK(source->health().state == "ok");
  CHECK(h.store->list()->empty());
}

TEST_CASE("GitHub mode makes no task of a listing that is not a JSON array, and says so") {
  FakeGhHarness h;
  auto source = h.source({gh_response(200, R"({"message":"not a list"})")});
  source->sync(*h.store);
  CHECK(source->health().state == "error");
  CHECK_THAT(source->health().message, Catch::Contains("not a JSON array"));
  CHECK(h.store->list()->empty());
}
