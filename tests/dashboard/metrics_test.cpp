// /metrics: the text format as a real parser (Python's prometheus_client) reads it, with values
// from a history written at chosen times (a fake clock).
#include <httplib.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/process.h"
#include "coordinator/state_store.h"
#include "dashboard/dashboard.h"
#include "dashboard/metrics.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::testing;
using nlohmann::json;

namespace {

constexpr int64_t kT0 = 1'800'000'000'000;

// Every sample of `text` as [name, labels, value], read by prometheus_client's parser.
json parse_with_prometheus_client(const std::string& text) {
  const char* script = R"(
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value, family.type])
print(json.dumps(out))
)";
  ProcessOptions o;
  o.stdin_data = text;
  // Debian's python, which has Debian's python3-prometheus-client (another python on PATH may not).
  auto r = run_process({"/usr/bin/python3", "-c", script}, o);
  REQUIRE(r.ok());
  INFO(r->err);
  REQUIRE(r->exit_code == 0);
  return json::parse(r->out);
}

// The value of the one sample named `name` whose labels include `labels`.
double value_of(const json& samples, const std::string& name, const json& labels = json::object()) {
  for (const auto& s : samples) {
    if (s[0] != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels.items()) match &= s[1].contains(k) && s[1][k] == v;
    if (match) return s[2].get<double>();
  }
  FAIL("no sample " << name << " " << labels.dump());
  return 0;
}

class OneWorker final : public dashboard::CoordinatorLink {
 public:
  Result<protocol::WorkersReply> workers() override {
    protocol::WorkersReply r;
    protocol::WorkerStatus w;
    w.worker_id = "w\"1";  // a label value that needs escaping
    w.state = "ready";
    w.heartbeat_age_ms = 2500;
    w.capacity = 4;
    w.load = 1;
    r.workers.push_back(w);
    return r;
  }
  Result<protocol::ClientReply> submit(const protocol::Submit&) override { return protocol::ClientReply{}; }
  Result<protocol::ClientReply> control(const std::string&, const std::string&) override {
    return protocol::ClientReply{};
  }
};

void add_task(StateStore& store, const std::string& id) {
  TaskRequest r;
  r.id = id;
  r.title = id;
  r.repo = "sample";
  r.created_at_ms = kT0;
  REQUIRE(store.add(r, kT0).ok());
}

}  // namespace

TEST_CASE("a scrape of /metrics parses as Prometheus text with the counts and times of the history") {
  TempDir dir("polyphony-metrics");
  {
    auto store = StateStore::open(dir / "state.db");
    REQUIRE(store.ok());
    add_task(*store, "a");
    add_task(*store, "b");
    // a: claimed at +1 s, running at +4 s (3 s dispatch latency), verifying at +10 s, landed at +70 s.
    REQUIRE(store->transition("a", TaskState::kDiscovered, TaskState::kClaimed, {}, kT0 + 1000).ok());
    TransitionUpdate routed;
    routed.agent = "scripted";
    routed.attempt = 1;
    REQUIRE(store->transition("a", TaskState::kClaimed, TaskState::kRouted, routed, kT0 + 2000).ok());
    REQUIRE(store->transition("a", TaskState::kRouted, TaskState::kProvisioned, {}, kT0 + 3000).ok());
    REQUIRE(store->transition("a", TaskState::kProvisioned, TaskState::kRunning, {}, kT0 + 4000).ok());
    REQUIRE(store->transition("a", TaskState::kRunning, TaskState::kVerifying, {}, kT0 + 10000).ok());
    REQUIRE(store->transition("a", TaskState::kVerifying, TaskState::kLanded, {}, kT0 + 70000).ok());
    protocol::AgentUsage u;
    u.role = "author";
    u.agent = "scripted";
    u.input_tokens = 1200;
    u.output_tokens = 300;
    u.cost_usd = 0.5;
    REQUIRE(store->record_agent_runs("a", 1, {u}).ok());
    // a asked to land at +12 s and was granted the slot at +42 s: 30 s in the merge queue.
    REQUIRE(store->record_land_wait({"a", 1, "sample", kT0 + 12000, kT0 + 42000}).ok());
    // b: claimed, then cancelled while queued.
    REQUIRE(store->transition("b", TaskState::kDiscovered, TaskState::kClaimed, {}, kT0 + 1000).ok());
    REQUIRE(store->transition("b", TaskState::kClaimed, TaskState::kCancelled, {}, kT0 + 2000).ok());
    // c: its first attempt fails verify and is retried, its second times out, its third is cancelled.
    add_task(*store, "c");
    int64_t at = kT0 + 1000;
    REQUIRE(store->transition("c", TaskState::kDiscovered, TaskState::kClaimed, {}, at).ok());
    for (const char* kind : {"verify", "timeout"}) {  // each attempt: 1 s in CLAIMED, ROUTED, PROVISIONED, RUNNING
      REQUIRE(store->transition("c", TaskState::kClaimed, TaskState::kRouted, {}, at += 1000).ok());
      REQUIRE(store->transition("c", TaskState::kRouted, TaskState::kProvisioned, {}, at += 1000).ok());
      REQUIRE(store->transition("c", TaskState::kProvisioned, TaskState::kRunning, {}, at += 1000).ok());
      TransitionUpdate failed;
      failed.failure_kind = kind;
      REQUIRE(store
                  ->transitions("c", TaskState::kRunning, {{TaskState::kFailed, failed}, {TaskState::kClaimed, {}}},
                                at += 1000)
                  .ok());
    }
    REQUIRE(store->transition("c", TaskState::kClaimed, TaskState::kRouted, {}, at += 1000).ok());
    TransitionUpdate cancelled;
    cancelled.failure_kind = "cancelled";
    REQUIRE(store->transition("c", TaskState::kRouted, TaskState::kCancelled, cancelled, at += 1000).ok());
  }
  OneWorker link;
  dashboard::DashboardOptions o;
  o.port = 0;
  o.state_db = dir / "state.db";
  o.log_dir = dir / "logs";
  auto d = dashboard::Dashboard::start(o, link);
  REQUIRE(d.ok());
  const std::string url = (*d)->url();
  httplib::Client c("127.0.0.1", std::stoi(url.substr(url.rfind(':') + 1)));
  auto res = c.Get("/metrics");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  CHECK(res->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) == 0);
  const json s = parse_with_prometheus_client(res->body);

  CHECK(value_of(s, "polyphony_tasks", {{"state", "LANDED"}}) == 1);
  CHECK(value_of(s, "polyphony_tasks", {{"state", "CANCELLED"}}) == 2);
  CHECK(value_of(s, "polyphony_tasks", {{"state", "RUNNING"}}) == 0);
  CHECK(value_of(s, "polyphony_queue_depth") == 0);
  CHECK(value_of(s, "polyphony_transitions_total", {{"from", "VERIFYING"}, {"to", "LANDED"}}) == 1);
  CHECK(value_of(s, "polyphony_transitions_total", {{"from", "DISCOVERED"}, {"to", "CLAIMED"}}) == 3);
  CHECK(value_of(s, "polyphony_attempts_total", {{"outcome", "landed"}}) == 1);
  CHECK(value_of(s, "polyphony_attempts_total", {{"outcome", "failed"}, {"failure_kind", "verify"}}) == 1);
  CHECK(value_of(s, "polyphony_attempts_total", {{"outcome", "failed"}, {"failure_kind", "timeout"}}) == 1);
  CHECK(value_of(s, "polyphony_attempts_total", {{"outcome", "cancelled"}, {"failure_kind", "cancelled"}}) == 1);
  CHECK(value_of(s, "polyphony_merge_queue_wait_seconds_count") == 1);
  CHECK(value_of(s, "polyphony_merge_queue_wait_seconds_sum") == 30);
  CHECK(value_of(s, "polyphony_merge_queue_wait_seconds_bucket", {{"le", "10"}}) == 0);
  CHECK(value_of(s, "polyphony_merge_queue_wait_seconds_bucket", {{"le", "30"}}) == 1);
  CHECK(value_of(s, "polyphony_landings_total") == 1);
  // Each of a's one and c's two attempts took 3 s from CLAIMED to RUNNING.
  CHECK(value_of(s, "polyphony_dispatch_latency_seconds_count") == 3);
  CHECK(value_of(s, "polyphony_dispatch_latency_seconds_sum") == 9);
  CHECK(value_of(s, "polyphony_dispatch_latency_seconds_bucket", {{"le", "2.5"}}) == 0);
  CHECK(value_of(s, "polyphony_dispatch_latency_seconds_bucket", {{"le", "5"}}) == 3);
  CHECK(value_of(s, "polyphony_landing_wait_seconds_sum") == 60);
  CHECK(value_of(s, "polyphony_time_in_state_seconds_sum", {{"state", "RUNNING"}}) == 6 + 1 + 1);
  CHECK(value_of(s, "polyphony_time_in_state_seconds_count", {{"state", "CLAIMED"}}) == 5);
  CHECK(value_of(s, "polyphony_workers", {{"state", "ready"}}) == 1);
  CHECK(value_of(s, "polyphony_worker_heartbeat_age_seconds", {{"worker", "w\"1"}}) == 2.5);
  CHECK(value_of(s, "polyphony_worker_load", {{"worker", "w\"1"}}) == 1);
  CHECK(value_of(s, "polyphony_coordinator_up") == 1);
  CHECK(value_of(s, "polyphony_agent_tokens_total", {{"agent", "scripted"}, {"direction", "input"}}) == 1200);
  CHECK(value_of(s, "polyphony_agent_cost_usd_total", {{"agent", "scripted"}}) == 0.5);
}

TEST_CASE("GitHub calls by endpoint and status, and the rate limit GitHub last reported, parse as Prometheus text") {
  dashboard::MetricsModel model;
  dashboard::MetricsSnapshot snap;
  snap.now_ms = kT0;
  snap.github = GithubHealth{"acme/widgets", "rate_limited", "API rate limit", kT0 + 90000, kT0};
  snap.github_usage.calls = {{"GET issues", "200", 7},
                             {"GET issues", "304", 12},
                             {"GET issues", "403", 1},
                             {"POST issues/{n}/comments", "network", 2}};
  snap.github_usage.rate_limits = {{"core", 5000, 0, 5000, kT0 + 90000, kT0}};
  const json s = parse_with_prometheus_client(model.render(snap));
  CHECK(value_of(s, "polyphony_github_calls_total", {{"endpoint", "GET issues"}, {"status", "304"}}) == 12);
  CHECK(value_of(s, "polyphony_github_calls_total",
                 {{"endpoint", "POST issues/{n}/comments"}, {"status", "network"}}) == 2);
  CHECK(value_of(s, "polyphony_github_rate_limit_limit", {{"resource", "core"}}) == 5000);
  CHECK(value_of(s, "polyphony_github_rate_limit_remaining", {{"resource", "core"}}) == 0);
  CHECK(value_of(s, "polyphony_github_rate_limit_reset_timestamp_seconds", {{"resource", "core"}}) ==
        (kT0 + 90000) / 1000.0);
  CHECK(value_of(s, "polyphony_github_state", {{"state", "rate_limited"}}) == 1);
  CHECK(value_of(s, "polyphony_github_state", {{"state", "ok"}}) == 0);
  CHECK(value_of(s, "polyphony_github_backoff_seconds") == 90);
  // Without GitHub mode there are no GitHub families at all.
  dashboard::MetricsSnapshot plain;
  CHECK(model.render(plain).find("polyphony_github") == std::string::npos);
}

TEST_CASE("label values escape backslash, double quote and newline") {
  CHECK(dashboard::escape_label("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
}

TEST_CASE("a registered secret never reaches a metric label") {
  register_secret("sekrit-metrics-token-5150");
  dashboard::MetricsModel model;
  dashboard::MetricsSnapshot snap;
  protocol::WorkersReply workers;
  protocol::WorkerStatus w;
  w.worker_id = "box-sekrit-metrics-token-5150";
  w.state = "ready";
  workers.workers.push_back(w);
  snap.workers = workers;
  snap.github_usage.calls = {{"GET sekrit-metrics-token-5150", "200", 1}};
  const std::string text = model.render(snap);
  CHECK(text.find("sekrit-metrics-token-5150") == std::string::npos);
  const json s = parse_with_prometheus_client(text);
  CHECK(value_of(s, "polyphony_worker_capacity", {{"worker", "box-***"}}) == 1);
}
