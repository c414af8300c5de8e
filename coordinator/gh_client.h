// The GitHub REST API as `gh api` serves it: one request, its status, headers and body.
// The real client runs `gh` with an argv (never a shell) and a timeout; tests use a fake.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/result.h"

namespace polyphony {

struct GhRequest {
  std::string method = "GET";
  std::string path;                            // "repos/o/r/issues?state=open", no leading '/'
  std::map<std::string, std::string> headers;  // e.g. If-None-Match
  std::optional<std::string> json_body;        // sent on stdin with --input -
};

struct GhResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class GhClient {
 public:
  virtual ~GhClient() = default;
  // One API call. An HTTP answer of any status (304, 403, 404, ...) is a GhResponse; an Error
  // means no HTTP answer: code "not_found" (gh is not installed), "auth" (gh is not logged in),
  // "network" (GitHub cannot be reached), "timeout", or "gh" (anything else gh said).
  virtual Result<GhResponse> api(const GhRequest& request) = 0;
};

// Runs `<config.gh> api --method M PATH -i [-H ...] [--input -]` for each request with
// GH_HOST=<config.host>, killed after config.gh_timeout_ms or once `*cancel` is set (error code
// "cancelled"), when `cancel` is given. A 307/308 answer (GitHub's redirect of a non-GET call
// to a renamed repository, which gh does not follow when the call has a body) is followed to
// its Location, up to 5 times; gh itself follows 301 for GET.
std::unique_ptr<GhClient> make_gh_cli(const GithubConfig& config, const std::atomic<bool>* cancel = nullptr);

// The argv make_gh_cli runs for `request` (without the program name).
std::vector<std::string> gh_api_argv(const GhRequest& request);

// Parses what `gh api -i` prints: "HTTP/2.0 200 OK" (or HTTP/1.1), header lines in Go's
// canonical case ("X-Ratelimit-Remaining"), a blank line, the body. gh prints this for every
// HTTP answer, 304 and 4xx/5xx included (then exits 1): an answer is read from stdout whatever
// the exit code. nullopt when `out` does not start with a status line.
std::optional<GhResponse> parse_gh_include_output(const std::string& out);

// An error for a `gh` run that printed no HTTP answer, classified from its stderr.
Error classify_gh_failure(int exit_code, const std::string& err);

// The error for an HTTP 401 answer, code "auth": gh has no valid token for `host` (the real gh
// sends an unauthenticated request to a GitHub Enterprise host it has no token for, rather
// than failing before it). `said` is GitHub's message.
Error gh_unauthorized(const std::string& host, const std::string& said);

// The URL of the rel="next" page in a Link header, as given ("https://api.github.com/
// repositories/1/issues?page=2"): gh api takes a full URL as its endpoint, and a path cut from
// it would be wrong on GitHub Enterprise, where it starts with /api/v3/ and gh adds that
// again. Empty when there is none.
std::string next_page_path(const std::string& link_header);

// The kind of endpoint a call is, for counting calls: the method and the path with the host,
// the repository, numbers and the query taken out ("GET issues", "POST issues/{n}/comments",
// "PUT pulls/{n}/merge", "GET repo"); "METHOD other" for a path of another shape, so the kinds
// stay few whatever the paths hold.
std::string github_endpoint_kind(const std::string& method, const std::string& path);

}  // namespace polyphony
