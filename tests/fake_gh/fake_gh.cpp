// A stand-in for `gh` in tests: answers `gh api` from a state file of GitHub REST objects, the
// way gh prints them (-i: status line, headers, blank line, body; exit 1 for HTTP >= 300 other
// than 2xx), and appends every call (argv and stdin) to calls.log so tests assert the real calls.
//
// $FAKE_GH_DIR (else the directory of argv[0]) holds:
//   state.json  {"repos": {"o/r": {"id": 1, "default_branch": "main", "issues": [...],
//                "comments": {"12": [...]}, "pulls": [...]}},
//                "page_size": 100,          caps per_page, to exercise pagination
//                "rate_limit_until": 0,     epoch seconds: until then every call gets 403
//                "fail": ""}                "auth" or "network": gh fails before any HTTP;
//                                           "hang": gh never answers (until it is killed)
//   calls.log   one JSON object a line: {"argv": [...], "stdin": "..."}
//   lock        flock'ed around every read-modify-write (tests take it too)
// Writes change the state (labels added, comments, pull requests, merges), so what a test
// sees next is what GitHub would show.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Response {
  int status = 200;
  json body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool empty_body = false;
};

std::string read_all(std::istream& in) {
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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

std::string now_iso() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string etag_of(const std::string& text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  char buf[40];
  std::snprintf(buf, sizeof(buf), "W/\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

Response error(int status, const std::string& message) {
  Response r;
  r.status = status;
  r.body = {{"message", message}, {"documentation_url", "https://docs.github.com/rest"}};
  return r;
}

json label_object(const std::string& repo, const std::string& name) {
  uint32_t h = 2166136261u;
  for (unsigned char c : name) h = (h ^ c) * 16777619u;
  return {{"id", h % 1000000000},
          {"node_id", "LA_" + std::to_string(h)},
          {"url", "https://api.github.com/repos/" + repo + "/labels/" + name},
          {"name", name},
          {"color", "ededed"},
          {"default", false},
          {"description", nullptr}};
}

bool has_label(const json& issue, const std::string& name) {
  for (const auto& l : issue["labels"]) {
    if (l["name"] == name) return true;
  }
  return false;
}

class Api {
 public:
  Api(json& state, std::string method, std::string path, std::string input)
      : state_(state), method_(std::move(method)), input_(std::move(input)) {
    for (const char* prefix : {"https://api.github.com/", "/"}) {
      if (path.rfind(prefix, 0) == 0) path = path.substr(std::string(prefix).size());
    }
    const auto q = path.find('?');
    if (q != std::string::npos) {
      for (const auto& kv : split(path.substr(q + 1), '&')) {
        const auto eq = kv.find('=');
        if (eq != std::string::npos) query_[kv.substr(0, eq)] = url_decode(kv.substr(eq + 1));
      }
      path = path.substr(0, q);
    }
    segments_ = split(path, '/');
  }

  bool modified() const { return modified_; }

  Response handle() {
    // repositories/<id>/... is how GitHub's Link headers name a repo.
    if (segments_.size() >= 2 && segments_[0] == "repositories") {
      for (auto& [name, repo] : state_["repos"].items()) {
        if (repo.value("id", 0) == std::stoll(segments_[1])) {
          std::vector<std::string> s{"repos"};
          for (const auto& part : split(name, '/')) s.push_back(part);
          s.insert(s.end(), segments_.begin() + 2, segments_.end());
          segments_ = s;
          break;
        }
      }
    }
    if (segments_.size() < 3 || segments_[0] != "repos") return error(404, "Not Found");
    repo_name_ = segments_[1] + "/" + segments_[2];
    if (!state_["repos"].contains(repo_name_)) return error(404, "Not Found");
    json& repo = state_["repos"][repo_name_];
    std::vector<std::string> rest(segments_.begin() + 3, segments_.end());
    if (rest.empty() && method_ == "GET") {
      return ok({{"id", repo.value("id", 1)}, {"name", segments_[2]}, {"full_name", repo_name_},
                 {"default_branch", repo.value("default_branch", "main")},
                 {"html_url", "https://github.com/" + repo_name_}});
    }
    if (rest.size() == 1 && rest[0] == "issues" && method_ == "GET") return list_issues(repo);
    if (rest.size() >= 2 && rest[0] == "issues") return issue_route(repo, rest);
    if (rest.size() == 1 && rest[0] == "pulls") return method_ == "POST" ? create_pull(repo) : list_pulls(repo);
    if (rest.size() == 2 && rest[0] == "pulls" && method_ == "GET") return get_pull(repo, rest[1]);
    if (rest.size() == 3 && rest[0] == "pulls" && rest[2] == "merge" && method_ == "PUT") return merge_pull(repo, rest[1]);
    return error(404, "Not Found");
  }

 private:
  Response ok(json body, int status = 200) {
    Response r;
    r.status = status;
    r.body = std::move(body);
    return r;
  }

  json input() const {
    auto j = json::parse(input_, nullptr, false);
    return j.is_discarded() ? json::object() : j;
  }

  json* find_issue(json& repo, const std::string& number) {
    for (auto& i : repo["issues"]) {
      if (std::to_string(i["number"].get<int64_t>()) == number) return &i;
    }
    return nullptr;
  }

  Response list_issues(json& repo) {
    const std::string state = query_.count("state") ? query_["state"] : "open";
    std::vector<std::string> wanted;
    if (query_.count("labels") && !query_["labels"].empty()) wanted = split(query_["labels"], ',');
    json all = json::array();
    for (const auto& i : repo["issues"]) {
      if (i.value("deleted", false)) continue;
      if (state != "all" && i["state"] != state) continue;
      bool match = true;
      for (const auto& l : wanted) match = match && has_label(i, l);
      if (match) all.push_back(i);
    }
    std::sort(all.begin(), all.end(), [](const json& a, const json& b) { return a["number"] > b["number"]; });
    int per_page = query_.count("per_page") ? std::stoi(query_["per_page"]) : 30;
    per_page = std::min({per_page, 100, state_.value("page_size", 100)});
    const int page = query_.count("page") ? std::stoi(query_["page"]) : 1;
    const int pages = std::max<int>(1, (static_cast<int>(all.size()) + per_page - 1) / per_page);
    json out = json::array();
    for (int k = (page - 1) * per_page; k < std::min<int>(page * per_page, all.size()); ++k) out.push_back(all[k]);
    Response r = ok(out);
    auto url = [&](int p) {
      std::string u = "https://api.github.com/repositories/" + std::to_string(repo.value("id", 1)) + "/issues?";
      if (query_.count("labels")) u += "labels=" + query_["labels"] + "&";
      return u + "state=" + state + "&per_page=" + std::to_string(per_page) + "&page=" + std::to_string(p);
    };
    std::string link;
    auto add = [&](int p, const char* rel) { link += (link.empty() ? "" : ", ") + ("<" + url(p) + ">; rel=\"" + rel + "\""); };
    if (page > 1) add(page - 1, "prev");
    if (page < pages) add(page + 1, "next");
    if (page < pages) add(pages, "last");
    if (page > 1) add(1, "first");
    if (!link.empty()) r.headers.push_back({"Link", link});
    return r;
  }

  Response issue_route(json& repo, const std::vector<std::string>& rest) {
    json* issue = find_issue(repo, rest[1]);
    if (issue == nullptr) return error(404, "Not Found");
    if (issue->value("deleted", false)) return error(410, "This issue was deleted");
    if (rest.size() == 2 && method_ == "GET") return ok(*issue);
    if (rest.size() == 3 && rest[2] == "labels" && method_ == "POST") {
      for (const auto& name : input().value("labels", json::array())) {
        if (!has_label(*issue, name.get<std::string>())) (*issue)["labels"].push_back(label_object(repo_name_, name));
      }
      touch(*issue);
      return ok((*issue)["labels"]);
    }
    if (rest.size() == 3 && rest[2] == "comments") {
      json& comments = repo["comments"][rest[1]];
      if (comments.is_null()) comments = json::array();
      if (method_ == "GET") return ok(comments);
      if (method_ == "POST") {
        const int64_t id = 1000 + static_cast<int64_t>(comments.size()) + 100 * (*issue)["number"].get<int64_t>();
        json c{{"id", id},
               {"node_id", "IC_" + std::to_string(id)},
               {"url", "https://api.github.com/repos/" + repo_name_ + "/issues/comments/" + std::to_string(id)},
               {"html_url", (*issue)["html_url"].get<std::string>() + "#issuecomment-" + std::to_string(id)},
               {"issue_url", (*issue)["url"]},
               {"body", input().value("body", "")},
               {"user", {{"login", "polyphony-bot"}, {"id", 2}, {"type", "User"}}},
               {"created_at", now_iso()},
               {"updated_at", now_iso()},
               {"author_association", "OWNER"}};
        comments.push_back(c);
        (*issue)["comments"] = comments.size();
        touch(*issue);
        return ok(c, 201);
      }
    }
    return error(404, "Not Found");
  }

  Response create_pull(json& repo) {
    json in = input();
    for (const char* k : {"title", "head", "base"}) {
      if (!in.contains(k)) return error(422, std::string("Validation Failed: missing ") + k);
    }
    json& pulls = repo["pulls"];
    if (pulls.is_null()) pulls = json::array();
    for (const auto& p : pulls) {
      if (p["head"]["ref"] == in["head"] && p["state"] == "open") {
        Response r = error(422, "Validation Failed");
        r.body["errors"] = json::array({{{"resource", "PullRequest"}, {"code", "custom"},
                                         {"message", "A pull request already exists for " + repo_name_.substr(0, repo_name_.find('/')) + ":" + in["head"].get<std::string>() + "."}}});
        return r;
      }
    }
    int64_t number = 1;
    for (const auto& i : repo["issues"]) number = std::max<int64_t>(number, i["number"].get<int64_t>() + 1);
    for (const auto& p : pulls) number = std::max<int64_t>(number, p["number"].get<int64_t>() + 1);
    const std::string owner = repo_name_.substr(0, repo_name_.find('/'));
    json pr{{"url", "https://api.github.com/repos/" + repo_name_ + "/pulls/" + std::to_string(number)},
            {"id", 9000 + number},
            {"node_id", "PR_" + std::to_string(number)},
            {"html_url", "https://github.com/" + repo_name_ + "/pull/" + std::to_string(number)},
            {"number", number},
            {"state", "open"},
            {"locked", false},
            {"title", in["title"]},
            {"body", in.value("body", "")},
            {"user", {{"login", "polyphony-bot"}, {"id", 2}, {"type", "User"}}},
            {"head", {{"label", owner + ":" + in["head"].get<std::string>()}, {"ref", in["head"]}}},
            {"base", {{"label", owner + ":" + in["base"].get<std::string>()}, {"ref", in["base"]}}},
            {"draft", in.value("draft", false)},
            {"merged", false},
            {"created_at", now_iso()},
            {"updated_at", now_iso()}};
    pulls.push_back(pr);
    modified_ = true;
    return ok(pr, 201);
  }

  Response list_pulls(json& repo) {
    json out = json::array();
    const std::string state = query_.count("state") ? query_["state"] : "open";
    for (const auto& p : repo.value("pulls", json::array())) {
      if (query_.count("head") && p["head"]["label"] != query_["head"]) continue;
      if (state != "all" && p["state"] != state) continue;
      out.push_back(p);
    }
    return ok(out);
  }

  Response get_pull(json& repo, const std::string& number) {
    for (const auto& p : repo.value("pulls", json::array())) {
      if (std::to_string(p["number"].get<int64_t>()) == number) return ok(p);
    }
    return error(404, "Not Found");
  }

  Response merge_pull(json& repo, const std::string& number) {
    for (auto& p : repo["pulls"]) {
      if (std::to_string(p["number"].get<int64_t>()) != number) continue;
      if (p["merged"] == true) return error(405, "Pull Request is not mergeable");
      p["merged"] = true;
      p["state"] = "closed";
      p["merge_method"] = input().value("merge_method", "merge");
      modified_ = true;
      return ok({{"sha", "6dcb09b5b57875f334f61aebed695e2e4193db5e"}, {"merged", true},
                 {"message", "Pull Request successfully merged"}});
    }
    return error(404, "Not Found");
  }

  void touch(json& issue) {
    issue["updated_at"] = now_iso();
    modified_ = true;
  }

  json& state_;
  std::string method_;
  std::string input_;
  std::map<std::string, std::string> query_;
  std::vector<std::string> segments_;
  std::string repo_name_;
  bool modified_ = false;
};

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 304: return "Not Modified";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 410: return "Gone";
    case 422: return "Unprocessable Entity";
    default: return "Error";
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const char* env_dir = std::getenv("FAKE_GH_DIR");
  const fs::path dir = env_dir != nullptr && *env_dir ? fs::path(env_dir) : fs::path(argv[0]).parent_path();

  std::string method = "GET", path, input;
  bool include = false;
  std::map<std::string, std::string> headers;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() { return i + 1 < args.size() ? args[++i] : std::string(); };
    if (a == "--method" || a == "-X") method = next();
    else if (a == "-i" || a == "--include") include = true;
    else if (a == "-H" || a == "--header") {
      const std::string h = next();
      const auto colon = h.find(':');
      if (colon != std::string::npos) headers[h.substr(0, colon)] = h.substr(h.find_first_not_of(' ', colon + 1));
    } else if (a == "--input") {
      const std::string file = next();
      if (file == "-") input = read_all(std::cin);
      else {
        std::ifstream in(file);
        input = read_all(in);
      }
    } else if (a == "-f" || a == "--raw-field" || a == "-F" || a == "--field") {
      next();  // not used by polyphony; recorded in the log all the same
    } else if (path.empty()) {
      path = a;
    }
  }

  const int lock = ::open((dir / "lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (lock >= 0) flock(lock, LOCK_EX);
  {
    std::ofstream log(dir / "calls.log", std::ios::app);
    log << json{{"argv", args}, {"stdin", input}}.dump() << "\n";
  }
  std::ifstream sin(dir / "state.json");
  json state = json::parse(sin, nullptr, false);
  if (state.is_discarded()) state = json::object();

  if (args.empty() || args[0] != "api") {
    std::cerr << "fake gh: only `gh api` is supported\n";
    return 2;
  }
  const std::string fail = state.value("fail", "");
  if (fail == "auth") {
    std::cerr << "To get started with GitHub CLI, please run:  gh auth login\n"
                 "Alternatively, populate the GH_TOKEN environment variable with a GitHub API authentication token.\n";
    return 4;
  }
  if (fail == "hang") {
    // A GitHub that never answers: the caller's timeout has to kill this process.
    if (lock >= 0) ::close(lock);
    while (true) ::pause();
  }
  if (fail == "network") {
    std::cerr << "error connecting to api.github.com\ncheck your internet connection or https://githubstatus.com\n";
    return 1;
  }

  Response r;
  const int64_t reset = state.value("rate_limit_until", int64_t{0});
  const bool limited = reset > static_cast<int64_t>(std::time(nullptr));
  bool modified = false;
  if (limited) {
    r = error(403, "API rate limit exceeded for user ID 2. If you reach out to GitHub Support for help, please include the request ID.");
    r.body["documentation_url"] = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";
  } else {
    Api api(state, method, path, input);
    r = api.handle();
    modified = api.modified();
  }
  if (modified) {
    const fs::path tmp = dir / "state.json.tmp";
    std::ofstream out(tmp);
    out << state.dump(2);
    out.close();
    fs::rename(tmp, dir / "state.json");
  }
  if (lock >= 0) {
    flock(lock, LOCK_UN);
    close(lock);
  }

  std::string body = r.empty_body ? "" : r.body.dump();
  const std::string etag = etag_of(body);
  if (!limited && method == "GET" && r.status == 200 && headers.count("If-None-Match") && headers["If-None-Match"] == etag) {
    r.status = 304;
    body.clear();
  }
  if (include) {
    std::cout << "HTTP/2.0 " << r.status << " " << reason_phrase(r.status) << "\r\n";
    std::cout << "Content-Type: application/json; charset=utf-8\r\n";
    if (method == "GET" && (r.status == 200 || r.status == 304)) std::cout << "Etag: " << etag << "\r\n";
    for (const auto& [k, v] : r.headers) std::cout << k << ": " << v << "\r\n";
    std::cout << "X-Github-Api-Version-Selected: 2022-11-28\r\n";
    std::cout << "X-Ratelimit-Limit: 5000\r\n";
    std::cout << "X-Ratelimit-Remaining: " << (limited ? 0 : 4999) << "\r\n";
    std::cout << "X-Ratelimit-Reset: " << (limited ? reset : static_cast<int64_t>(std::time(nullptr)) + 3600) << "\r\n";
    std::cout << "X-Ratelimit-Resource: core\r\n";
    std::cout << "\r\n";
  }
  std::cout << body;
  std::cout.flush();
  if (r.status >= 300) {
    if (r.status == 304) std::cerr << "gh: HTTP 304\n";
    else std::cerr << "gh: " << r.body.value("message", "error") << " (HTTP " << r.status << ")\n";
    return 1;
  }
  return 0;
}
