// Drives the stand-in `gh` from tests.
#include "fake_gh/fake_github.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>

namespace polyphony::testing {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// flock'ed like fake_gh does, so a test's change and a call never interleave.
class Locked {
 public:
  explicit Locked(const fs::path& dir) : fd_(::open((dir / "lock").c_str(), O_CREAT | O_RDWR, 0644)) {
    if (fd_ >= 0) flock(fd_, LOCK_EX);
  }
  ~Locked() {
    if (fd_ >= 0) {
      flock(fd_, LOCK_UN);
      close(fd_);
    }
  }

 private:
  int fd_;
};

json load(const fs::path& file) {
  std::ifstream in(file);
  auto j = json::parse(in, nullptr, false);
  if (j.is_discarded()) throw std::runtime_error("cannot parse " + file.string());
  return j;
}

}  // namespace

FakeGithub::FakeGithub(const std::string& repo) : dir_("polyphony-fake-gh"), repo_(repo) {
  json state{{"repos", {{repo, {{"id", 4242}, {"default_branch", "main"}, {"issues", json::array()},
                                {"comments", json::object()}, {"pulls", json::array()}}}}},
             {"page_size", 100},
             {"rate_limit_until", 0},
             {"fail", ""}};
  std::ofstream(dir_.path() / "state.json") << state.dump(2);
  std::ofstream(dir_.path() / "calls.log").flush();
  fs::create_symlink(FAKE_GH_PROGRAM, dir_.path() / "gh");
}

void FakeGithub::edit(const std::function<void(json&)>& change) {
  Locked lock(dir());
  json state = load(dir() / "state.json");
  change(state);
  const fs::path tmp = dir() / "state.json.test-tmp";
  std::ofstream(tmp) << state.dump(2);
  fs::rename(tmp, dir() / "state.json");
}

json FakeGithub::read() const {
  Locked lock(dir());
  return load(dir() / "state.json");
}

json& FakeGithub::find(json& state, int64_t number) {
  for (auto& i : state["repos"][repo_]["issues"]) {
    if (i["number"] == number) return i;
  }
  throw std::runtime_error("fake GitHub has no issue #" + std::to_string(number));
}

void FakeGithub::add_issue(int64_t number, const std::string& title, const std::string& body,
                           const std::vector<std::string>& labels) {
  json issue = load(fs::path(POLYPHONY_FIXTURES_DIR) / "github" / "issue.json");
  const std::string n = std::to_string(number);
  const std::string api = "https://api.github.com/repos/" + repo_ + "/issues/" + n;
  issue["number"] = number;
  issue["id"] = 100000 + number;
  issue["title"] = title;
  issue["body"] = body;
  issue["url"] = api;
  issue["repository_url"] = "https://api.github.com/repos/" + repo_;
  issue["labels_url"] = api + "/labels{/name}";
  issue["comments_url"] = api + "/comments";
  issue["events_url"] = api + "/events";
  issue["timeline_url"] = api + "/timeline";
  issue["html_url"] = "https://github.com/" + repo_ + "/issues/" + n;
  issue["reactions"]["url"] = api + "/reactions";
  issue["labels"] = json::array();
  for (const auto& l : labels) {
    issue["labels"].push_back({{"id", 5000 + issue["labels"].size()},
                               {"node_id", "LA_" + l},
                               {"url", "https://api.github.com/repos/" + repo_ + "/labels/" + l},
                               {"name", l},
                               {"description", ""},
                               {"color", "ededed"},
                               {"default", false}});
  }
  edit([&](json& s) { s["repos"][repo_]["issues"].push_back(issue); });
}

void FakeGithub::close_issue(int64_t number) {
  edit([&](json& s) {
    json& i = find(s, number);
    i["state"] = "closed";
    i["state_reason"] = "completed";
    i["closed_at"] = "2026-01-01T00:00:00Z";
    i["updated_at"] = "2026-01-01T00:00:00Z";
  });
}

void FakeGithub::delete_issue(int64_t number) {
  edit([&](json& s) { find(s, number)["deleted"] = true; });
}

void FakeGithub::remove_label(int64_t number, const std::string& label) {
  edit([&](json& s) {
    json& labels = find(s, number)["labels"];
    json kept = json::array();
    for (const auto& l : labels) {
      if (l["name"] != label) kept.push_back(l);
    }
    labels = kept;
  });
}

void FakeGithub::edit_issue(int64_t number, const std::string& title, const std::string& body) {
  edit([&](json& s) {
    json& i = find(s, number);
    i["title"] = title;
    i["body"] = body;
    i["updated_at"] = "2026-01-02T00:00:00Z";
  });
}

void FakeGithub::rate_limit_until(int64_t epoch_s) {
  edit([&](json& s) { s["rate_limit_until"] = epoch_s; });
}

void FakeGithub::fail(const std::string& mode) {
  edit([&](json& s) { s["fail"] = mode; });
}

void FakeGithub::page_size(int n) {
  edit([&](json& s) { s["page_size"] = n; });
}

json FakeGithub::issue(int64_t number) const {
  const json state = read();
  for (const auto& i : state["repos"][repo_]["issues"]) {
    if (i["number"] == number) return i;
  }
  return json::object();
}

json FakeGithub::comments(int64_t number) const {
  json c = read()["repos"][repo_]["comments"];
  const std::string n = std::to_string(number);
  return c.contains(n) ? c[n] : json::array();
}

json FakeGithub::pulls() const { return read()["repos"][repo_]["pulls"]; }

std::vector<json> FakeGithub::calls() const {
  Locked lock(dir());
  std::ifstream in(dir() / "calls.log");
  std::vector<json> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

std::vector<json> FakeGithub::calls_to(const std::string& method, const std::string& path_prefix) const {
  std::vector<json> out;
  for (const auto& c : calls()) {
    const auto& argv = c["argv"];
    std::string m = "GET", path;
    for (size_t i = 1; i < argv.size(); ++i) {
      const std::string a = argv[i];
      if (a == "--method" || a == "-X") m = argv[++i];
      else if (a == "-H" || a == "--header" || a == "--input" || a == "-f" || a == "-F") ++i;
      else if (a[0] != '-' && path.empty()) path = a;
    }
    if (m == method && path.rfind(path_prefix, 0) == 0) out.push_back(c);
  }
  return out;
}

void FakeGithub::clear_calls() {
  Locked lock(dir());
  std::ofstream(dir() / "calls.log", std::ios::trunc).flush();
}

}  // namespace polyphony::testing
