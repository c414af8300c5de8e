// The directory-only Workspaces.
#include "fakes/fake_workspaces.h"

#include <algorithm>
#include <memory>
#include <utility>

namespace polyphony::testing {

namespace fs = std::filesystem;

namespace {

// Takes a bundle's bytes into a string the workspaces keep.
class FakeBundleImport final : public BundleImport {
 public:
  FakeBundleImport(std::string& sink, std::mutex& mutex, size_t max_bytes)
      : sink_(sink), mutex_(mutex), max_bytes_(max_bytes) {}
  Status add(std::string_view data) override {
    taken_ += data.size();
    if (taken_ > max_bytes_) return make_error("too_big", "the bundle passed " + std::to_string(max_bytes_) + " bytes");
    std::lock_guard lock(mutex_);
    sink_.append(data);
    return ok_status();
  }
  Result<std::string> finish(const std::string& ref) override {
    if (taken_ == 0) return make_error("bad_bundle", "the bundle is empty", ref);
    return ref;
  }

 private:
  std::string& sink_;
  std::mutex& mutex_;
  size_t max_bytes_;
  size_t taken_ = 0;
};

Status make_dirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("io", "cannot create: " + ec.message(), dir.string());
  return ok_status();
}

}  // namespace

FakeWorkspaces::FakeWorkspaces(fs::path root) : root_(std::move(root)) {}

void FakeWorkspaces::fail_next(const std::string& method, Error error) {
  std::lock_guard lock(mutex_);
  failures_[method].push_back(std::move(error));
}

void FakeWorkspaces::base_moves(std::vector<std::optional<std::string>> moves) {
  std::lock_guard lock(mutex_);
  base_moves_.assign(moves.begin(), moves.end());
}

void FakeWorkspaces::set_repo_file(std::optional<std::string> text) {
  std::lock_guard lock(mutex_);
  repo_file_ = std::move(text);
}

void FakeWorkspaces::set_landed_earlier(std::optional<std::string> base_head) {
  std::lock_guard lock(mutex_);
  landed_earlier_ = std::move(base_head);
}

void FakeWorkspaces::set_commits_ahead(int n) {
  std::lock_guard lock(mutex_);
  commits_ahead_ = n;
}

std::vector<std::string> FakeWorkspaces::calls() const {
  std::lock_guard lock(mutex_);
  return calls_;
}

int FakeWorkspaces::count(const std::string& method) const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(std::count_if(calls_.begin(), calls_.end(), [&](const std::string& c) {
    return c == method || c.rfind(method + " ", 0) == 0;
  }));
}

std::string FakeWorkspaces::imported() const {
  std::lock_guard lock(mutex_);
  return imported_;
}

std::optional<Error> FakeWorkspaces::enter(const std::string& method, const std::string& task_id) {
  if (on_call) on_call(method);
  std::lock_guard lock(mutex_);
  calls_.push_back(task_id.empty() ? method : method + " " + task_id);
  auto it = failures_.find(method);
  if (it == failures_.end() || it->second.empty()) return std::nullopt;
  Error e = std::move(it->second.front());
  it->second.pop_front();
  return e;
}

std::string FakeWorkspaces::head_locked(const std::string& task_id) const {
  auto it = heads_.find(task_id);
  return it == heads_.end() ? "base0000" : it->second;
}

Result<Workspace> FakeWorkspaces::make_workspace(const WorkspaceRequest& request) {
  Workspace ws;
  ws.task_id = request.task_id;
  ws.task_dir = root_ / "tasks" / request.task_id;
  ws.repo_dir = ws.task_dir / "repo";
  ws.mirror_dir = root_ / "mirror.git";
  ws.repo_url = request.repo_url;
  ws.base_branch = request.base_branch.empty() ? "main" : request.base_branch;
  ws.base_commit = "base0000";
  ws.branch = request.branch;
  POLY_TRY(make_dirs(ws.repo_dir));
  POLY_TRY(make_dirs(ws.task_dir / "meta"));
  POLY_TRY(make_dirs(ws.mirror_dir / "objects"));
  std::lock_guard lock(mutex_);
  heads_[ws.task_id] = ws.base_commit;
  return ws;
}

Result<Spare> FakeWorkspaces::make_spare(const std::string& repo_url, const std::string& base_branch) {
  if (auto e = enter("make_spare", "")) return *e;
  Spare spare;
  {
    std::lock_guard lock(mutex_);
    spare.dir = root_ / "spares" / ("s" + std::to_string(++spares_));
  }
  spare.mirror_dir = root_ / "mirror.git";
  spare.repo_url = repo_url;
  spare.base_branch = base_branch;
  POLY_TRY(make_dirs(spare.dir / "repo"));
  POLY_TRY(make_dirs(spare.dir / "meta"));
  return spare;
}

Result<Workspace> FakeWorkspaces::provision_from(const WorkspaceRequest& request, const Spare& spare) {
  std::error_code ec;
  if (auto e = enter("provision_from", request.task_id)) {
    fs::remove_all(spare.dir, ec);
    return *e;
  }
  if (spare.repo_url != request.repo_url || spare.base_branch != request.base_branch) {
    fs::remove_all(spare.dir, ec);
    return make_error("usage", "the spare is for another repo or base", spare.dir.string());
  }
  const fs::path task_dir = root_ / "tasks" / request.task_id;
  POLY_TRY(make_dirs(task_dir.parent_path()));
  fs::rename(spare.dir, task_dir, ec);
  if (ec) return make_error("io", "cannot move the spare: " + ec.message(), spare.dir.string());
  return make_workspace(request);
}

Status FakeWorkspaces::discard_spare(const Spare& spare) {
  if (auto e = enter("discard_spare", "")) return *e;
  std::error_code ec;
  fs::remove_all(spare.dir, ec);
  return ok_status();
}

Result<int> FakeWorkspaces::clear_spares() {
  if (auto e = enter("clear_spares", "")) return *e;
  std::error_code ec;
  int n = 0;
  for (fs::directory_iterator it(root_ / "spares", ec), end; !ec && it != end; it.increment(ec)) ++n;
  fs::remove_all(root_ / "spares", ec);
  return n;
}

Result<Workspace> FakeWorkspaces::provision(const WorkspaceRequest& request) {
  if (auto e = enter("provision", request.task_id)) return *e;
  if (fs::exists(root_ / "tasks" / request.task_id)) {
    return make_error("exists", "workspace exists", request.task_id);
  }
  return make_workspace(request);
}

Result<Workspace> FakeWorkspaces::open(const std::string& task_id) {
  if (auto e = enter("open", task_id)) return *e;
  return make_error("not_found", "the fake workspaces open nothing", task_id);
}

Result<std::unique_ptr<BundleImport>> FakeWorkspaces::import_branch(const Workspace& ws, size_t max_bytes) {
  if (auto e = enter("import_branch", ws.task_id)) return *e;
  return std::unique_ptr<BundleImport>(std::make_unique<FakeBundleImport>(imported_, mutex_, max_bytes));
}

Result<std::string> FakeWorkspaces::pin_import(const Workspace& ws, BundleImport& import) {
  if (auto e = enter("pin_import", ws.task_id)) return *e;
  auto ref = import.finish("refs/heads/" + ws.branch);
  if (!ref.ok()) return ref.error();
  std::lock_guard lock(mutex_);
  const std::string commit = "pinned" + std::to_string(++pins_);
  heads_[ws.task_id] = commit;
  return commit;
}

Status FakeWorkspaces::write_pinned_bundle(const Workspace& ws, const fs::path& path) {
  if (auto e = enter("write_pinned_bundle", ws.task_id)) return *e;
  std::string head;
  {
    std::lock_guard lock(mutex_);
    head = head_locked(ws.task_id);
  }
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return make_error("io", "cannot write", path.string());
  std::fputs(("bundle of " + head + "\n").c_str(), f);
  std::fclose(f);
  return ok_status();
}

Result<fs::path> FakeWorkspaces::make_review_clone(const Workspace& ws) {
  if (auto e = enter("make_review_clone", ws.task_id)) return *e;
  POLY_TRY(make_dirs(ws.task_dir / "review-repo"));
  return ws.task_dir / "review-repo";
}

Result<std::optional<std::string>> FakeWorkspaces::commit_all(const Workspace& ws, const std::string& /*message*/) {
  if (auto e = enter("commit_all", ws.task_id)) return *e;
  return std::optional<std::string>();
}

Result<std::string> FakeWorkspaces::head_commit(const Workspace& ws) {
  if (auto e = enter("head_commit", ws.task_id)) return *e;
  std::lock_guard lock(mutex_);
  return head_locked(ws.task_id);
}

Result<int> FakeWorkspaces::commits_ahead(const Workspace& ws) {
  if (auto e = enter("commits_ahead", ws.task_id)) return *e;
  std::lock_guard lock(mutex_);
  return commits_ahead_;
}

Result<std::optional<std::string>> FakeWorkspaces::read_at_base(const Workspace& ws, const std::string& path) {
  if (auto e = enter("read_at_base", ws.task_id)) return *e;
  std::lock_guard lock(mutex_);
  if (path != ".polyphony.yaml") return std::optional<std::string>();
  return repo_file_;
}

Result<std::optional<std::string>> FakeWorkspaces::landed_earlier(const Workspace& ws) {
  if (auto e = enter("landed_earlier", ws.task_id)) return *e;
  std::lock_guard lock(mutex_);
  return landed_earlier_;
}

Result<std::string> FakeWorkspaces::head_tree(const Workspace& ws) {
  if (auto e = enter("head_tree", ws.task_id)) return *e;
  std::lock_guard lock(mutex_);
  return "tree-of-" + head_locked(ws.task_id);
}

Result<std::optional<std::string>> FakeWorkspaces::rebase_onto_origin(Workspace& ws) {
  if (auto e = enter("rebase_onto_origin", ws.task_id)) return *e;
  std::lock_guard lock(mutex_);
  if (base_moves_.empty()) return std::optional<std::string>();
  std::optional<std::string> moved = base_moves_.front();
  base_moves_.pop_front();
  if (!moved) return moved;
  ws.base_commit = *moved;
  heads_[ws.task_id] = "rebased-onto-" + *moved;
  return moved;
}

Result<LandResult> FakeWorkspaces::land(const Workspace& ws) {
  if (auto e = enter("land", ws.task_id)) return *e;
  std::lock_guard lock(mutex_);
  const std::string head = head_locked(ws.task_id);
  return LandResult{head, head, true, ""};
}

Result<LandResult> FakeWorkspaces::push_branch(const Workspace& ws) {
  if (auto e = enter("push_branch", ws.task_id)) return *e;
  std::lock_guard lock(mutex_);
  return LandResult{head_locked(ws.task_id), "", false, ""};
}

Status FakeWorkspaces::remove(const std::string& task_id) {
  if (auto e = enter("remove", task_id)) return *e;
  std::error_code ec;
  fs::remove_all(root_ / "tasks" / task_id, ec);
  return ok_status();
}

Result<std::vector<std::string>> FakeWorkspaces::list() {
  if (auto e = enter("list", "")) return *e;
  std::vector<std::string> ids;
  std::error_code ec;
  for (fs::directory_iterator it(root_ / "tasks", ec), end; !ec && it != end; it.increment(ec)) {
    ids.push_back(it->path().filename().string());
  }
  return ids;
}

}  // namespace polyphony::testing
