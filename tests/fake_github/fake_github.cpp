// The stand-in GitHub REST server (see fake_github.h): cpp-httplib over TLS, state in memory.
#include "fake_github/fake_github.h"

#include <httplib.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "common/process.h"

namespace polyphony::testing {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr int64_t kRepoId = 4242;
constexpr const char* kToken = "ghp_polyphonyStandInToken0000000000000000";
constexpr const char* kDocs = "https://docs.github.com/rest";
constexpr const char* kHeadSha = "e5bd3914e2e596debea16f433f57875b5b90bcd6";

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string etag_of(const std::string& body) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : body) h = (h ^ c) * 1099511628211ull;
  char buf[40];
  std::snprintf(buf, sizeof(buf), "W/\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  out.push_back(cur);
  return out;
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

json load_fixture() {
  std::ifstream in(fs::path(POLYPHONY_FIXTURES_DIR) / "github" / "issue.json");
  auto j = json::parse(in, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error("cannot parse the issue fixture");
  return j;
}

// One answer: status, GitHub's headers for it, a JSON body (none for 304/204).
struct Answer {
  int status = 200;
  json body;
  std::vector<std::pair<std::string, std::string>> headers;
};

Answer error_answer(int status, const std::string& message, json errors = nullptr) {
  Answer a{status, {{"message", message}, {"documentation_url", kDocs}}, {}};
  if (!errors.is_null()) a.body["errors"] = errors;
  return a;
}

// GitHub's words for a failure the test asks for (fail_next).
Answer scripted_failure(int status, int retry_after_s) {
  switch (status) {
    case 401:
      return error_answer(401, "Bad credentials");
    case 403:
    case 429: {
      Answer a = error_answer(status,
                              "You have exceeded a secondary rate limit. Please wait a few minutes before "
                              "you try again. If you reach out to GitHub Support for help, please include "
                              "the request ID 0000:0000:0000000:0000000:00000000.");
      a.headers.push_back({"Retry-After", std::to_string(retry_after_s)});
      return a;
    }
    case 404:
      return error_answer(404, "Not Found");
    case 405:
      return error_answer(405, "Pull Request is not mergeable");
    case 409:
      return error_answer(409, "Head branch was modified. Review and try the merge again.");
    case 410:
      return error_answer(410, "This issue was deleted");
    case 422:
      return error_answer(422, "Validation Failed",
                          json::array({{{"resource", "Issue"},
                                        {"code", "custom"},
                                        {"field", "body"},
                                        {"message", "body is too long (maximum is 65536 characters)"}},
                                       {{"resource", "PullRequest"}, {"code", "invalid"}, {"field", "base"}}}));
    case 502: {
      Answer a{502, nullptr, {}};
      a.body = "<html><body><h1>Unicorn!</h1> This page is taking too long to load.</body></html>";
      return a;
    }
    default:
      return error_answer(status, "Server Error");
  }
}

struct Failure {
  std::string prefix;
  int status = 0;
  int count = 0;
  int retry_after_s = 0;
};

}  // namespace

struct FakeGithub::Impl {
  TempDir dir{"polyphony-fake-github"};
  std::string repo;
  std::map<std::string, std::string> moved;  // old name -> current name
  std::unique_ptr<httplib::SSLServer> server;
  std::thread thread;
  int port = 0;

  mutable std::mutex mu;
  std::condition_variable changed;
  bool stopping = false;
  std::string mode;
  int64_t limited_until = 0;
  int page_cap = 100;
  std::vector<Failure> failures;
  std::map<int64_t, json> issues;    // by number; pull requests too, as GitHub has them
  std::map<int64_t, json> comments;  // by issue number
  std::map<int64_t, bool> deleted;
  json pulls = json::array();
  std::vector<json> calls;
  int64_t next_comment_id = 9000;

  explicit Impl(std::string r) : repo(std::move(r)) {}

  std::string base() const { return "https://ghe.localhost:" + std::to_string(port); }
  std::string api() const { return base() + "/api/v3"; }
  std::string owner() const { return repo.substr(0, repo.find('/')); }

  void write_gh_files() {
    const bool network_down = mode == "network";
    // 127.0.0.2: loopback, and nothing can listen on this port there while the server holds it.
    write_file(dir.path() / "hosts.tmp",
               std::string("127.0.0.1 localhost\n") + (network_down ? "127.0.0.2" : "127.0.0.1") + " ghe.localhost\n");
    fs::rename(dir.path() / "hosts.tmp", dir.path() / "hosts");
    std::string env = "SSL_CERT_FILE=" + (dir.path() / "cert.pem").string() + "\n" +
                      "GH_CONFIG_DIR=" + (dir.path() / "gh-config").string() + "\n";
    if (mode != "auth") env += std::string("GH_ENTERPRISE_TOKEN=") + kToken + "\n";
    write_file(dir.path() / "gh.env.tmp", env);
    fs::rename(dir.path() / "gh.env.tmp", dir.path() / "gh.env");
  }

  void make_certificate() {
    auto r =
        run_process({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", (dir.path() / "key.pem").string(), "-out", (dir.path() / "cert.pem").string(), "-days",
                     "2", "-subj", "/CN=ghe.localhost", "-addext", "subjectAltName=DNS:ghe.localhost"},
                    {});
    if (!r.ok() || r->exit_code != 0) {
      throw std::runtime_error("openssl could not make the test certificate: " +
                               (r.ok() ? r->err : r.error().to_string()));
    }
  }

  void start() {
    make_certificate();
    fs::create_directories(dir.path() / "gh-config");
    server = std::make_unique<httplib::SSLServer>((dir.path() / "cert.pem").c_str(), (dir.path() / "key.pem").c_str());
    if (!server->is_valid()) throw std::runtime_error("the stand-in GitHub server cannot load its certificate");
    server->new_task_queue = [] { return new httplib::ThreadPool(32); };
    auto handler = [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); };
    server->Get(".*", handler);
    server->Post(".*", handler);
    server->Put(".*", handler);
    server->Patch(".*", handler);
    server->Delete(".*", handler);
    port = server->bind_to_any_port("127.0.0.1");
    if (port <= 0) throw std::runtime_error("the stand-in GitHub server cannot listen on 127.0.0.1");
    thread = std::thread([this] { server->listen_after_bind(); });
    write_gh_files();
    fs::create_symlink(GH_CONFINED_PROGRAM, dir.path() / "gh");
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stopping = true;
    }
    changed.notify_all();
    if (server) server->stop();
    if (thread.joinable()) thread.join();
  }

  // ---- requests

  void handle(const httplib::Request& req, httplib::Response& res) {
    std::unique_lock<std::mutex> lock(mu);
    std::string target = req.target;
    if (target.rfind("/api/v3/", 0) == 0)
      target = target.substr(8);
    else if (target == "/api/v3")
      target.clear();
    json headers = json::object();
    for (const auto& [k, v] : req.headers) {
      if (k != "Authorization" && k != "REMOTE_ADDR" && k != "REMOTE_PORT") headers[k] = v;
    }
    calls.push_back({{"method", req.method}, {"path", target}, {"headers", headers}, {"body", req.body}});
    const size_t index = calls.size() - 1;
    changed.wait(lock, [&] { return mode != "hang" || stopping; });
    Answer a = stopping ? error_answer(503, "Service Unavailable") : answer(req, target);
    send(req, res, a);
    calls[index]["status"] = res.status;
  }

  void send(const httplib::Request& req, httplib::Response& res, Answer a) {
    res.status = a.status;
    const bool limited = a.status == 403 && limited_until > 0;
    res.set_header("X-RateLimit-Limit", "5000");
    res.set_header("X-RateLimit-Remaining", limited ? "0" : "4999");
    res.set_header("X-RateLimit-Reset", std::to_string(limited ? limited_until : std::time(nullptr) + 3600));
    res.set_header("X-RateLimit-Used", limited ? "5000" : "1");
    res.set_header("X-RateLimit-Resource", "core");
    res.set_header("X-GitHub-Media-Type", "github.v3; format=json");
    res.set_header("X-OAuth-Scopes", "repo, read:org");
    for (const auto& [k, v] : a.headers) res.set_header(k.c_str(), v);
    if (a.status == 204) return;
    const std::string text = a.body.is_string() ? a.body.get<std::string>() : a.body.dump();
    if (req.method == "GET" && a.status == 200) {
      const std::string tag = etag_of(text);
      res.set_header("ETag", tag);
      if (req.get_header_value("If-None-Match") == tag) {
        res.status = 304;
        return;
      }
    }
    res.set_content(text, a.body.is_string() ? "text/html" : "application/json; charset=utf-8");
  }

  Answer answer(const httplib::Request& req, const std::string& target) {
    if (target == "graphql" || req.path == "/api/graphql") {
      if (req.get_header_value("Authorization") != std::string("token ") + kToken) {
        return error_answer(401, "Bad credentials");
      }
      return Answer{200, {{"data", {{"viewer", {{"login", "polyphony-bot"}}}}}}, {}};
    }
    const std::string auth = req.get_header_value("Authorization");
    if (auth.empty()) return error_answer(401, "Requires authentication");
    if (auth != std::string("token ") + kToken) return error_answer(401, "Bad credentials");
    if (limited_until > 0 && std::time(nullptr) < limited_until) {
      return error_answer(403,
                          "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, "
                          "please include the request ID 0000:0000:0000000:0000000:00000000.");
    }
    const std::string call = req.method + " " + target;
    for (auto& f : failures) {
      if (f.count > 0 && call.rfind(f.prefix, 0) == 0) {
        --f.count;
        return scripted_failure(f.status, f.retry_after_s);
      }
    }
    const auto q = target.find('?');
    const std::string path = target.substr(0, q);
    const std::string query = q == std::string::npos ? "" : target.substr(q + 1);
    if (path.empty()) return Answer{200, json::object(), {}};
    auto seg = split(path, '/');
    std::vector<std::string> rest;
    if (seg[0] == "repos" && seg.size() >= 3) {
      const std::string name = seg[1] + "/" + seg[2];
      rest.assign(seg.begin() + 3, seg.end());
      if (moved.count(name)) return redirect(req.method, rest, query);
      if (name != repo) return error_answer(404, "Not Found");
    } else if (seg[0] == "repositories" && seg.size() >= 2 && seg[1] == std::to_string(kRepoId)) {
      rest.assign(seg.begin() + 2, seg.end());
    } else {
      return error_answer(404, "Not Found");
    }
    return route(req, rest, query);
  }

  // GitHub's answer for a renamed repository: 301 for GET (followed by clients), 307 otherwise.
  Answer redirect(const std::string& method, const std::vector<std::string>& rest, const std::string& query) {
    std::string location = api() + "/repositories/" + std::to_string(kRepoId);
    for (const auto& s : rest) location += "/" + s;
    if (!query.empty()) location += "?" + query;
    Answer a{method == "GET" ? 301 : 307,
             {{"message", "Moved Permanently"}, {"url", location}, {"documentation_url", kDocs}},
             {{"Location", location}}};
    return a;
  }

  Answer route(const httplib::Request& req, const std::vector<std::string>& rest, const std::string& query) {
    const std::string& m = req.method;
    const auto params = parse_query(query);
    const json input = json::parse(req.body.empty() ? "null" : req.body, nullptr, false);
    if (rest.empty() && m == "GET") return Answer{200, repo_object(), {}};
    if (rest.size() == 1 && rest[0] == "issues" && m == "GET") return list_issues(rest, query, params);
    if (rest.size() >= 2 && rest[0] == "issues") {
      int64_t n = 0;
      try {
        n = std::stoll(rest[1]);
      } catch (const std::exception&) {
        return error_answer(404, "Not Found");
      }
      if (deleted.count(n)) return error_answer(410, "This issue was deleted");
      if (!issues.count(n)) return error_answer(404, "Not Found");
      if (rest.size() == 2 && m == "GET") return Answer{200, issues[n], {}};
      if (rest.size() == 3 && rest[2] == "labels" && m == "POST") return add_labels(n, input);
      if (rest.size() == 3 && rest[2] == "comments" && m == "GET") return page(comments[n], rest, query, params);
      if (rest.size() == 3 && rest[2] == "comments" && m == "POST") return add_comment(n, input);
    }
    if (rest.size() == 1 && rest[0] == "pulls" && m == "GET") return list_pulls(params);
    if (rest.size() == 1 && rest[0] == "pulls" && m == "POST") return open_pull(input);
    if (rest.size() >= 2 && rest[0] == "pulls") {
      for (auto& p : pulls) {
        if (std::to_string(p["number"].get<int64_t>()) != rest[1]) continue;
        if (rest.size() == 2 && m == "GET") return Answer{200, p, {}};
        if (rest.size() == 3 && rest[2] == "merge" && m == "PUT") return merge(p, input);
      }
    }
    return error_answer(404, "Not Found");
  }

  static std::map<std::string, std::string> parse_query(const std::string& query) {
    std::map<std::string, std::string> out;
    if (query.empty()) return out;
    for (const auto& kv : split(query, '&')) {
      const auto eq = kv.find('=');
      out[url_decode(kv.substr(0, eq))] = eq == std::string::npos ? "" : url_decode(kv.substr(eq + 1));
    }
    return out;
  }

  json repo_object() const {
    return {{"id", kRepoId},
            {"name", repo.substr(repo.find('/') + 1)},
            {"full_name", repo},
            {"default_branch", "main"},
            {"html_url", base() + "/" + repo},
            {"url", api() + "/repos/" + repo},
            {"private", false},
            {"owner", {{"login", owner()}, {"type", "Organization"}}}};
  }

  // A list page as GitHub pages it: per_page (default 30, at most 100), page, and a Link
  // header naming the repository by id.
  Answer page(const json& all, const std::vector<std::string>& rest, const std::string& query,
              const std::map<std::string, std::string>& params) {
    int per_page = 30, number = 1;
    try {
      if (params.count("per_page")) per_page = std::stoi(params.at("per_page"));
      if (params.count("page")) number = std::stoi(params.at("page"));
    } catch (const std::exception&) {
      return error_answer(422, "Validation Failed");
    }
    per_page = std::max(1, std::min({per_page, 100, page_cap}));
    number = std::max(1, number);
    const int total = static_cast<int>(all.size());
    const int last = std::max(1, (total + per_page - 1) / per_page);
    json items = json::array();
    for (int i = (number - 1) * per_page; i < std::min(total, number * per_page); ++i) items.push_back(all[i]);
    Answer a{200, items, {}};
    auto url = [&](int p) {
      std::string u = api() + "/repositories/" + std::to_string(kRepoId);
      for (const auto& s : rest) u += "/" + s;
      std::string kept;
      for (const auto& kv : split(query, '&')) {
        if (!kv.empty() && kv.rfind("page=", 0) != 0) kept += kv + "&";
      }
      return u + "?" + kept + "page=" + std::to_string(p);
    };
    std::vector<std::string> links;
    if (number < last) links.push_back("<" + url(number + 1) + ">; rel=\"next\"");
    if (number < last) links.push_back("<" + url(last) + ">; rel=\"last\"");
    if (number > 1) links.push_back("<" + url(1) + ">; rel=\"first\"");
    if (number > 1) links.push_back("<" + url(number - 1) + ">; rel=\"prev\"");
    std::string link;
    for (const auto& l : links) link += (link.empty() ? "" : ", ") + l;
    if (!link.empty()) a.headers.push_back({"Link", link});
    return a;
  }

  Answer list_issues(const std::vector<std::string>& rest, const std::string& query,
                     const std::map<std::string, std::string>& params) {
    const std::string state = params.count("state") ? params.at("state") : "open";
    std::vector<std::string> wanted;
    if (params.count("labels") && !params.at("labels").empty()) wanted = split(params.at("labels"), ',');
    json all = json::array();
    for (auto it = issues.rbegin(); it != issues.rend(); ++it) {  // newest first, as GitHub sorts
      const json& i = it->second;
      if (deleted.count(it->first)) continue;
      if (state != "all" && i["state"] != state) continue;
      bool labelled = true;
      for (const auto& w : wanted) labelled = labelled && has_label(i, w);
      if (labelled) all.push_back(i);
    }
    return page(all, rest, query, params);
  }

  static bool has_label(const json& issue, const std::string& name) {
    for (const auto& l : issue["labels"]) {
      if (l["name"] == name) return true;
    }
    return false;
  }

  json label(const std::string& name, size_t index) const {
    return {{"id", 5000 + index}, {"node_id", "LA_" + name}, {"url", api() + "/repos/" + repo + "/labels/" + name},
            {"name", name},       {"description", ""},       {"color", "ededed"},
            {"default", false}};
  }

  Answer add_labels(int64_t n, const json& input) {
    json names = input.is_object() && input.contains("labels") ? input["labels"] : input;
    if (!names.is_array()) {
      return error_answer(422, "Invalid request.\n\nFor 'links/0/schema', nil is not an array.");
    }
    json& issue = issues[n];
    for (const auto& name : names) {
      if (!name.is_string()) return error_answer(422, "Invalid request.");
      if (!has_label(issue, name)) issue["labels"].push_back(label(name, issue["labels"].size()));
    }
    issue["updated_at"] = now_iso();
    return Answer{200, issue["labels"], {}};
  }

  Answer add_comment(int64_t n, const json& input) {
    if (!input.is_object() || !input.contains("body") || !input["body"].is_string()) {
      return error_answer(422, "Invalid request.\n\n\"body\" wasn't supplied.");
    }
    const int64_t id = next_comment_id++;
    const std::string issue_url = api() + "/repos/" + repo + "/issues/" + std::to_string(n);
    json c{{"id", id},
           {"node_id", "IC_" + std::to_string(id)},
           {"url", api() + "/repos/" + repo + "/issues/comments/" + std::to_string(id)},
           {"html_url", base() + "/" + repo + "/issues/" + std::to_string(n) + "#issuecomment-" + std::to_string(id)},
           {"issue_url", issue_url},
           {"body", input["body"]},
           {"user", {{"login", "polyphony-bot"}, {"type", "User"}}},
           {"created_at", now_iso()},
           {"updated_at", now_iso()},
           {"author_association", "MEMBER"}};
    comments[n].push_back(c);
    issues[n]["comments"] = comments[n].size();
    return Answer{201, c, {{"Location", c["url"].get<std::string>()}}};
  }

  Answer list_pulls(const std::map<std::string, std::string>& params) {
    const std::string state = params.count("state") ? params.at("state") : "open";
    json out = json::array();
    for (const auto& p : pulls) {
      if (state != "all" && p["state"] != state) continue;
      if (params.count("head") && p["head"]["label"] != params.at("head")) continue;
      out.push_back(p);
    }
    return Answer{200, out, {}};
  }

  int64_t next_number() const { return issues.empty() ? 1 : issues.rbegin()->first + 1; }

  json pull_object(int64_t n, const std::string& title, const std::string& head, const std::string& base_ref,
                   const std::string& body) const {
    const std::string html = base() + "/" + repo + "/pull/" + std::to_string(n);
    return {{"id", 700000 + n},
            {"number", n},
            {"state", "open"},
            {"title", title},
            {"body", body},
            {"html_url", html},
            {"url", api() + "/repos/" + repo + "/pulls/" + std::to_string(n)},
            {"head", {{"ref", head}, {"label", owner() + ":" + head}, {"sha", kHeadSha}}},
            {"base", {{"ref", base_ref}, {"label", owner() + ":" + base_ref}}},
            {"merged", false},
            {"mergeable", true},
            {"created_at", now_iso()},
            {"user", {{"login", "polyphony-bot"}}}};
  }

  // A pull request is an issue too: it takes the next number and shows in the issues list.
  void add_pull_issue(const json& p, const std::vector<std::string>& labels) {
    json issue = issue_object(p["number"], p["title"], p["body"], labels);
    issue["html_url"] = p["html_url"];
    const std::string html = p["html_url"];
    issue["pull_request"] = {{"url", p["url"]},
                             {"html_url", html},
                             {"diff_url", html + ".diff"},
                             {"patch_url", html + ".patch"},
                             {"merged_at", nullptr}};
    issues[p["number"]] = issue;
  }

  Answer open_pull(const json& input) {
    if (!input.is_object()) return error_answer(400, "Problems parsing JSON");
    for (const char* field : {"title", "head", "base"}) {
      if (!input.contains(field) || !input[field].is_string() || input[field].get<std::string>().empty()) {
        return error_answer(422, "Validation Failed",
                            json::array({{{"resource", "PullRequest"}, {"code", "missing_field"}, {"field", field}}}));
      }
    }
    const std::string head = input["head"];
    for (const auto& p : pulls) {
      if (p["head"]["ref"] == head && p["state"] == "open") {
        const std::string words = "A pull request already exists for " + owner() + ":" + head + ".";
        return error_answer(422, "Validation Failed",
                            json::array({{{"resource", "PullRequest"}, {"code", "custom"}, {"message", words}}}));
      }
    }
    json p = pull_object(next_number(), input["title"], head, input["base"], input.value("body", ""));
    pulls.push_back(p);
    add_pull_issue(p, {});
    return Answer{201, p, {{"Location", p["url"].get<std::string>()}}};
  }

  Answer merge(json& p, const json& input) {
    if (p["merged"] == true || p["state"] != "open" || p["mergeable"] == false) {
      return error_answer(405, "Pull Request is not mergeable");
    }
    if (input.is_object() && input.contains("sha") && input["sha"] != p["head"]["sha"]) {
      return error_answer(409, "Head branch was modified. Review and try the merge again.");
    }
    p["merged"] = true;
    p["state"] = "closed";
    p["merge_method"] = input.is_object() ? input.value("merge_method", "merge") : "merge";
    issues[p["number"]]["state"] = "closed";
    // "Closes #N" in the body closes issue N once merged into the default branch.
    const std::string body = p.value("body", "");
    if (body.rfind("Closes #", 0) == 0) {
      try {
        const int64_t n = std::stoll(body.substr(8));
        if (issues.count(n)) issues[n]["state"] = "closed";
      } catch (const std::exception&) {
      }
    }
    return Answer{200,
                  {{"sha", "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
                   {"merged", true},
                   {"message", "Pull Request successfully merged"}},
                  {}};
  }

  json issue_object(int64_t number, const std::string& title, const std::string& body,
                    const std::vector<std::string>& labels) const {
    json issue = load_fixture();
    const std::string n = std::to_string(number);
    const std::string url = api() + "/repos/" + repo + "/issues/" + n;
    issue["number"] = number;
    issue["id"] = 100000 + number;
    issue["node_id"] = "I_" + n;
    issue["title"] = title;
    issue["body"] = body;
    issue["url"] = url;
    issue["repository_url"] = api() + "/repos/" + repo;
    issue["labels_url"] = url + "/labels{/name}";
    issue["comments_url"] = url + "/comments";
    issue["events_url"] = url + "/events";
    issue["timeline_url"] = url + "/timeline";
    issue["html_url"] = base() + "/" + repo + "/issues/" + n;
    issue["reactions"]["url"] = url + "/reactions";
    issue["state"] = "open";
    issue["closed_at"] = nullptr;
    issue["comments"] = 0;
    issue.erase("pull_request");
    issue["labels"] = json::array();
    for (const auto& l : labels) issue["labels"].push_back(label(l, issue["labels"].size()));
    return issue;
  }

  json& find(int64_t number) {
    auto it = issues.find(number);
    if (it == issues.end()) throw std::runtime_error("the stand-in GitHub has no issue #" + std::to_string(number));
    return it->second;
  }
};

FakeGithub::FakeGithub(const std::string& repo) : impl_(std::make_unique<Impl>(repo)) {
  impl_->start();
}

FakeGithub::~FakeGithub() {
  impl_->stop();
}

std::string FakeGithub::program() const {
  return (impl_->dir.path() / "gh").string();
}
std::string FakeGithub::host() const {
  return "ghe.localhost:" + std::to_string(impl_->port);
}
const std::string& FakeGithub::repo() const {
  return impl_->repo;
}
const fs::path& FakeGithub::dir() const {
  return impl_->dir.path();
}

GithubConfig FakeGithub::config() const {
  GithubConfig g;
  g.repo = repo();
  g.gh = program();
  g.host = host();
  g.gh_timeout_ms = 20000;
  return g;
}

std::string FakeGithub::config_yaml() const {
  return "  repo: " + repo() + "\n  host: \"" + host() + "\"\n  gh: " + program() + "\n";
}

void FakeGithub::add_issue(int64_t number, const std::string& title, const std::string& body,
                           const std::vector<std::string>& labels) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->issues[number] = impl_->issue_object(number, title, body, labels);
}

void FakeGithub::add_pull(int64_t number, const std::string& title, const std::string& head,
                          const std::vector<std::string>& labels) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  json p = impl_->pull_object(number, title, head, "main", "");
  impl_->pulls.push_back(p);
  impl_->add_pull_issue(p, labels);
}

void FakeGithub::close_issue(int64_t number) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  json& i = impl_->find(number);
  i["state"] = "closed";
  i["state_reason"] = "completed";
  i["closed_at"] = now_iso();
  i["updated_at"] = now_iso();
}

void FakeGithub::delete_issue(int64_t number) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->find(number);
  impl_->deleted[number] = true;
}

void FakeGithub::remove_label(int64_t number, const std::string& label) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  json& labels = impl_->find(number)["labels"];
  json kept = json::array();
  for (const auto& l : labels) {
    if (l["name"] != label) kept.push_back(l);
  }
  labels = kept;
}

void FakeGithub::edit_issue(int64_t number, const std::string& title, const std::string& body) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  json& i = impl_->find(number);
  i["title"] = title;
  i["body"] = body;
  i["updated_at"] = now_iso();
}

void FakeGithub::move_repo(const std::string& new_name) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->moved[impl_->repo] = new_name;
  impl_->repo = new_name;
}

void FakeGithub::rate_limit_until(int64_t epoch_s) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->limited_until = epoch_s;
}

void FakeGithub::fail_next(const std::string& prefix, int status, int count, int retry_after_s) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->failures.push_back({prefix, status, count, retry_after_s});
}

void FakeGithub::fail(const std::string& mode) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->mode = mode;
    impl_->write_gh_files();
  }
  impl_->changed.notify_all();
}

void FakeGithub::page_size(int n) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->page_cap = n;
}

json FakeGithub::issue(int64_t number) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->issues.find(number);
  return it == impl_->issues.end() ? json::object() : it->second;
}

json FakeGithub::comments(int64_t number) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  auto it = impl_->comments.find(number);
  return it == impl_->comments.end() ? json::array() : it->second;
}

json FakeGithub::pulls() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->pulls;
}

std::vector<json> FakeGithub::calls() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->calls;
}

std::vector<json> FakeGithub::calls_to(const std::string& method, const std::string& path_prefix) const {
  std::vector<json> out;
  for (const auto& c : calls()) {
    if (c["method"] == method && c["path"].get<std::string>().rfind(path_prefix, 0) == 0) out.push_back(c);
  }
  return out;
}

void FakeGithub::clear_calls() {
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->calls.clear();
}

}  // namespace polyphony::testing
