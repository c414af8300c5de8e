// GitHub Issues as a work source: list, claim, reconcile, report through an outbox.
#include "coordinator/github_source.h"

#include "common/log.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "common/ids.h"
#include "coordinator/router.h"
#include "coordinator/scoring.h"

namespace polyphony {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS github_issues (
  repo TEXT NOT NULL,
  number INTEGER NOT NULL,
  task_id TEXT NOT NULL UNIQUE,
  url TEXT NOT NULL DEFAULT '',
  reported TEXT NOT NULL DEFAULT '',
  pr_number INTEGER NOT NULL DEFAULT 0,
  pr_url TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  PRIMARY KEY (repo, number)
);
CREATE TABLE IF NOT EXISTS github_outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT NOT NULL UNIQUE,
  repo TEXT NOT NULL,
  number INTEGER NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL,
  done INTEGER NOT NULL DEFAULT 0,
  attempted INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS github_health (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  repo TEXT NOT NULL,
  state TEXT NOT NULL,
  message TEXT NOT NULL,
  until_ms INTEGER NOT NULL,
  at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS github_calls (
  endpoint TEXT NOT NULL,
  status TEXT NOT NULL,
  count INTEGER NOT NULL,
  PRIMARY KEY (endpoint, status)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS github_rate_limits (
  resource TEXT PRIMARY KEY,
  lim INTEGER NOT NULL,
  remaining INTEGER NOT NULL,
  used INTEGER NOT NULL,
  reset_at_ms INTEGER NOT NULL,
  at_ms INTEGER NOT NULL
);
)";

constexpr int64_t kMaxBackoffMs = 15 * 60 * 1000;
constexpr int kMaxPages = 100;

std::string utc(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string query_escape(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ',') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// GitHub's own words for an error answer ("API rate limit exceeded for ...").
std::string github_message(const GhResponse& r) {
  auto j = json::parse(r.body, nullptr, false);
  std::string m =
      j.is_object() && j.contains("message") && j["message"].is_string() ? j["message"].get<std::string>() : "";
  if (j.is_object() && j.contains("errors") && j["errors"].is_array()) {
    // A validation error has a message, or only resource, field and code ("missing_field").
    for (const auto& e : j["errors"]) {
      if (!e.is_object()) continue;
      auto part = [&](const char* k) { return e.contains(k) && e[k].is_string() ? e[k].get<std::string>() : ""; };
      if (!part("message").empty())
        m += "; " + part("message");
      else if (!part("code").empty())
        m += "; " + part("resource") + "." + part("field") + " " + part("code");
    }
  }
  return "HTTP " + std::to_string(r.status) + (m.empty() ? "" : " " + m);
}

// When a 403/429 answer is a rate limit: the time calls may resume.
std::optional<int64_t> rate_limit_until(const GhResponse& r, int64_t now) {
  if (r.status != 403 && r.status != 429) return std::nullopt;
  try {
    if (!r.header("retry-after").empty()) return now + std::stoll(r.header("retry-after")) * 1000;
    if (r.header("x-ratelimit-remaining") == "0" && !r.header("x-ratelimit-reset").empty()) {
      return std::max<int64_t>(now, std::stoll(r.header("x-ratelimit-reset")) * 1000) + 1000;
    }
  } catch (const std::exception&) {
  }
  if (r.status == 429 || github_message(r).find("rate limit") != std::string::npos) return now + 60 * 1000;
  return std::nullopt;
}

bool has_label(const std::vector<std::string>& labels, const std::string& l) {
  return std::find(labels.begin(), labels.end(), l) != labels.end();
}

}  // namespace

Result<GithubIssue> parse_github_issue(const json& j) {
  if (!j.is_object()) return make_error("github", "an issue is not a JSON object");
  GithubIssue i;
  if (!j.contains("number") || !j["number"].is_number_integer())
    return make_error("github", "an issue has no number", "number");
  i.number = j["number"].get<int64_t>();
  auto str = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
  i.title = str("title");
  i.body = str("body");
  i.state = str("state");
  i.html_url = str("html_url");
  i.updated_at = str("updated_at");
  i.pull_request = j.contains("pull_request") && !j["pull_request"].is_null();
  if (j.contains("labels") && j["labels"].is_array()) {
    for (const auto& l : j["labels"]) {
      if (l.is_string())
        i.labels.push_back(l.get<std::string>());
      else if (l.is_object() && l.contains("name") && l["name"].is_string())
        i.labels.push_back(l["name"].get<std::string>());
    }
  }
  return i;
}

std::string github_task_id(const std::string& repo, int64_t number) {
  uint32_t h = 2166136261u;
  for (unsigned char c : repo) h = (h ^ c) * 16777619u;
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", h);
  return "gh" + std::to_string(number) + "-" + hex;
}

Result<IssueRef> parse_issue_ref(const std::string& text) {
  const auto hash = text.rfind('#');
  IssueRef ref;
  if (hash != std::string::npos) {
    ref.repo = text.substr(0, hash);
    try {
      size_t used = 0;
      ref.number = std::stoll(text.substr(hash + 1), &used);
      if (used != text.size() - hash - 1) ref.number = 0;
    } catch (const std::exception&) {
      ref.number = 0;
    }
  }
  const auto slash = ref.repo.find('/');
  if (ref.number <= 0 || slash == std::string::npos || slash == 0 || slash + 1 == ref.repo.size()) {
    return make_error("usage", "expected an issue as owner/name#NUMBER, got '" + text + "'", "--issue");
  }
  return ref;
}

TaskRequest task_from_issue(const GithubIssue& issue, const GithubConfig& c) {
  TaskRequest r;
  r.id = github_task_id(c.repo, issue.number);
  r.title = issue.title.empty() ? "GitHub issue #" + std::to_string(issue.number) : issue.title;
  r.body = issue.body;
  if (!r.body.empty() && r.body.back() != '\n') r.body += "\n";
  r.body += (r.body.empty() ? "" : "\n") + std::string("GitHub issue: ") +
            (issue.html_url.empty() ? c.repo + "#" + std::to_string(issue.number) : issue.html_url) + "\n";
  r.repo = c.remote;
  for (const auto& l : issue.labels) {
    if (l != c.claimed_label) r.labels.push_back(l);  // our own mark is not part of the ask
    if (!c.type_label_prefix.empty() && l.rfind(c.type_label_prefix, 0) == 0)
      r.task_type = l.substr(c.type_label_prefix.size());
    if (!c.risk_label_prefix.empty() && l.rfind(c.risk_label_prefix, 0) == 0)
      r.risk = l.substr(c.risk_label_prefix.size());
  }
  r.source = "github";
  return r;
}

Result<std::optional<GithubHealth>> read_github_health(const fs::path& state_db) {
  if (!fs::exists(state_db)) return std::optional<GithubHealth>();
  auto db = Database::open(state_db, kStateDbApplicationId, false, true);
  if (!db.ok()) return db.error();
  auto st = db->prepare("SELECT repo, state, message, until_ms, at_ms FROM github_health WHERE id=1");
  if (!st.ok()) return std::optional<GithubHealth>();  // no table: GitHub mode never ran
  auto row = st->step();
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<GithubHealth>();
  return std::optional<GithubHealth>(GithubHealth{st->text(0), st->text(1), st->text(2), st->int64(3), st->int64(4)});
}

Result<GithubUsage> read_github_usage(const fs::path& state_db) {
  GithubUsage usage;
  if (!fs::exists(state_db)) return usage;
  auto db = Database::open(state_db, kStateDbApplicationId, false, true);
  if (!db.ok()) return db.error();
  auto calls = db->prepare("SELECT endpoint, status, count FROM github_calls ORDER BY endpoint, status");
  if (!calls.ok()) return usage;  // no table: GitHub mode never ran
  while (true) {
    auto row = calls->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    usage.calls.push_back({calls->text(0), calls->text(1), calls->int64(2)});
  }
  auto limits = db->prepare(
      "SELECT resource, lim, remaining, used, reset_at_ms, at_ms FROM github_rate_limits ORDER BY resource");
  if (!limits.ok()) return usage;
  while (true) {
    auto row = limits->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    usage.rate_limits.push_back(
        {limits->text(0), limits->int64(1), limits->int64(2), limits->int64(3), limits->int64(4), limits->int64(5)});
  }
  return usage;
}

Result<std::string> read_github_pull_url(const fs::path& state_db, const std::string& task_id) {
  if (!fs::exists(state_db)) return std::string();
  auto db = Database::open(state_db, kStateDbApplicationId, false, true);
  if (!db.ok()) return db.error();
  auto st = db->prepare("SELECT pr_url FROM github_issues WHERE task_id=?");
  if (!st.ok()) return std::string();
  st->bind(1, task_id);
  auto row = st->step();
  if (!row.ok()) return row.error();
  return *row ? st->text(0) : std::string();
}

GithubSource::GithubSource(const Settings& settings, std::unique_ptr<GhClient> gh, NowFn now)
    : settings_(settings), config_(settings_.config.github), gh_(std::move(gh)), now_(std::move(now)) {
  if (!now_) now_ = [] { return now_ms(); };
  health_.repo = config_.repo;
}

Result<std::unique_ptr<GithubSource>> GithubSource::open(const Settings& settings, std::unique_ptr<GhClient> gh,
                                                         NowFn now) {
  auto s = std::unique_ptr<GithubSource>(new GithubSource(settings, std::move(gh), std::move(now)));
  auto db = Database::open(settings.config.state_db, kStateDbApplicationId, true);
  if (!db.ok()) return db.error();
  s->db_ = std::move(*db);
  POLY_TRY(s->migrate());
  // A back-off survives a restart: GitHub's reset time does not move because we did.
  auto health = read_github_health(settings.config.state_db);
  if (health.ok() && health->has_value() && (*health)->repo == s->config_.repo) {
    s->health_ = **health;
    s->next_poll_ms_ = s->health_.until_ms;
  }
  return s;
}

Status GithubSource::migrate() {
  return db_.exec(kSchema);
}

// ---- calls and back-off

namespace {

// The X-RateLimit-* headers of an answer, when it has them and they read as numbers.
std::optional<GithubRateLimit> rate_limit_of(const GhResponse& r, int64_t now) {
  if (r.header("x-ratelimit-limit").empty()) return std::nullopt;
  auto number = [&](const char* name) {
    const std::string v = r.header(name);
    return v.empty() ? int64_t{0} : std::stoll(v);
  };
  try {
    const std::string resource = r.header("x-ratelimit-resource");
    return GithubRateLimit{resource.empty() ? "core" : resource, number("x-ratelimit-limit"),
                           number("x-ratelimit-remaining"),      number("x-ratelimit-used"),
                           number("x-ratelimit-reset") * 1000,   now};
  } catch (const std::exception&) {
    return std::nullopt;  // not GitHub's numbers: nothing to keep
  }
}

}  // namespace

void GithubSource::record_call(const GhRequest& request, const Result<GhResponse>& r) {
  auto count = db_.prepare(
      "INSERT INTO github_calls(endpoint, status, count) VALUES (?,?,1) "
      "ON CONFLICT(endpoint, status) DO UPDATE SET count = count + 1");
  if (!count.ok()) return spdlog::error("github: cannot count a call: {}", count.error().to_string());
  count->bind(1, github_endpoint_kind(request.method, request.path));
  count->bind(2, r.ok() ? std::to_string(r->status) : r.error().code);
  if (auto s = count->run(); !s.ok()) spdlog::error("github: cannot count a call: {}", s.error().to_string());
  const auto limit = r.ok() ? rate_limit_of(*r, now_()) : std::nullopt;
  if (!limit) return;
  auto keep = db_.prepare(
      "INSERT OR REPLACE INTO github_rate_limits(resource, lim, remaining, used, reset_at_ms, at_ms) "
      "VALUES (?,?,?,?,?,?)");
  if (!keep.ok()) return spdlog::error("github: cannot keep the rate limit: {}", keep.error().to_string());
  keep->bind(1, limit->resource).bind(2, limit->limit).bind(3, limit->remaining).bind(4, limit->used);
  keep->bind(5, limit->reset_at_ms).bind(6, limit->at_ms);
  if (auto s = keep->run(); !s.ok()) spdlog::error("github: cannot keep the rate limit: {}", s.error().to_string());
}

Result<GhResponse> GithubSource::call(GhRequest request) {
  auto r = gh_->api(request);
  record_call(request, r);
  if (!r.ok()) return failed(r.error());
  if (r->status == 401) {
    Error e = gh_unauthorized(config_.host, github_message(*r));
    e.where = request.method + " " + request.path;
    return failed(e);
  }
  if (auto until = rate_limit_until(*r, now_())) {
    back_off("rate_limited",
             "GitHub API rate limit (" + github_message(*r) + "); no calls until " + utc(*until) + " (" +
                 request.method + " " + request.path + ")",
             *until);
    return make_error("retry", "rate limited until " + utc(*until), request.method + " " + request.path);
  }
  if (r->status >= 500) {
    return failed(make_error("github", "GitHub answered " + github_message(*r), request.method + " " + request.path));
  }
  failures_ = 0;
  return r;
}

Error GithubSource::failed(const Error& e) {
  // Everything that reaches here is transient or the operator's to fix (gh missing, not
  // logged in, network down, 5xx): back off exponentially from the poll interval.
  ++failures_;
  int64_t wait = config_.poll_interval_ms;
  for (int i = 1; i < failures_ && wait < kMaxBackoffMs; ++i) wait *= 2;
  wait = std::min(wait, kMaxBackoffMs);
  back_off("error", e.to_string() + "; retrying after " + utc(now_() + wait), now_() + wait);
  return make_error("retry", e.message, e.where);
}

void GithubSource::back_off(const std::string& state, const std::string& message, int64_t until_ms) {
  next_poll_ms_ = std::max(next_poll_ms_, until_ms);
  if (state == "rate_limited")
    spdlog::warn("github {}: {}", config_.repo, message);
  else
    spdlog::error("github {}: {}", config_.repo, message);
  set_health(state, message, until_ms);
}

void GithubSource::set_health(const std::string& state, const std::string& message, int64_t until_ms) {
  if (health_.state == state && health_.message == message && health_.until_ms == until_ms && health_.at_ms != 0)
    return;
  if (state == "ok" && health_.state != "ok") spdlog::info("github {}: reachable again", config_.repo);
  health_ = GithubHealth{config_.repo, state, message, until_ms, now_()};
  auto st = db_.prepare(
      "INSERT OR REPLACE INTO github_health(id, repo, state, message, until_ms, at_ms) VALUES (1,?,?,?,?,?)");
  if (!st.ok()) return;
  st->bind(1, config_.repo).bind(2, state).bind(3, message).bind(4, until_ms).bind(5, health_.at_ms);
  auto s = st->run();
  if (!s.ok()) spdlog::error("github: cannot record its health: {}", s.error().to_string());
}

// ---- listing and reconciling

Result<std::vector<GithubIssue>> GithubSource::list_open_issues() {
  std::string labels = config_.label;
  for (const auto& l : config_.filter_labels) labels += "," + l;
  std::string path = "repos/" + config_.repo + "/issues?labels=" + query_escape(labels) + "&state=open&per_page=100";
  std::vector<GithubIssue> issues;
  for (int page = 0; page < kMaxPages && !path.empty(); ++page) {
    GhRequest req;
    req.path = path;
    auto cached = pages_.find(path);
    if (cached != pages_.end() && !cached->second.etag.empty()) req.headers["If-None-Match"] = cached->second.etag;
    auto r = call(req);
    if (!r.ok()) return r.error();
    if (r->status == 304 && cached != pages_.end()) {
      r->body = cached->second.body;
      r->headers["link"] = cached->second.link;
    } else if (r->status == 200) {
      pages_[path] = Page{r->header("etag"), r->body, r->header("link")};
    } else {
      return make_error("github", "listing issues: " + github_message(*r), "GET " + path);
    }
    auto j = json::parse(r->body, nullptr, false);
    if (!j.is_array()) return make_error("github", "listing issues: the answer is not a JSON array", "GET " + path);
    for (const auto& item : j) {
      auto issue = parse_github_issue(item);
      if (!issue.ok()) return issue.error();
      if (!issue->pull_request) issues.push_back(std::move(*issue));
    }
    path = next_page_path(r->header("link"));
  }
  return issues;
}

std::vector<GithubCancel> GithubSource::sync(StateStore& store) {
  std::vector<GithubCancel> cancels;
  const int64_t now = now_();
  if (now < next_poll_ms_) return cancels;
  next_poll_ms_ = now + config_.poll_interval_ms;
  auto issues = list_open_issues();
  if (!issues.ok()) {
    if (issues.error().code != "retry") failed(issues.error());
    return cancels;
  }
  set_health("ok", "", 0);
  auto known = links();
  if (!known.ok()) {
    spdlog::error("github: cannot read the issue links: {}", known.error().to_string());
    return cancels;
  }
  std::set<int64_t> open;
  for (const auto& issue : *issues) {
    open.insert(issue.number);
    if (auto it = known->find(issue.number); it != known->end()) {
      update_if_edited(store, issue, it->second);
    } else if (has_label(issue.labels, config_.claimed_label)) {
      if (skipped_.insert(issue.number).second) {
        spdlog::warn(
            "github {}: issue #{} already carries {} but is not ours (claimed by another coordinator?); skipped",
            config_.repo, issue.number, config_.claimed_label);
      }
    } else {
      auto id = discover(store, issue, false);
      if (!id.ok()) spdlog::error("github {}: issue #{}: {}", config_.repo, issue.number, id.error().to_string());
    }
  }
  for (const auto& [number, link] : *known) {
    if (open.count(number)) continue;
    auto task = store.get(link.task_id);
    if (!task.ok() || !task->has_value() || is_finished((*task)->state)) continue;
    auto why = why_gone(number);
    if (!why.ok()) break;  // backing off; reconcile on the next round
    if (why->has_value()) cancels.push_back({link.task_id, **why});
  }
  return cancels;
}

Result<std::optional<std::string>> GithubSource::why_gone(int64_t number) {
  const std::string ref = "GitHub issue " + config_.repo + "#" + std::to_string(number);
  GhRequest req;
  req.path = "repos/" + config_.repo + "/issues/" + std::to_string(number);
  auto r = call(req);
  if (!r.ok()) return r.error();
  if (r->status == 404 || r->status == 410) return std::optional<std::string>(ref + " was deleted");
  if (r->status != 200)
    return failed(make_error("github", "reading the issue: " + github_message(*r), "GET " + req.path));
  auto issue = parse_github_issue(json::parse(r->body, nullptr, false));
  if (!issue.ok()) return issue.error();
  if (issue->state == "closed") return std::optional<std::string>(ref + " was closed");
  if (!has_label(issue->labels, config_.label)) {
    return std::optional<std::string>(ref + " lost its label " + config_.label);
  }
  for (const auto& l : config_.filter_labels) {
    if (!has_label(issue->labels, l)) return std::optional<std::string>(ref + " lost its label " + l);
  }
  return std::optional<std::string>();
}

void GithubSource::update_if_edited(StateStore& store, const GithubIssue& issue, const Link& link) {
  auto task = store.get(link.task_id);
  if (!task.ok() || !task->has_value()) {
    // Linked but never recorded (a crash in between): record it now.
    auto added = store.add(task_from_issue(issue, config_), now_());
    if (!added.ok()) spdlog::error("task {}: cannot record it: {}", link.task_id, added.error().to_string());
    return;
  }
  const TaskRequest now = task_from_issue(issue, config_);
  const TaskRequest& was = (*task)->request;
  if (now.title == was.title && now.body == was.body && now.task_type == was.task_type && now.risk == was.risk &&
      now.labels == was.labels) {
    return;
  }
  if ((*task)->attempt > 0) return;  // a run started: it keeps what it was given
  auto updated = store.update_request(now, {TaskState::kDiscovered, TaskState::kClaimed}, now_());
  if (!updated.ok())
    spdlog::error("task {}: cannot update it from the edited issue: {}", link.task_id, updated.error().to_string());
  else if (*updated)
    spdlog::info("task {} updated from edited GitHub issue #{}", link.task_id, issue.number);
}

Result<std::string> GithubSource::discover(StateStore& store, const GithubIssue& issue, bool adopted) {
  TaskRequest r = task_from_issue(issue, config_);
  r.created_at_ms = now_();
  auto added = store.add(r, now_());
  if (!added.ok()) return added.error();
  const std::string ref = config_.repo + "#" + std::to_string(issue.number);
  json labels = json::array();
  if (adopted && !has_label(issue.labels, config_.label)) labels.push_back(config_.label);
  if (!has_label(issue.labels, config_.claimed_label)) labels.push_back(config_.claimed_label);
  POLY_TRY(db_.transaction([&]() -> Status {
    auto st =
        db_.prepare("INSERT OR IGNORE INTO github_issues(repo, number, task_id, url, created_at) VALUES (?,?,?,?,?)");
    if (!st.ok()) return st.error();
    st->bind(1, config_.repo).bind(2, issue.number).bind(3, r.id).bind(4, issue.html_url).bind(5, now_());
    POLY_TRY(st->run());
    if (!labels.empty()) POLY_TRY(enqueue(db_, "claim-label:" + ref, issue.number, "label", json{{"labels", labels}}));
    const std::string body = "Polyphony claimed this issue as task `" + r.id + "` (`polyphony show " + r.id +
                             "`). It will open a pull request when the work passes verification.";
    return enqueue(db_, "claim-comment:" + ref, issue.number, "comment", json{{"body", body}});
  }));
  if (*added) spdlog::info("task {} DISCOVERED from GitHub issue {}: {}", r.id, ref, r.title);
  return r.id;
}

Result<std::string> GithubSource::adopt(StateStore& store, int64_t number) {
  if (now_() < health_.until_ms)
    return make_error("retry", health_.message, config_.repo + "#" + std::to_string(number));
  auto known = links();
  if (!known.ok()) return known.error();
  if (auto it = known->find(number); it != known->end()) return it->second.task_id;
  GhRequest req;
  req.path = "repos/" + config_.repo + "/issues/" + std::to_string(number);
  auto r = call(req);
  if (!r.ok()) return r.error();
  const std::string ref = config_.repo + "#" + std::to_string(number);
  if (r->status == 404 || r->status == 410) return make_error("not_found", "GitHub has no issue " + ref, ref);
  if (r->status != 200) return make_error("github", "reading issue " + ref + ": " + github_message(*r), ref);
  auto issue = parse_github_issue(json::parse(r->body, nullptr, false));
  if (!issue.ok()) return issue.error();
  if (issue->pull_request) return make_error("usage", ref + " is a pull request, not an issue", ref);
  if (issue->state != "open") return make_error("usage", "issue " + ref + " is closed", ref);
  auto id = discover(store, *issue, true);
  if (id.ok()) flush();
  return id;
}

// ---- reporting

Result<std::map<int64_t, GithubSource::Link>> GithubSource::links() {
  auto st = db_.prepare(
      "SELECT number, task_id, reported, pr_number, pr_url FROM github_issues WHERE repo=? ORDER BY number");
  if (!st.ok()) return st.error();
  st->bind(1, config_.repo);
  std::map<int64_t, Link> out;
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    out[st->int64(0)] = Link{st->int64(0), st->text(1), st->text(2), st->int64(3), st->text(4)};
  }
  return out;
}

Status GithubSource::enqueue(Database& db, const std::string& key, int64_t number, const std::string& kind,
                             const json& payload) {
  // What goes to GitHub is public to the repo's readers: no registered secret in it.
  json sent = payload;
  for (const char* field : {"body", "title"}) {
    if (sent.contains(field) && sent[field].is_string()) sent[field] = redact(sent[field].get<std::string>());
  }
  auto st = db.prepare(
      "INSERT OR IGNORE INTO github_outbox(key, repo, number, kind, payload, created_at) VALUES (?,?,?,?,?,?)");
  if (!st.ok()) return st.error();
  st->bind(1, key).bind(2, config_.repo).bind(3, number).bind(4, kind).bind(5, sent.dump()).bind(6, now_());
  return st->run();
}

void GithubSource::report(StateStore& store) {
  auto known = links();
  if (!known.ok()) return;
  for (const auto& [number, link] : *known) {
    if (link.reported.rfind("LANDED", 0) == 0 || link.reported.rfind("CANCELLED", 0) == 0) continue;
    auto task = store.get(link.task_id);
    if (!task.ok() || !task->has_value()) continue;
    queue_reports(store, link, **task);
  }
  flush();
}

std::string GithubSource::pr_body(StateStore& store, const Task& t, int64_t number) {
  std::string routed, verify;
  auto events = store.events(t.request.id);
  if (events.ok()) {
    for (const auto& e : *events) {
      if (e.to == "ROUTED") routed = e.reason;
      if (e.to == "VERIFYING") verify = e.reason;
    }
  }
  // The complexity score needs the repo's text: computed when the remote is on this disk (the
  // coordinator keeps no mirrors of remote repos), else said to be unknown.
  std::optional<int> total;
  std::string score_text = "not computed (the remote is not on the coordinator's disk)";
  const RepoConfig* rc = find_repo(settings_.config, config_.remote);
  const std::string local = rc ? rc->url : config_.remote;
  if (!local.empty() && local.front() == '/') {
    auto text = read_repo_at(local, "HEAD");
    if (text.ok()) {
      const Score sc = score(collect_signals(t.request, *text), settings_.routing.scoring);
      total = sc.total;
      score_text = std::to_string(sc.total) + "/10 (";
      for (size_t i = 0; i < sc.dimensions.size(); ++i) {
        score_text += (i ? ", " : "") + std::string(dimension_name(sc.dimensions[i].dimension)) + " " +
                      std::to_string(sc.dimensions[i].value);
      }
      score_text += ")";
    } else {
      score_text = "not computed: " + text.error().to_string();
    }
  }
  std::string plan = "solo";
  std::string plan_because;
  auto decision = route(t.request, settings_.routing, settings_.agents, total);
  if (decision.ok()) {
    plan = plan_name(decision->plan);
    plan_because = decision->plan_because;
  }
  std::string body = "Closes #" + std::to_string(number) + "\n\n";
  body += "Polyphony task `" + t.request.id + "`, attempt " + std::to_string(t.attempt) + ".\n\n";
  body += "- Agent: " + (t.agent.empty() ? std::string("-") : t.agent) + "\n";
  if (!routed.empty()) body += "- Routing: " + routed + "\n";
  body += "- Score: " + score_text + "\n";
  body += "- Plan: " + plan + (plan_because.empty() ? "" : " (" + plan_because + ")") + "\n";
  body += "- Verify: " + (verify.empty() ? std::string("passed") : "`" + verify + "` passed") + "\n";
  body += "- Branch: `" + t.branch + "`" + (t.commit.empty() ? "" : " at " + t.commit) + "\n";
  return body;
}

void GithubSource::queue_reports(StateStore& store, const Link& link, const Task& t) {
  const std::string state(to_string(t.state));
  const std::string mark = state + ":" + std::to_string(t.attempt);
  if (link.reported == mark) return;
  if (t.state != TaskState::kLanded && t.state != TaskState::kFailed && t.state != TaskState::kBlocked &&
      t.state != TaskState::kCancelled) {
    return;
  }
  const std::string ref = config_.repo + "#" + std::to_string(link.number);
  // Written before the transaction: it reads the repository, which must not hold the DB's lock.
  const std::string body_of_pull = t.state == TaskState::kLanded ? pr_body(store, t, link.number) : "";
  auto s = db_.transaction([&]() -> Status {
    if (t.state == TaskState::kLanded) {
      json pull{{"title", t.request.title}, {"head", t.branch}, {"body", body_of_pull}};
      POLY_TRY(enqueue(db_, "pull:" + t.request.id, link.number, "pull", pull));
      const std::string body = "Polyphony task `" + t.request.id + "` is LANDED: agent " + t.agent +
                               " pushed branch `" + t.branch + "`, verify passed, pull request {pr}.";
      POLY_TRY(enqueue(db_, "landed:" + t.request.id, link.number, "comment", json{{"body", body}}));
      if (!config_.auto_merge.empty()) {
        POLY_TRY(
            enqueue(db_, "merge:" + t.request.id, link.number, "merge", json{{"merge_method", config_.auto_merge}}));
      }
    } else if (t.state != TaskState::kCancelled) {
      const std::string body = "Polyphony task `" + t.request.id + "` is " + state + " after attempt " +
                               std::to_string(t.attempt) + (t.failure_kind.empty() ? "" : " (" + t.failure_kind + ")") +
                               ": " + (t.reason.empty() ? "no reason recorded" : t.reason) + "\n\n`polyphony logs " +
                               t.request.id + "` has the output; `polyphony retry " + t.request.id + "` tries again.";
      POLY_TRY(enqueue(db_, "report:" + t.request.id + ":" + mark, link.number, "comment", json{{"body", body}}));
    }
    auto st = db_.prepare("UPDATE github_issues SET reported=? WHERE repo=? AND number=?");
    if (!st.ok()) return st.error();
    st->bind(1, mark).bind(2, config_.repo).bind(3, link.number);
    return st->run();
  });
  if (!s.ok())
    spdlog::error("github {}: cannot queue the report of task {}: {}", ref, t.request.id, s.error().to_string());
}

namespace {

// Fault injection for the crash tests, unset in production: after sending an outbox row whose
// key starts with POLYPHONY_TEST_HOLD_GITHUB_SENT_KEY (any row when unset), and before recording
// that it was sent, wait until the file POLYPHONY_TEST_HOLD_GITHUB_SENT_UNTIL names exists (ten
// minutes at most), so a test can kill the coordinator in that window without racing a timer.
void hold_after_send_for_tests(const std::string& key) {
  const char* until_file = std::getenv("POLYPHONY_TEST_HOLD_GITHUB_SENT_UNTIL");
  const char* prefix = std::getenv("POLYPHONY_TEST_HOLD_GITHUB_SENT_KEY");
  if (until_file == nullptr || (prefix != nullptr && key.rfind(prefix, 0) != 0)) return;
  spdlog::info("github: test hold after sending {} starts", key);
  const auto until = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  while (std::chrono::steady_clock::now() < until && !fs::exists(until_file)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  spdlog::info("github: test hold after sending {} ends", key);
}

}  // namespace

void GithubSource::flush() {
  if (now_() < next_poll_ms_ && health_.state != "ok") return;  // backing off
  auto st = db_.prepare(
      "SELECT seq, key, number, kind, payload, attempted FROM github_outbox WHERE done=0 AND repo=? ORDER BY seq");
  if (!st.ok()) return;
  st->bind(1, config_.repo);
  std::vector<Outgoing> rows;
  while (true) {
    auto row = st->step();
    if (!row.ok() || !*row) break;
    rows.push_back(Outgoing{st->int64(0), st->text(1), st->int64(2), st->text(3),
                            json::parse(st->text(4), nullptr, false), st->int64(5) != 0});
  }
  for (const auto& out : rows) {
    // Marked before sending: if we die before recording the outcome, the next send checks
    // whether this one landed rather than repeating it.
    if (auto mark = db_.prepare("UPDATE github_outbox SET attempted=1 WHERE seq=?"); mark.ok()) {
      mark->bind(1, out.seq);
      (void)mark->run();
    }
    auto sent = send(out);
    if (!sent.ok() && sent.error().code == "retry") return;  // backing off; the row stays
    hold_after_send_for_tests(out.key);
    auto done = db_.prepare("UPDATE github_outbox SET done=?, last_error=? WHERE seq=?");
    if (!done.ok()) return;
    done->bind(1, sent.ok() ? 1 : 2).bind(2, sent.ok() ? "" : sent.error().to_string()).bind(3, out.seq);
    (void)done->run();
    if (sent.ok())
      spdlog::info("github {}#{}: {} done", config_.repo, out.number, out.key);
    else
      spdlog::error("github {}#{}: {} failed for good: {}", config_.repo, out.number, out.key,
                    sent.error().to_string());
  }
}

Status GithubSource::send(const Outgoing& out) {
  const std::string issue = "repos/" + config_.repo + "/issues/" + std::to_string(out.number);
  GhRequest req;
  req.method = "POST";
  if (out.kind == "label") {
    if (out.attempted) {
      auto there = has_labels(out.number, out.payload.value("labels", json::array()));
      if (!there.ok()) return there.error();
      if (*there) return {};
    }
    req.path = issue + "/labels";
    req.json_body = out.payload.dump();
  } else if (out.kind == "comment") {
    const std::string marker = "<!-- polyphony:" + out.key + " -->";
    if (out.attempted) {
      auto there = has_comment(out.number, marker);
      if (!there.ok()) return there.error();
      if (*there) return {};
    }
    std::string body = out.payload.value("body", "");
    if (auto at = body.find("{pr}"); at != std::string::npos) {
      auto known = links();
      std::string pr = known.ok() && known->count(out.number) ? (*known)[out.number].pr_url : "";
      body.replace(at, 4, pr.empty() ? "(not opened)" : pr);
    }
    req.path = issue + "/comments";
    req.json_body = json{{"body", body + "\n\n" + marker}}.dump();
  } else if (out.kind == "pull") {
    return send_pull(out);
  } else if (out.kind == "merge") {
    auto known = links();
    const int64_t pr = known.ok() && known->count(out.number) ? (*known)[out.number].pr_number : 0;
    if (pr == 0) return make_error("github", "no pull request to merge");
    if (out.attempted) {
      GhRequest get;
      get.path = "repos/" + config_.repo + "/pulls/" + std::to_string(pr);
      auto r = call(get);
      if (!r.ok()) return r.error();
      auto j = json::parse(r->body, nullptr, false);
      if (r->status == 200 && j.is_object() && j.value("merged", false)) return {};
    }
    req.method = "PUT";
    req.path = "repos/" + config_.repo + "/pulls/" + std::to_string(pr) + "/merge";
    req.json_body = out.payload.dump();
  } else {
    return make_error("github", "unknown outbox entry kind '" + out.kind + "'");
  }
  auto r = call(req);
  if (!r.ok()) return r.error();
  if (r->status >= 300) return make_error("github", github_message(*r), req.method + " " + req.path);
  return {};
}

Result<bool> GithubSource::has_comment(int64_t number, const std::string& marker) {
  std::string path = "repos/" + config_.repo + "/issues/" + std::to_string(number) + "/comments?per_page=100";
  for (int page = 0; page < kMaxPages && !path.empty(); ++page) {
    GhRequest req;
    req.path = path;
    auto r = call(req);
    if (!r.ok()) return r.error();
    if (r->status != 200) return make_error("github", "reading comments: " + github_message(*r), "GET " + path);
    auto list = json::parse(r->body, nullptr, false);
    if (!list.is_array())
      return make_error("github", "reading comments: the answer is not a JSON array", "GET " + path);
    for (const auto& c : list) {
      if (c.is_object() && c.contains("body") && c["body"].is_string() &&
          c["body"].get<std::string>().find(marker) != std::string::npos) {
        return true;
      }
    }
    path = next_page_path(r->header("link"));
  }
  return false;
}

Result<bool> GithubSource::has_labels(int64_t number, const json& labels) {
  GhRequest req;
  req.path = "repos/" + config_.repo + "/issues/" + std::to_string(number);
  auto r = call(req);
  if (!r.ok()) return r.error();
  if (r->status != 200) return make_error("github", "reading the issue: " + github_message(*r), "GET " + req.path);
  auto issue = parse_github_issue(json::parse(r->body, nullptr, false));
  if (!issue.ok()) return issue.error();
  for (const auto& l : labels) {
    if (l.is_string() && !has_label(issue->labels, l.get<std::string>())) return false;
  }
  return true;
}

Result<std::string> GithubSource::base_branch() {
  if (!config_.base_branch.empty()) return config_.base_branch;
  if (const RepoConfig* rc = find_repo(settings_.config, config_.remote); rc && !rc->base_branch.empty())
    return rc->base_branch;
  if (!default_branch_.empty()) return default_branch_;
  GhRequest req;
  req.path = "repos/" + config_.repo;
  auto r = call(req);
  if (!r.ok()) return r.error();
  auto j = json::parse(r->body, nullptr, false);
  if (r->status != 200 || !j.is_object() || !j.contains("default_branch") || !j["default_branch"].is_string()) {
    return make_error("github", "cannot read the default branch: " + github_message(*r), "GET " + req.path);
  }
  default_branch_ = j["default_branch"].get<std::string>();
  return default_branch_;
}

Result<std::optional<json>> GithubSource::find_pull(const std::string& head) {
  const std::string owner = config_.repo.substr(0, config_.repo.find('/'));
  GhRequest find;
  find.path = "repos/" + config_.repo + "/pulls?head=" + query_escape(owner + ":" + head) + "&state=all";
  auto found = call(find);
  if (!found.ok()) return found.error();
  auto list = json::parse(found->body, nullptr, false);
  if (found->status != 200 || !list.is_array())
    return make_error("github", "listing pull requests: " + github_message(*found), "GET " + find.path);
  if (list.empty() || !list[0].is_object()) return std::optional<json>();
  return std::optional<json>(list[0]);
}

Status GithubSource::send_pull(const Outgoing& out) {
  const std::string where = "POST repos/" + config_.repo + "/pulls";
  if (out.attempted) {
    // Sent before a crash or a timeout that lost its answer: adopt that one rather than ask again.
    auto earlier = find_pull(out.payload.value("head", ""));
    if (!earlier.ok()) return earlier.error();
    if (earlier->has_value()) return record_pull(out, **earlier, where);
  }
  auto base = base_branch();
  if (!base.ok()) return base.error();
  json payload = out.payload;
  payload["base"] = *base;
  GhRequest req;
  req.method = "POST";
  req.path = "repos/" + config_.repo + "/pulls";
  req.json_body = payload.dump();
  auto r = call(req);
  if (!r.ok()) return r.error();
  json pr = json::parse(r->body, nullptr, false);
  if (r->status == 422) {
    // Opened before a crash that lost our record of it: find that one rather than fail.
    auto earlier = find_pull(payload.value("head", ""));
    if (!earlier.ok()) return earlier.error();
    if (!earlier->has_value()) return make_error("github", "opening the pull request: " + github_message(*r), where);
    pr = **earlier;
  } else if (r->status != 201 && r->status != 200) {
    return make_error("github", "opening the pull request: " + github_message(*r), where);
  }
  return record_pull(out, pr, where);
}

Status GithubSource::record_pull(const Outgoing& out, const json& pr, const std::string& where) {
  if (!pr.is_object() || !pr.contains("number") || !pr["number"].is_number_integer()) {
    return make_error("github", "the pull request answer has no number", where);
  }
  auto st = db_.prepare("UPDATE github_issues SET pr_number=?, pr_url=? WHERE repo=? AND number=?");
  if (!st.ok()) return st.error();
  st->bind(1, pr["number"].get<int64_t>()).bind(2, pr.value("html_url", "")).bind(3, config_.repo).bind(4, out.number);
  POLY_TRY(st->run());
  spdlog::info("github {}#{}: pull request {} opened", config_.repo, out.number, pr.value("html_url", ""));
  return {};
}

}  // namespace polyphony
