// GitHub Issues as a work source: labelled open issues become tasks, claimed visibly and once;
// finished tasks are reported back (a pull request at LANDED, comments at LANDED, FAILED and
// BLOCKED); closed, unlabelled or deleted issues cancel their tasks. Every GitHub write goes
// through an outbox in the state DB, so a crash or a rate limit delays it but never loses or
// repeats it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "common/result.h"
#include "common/sqlite.h"
#include "coordinator/gh_client.h"
#include "coordinator/state_store.h"
#include "coordinator/task.h"

namespace polyphony {

struct GithubIssue {
  int64_t number = 0;
  std::string title;
  std::string body;
  std::string state;  // "open", "closed"
  std::string html_url;
  std::string updated_at;
  std::vector<std::string> labels;
  bool pull_request = false;
};

// One issue object of the REST API; errors name the missing field.
Result<GithubIssue> parse_github_issue(const nlohmann::json& j);

// The task id of issue `number` of `repo` ("gh123-<8 hex of the repo>"): the same on every
// poll and after a restart, so one issue never becomes two tasks.
std::string github_task_id(const std::string& repo, int64_t number);

struct IssueRef {
  std::string repo;  // owner/name
  int64_t number = 0;
};
// Parses "owner/name#123"; errors have code "usage".
Result<IssueRef> parse_issue_ref(const std::string& text);

// The task an issue becomes: title, body with a link back, labels (but claimed_label), task
// type and risk from the configured label prefixes, repo = github.remote.
TaskRequest task_from_issue(const GithubIssue& issue, const GithubConfig& config);

// How the GitHub side is doing, for the log and `polyphony status`.
struct GithubHealth {
  std::string repo;
  std::string state = "ok";  // "ok", "rate_limited", "error"
  std::string message;
  int64_t until_ms = 0;  // no GitHub calls before this (back-off)
  int64_t at_ms = 0;
};

// The health the coordinator last recorded in `state_db`; nullopt when GitHub mode never ran.
Result<std::optional<GithubHealth>> read_github_health(const std::filesystem::path& state_db);

// Every GitHub call the coordinator made, counted by endpoint kind (github_endpoint_kind) and
// status: the HTTP status ("200", "304", "403") or, when no HTTP answer came, the GhClient's
// error code ("network", "timeout", "auth", "not_found", "gh", "cancelled").
struct GithubCallCount {
  std::string endpoint;
  std::string status;
  int64_t count = 0;
};

// The rate limit GitHub last reported for a resource ("core", "search", ...), from the
// X-RateLimit-* headers of its last answer that carried them.
struct GithubRateLimit {
  std::string resource;
  int64_t limit = 0;
  int64_t remaining = 0;
  int64_t used = 0;
  int64_t reset_at_ms = 0;  // when the window resets
  int64_t at_ms = 0;        // when the answer came
};

struct GithubUsage {
  std::vector<GithubCallCount> calls;
  std::vector<GithubRateLimit> rate_limits;
};

// What the coordinator recorded in `state_db`; empty when GitHub mode never ran.
Result<GithubUsage> read_github_usage(const std::filesystem::path& state_db);

// The pull request recorded for a task; empty when none.
Result<std::string> read_github_pull_url(const std::filesystem::path& state_db, const std::string& task_id);

struct GithubCancel {
  std::string task_id;
  std::string reason;
};

class GithubSource {
 public:
  using NowFn = std::function<int64_t()>;

  // Opens its tables in settings.config.state_db. `now` (ms since the epoch) defaults to the
  // system clock; tests pass a fake one.
  static Result<std::unique_ptr<GithubSource>> open(const Settings& settings, std::unique_ptr<GhClient> gh,
                                                    NowFn now = nullptr);

  // One round when due (github.poll_interval_ms, never before a back-off ends): lists the
  // labelled open issues (conditional requests: an unchanged list costs no rate limit), adds
  // and claims new ones as tasks in `store`, updates tasks whose issue was edited before
  // their run started, and returns the unfinished tasks whose issue was closed, unlabelled or
  // deleted, for the caller to cancel.
  std::vector<GithubCancel> sync(StateStore& store);

  // Makes issue `number` a task now, whatever its labels (`polyphony spawn --issue`); adds the
  // trigger label with the claim. Returns the task id; the same id when already adopted.
  // Error code "retry" when GitHub cannot answer now (keep the request and try later).
  Result<std::string> adopt(StateStore& store, int64_t number);

  // Queues the reports of tasks that finished since the last call and sends pending GitHub
  // writes, unless backing off. Cheap when there is nothing to do.
  void report(StateStore& store);

  GithubHealth health() const { return health_; }

 private:
  struct Link {
    int64_t number = 0;
    std::string task_id;
    std::string reported;
    int64_t pr_number = 0;
    std::string pr_url;
  };
  struct Page {
    std::string etag;
    std::string body;
    std::string link;
  };
  struct Outgoing {
    int64_t seq = 0;
    std::string key;
    int64_t number = 0;
    std::string kind;
    nlohmann::json payload;
    bool attempted = false;  // sent before, its outcome unknown (a crash or timeout after sending)
  };

  GithubSource(const Settings& settings, std::unique_ptr<GhClient> gh, NowFn now);
  Status migrate();

  Result<std::vector<GithubIssue>> list_open_issues();
  Result<std::string> discover(StateStore& store, const GithubIssue& issue, bool adopted);
  void update_if_edited(StateStore& store, const GithubIssue& issue, const Link& link);
  // Why a linked issue left the list; nullopt when it is still open, labelled and matching.
  Result<std::optional<std::string>> why_gone(int64_t number);
  void queue_reports(StateStore& store, const Link& link, const Task& task);
  void flush();
  // Sends one outbox row. A transient failure (rate limit, network) is an Error with code
  // "retry"; anything else an Error with the reason.
  Status send(const Outgoing& out);
  Status send_pull(const Outgoing& out);
  // The pull request whose head is `head` (any state); nullopt when there is none.
  Result<std::optional<nlohmann::json>> find_pull(const std::string& head);
  // Keeps the pull request `pr` (GitHub's object) as the issue's.
  Status record_pull(const Outgoing& out, const nlohmann::json& pr, const std::string& where);
  // Whether issue `number` already carries every label of `labels` (an earlier send that did land).
  Result<bool> has_labels(int64_t number, const nlohmann::json& labels);
  // Whether a comment carrying `marker` is already on the issue (an earlier send that did land).
  Result<bool> has_comment(int64_t number, const std::string& marker);
  Result<std::string> base_branch();
  std::string pr_body(StateStore& store, const Task& task, int64_t number);

  Result<GhResponse> call(GhRequest request);
  // Counts the call and keeps the rate limit its answer reports (read_github_usage).
  void record_call(const GhRequest& request, const Result<GhResponse>& answer);
  // Handles an error of a call: backs off when it is transient; returns the error to return.
  Error failed(const Error& e);
  void back_off(const std::string& state, const std::string& message, int64_t until_ms);
  void set_health(const std::string& state, const std::string& message, int64_t until_ms);

  Result<std::map<int64_t, Link>> links();
  Status enqueue(Database& db, const std::string& key, int64_t number, const std::string& kind,
                 const nlohmann::json& payload);

  Settings settings_;
  const GithubConfig& config_;
  std::unique_ptr<GhClient> gh_;
  NowFn now_;
  Database db_;
  std::map<std::string, Page> pages_;  // by request path: the last 200 answer, for If-None-Match
  std::string default_branch_;
  int64_t next_poll_ms_ = 0;
  int failures_ = 0;           // consecutive transient failures, for the back-off
  std::set<int64_t> skipped_;  // issues claimed by someone else, logged once
  GithubHealth health_;
};

}  // namespace polyphony
