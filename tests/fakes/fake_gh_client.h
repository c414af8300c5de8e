// A GhClient that answers `gh api` requests from a script and records every request: the
// answers GitHub or gh give that the stand-in gh program cannot (no network, a timeout, a 5xx).
#pragma once

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/gh_client.h"

namespace polyphony::testing {

class FakeGhClient final : public GhClient {
 public:
  // Requests whose method is `method` and whose path starts with `path_prefix` get the scripted
  // answers in order; the last one answers every request after it. The first script that matches
  // answers. A request no script matches is error "gh" naming it.
  void answer(const std::string& method, const std::string& path_prefix, std::vector<Result<GhResponse>> answers);

  // Every request, in order.
  std::vector<GhRequest> requests() const;

  Result<GhResponse> api(const GhRequest& request) override;

 private:
  struct Script {
    std::string method;
    std::string path_prefix;
    std::deque<Result<GhResponse>> answers;
  };

  mutable std::mutex mutex_;
  std::vector<Script> scripts_;
  std::vector<GhRequest> requests_;
};

// A response with `status`, a JSON `body` and `headers` (names lowercased).
GhResponse gh_response(int status, std::string body, std::map<std::string, std::string> headers = {});

}  // namespace polyphony::testing
