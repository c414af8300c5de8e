// The HTTP server: pages, the JSON API, the event stream and /metrics, with the token rules.
#include <httplib.h>
#include <sys/stat.h>

#include <atomic>
#include <fstream>
#include <random>
#include <set>

#include "common/endpoint_policy.h"
#include "common/log.h"
#include "coordinator/github_source.h"
#include "coordinator/task_fields.h"
#include "dashboard/api_json.h"
#include "dashboard/dashboard.h"
#include "dashboard/event_feed.h"
#include "dashboard/web_assets.h"

namespace polyphony::dashboard {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kMaxLogChunk = 256 * 1024;
constexpr int64_t kStreamWaitMs = 1000;
constexpr int64_t kKeepAliveMs = 15000;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void send_json(httplib::Response& res, const json& j, int status = 200) {
  res.status = status;
  res.set_content(dump(j), "application/json");
}

void send_error(httplib::Response& res, int status, const std::string& message, const std::string& where = "") {
  send_json(res, json{{"error", redact(message)}, {"where", where}}, status);
}

// Equal in time independent of where they differ.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

class Server final : public Dashboard {
 public:
  Server(const DashboardOptions& options, CoordinatorLink& link)
      : options_(options),
        link_(link),
        loopback_(is_loopback_host(options.host)),
        feed_(options.state_db, options.poll_interval_ms) {}

  ~Server() override {
    stopping_ = true;  // ends the event streams, which hold their connections' threads
    http_.stop();
    if (thread_.joinable()) thread_.join();
  }

  Status listen() {
    http_.new_task_queue = [] { return new httplib::ThreadPool(32); };
    http_.set_payload_max_length(1024 * 1024);
    routes();
    port_ = options_.port == 0 ? http_.bind_to_any_port(options_.host) : options_.port;
    if (port_ <= 0 || (options_.port != 0 && !http_.bind_to_port(options_.host, options_.port))) {
      return make_error("io",
                        "cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                            " (taken by another program?); set coordinator.http_listen to another address, "
                            "or to \"\" to turn the dashboard off",
                        "coordinator.http_listen");
    }
    thread_ = std::thread([this] { http_.listen_after_bind(); });
    return {};
  }

  std::string url() const override {
    const bool v6 = options_.host.find(':') != std::string::npos;
    return "http://" + (v6 ? "[" + options_.host + "]" : options_.host) + ":" + std::to_string(port_) + "/";
  }

 private:
  // Whether the request may go on; answers it (401/403) when not. Pages carry no data, so they
  // are served to anyone; data needs the token off loopback, actions whenever one is set.
  bool admit(const httplib::Request& req, httplib::Response& res, bool action) {
    if (loopback_ && !host_is_loopback(req)) {
      send_error(res, 403, "this dashboard answers only to loopback host names", "Host");
      return false;
    }
    if (action && req.get_header_value("Content-Type").rfind("application/json", 0) != 0) {
      send_error(res, 415, "actions take a JSON body (Content-Type: application/json)", "Content-Type");
      return false;
    }
    if (options_.token.empty() || (loopback_ && !action)) return true;
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0 && same_secret(auth.substr(7), options_.token)) return true;
    res.set_header("WWW-Authenticate", "Bearer");
    send_error(res, 401, "this request needs the dashboard's token as an Authorization: Bearer header",
               "Authorization");
    return false;
  }

  // A browser sends the name it connected to; a loopback listener refuses other names, so a web
  // page cannot reach it by pointing its own host name at 127.0.0.1 (DNS rebinding).
  static bool host_is_loopback(const httplib::Request& req) {
    std::string host = req.get_header_value("Host");
    if (host.empty()) return true;
    auto split = parse_http_listen(host);
    if (!split) split = parse_http_listen(host + ":80");
    return split && is_loopback_host(split->first);
  }

  void page(const char* pattern) {
    http_.Get(pattern, [this](const httplib::Request& req, httplib::Response& res) {
      if (loopback_ && !host_is_loopback(req)) return send_error(res, 403, "loopback host names only", "Host");
      res.set_content(std::string(kIndexHtml), "text/html; charset=utf-8");
    });
  }

  void routes() {
    http_.set_post_routing_handler([](const httplib::Request&, httplib::Response& res) {
      res.set_header("Content-Security-Policy",
                     "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                     "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Referrer-Policy", "no-referrer");
      res.set_header("Cache-Control", "no-store");
    });
    page("/");
    page(R"(/tasks/([A-Za-z0-9_-]{1,64}))");
    page("/workers");
    http_.Get("/favicon.ico", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
    http_.Get("/static/app.js", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(kAppJs), "text/javascript; charset=utf-8");
    });
    http_.Get("/static/style.css", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(kStyleCss), "text/css; charset=utf-8");
    });
    auto get = [this](const char* pattern, void (Server::*fn)(const httplib::Request&, httplib::Response&)) {
      http_.Get(pattern, [this, fn](const httplib::Request& req, httplib::Response& res) {
        if (admit(req, res, false)) (this->*fn)(req, res);
      });
    };
    auto post = [this](const char* pattern, void (Server::*fn)(const httplib::Request&, httplib::Response&)) {
      http_.Post(pattern, [this, fn](const httplib::Request& req, httplib::Response& res) {
        if (admit(req, res, true)) (this->*fn)(req, res);
      });
    };
    get("/api/tasks", &Server::tasks);
    get(R"(/api/tasks/([A-Za-z0-9_-]{1,64}))", &Server::task);
    get(R"(/api/tasks/([A-Za-z0-9_-]{1,64})/log)", &Server::log);
    get("/api/workers", &Server::workers);
    get("/api/events", &Server::events);
    get("/metrics", &Server::metrics);
    post("/api/tasks", &Server::spawn);
    post(R"(/api/tasks/([A-Za-z0-9_-]{1,64})/(cancel|retry))", &Server::control);
  }

  Result<StateStore> store() {
    std::error_code ec;
    if (!fs::exists(options_.state_db, ec)) {
      return make_error("not_found", "the coordinator has not created its state DB yet", options_.state_db.string());
    }
    return StateStore::open(options_.state_db, true);
  }

  void tasks(const httplib::Request& req, httplib::Response& res) {
    auto s = store();
    if (!s.ok()) return send_json(res, json::array());
    auto list = s->list();
    if (!list.ok()) return send_error(res, 500, list.error().to_string());
    std::stable_sort(list->begin(), list->end(),
                     [](const Task& a, const Task& b) { return a.request.created_at_ms > b.request.created_at_ms; });
    const std::string state = req.get_param_value("state");
    const std::string repo = req.get_param_value("repo");
    // Pull requests exist only in GitHub mode, for landed work: asked for those alone.
    auto github = read_github_health(options_.state_db);
    const bool github_mode = github.ok() && github->has_value();
    json out = json::array();
    for (const auto& t : *list) {
      if (!state.empty() && to_string(t.state) != state) continue;
      if (!repo.empty() && t.request.repo != repo) continue;
      json j = task_json(t);
      if (github_mode && t.state == TaskState::kLanded) {
        auto pr = read_github_pull_url(options_.state_db, t.request.id);
        if (pr.ok() && !pr->empty()) j["pull_request"] = redact(*pr);
      }
      out.push_back(std::move(j));
    }
    send_json(res, out);
  }

  void task(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto s = store();
    if (!s.ok()) return send_error(res, 404, "no task with this id", id);
    auto t = s->get(id);
    if (!t.ok()) return send_error(res, 500, t.error().to_string());
    if (!t->has_value()) return send_error(res, 404, "no task with this id", id);
    json j = task_json(**t);
    j["body"] = redact((*t)->request.body);
    auto pr = read_github_pull_url(options_.state_db, id);
    j["pull_request"] = pr.ok() ? redact(*pr) : "";
    auto runs = s->agent_runs(id);
    j["agent_runs"] = runs_json(runs.ok() ? *runs : std::vector<AgentRun>{});
    auto events = s->events(id);
    j["events"] = json::array();
    if (events.ok()) {
      for (const auto& e : *events) j["events"].push_back(event_json(e));
    }
    send_json(res, j);
  }

  // One stream of one attempt's log from `offset`: {"text", "next", "size"}.
  void log(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    const std::string stream = req.get_param_value("stream");
    static const std::set<std::string> kStreams{"system", "agent", "verify", "review"};
    if (!kStreams.count(stream)) {
      return send_error(res, 400, "stream must be system, agent, verify or review", "stream");
    }
    long long attempt = 0, offset = 0;
    try {
      attempt = std::stoll(req.get_param_value("attempt"));
      offset = req.has_param("offset") ? std::stoll(req.get_param_value("offset")) : 0;
    } catch (const std::exception&) {
      return send_error(res, 400, "attempt and offset must be numbers", "attempt");
    }
    if (attempt < 1 || attempt > 10000 || offset < 0) return send_error(res, 400, "attempt or offset out of range");
    std::ifstream in(options_.log_dir / id / (std::to_string(attempt) + "-" + stream + ".log"), std::ios::binary);
    if (!in) return send_json(res, json{{"text", ""}, {"next", 0}, {"size", 0}});
    in.seekg(0, std::ios::end);
    const long long size = in.tellg();
    const long long from = std::min(offset, size);
    in.seekg(from);
    std::string chunk(static_cast<size_t>(std::min<long long>(size - from, kMaxLogChunk)), '\0');
    in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    chunk.resize(static_cast<size_t>(in.gcount()));
    const long long next = from + static_cast<long long>(chunk.size());
    send_json(res, json{{"text", redact(chunk)}, {"next", next}, {"size", size}});
  }

  void workers(const httplib::Request&, httplib::Response& res) {
    auto reply = link_.workers();
    if (!reply.ok()) return send_error(res, 502, "the coordinator did not answer: " + reply.error().message);
    json out = json::array();
    for (const auto& w : reply->workers) out.push_back(worker_json(w, now_ms()));
    send_json(res, json{{"coordinator", reply->coordinator_id}, {"workers", out}});
  }

  // Server-sent events, one `transition` a state-DB event (notes too: from == to), from the
  // Last-Event-ID header or ?after=SEQ, else from now. `reset` when events were missed.
  void events(const httplib::Request& req, httplib::Response& res) {
    int64_t cursor = feed_.last_seq();
    std::string from = req.get_header_value("Last-Event-ID");
    if (from.empty()) from = req.get_param_value("after");
    if (!from.empty()) {
      try {
        cursor = std::stoll(from);
      } catch (const std::exception&) {
        return send_error(res, 400, "after must be an event seq", "after");
      }
    }
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider("text/event-stream", [this, cursor](size_t, httplib::DataSink& sink) mutable {
      std::string out = cursor == feed_.last_seq() ? ": polyphony events\n\n" : "";
      auto quiet_since = std::chrono::steady_clock::now();
      while (!stopping_ && sink.is_writable()) {
        bool lost = false;
        for (const auto& e : feed_.after(cursor, kStreamWaitMs, lost)) {
          if (lost) out += "event: reset\ndata: {}\n\n";
          lost = false;
          out += "id: " + std::to_string(e.seq) + "\nevent: transition\ndata: " + dump(event_json(e)) + "\n\n";
          cursor = e.seq;
        }
        if (out.empty() && std::chrono::steady_clock::now() - quiet_since > std::chrono::milliseconds(kKeepAliveMs)) {
          out = ": keep-alive\n\n";
        }
        if (out.empty()) continue;
        if (!sink.write(out.data(), out.size())) return false;
        out.clear();
        quiet_since = std::chrono::steady_clock::now();
      }
      return false;
    });
  }

  void metrics(const httplib::Request&, httplib::Response& res) {
    MetricsSnapshot snap;
    snap.now_ms = now_ms();
    if (auto s = store(); s.ok()) {
      auto list = s->list();
      if (!list.ok()) return send_error(res, 500, list.error().to_string());
      snap.tasks = std::move(*list);
      for (const auto& t : snap.tasks) {
        auto runs = s->agent_runs(t.request.id);
        if (runs.ok()) snap.runs.insert(snap.runs.end(), runs->begin(), runs->end());
      }
      auto waits = s->land_waits();
      if (waits.ok()) snap.land_waits = std::move(*waits);
      auto health = read_github_health(options_.state_db);
      if (health.ok()) snap.github = *health;
      auto usage = read_github_usage(options_.state_db);
      if (usage.ok()) snap.github_usage = std::move(*usage);
    }
    if (auto w = link_.workers(); w.ok()) snap.workers = *w;
    res.set_content(feed_.render_metrics(snap), "text/plain; version=0.0.4; charset=utf-8");
  }

  void spawn(const httplib::Request& req, httplib::Response& res) {
    const json body = json::parse(req.body, nullptr, false);
    if (!body.is_object()) return send_error(res, 400, "the body must be a JSON object", "body");
    auto task = task_fields_from_json(body);
    if (!task.ok()) return send_error(res, 400, task.error().message, task.error().where);
    reply(res, link_.submit(submit_message(*task)));
  }

  void control(const httplib::Request& req, httplib::Response& res) {
    reply(res, link_.control(req.matches[1], req.matches[2]));
  }

  static void reply(httplib::Response& res, const Result<protocol::ClientReply>& r) {
    if (!r.ok()) return send_error(res, 502, "the coordinator did not answer: " + r.error().message);
    if (!r->ok) return send_error(res, 400, r->error, r->where);
    send_json(res, json{{"ok", true}, {"task_id", r->task_id}, {"state", r->state}, {"reason", redact(r->reason)}});
  }

  DashboardOptions options_;
  CoordinatorLink& link_;
  const bool loopback_;
  EventFeed feed_;
  httplib::Server http_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace

Result<std::unique_ptr<Dashboard>> Dashboard::start(const DashboardOptions& options, CoordinatorLink& link) {
  if (!is_loopback_host(options.host) && options.token.empty()) {
    return make_error("config",
                      options.host +
                          " is not a loopback address, and the dashboard would answer anyone "
                          "there: set coordinator.http_token_file (make one with `polyphony keys gen --http`)",
                      "coordinator.http_listen");
  }
  if (!options.token.empty()) register_secret(options.token);
  auto server = std::make_unique<Server>(options, link);
  POLY_TRY(server->listen());
  return std::unique_ptr<Dashboard>(std::move(server));
}

Result<std::string> read_token_file(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return make_error("config", "the dashboard's token file is missing; make one with `polyphony keys gen --http`",
                      file.string());
  }
  if ((st.st_mode & 077) != 0) {
    return make_error("config", "the dashboard's token file is readable by other users: chmod 600 it", file.string());
  }
  std::ifstream in(file);
  std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) token.erase(0, 1);
  if (token.size() < 16) {
    return make_error("config",
                      "the dashboard's token file holds fewer than 16 characters; make a new one with "
                      "`polyphony keys gen --http`",
                      file.string());
  }
  return token;
}

std::string new_token() {
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 64; ++i) out += kHex[rd() % 16];
  return out;
}

}  // namespace polyphony::dashboard
