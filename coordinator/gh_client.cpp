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

bool contains(const std::string& hay, const std::string& needle) { return lower(hay).find(needle) != std::string::npos; }

class GhCli final : public GhClient {
 public:
  GhCli(std::string program, std::chrono::milliseconds timeout, const std::atomic<bool>* cancel)
      : program_(std::move(program)), timeout_(timeout), cancel_(cancel) {}

  Result<GhResponse> api(const GhRequest& request) override {
    std::vector<std::string> argv{program_};
    for (auto& a : gh_api_argv(request)) argv.push_back(std::move(a));
    ProcessOptions o;
    o.timeout = timeout_;
    o.cancel = cancel_;
    o.stdin_data = request.json_body.value_or("");
    // Never prompt, never print update notices or colour into what we parse.
    o.env = {{"GH_PROMPT_DISABLED", "1"}, {"GH_NO_UPDATE_NOTIFIER", "1"}, {"NO_COLOR", "1"}, {"CLICOLOR", "0"}};
    auto r = run_process(argv, o);
    if (!r.ok()) {
      Error e = r.error();
      if (e.code == "not_found") e.message = "gh is not installed (program '" + program_ + "' not found on PATH); install gh or set github.gh in config.yaml";
      e.where = request.method + " " + request.path;
      return e;
    }
    if (auto parsed = parse_gh_include_output(r->out)) return *parsed;
    Error e = classify_gh_failure(r->exit_code, r->err);
    e.where = request.method + " " + request.path;
    return e;
  }

 private:
  std::string program_;
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
    return make_error("auth", "gh is not logged in to GitHub: run `gh auth login` (or set GH_TOKEN) on the coordinator host" +
                                  (said.empty() ? std::string() : " (gh: " + said + ")"));
  }
  if (contains(err, "error connecting") || contains(err, "could not resolve host") || contains(err, "no such host") ||
      contains(err, "connection refused") || contains(err, "i/o timeout") || contains(err, "network is unreachable")) {
    return make_error("network", "GitHub cannot be reached (network down?): " + said);
  }
  return make_error("gh", "gh exited with status " + std::to_string(exit_code) + (said.empty() ? "" : ": " + said));
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
    if (params.find("rel=\"next\"") != std::string::npos) {
      std::string url = link.substr(lt + 1, gt - lt - 1);
      const size_t scheme = url.find("://");
      if (scheme != std::string::npos) {
        const size_t slash = url.find('/', scheme + 3);
        url = slash == std::string::npos ? std::string() : url.substr(slash + 1);
      }
      while (!url.empty() && url.front() == '/') url.erase(0, 1);
      return url;
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return {};
}

std::unique_ptr<GhClient> make_gh_cli(std::string program, std::chrono::milliseconds timeout,
                                      const std::atomic<bool>* cancel) {
  return std::make_unique<GhCli>(std::move(program), timeout, cancel);
}

}  // namespace polyphony
