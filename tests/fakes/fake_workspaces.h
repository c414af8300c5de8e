// Workspaces without git: real directories under a root (the attempt writes its meta files
// there and mounts them), commits as names the fake makes up, and every call recorded. What git
// would answer (a rebase onto a moved base, a refused push, an earlier landing) is scripted.
#pragma once

#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "worker-agent/workspaces.h"

namespace polyphony::testing {

class FakeWorkspaces final : public Workspaces {
 public:
  explicit FakeWorkspaces(std::filesystem::path root);

  // Scripting.
  // The next call of `method` fails with `error` (errors queue up per method).
  void fail_next(const std::string& method, Error error);
  // Where the origin's base is for successive rebase_onto_origin calls: a commit id moves the
  // base there (the branch is replayed onto it), nullopt leaves it. Past the list: never moves.
  void base_moves(std::vector<std::optional<std::string>> moves);
  // .polyphony.yaml at the base; nullopt: the repo has none.
  void set_repo_file(std::optional<std::string> text);
  // landed_earlier's answer.
  void set_landed_earlier(std::optional<std::string> base_head);
  // commits_ahead's answer (1 unless set).
  void set_commits_ahead(int n);
  // Called with the method's name at the start of every call (e.g. to move a fake clock there).
  std::function<void(const std::string& method)> on_call;

  // What was asked, in order: "provision t1", "land t1", ...
  std::vector<std::string> calls() const;
  // How many calls of `method` there were.
  int count(const std::string& method) const;
  // Every byte the branch imports took in.
  std::string imported() const;
  const std::filesystem::path& root() const { return root_; }

  Result<Spare> make_spare(const std::string& repo_url, const std::string& base_branch) override;
  Result<Workspace> provision_from(const WorkspaceRequest& request, const Spare& spare) override;
  Status discard_spare(const Spare& spare) override;
  Result<int> clear_spares() override;
  Result<Workspace> provision(const WorkspaceRequest& request) override;
  Result<Workspace> open(const std::string& task_id) override;
  Result<std::unique_ptr<BundleImport>> import_branch(const Workspace& ws, size_t max_bytes) override;
  Result<std::string> pin_import(const Workspace& ws, BundleImport& import) override;
  Status write_pinned_bundle(const Workspace& ws, const std::filesystem::path& path) override;
  Result<std::filesystem::path> make_review_clone(const Workspace& ws) override;
  Result<std::optional<std::string>> commit_all(const Workspace& ws, const std::string& message) override;
  Result<std::string> head_commit(const Workspace& ws) override;
  Result<int> commits_ahead(const Workspace& ws) override;
  Result<std::optional<std::string>> read_at_base(const Workspace& ws, const std::string& path) override;
  Result<std::optional<std::string>> landed_earlier(const Workspace& ws) override;
  Result<std::string> head_tree(const Workspace& ws) override;
  Result<std::optional<std::string>> rebase_onto_origin(Workspace& ws) override;
  Result<LandResult> land(const Workspace& ws) override;
  Result<LandResult> push_branch(const Workspace& ws) override;
  Status remove(const std::string& task_id) override;
  Result<std::vector<std::string>> list() override;

 private:
  std::optional<Error> enter(const std::string& method, const std::string& task_id);
  Result<Workspace> make_workspace(const WorkspaceRequest& request);
  std::string head_locked(const std::string& task_id) const;

  std::filesystem::path root_;
  mutable std::mutex mutex_;
  std::vector<std::string> calls_;
  std::map<std::string, std::deque<Error>> failures_;
  std::deque<std::optional<std::string>> base_moves_;
  std::optional<std::string> repo_file_;
  std::optional<std::string> landed_earlier_;
  int commits_ahead_ = 1;
  std::map<std::string, std::string> heads_;  // task id -> pinned commit
  std::string imported_;
  int spares_ = 0;
  int pins_ = 0;
};

}  // namespace polyphony::testing
