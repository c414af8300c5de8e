// The dashboard's HTTP surface against a real state DB whose history is written with chosen
// times (a fake clock), and a fake coordinator link: API shapes, tokens, the event stream.
#include <httplib.h>

#include <catch2/catch.hpp>
#include <future>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "coordinator/state_store.h"
#include "dashboard/dashboard.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::testing;
using nlohmann::json;

namespace {

constexpr int64_t kT0 = 1'800'000'000'000;  // the fake clock's start

// Answers like a coordinator with one worker, and records the actions asked of it.
class FakeLink final : public dashboard::CoordinatorLink {
 public:
  Result<protocol::WorkersReply> workers() override {
    protocol::WorkersReply r;
    r.coordinator_id = "coord-1";
    protocol::WorkerStatus w;
    w.worker_id = "w-1";
    w.state = "busy";
    w.heartbeat_age_ms = 1500;
    w.capacity = 2;
    w.load = 2;
    w.labels = {"gpu"};
    w.running = {"t-run"};
    w.version = "0.1.0";
    r.workers.push_back(w);
    return r;
  }
  Result<protocol::ClientReply> submit(const protocol::Submit& s) override {
    submitted.push_back(s);
    if (s.repo.empty()) {
      protocol::ClientReply refused;
      refused.error = "a repo is required";
      refused.where = "repo";
      return refused;
    }
    protocol::ClientReply r;
    r.ok = true;
    r.task_id = "t-new";
    r.state = "DISCOVERED";
    return r;
  }
  Result<protocol::ClientReply> control(const std::string& id, const std::string& action) override {
    controls.emplace_back(id, action);
    protocol::ClientReply r;
    r.ok = true;
    r.task_id = id;
    r.state = "CANCELLED";
    return r;
  }
  std::vector<protocol::Submit> submitted;
  std::vector<std::pair<std::string, std::string>> controls;
};

TaskRequest request_of(const std::string& id, const std::string& title) {
  TaskRequest r;
  r.id = id;
  r.title = title;
  r.repo = "sample";
  r.labels = {"docs"};
  r.created_at_ms = kT0;
  return r;
}

// Walks `id` through `states`, one step a `step_ms` of the fake clock from `at`.
void walk(StateStore& store, const std::string& id, const std::vector<TaskState>& states, int64_t at, int64_t step_ms) {
  TaskState from = TaskState::kDiscovered;
  for (TaskState to : states) {
    TransitionUpdate u;
    if (to == TaskState::kRouted) {
      u.agent = "scripted";
      u.plan = "solo";
      u.score = 3;
      u.attempt = 1;
    }
    at += step_ms;
    REQUIRE(store.transition(id, from, to, u, at).ok());
    from = to;
  }
}

struct Fixture {
  TempDir dir{"polyphony-dashboard"};
  FakeLink link;
  std::filesystem::path db = dir / "state.db";

  Fixture() {
    auto store = StateStore::open(db);
    REQUIRE(store.ok());
    REQUIRE(store->add(request_of("t-land", "<script>alert(1)</script> land"), kT0).ok());
    walk(*store, "t-land",
         {TaskState::kClaimed, TaskState::kRouted, TaskState::kProvisioned, TaskState::kRunning, TaskState::kVerifying,
          TaskState::kLanded},
         kT0, 2000);
    protocol::AgentUsage u;
    u.role = "author";
    u.agent = "scripted";
    u.input_tokens = 100;
    u.output_tokens = 40;
    u.cost_usd = 0.25;
    u.turns = 2;
    REQUIRE(store->record_agent_runs("t-land", 1, {u}).ok());
    REQUIRE(store->add(request_of("t-run", "running"), kT0).ok());
    walk(*store, "t-run", {TaskState::kClaimed, TaskState::kRouted, TaskState::kProvisioned, TaskState::kRunning}, kT0,
         500);
  }

  dashboard::DashboardOptions options(const std::string& host = "127.0.0.1", const std::string& token = "") const {
    dashboard::DashboardOptions o;
    o.host = host;
    o.port = 0;
    o.token = token;
    o.state_db = db;
    o.log_dir = dir / "logs";
    o.poll_interval_ms = 20;
    return o;
  }
};

std::unique_ptr<dashboard::Dashboard> start(const dashboard::DashboardOptions& o, FakeLink& link) {
  auto d = dashboard::Dashboard::start(o, link);
  INFO((d.ok() ? "" : d.error().to_string()));
  REQUIRE(d.ok());
  return std::move(*d);
}

// A client of the dashboard, always over loopback.
httplib::Client client_of(const dashboard::Dashboard& d) {
  const std::string url = d.url();
  const auto colon = url.rfind(':');
  httplib::Client c("127.0.0.1", std::stoi(url.substr(colon + 1)));
  c.set_read_timeout(10, 0);
  return c;
}

json get_json(httplib::Client& c, const std::string& path, int want = 200) {
  auto res = c.Get(path.c_str());
  REQUIRE(res);
  INFO(res->body);
  REQUIRE(res->status == want);
  return json::parse(res->body);
}

}  // namespace

TEST_CASE("the task list has status --json's shape, newest first, with strangers' text kept as data") {
  Fixture f;
  auto d = start(f.options(), f.link);
  auto c = client_of(*d);
  const json tasks = get_json(c, "/api/tasks");
  REQUIRE(tasks.size() == 2);
  const json& landed = tasks[0]["id"] == "t-land" ? tasks[0] : tasks[1];
  CHECK(landed["title"] == "<script>alert(1)</script> land");
  CHECK(landed["state"] == "LANDED");
  CHECK(landed["agent"] == "scripted");
  CHECK(landed["plan"] == "solo");
  CHECK(landed["score"] == 3);
  CHECK(landed["attempt"] == 1);
  CHECK(landed["labels"] == json::array({"docs"}));
  CHECK(landed["created_at"] == "2027-01-15T08:00:00Z");
  CHECK(get_json(c, "/api/tasks?state=RUNNING").size() == 1);
}

TEST_CASE("a task's answer has its whole history, agent runs and body, and an unknown id is a 404") {
  Fixture f;
  auto d = start(f.options(), f.link);
  auto c = client_of(*d);
  const json t = get_json(c, "/api/tasks/t-land");
  std::vector<std::string> path;
  for (const auto& e : t["events"]) path.push_back(e["to"]);
  CHECK(path ==
        std::vector<std::string>{"DISCOVERED", "CLAIMED", "ROUTED", "PROVISIONED", "RUNNING", "VERIFYING", "LANDED"});
  CHECK(t["events"].back()["at_ms"] == kT0 + 12000);
  REQUIRE(t["agent_runs"].size() == 1);
  CHECK(t["agent_runs"][0]["input_tokens"] == 100);
  CHECK(t["agent_runs"][0]["cost_usd"] == 0.25);
  CHECK(get_json(c, "/api/tasks/nope", 404)["where"] == "nope");
}

TEST_CASE("the workers answer is the coordinator's table in workers --json's shape") {
  Fixture f;
  auto d = start(f.options(), f.link);
  auto c = client_of(*d);
  const json w = get_json(c, "/api/workers");
  CHECK(w["coordinator"] == "coord-1");
  REQUIRE(w["workers"].size() == 1);
  CHECK(w["workers"][0]["id"] == "w-1");
  CHECK(w["workers"][0]["state"] == "busy");
  CHECK(w["workers"][0]["heartbeat_age_ms"] == 1500);
  CHECK(w["workers"][0]["running"] == json::array({"t-run"}));
}

TEST_CASE("actions go to the coordinator link, and its refusal comes back with the field at fault") {
  Fixture f;
  auto d = start(f.options(), f.link);
  auto c = client_of(*d);
  auto res = c.Post("/api/tasks/t-run/cancel", "{}", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  REQUIRE(f.link.controls.size() == 1);
  CHECK(f.link.controls[0] == std::pair<std::string, std::string>{"t-run", "cancel"});
  res = c.Post("/api/tasks", R"({"title": "x", "repo": "", "labels": ["a"]})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK(json::parse(res->body)["where"] == "repo");
  res = c.Post("/api/tasks", R"({"title": "x", "repo": "sample", "agent": "scripted"})", "application/json");
  REQUIRE(res);
  CHECK(json::parse(res->body)["task_id"] == "t-new");
  REQUIRE(f.link.submitted.size() == 2);
  CHECK(f.link.submitted[1].agent == "scripted");
  // A form posted from another site cannot be an action: it cannot send JSON without asking.
  res = c.Post("/api/tasks/t-run/retry", "x=1", "application/x-www-form-urlencoded");
  REQUIRE(res);
  CHECK(res->status == 415);
  CHECK(f.link.controls.size() == 1);
}

TEST_CASE("a listener off loopback refuses to start without a token, and refuses requests without it") {
  Fixture f;
  auto refused = dashboard::Dashboard::start(f.options("0.0.0.0"), f.link);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == "config");
  const std::string token = dashboard::new_token();
  auto d = start(f.options("0.0.0.0", token), f.link);
  auto c = client_of(*d);
  for (const char* path : {"/api/tasks", "/api/tasks/t-land", "/api/workers", "/metrics"}) {
    auto res = c.Get(path);
    REQUIRE(res);
    CHECK(res->status == 401);
    CHECK(res->body.find("t-land") == std::string::npos);
  }
  auto page = c.Get("/");  // the page itself holds no data: it asks for the token
  REQUIRE(page);
  CHECK(page->status == 200);
  c.set_bearer_token_auth(token);
  CHECK(get_json(c, "/api/tasks").size() == 2);
  c.set_bearer_token_auth("wrong-token-of-the-same-length-as-the-real-one-0123456789abcdef0");
  auto wrong = c.Get("/api/tasks");
  REQUIRE(wrong);
  CHECK(wrong->status == 401);
}

TEST_CASE("on loopback with a token, reads are open but actions need the token") {
  Fixture f;
  const std::string token = dashboard::new_token();
  auto d = start(f.options("127.0.0.1", token), f.link);
  auto c = client_of(*d);
  CHECK(get_json(c, "/api/tasks").size() == 2);
  auto res = c.Post("/api/tasks/t-run/cancel", "{}", "application/json");
  REQUIRE(res);
  CHECK(res->status == 401);
  CHECK(f.link.controls.empty());
  c.set_bearer_token_auth(token);
  res = c.Post("/api/tasks/t-run/cancel", "{}", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(f.link.controls.size() == 1);
}

TEST_CASE("a loopback listener refuses a Host header that is not a loopback name") {
  Fixture f;
  auto d = start(f.options(), f.link);
  auto c = client_of(*d);
  auto res = c.Get("/api/tasks", httplib::Headers{{"Host", "evil.example:7780"}});
  REQUIRE(res);
  CHECK(res->status == 403);
}

TEST_CASE("the event stream sends each transition recorded after it opened, with its seq as the id") {
  Fixture f;
  auto d = start(f.options(), f.link);
  auto c = client_of(*d);
  std::string received;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    c.Get("/api/events", [&](const char* data, size_t n) {
      received.append(data, n);
      return received.find("\"to\":\"VERIFYING\"") == std::string::npos;
    });
    done = true;
  });
  // The stream opens with a comment line; only then is its cursor set.
  REQUIRE(eventually([&] { return done || received.find(": polyphony events") != std::string::npos; }));
  {
    auto store = StateStore::open(f.db);
    REQUIRE(store.ok());
    REQUIRE(store->transition("t-run", TaskState::kRunning, TaskState::kVerifying, {}, kT0 + 9000).ok());
  }
  REQUIRE(eventually([&] { return done.load(); }, std::chrono::seconds(10)));
  reader.join();
  CHECK(received.find("event: transition") != std::string::npos);
  CHECK(received.find("\"task_id\":\"t-run\"") != std::string::npos);
  CHECK(received.find("\"to\":\"LANDED\"") == std::string::npos);  // history before it opened is not resent
}

TEST_CASE("stopping the dashboard ends the open event streams instead of waiting for their clients") {
  Fixture f;
  auto d = start(f.options(), f.link);
  auto c = client_of(*d);
  std::string received;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    c.Get("/api/events", [&](const char* data, size_t n) {
      received.append(data, n);
      return true;
    });
    done = true;
  });
  REQUIRE(eventually([&] { return received.find(": polyphony events") != std::string::npos; }));
  auto stopped = std::async(std::launch::async, [&] { d.reset(); });
  const bool in_time = stopped.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  CHECK(in_time);
  CHECK(eventually([&] { return done.load(); }, std::chrono::seconds(10)));
  c.stop();
  reader.join();
  stopped.wait();
}

TEST_CASE("a log is read from an offset, so a page can follow it as it grows") {
  Fixture f;
  write_file(f.dir / "logs/t-run/1-agent.log", "first\n");
  auto d = start(f.options(), f.link);
  auto c = client_of(*d);
  json chunk = get_json(c, "/api/tasks/t-run/log?attempt=1&stream=agent&offset=0");
  CHECK(chunk["text"] == "first\n");
  CHECK(chunk["next"] == 6);
  write_file(f.dir / "logs/t-run/1-agent.log", "first\nsecond\n");
  chunk = get_json(c, "/api/tasks/t-run/log?attempt=1&stream=agent&offset=6");
  CHECK(chunk["text"] == "second\n");
  CHECK(get_json(c, "/api/tasks/t-run/log?attempt=1&stream=../x", 400)["where"] == "stream");
}

TEST_CASE("a registered secret in a title, body, reason or log never reaches an API answer, a page or /metrics") {
  const std::string secret = "sekrit-dashboard-token-6160";
  register_secret(secret);
  Fixture f;
  {
    auto store = StateStore::open(f.db);
    REQUIRE(store.ok());
    TaskRequest r = request_of("t-leak", "deploy with " + secret);
    r.body = "the token is " + secret + "\n";
    REQUIRE(store->add(r, kT0).ok());
    TransitionUpdate u;
    u.reason = "claimed; token " + secret;
    REQUIRE(store->transition("t-leak", TaskState::kDiscovered, TaskState::kClaimed, u, kT0 + 1000).ok());
  }
  write_file(f.dir / "logs/t-leak/1-agent.log", "echo " + secret + "\n");
  auto d = start(f.options(), f.link);
  auto c = client_of(*d);
  for (const std::string path : {"/api/tasks", "/api/tasks/t-leak", "/api/tasks/t-leak/log?attempt=1&stream=agent",
                                 "/metrics", "/", "/tasks/t-leak"}) {
    auto res = c.Get(path.c_str());
    REQUIRE(res);
    INFO(path << ": " << res->body);
    CHECK(res->status == 200);
    CHECK(res->body.find(secret) == std::string::npos);
  }
  CHECK(get_json(c, "/api/tasks/t-leak")["title"] == "deploy with ***");
  CHECK(get_json(c, "/api/tasks/t-leak/log?attempt=1&stream=agent")["text"] == "echo ***\n");
}
