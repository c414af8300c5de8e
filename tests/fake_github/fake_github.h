// A stand-in GitHub REST server for tests, which the real `gh` talks to: HTTPS on 127.0.0.1
// with a certificate made for the test, served at https://ghe.localhost:PORT/api/v3/ the way
// a GitHub Enterprise host serves it. Not github.localhost: gh treats that name as GitHub's own
// development host, and a redirected call to it (a moved repository) loses its token. It keeps
// the state calls change (labels, comments, pull requests, merges), logs every request, and
// answers in GitHub's shapes, failures included: Link pagination, ETag and 304, primary and
// secondary rate limits, 401, 404, 410, 422, 5xx, 301/307 for a moved repository, pull requests
// in the issues list, 405/409 merge conflicts.
//
// program() is the real gh behind gh_confined (gh_confined.cpp), which resolves
// ghe.localhost to 127.0.0.1 in a private mount namespace for that gh alone and hands it
// GH_ENTERPRISE_TOKEN, SSL_CERT_FILE and an empty GH_CONFIG_DIR. The code under test passes
// host() as GH_HOST (github.host in config.yaml), exactly as in production.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "test_support.h"

namespace polyphony::testing {

class FakeGithub {
 public:
  // A running server for `repo` (id 4242, default branch main), its certificate and gh wrapper.
  explicit FakeGithub(const std::string& repo = "acme/widgets");
  ~FakeGithub();
  FakeGithub(const FakeGithub&) = delete;
  FakeGithub& operator=(const FakeGithub&) = delete;

  // The gh to run (github.gh): the real gh in the test's own name resolution.
  std::string program() const;
  // "ghe.localhost:PORT" (github.host, GH_HOST for gh).
  std::string host() const;
  const std::string& repo() const;
  // github.repo, .gh, .host and a 20 s .gh_timeout_ms, the rest default.
  GithubConfig config() const;
  // The directory of the certificate, hosts file and gh wrapper.
  const std::filesystem::path& dir() const;
  // The lines to add under `github:` in a config.yaml: repo, host and gh.
  std::string config_yaml() const;

  // An open issue shaped like GitHub's (the recorded fixture with these fields).
  void add_issue(int64_t number, const std::string& title, const std::string& body,
                 const std::vector<std::string>& labels);
  // An open pull request from `head` with these labels: it shows in the issues list, as on GitHub.
  void add_pull(int64_t number, const std::string& title, const std::string& head,
                const std::vector<std::string>& labels);
  void close_issue(int64_t number);
  void delete_issue(int64_t number);  // then 410 Gone
  void remove_label(int64_t number, const std::string& label);
  void edit_issue(int64_t number, const std::string& title, const std::string& body);
  // Renames the repository: the old name answers 301 (GET) or 307 (other methods) to
  // repositories/<id>/..., as GitHub does for a moved repository.
  void move_repo(const std::string& new_name);

  // Primary rate limit: every call gets 403 with X-RateLimit-Remaining 0 and this reset time
  // (epoch seconds) until it passes or this is set to 0.
  void rate_limit_until(int64_t epoch_s);
  // The next `count` calls whose "METHOD path" starts with `prefix` (path as logged, e.g.
  // "GET repos/acme/widgets/issues?") get `status` with GitHub's body and headers for it: 403
  // or 429 are a secondary rate limit (Retry-After: retry_after_s), 401 bad credentials, 5xx
  // a server error, 405 not mergeable, 409 head branch modified, 422 validation failed.
  void fail_next(const std::string& prefix, int status, int count = 1, int retry_after_s = 60);
  // "auth" (gh has no token: GitHub answers 401), "network" (ghe.localhost resolves to an
  // address nothing listens on), "hang" (requests get no answer until the mode changes or the
  // server stops) or "" (working).
  void fail(const std::string& mode);
  // Caps per_page, so lists span several pages.
  void page_size(int n);

  nlohmann::json issue(int64_t number) const;
  nlohmann::json comments(int64_t number) const;
  nlohmann::json pulls() const;
  // Each call: {"method", "path" (after /api/v3/, query as sent), "headers", "body", "status"}.
  std::vector<nlohmann::json> calls() const;
  // Calls with this method whose path starts with `path_prefix` (e.g. "repos/acme/widgets/pulls").
  std::vector<nlohmann::json> calls_to(const std::string& method, const std::string& path_prefix) const;
  void clear_calls();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace polyphony::testing
