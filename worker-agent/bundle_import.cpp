// A git bundle streamed into a repository of the worker's own: header parsed here, pack indexed
// by libgit2's pack writer (git_odb_write_pack), which completes thin packs from the odb.
#include "worker-agent/bundle_import.h"

#include <git2.h>
#include <git2/sys/odb_backend.h>

#include "common/git_handles.h"

namespace polyphony {

namespace {

constexpr std::string_view kSignature = "# v2 git bundle\n";
constexpr size_t kMaxHeader = 1 << 20;

bool is_hex_id(std::string_view s) {
  if (s.size() != GIT_OID_HEXSZ) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

Error bad(const std::string& why) {
  return make_error("bad_bundle", "not a git bundle of one branch: " + why);
}

}  // namespace

Result<BundleHeader> parse_bundle_header(std::string_view text) {
  if (!text.starts_with(kSignature)) return bad("it does not start with \"# v2 git bundle\"");
  text.remove_prefix(kSignature.size());
  BundleHeader h;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    const bool prerequisite = line.starts_with("-");
    if (prerequisite) line.remove_prefix(1);
    const std::string_view id = line.substr(0, GIT_OID_HEXSZ);
    if (!is_hex_id(id)) return bad("a header line has no object id: " + std::string(line.substr(0, 80)));
    if (prerequisite) {
      h.prerequisites.emplace_back(id);
      continue;
    }
    if (line.size() < GIT_OID_HEXSZ + 2 || line[GIT_OID_HEXSZ] != ' ') return bad("a ref line names no ref");
    h.refs.emplace_back(std::string(id), std::string(line.substr(GIT_OID_HEXSZ + 1)));
  }
  return h;
}

namespace {

class OdbBundleImport final : public BundleImport {
 public:
  OdbBundleImport(std::filesystem::path dir, detail::Repository repo, detail::Odb odb, git_odb_writepack* pack,
                  size_t max_bytes)
      : dir_(std::move(dir)), repo_(std::move(repo)), odb_(std::move(odb)), pack_(pack), max_bytes_(max_bytes) {}
  ~OdbBundleImport() override {
    if (pack_ != nullptr) pack_->free(pack_);
  }

  Status add(std::string_view data) override {
    taken_ += data.size();
    if (taken_ > max_bytes_) {
      return make_error("too_big", "the branch's bundle is over " + std::to_string(max_bytes_ >> 20) + " MiB",
                        dir_.string());
    }
    if (header_done_) return append(data);
    header_.append(data);
    const size_t end = header_.find("\n\n");
    if (end == std::string::npos) {
      if (header_.size() > kMaxHeader) return bad("its header is over 1 MiB");
      return ok_status();
    }
    auto parsed = parse_bundle_header(std::string_view(header_).substr(0, end + 1));
    POLY_TRY(parsed);
    parsed_ = std::move(*parsed);
    header_done_ = true;
    const std::string rest = header_.substr(end + 2);
    header_.clear();
    return append(rest);
  }

  Result<std::string> finish(const std::string& ref) override {
    if (!header_done_) return bad("it ended inside its header");
    if (parsed_.refs.size() != 1 || parsed_.refs[0].second != ref) {
      return bad("it must carry exactly " + ref + " and carries " + std::to_string(parsed_.refs.size()) + " refs");
    }
    if (pack_->commit(pack_, &stats_) != 0) return detail::libgit2_error("indexing the branch's pack", dir_);
    auto id = detail::parse_oid(parsed_.refs[0].first, dir_);
    POLY_TRY(id);
    git_commit* raw = nullptr;
    if (git_commit_lookup(&raw, repo_.get(), &*id) != 0) {
      return bad(ref + " names " + parsed_.refs[0].first + ", which is not a commit the bundle brought");
    }
    git_commit_free(raw);
    return parsed_.refs[0].first;
  }

 private:
  Status append(std::string_view data) {
    if (data.empty()) return ok_status();
    if (pack_->append(pack_, data.data(), data.size(), &stats_) != 0) {
      return detail::libgit2_error("indexing the branch's pack", dir_);
    }
    return ok_status();
  }

  std::filesystem::path dir_;
  detail::Repository repo_;
  detail::Odb odb_;
  git_odb_writepack* pack_;
  size_t max_bytes_;
  size_t taken_ = 0;
  bool header_done_ = false;
  std::string header_;
  BundleHeader parsed_;
  git_indexer_progress stats_{};
};

}  // namespace

Result<std::unique_ptr<BundleImport>> BundleImport::start(const std::filesystem::path& repo_dir, size_t max_bytes) {
  detail::ensure_libgit2();
  git_repository* repo_raw = nullptr;
  if (git_repository_open_ext(&repo_raw, repo_dir.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) != 0) {
    return detail::libgit2_error("opening the repository", repo_dir);
  }
  detail::Repository repo(repo_raw);
  git_odb* odb_raw = nullptr;
  if (git_repository_odb(&odb_raw, repo.get()) != 0) return detail::libgit2_error("opening the objects", repo_dir);
  detail::Odb odb(odb_raw);
  git_odb_writepack* pack = nullptr;
  if (git_odb_write_pack(&pack, odb.get(), nullptr, nullptr) != 0) {
    return detail::libgit2_error("starting a pack", repo_dir);
  }
  return std::unique_ptr<BundleImport>(
      std::make_unique<OdbBundleImport>(repo_dir, std::move(repo), std::move(odb), pack, max_bytes));
}

}  // namespace polyphony
