// `gh api` as a GhClient: argv through run_process, the -i output parsed back into a response.
#include "coordinator/gh_client.h"

#include <algorithm>
#include <cctype>

#include "common/process.h"

namespace polyphony {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

bool contains(const std::string& hay, const std::string& needle) {
  return lower(hay).find(needle) != std::string::npos;
}

class GhCli final : public GhClient {
 public:
  GhCli(const GithubConfig& config, const std::atomic<bool>* cancel)
      : program_(config.gh), host_(config.host), timeout_(config.gh_timeout_ms), cancel_(cancel) {}

  Result<GhResponse> api(const GhRequest& request) override {
    auto r = run(request);
    GhRequest moved = request;
    for (int hops = 0; hops < kMaxRedirects && r.ok() && (r->status == 307 || r->status == 308); ++hops) {
      const std::string location = r->header("location");
      if (location.empty()) break;
      moved.path = location;
      r = run(moved);
    }
    return r;
  }

 private:
  static constexpr int kMaxRedirects = 5;

  Result<GhResponse> run(const GhRequest& request) {
    std::vector<std::string> argv{program_};
    for (auto& a : gh_api_argv(request)) argv.push_back(std::move(a));
    ProcessOptions o;
    o.timeout = timeout_;
    o.cancel = cancel_;
    o.stdin_data = request.json_body.value_or("");
    // Never prompt, never print update notices or colour into what we parse.
    o.env = {{"GH_PROMPT_DISABLED", "1"},
             {"GH_NO_UPDATE_NOTIFIER", "1"},
             {"NO_COLOR", "1"},
             {"CLICOLOR", "0"},
             {"GH_HOST", host_}};
    auto r = run_process(argv, o);
    if (!r.ok()) {
      Error e = r.error();
      if (e.code == "not_found")
        e.message = "gh is not installed (program '" + program_ +
                    "' not found on PATH); install gh or set github.gh in config.yaml";
      e.where = request.method + " " + request.path;
      return e;
    }
    if (auto parsed = parse_gh_include_output(r->out)) return *parsed;
    Error e = classify_gh_failure(r->exit_code, r->err);
    e.where = request.method + " " + request.path;
    return e;
  }

  std::string program_;
  std::string host_;
  std::chrono::milliseconds timeout_;
  const std::atomic<bool>* cancel_;
};

}  // namespace

std::vector<std::string> gh_api_argv(const GhRequest& request) {
  std::vector<std::string> argv{"api", "--method", request.method, request.path, "-i"};
  argv.insert(argv.end(), {"-H", "Accept: application/vnd.github+json"});
  for (const auto& [name, value] : request.headers) argv.insert(argv.end(), {"-H", name + ": " + value});
  if (request.json_body) argv.insert(argv.end(), {"--input", "-"});
  return argv;
}

std::optional<GhResponse> parse_gh_include_output(const std::string& out) {
  if (out.rfind("HTTP/", 0) != 0) return std::nullopt;
  GhResponse resp;
  size_t pos = out.find('\n');
  const std::string status_line = trim(out.substr(0, pos));
  const auto sp = status_line.find(' ');
  if (sp == std::string::npos) return std::nullopt;
  try {
    resp.status = std::stoi(status_line.substr(sp + 1));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  while (pos != std::string::npos && pos + 1 <= out.size()) {
    const size_t start = pos + 1;
    const size_t end = out.find('\n', start);
    const std::string line = trim(out.substr(start, end == std::string::npos ? std::string::npos : end - start));
    pos = end;
    if (line.empty()) break;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    resp.headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  }
  if (pos != std::string::npos) resp.body = out.substr(pos + 1);
  return resp;
}

Error classify_gh_failure(int exit_code, const std::string& err) {
  std::string said = trim(err).substr(0, 600);
  for (auto& c : said) {
    if (c == '\n' || c == '\r') c = ' ';  // one log line
  }
  if (exit_code == 4 || contains(err, "gh auth login") || contains(err, "not logged in") ||
      contains(err, "authentication required")) {
    return make_error("auth",
                      "gh is not logged in to GitHub: run `gh auth login` (or set GH_TOKEN) on the coordinator host" +
                          (said.empty() ? std::string() : " (gh: " + said + ")"));
  }
  if (contains(err, "error connecting") || contains(err, "could not resolve host") || contains(err, "no such host") ||
      contains(err, "connection refused") || contains(err, "i/o timeout") || contains(err, "network is unreachable")) {
    return make_error("network", "GitHub cannot be reached (network down?): " + said);
  }
  return make_error("gh", "gh exited with status " + std::to_string(exit_code) + (said.empty() ? "" : ": " + said));
}

Error gh_unauthorized(const std::string& host, const std::string& said) {
  const std::string token = host == "github.com" ? "GH_TOKEN" : "GH_ENTERPRISE_TOKEN";
  return make_error("auth", "gh is not logged in to " + host + " (GitHub answered " + said + "): run `gh auth login " +
                                "--hostname " + host + "` on the coordinator host, or set " + token + " for it");
}

std::string next_page_path(const std::string& link) {
  // <https://api.github.com/repositories/1/issues?page=2>; rel="next", <...>; rel="last"
  size_t pos = 0;
  while (pos < link.size()) {
    const size_t lt = link.find('<', pos);
    if (lt == std::string::npos) break;
    const size_t gt = link.find('>', lt);
    if (gt == std::string::npos) break;
    const size_t comma = link.find(',', gt);
    const std::string params = link.substr(gt + 1, comma == std::string::npos ? std::string::npos : comma - gt - 1);
    if (params.find("rel=\"next\"") != std::string::npos) return trim(link.substr(lt + 1, gt - lt - 1));
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return {};
}

std::string github_endpoint_kind(const std::string& method, const std::string& path) {
  std::string rest = path.substr(0, path.find('?'));
  if (const auto scheme = rest.find("://"); scheme != std::string::npos) {
    const auto slash = rest.find('/', scheme + 3);
    rest = slash == std::string::npos ? "" : rest.substr(slash + 1);
  }
  if (rest.rfind("api/v3/", 0) == 0) rest.erase(0, 7);  // GitHub Enterprise
  std::vector<std::string> parts;
  for (size_t at = 0; at <= rest.size();) {
    size_t end = rest.find('/', at);
    if (end == std::string::npos) end = rest.size();
    if (end > at) parts.push_back(rest.substr(at, end - at));
    at = end + 1;
  }
  // repos/OWNER/NAME/... or repositories/ID/...
  size_t skip = 0;
  if (parts.size() >= 3 && parts[0] == "repos")
    skip = 3;
  else if (parts.size() >= 2 && parts[0] == "repositories")
    skip = 2;
  std::string kind;
  for (size_t i = skip; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    const bool number = std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::isdigit(c); });
    const bool word = std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::islower(c) || c == '_'; });
    if (!number && !word) return method + " other";
    kind += (kind.empty() ? "" : "/") + (number ? std::string("{n}") : p);
  }
  if (skip == 0 || parts.size() - skip > 4) return method + " other";
  return method + " " + (kind.empty() ? "repo" : kind);
}

std::unique_ptr<GhClient> make_gh_cli(const GithubConfig& config, const std::atomic<bool>* cancel) {
  return std::make_unique<GhCli>(config, cancel);
}

}  // namespace polyphony
