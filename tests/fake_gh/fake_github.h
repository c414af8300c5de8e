// Drives the stand-in `gh` (fake_gh.cpp) from tests: seeds issues from the recorded GitHub
// answer in tests/fixtures/github, changes them as a person on GitHub would (close, delete,
// edit, rate limit), and reads back every call the coordinator made.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "test_support.h"

namespace polyphony::testing {

class FakeGithub {
 public:
  // A fresh fixture directory serving `repo` (id 4242, default branch main), with `gh` in it.
  explicit FakeGithub(const std::string& repo = "acme/widgets");

  // The directory holding the stand-in `gh`: put it first on PATH, or name <dir>/gh.
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::string program() const { return (dir_.path() / "gh").string(); }
  const std::string& repo() const { return repo_; }

  // An open issue shaped like GitHub's (the recorded fixture with these fields).
  void add_issue(int64_t number, const std::string& title, const std::string& body,
                 const std::vector<std::string>& labels);
  void close_issue(int64_t number);
  void delete_issue(int64_t number);
  void remove_label(int64_t number, const std::string& label);
  void edit_issue(int64_t number, const std::string& title, const std::string& body);
  // Every call gets 403 with X-RateLimit-Remaining 0 until this time (epoch seconds).
  void rate_limit_until(int64_t epoch_s);
  // "auth" (not logged in), "network" (GitHub unreachable), "hang" (gh never answers, until
  // killed) or "" (working).
  void fail(const std::string& mode);
  // Caps per_page, so lists span several pages.
  void page_size(int n);

  nlohmann::json issue(int64_t number) const;
  nlohmann::json comments(int64_t number) const;
  nlohmann::json pulls() const;
  // Each call: {"argv": [...after the program...], "stdin": "..."}.
  std::vector<nlohmann::json> calls() const;
  // Calls with this method whose endpoint starts with `path_prefix` (e.g. "repos/acme/widgets/pulls").
  std::vector<nlohmann::json> calls_to(const std::string& method, const std::string& path_prefix) const;
  void clear_calls();

 private:
  void edit(const std::function<void(nlohmann::json&)>& change);
  nlohmann::json read() const;
  nlohmann::json& find(nlohmann::json& state, int64_t number);

  TempDir dir_;
  std::string repo_;
};

}  // namespace polyphony::testing
