// The scripted GhClient.
#include "fakes/fake_gh_client.h"

namespace polyphony::testing {

void FakeGhClient::answer(const std::string& method, const std::string& path_prefix,
                          std::vector<Result<GhResponse>> answers) {
  std::lock_guard lock(mutex_);
  scripts_.push_back({method, path_prefix, std::deque<Result<GhResponse>>(answers.begin(), answers.end())});
}

std::vector<GhRequest> FakeGhClient::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

Result<GhResponse> FakeGhClient::api(const GhRequest& request) {
  std::lock_guard lock(mutex_);
  requests_.push_back(request);
  for (auto& s : scripts_) {
    if (s.method != request.method || request.path.rfind(s.path_prefix, 0) != 0 || s.answers.empty()) continue;
    Result<GhResponse> next = s.answers.front();
    if (s.answers.size() > 1) s.answers.pop_front();
    return next;
  }
  return make_error("gh", "the fake gh has no answer for this request", request.method + " " + request.path);
}

GhResponse gh_response(int status, std::string body, std::map<std::string, std::string> headers) {
  return GhResponse{status, std::move(headers), std::move(body)};
}

}  // namespace polyphony::testing
