// libgit2 operations on one repository: branches, borrowing clones, commits, merges, reads.
#include "git/git_repo.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fstream>
#include <set>

namespace polyphony::detail {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kHeadsPrefix = "refs/heads/";

}  // namespace

Status write_alternates(const fs::path& git_dir, const std::vector<fs::path>& object_dirs) {
  fs::path file = git_dir / "objects" / "info" / "alternates";
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  std::ofstream out(file, std::ios::trunc);
  for (const auto& dir : object_dirs) out << dir.string() << "\n";
  out.close();
  if (ec || !out) return make_error("io", "cannot write the alternates file", file.string());
  return ok_status();
}

const BranchHead* BranchSnapshot::find(const std::string& name) const {
  for (const auto& b : branches) {
    if (b.name == name) return &b;
  }
  return nullptr;
}

BranchSnapshot BranchSnapshot::tracked_with(const std::string& base) const {
  BranchSnapshot out;
  out.default_branch = default_branch;
  for (const auto& b : branches) {
    if (b.name == base || b.name == default_branch) out.branches.push_back(b);
  }
  return out;
}

std::string BranchSnapshot::names() const {
  std::string out;
  for (const auto& b : branches) out += (out.empty() ? "" : ", ") + b.name;
  return out.empty() ? "(none)" : out;
}

bool is_valid_branch_name(const std::string& branch) {
  ensure_libgit2();
  int valid = 0;
  std::string ref = std::string(kHeadsPrefix) + branch;
  return !branch.empty() && git_reference_name_is_valid(&valid, ref.c_str()) == 0 && valid;
}

Result<GitRepo> GitRepo::open(const fs::path& path) {
  ensure_libgit2();
  git_repository* raw = nullptr;
  if (git_repository_open_ext(&raw, path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH, nullptr) != 0) {
    return libgit2_error("opening the repository", path);
  }
  return GitRepo(Repository(raw), path);
}

Result<GitRepo> GitRepo::init_borrowing(const fs::path& dir, const std::vector<fs::path>& object_dirs,
                                        const std::string& branch, bool bare) {
  ensure_libgit2();
  git_repository_init_options opts = GIT_REPOSITORY_INIT_OPTIONS_INIT;
  opts.flags = GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT |
               (bare ? static_cast<uint32_t>(GIT_REPOSITORY_INIT_BARE) : 0u);
  std::string head = std::string(kHeadsPrefix) + branch;
  opts.initial_head = head.c_str();
  git_repository* raw = nullptr;
  if (git_repository_init_ext(&raw, dir.c_str(), &opts) != 0) {
    return libgit2_error("initialising a repository", dir);
  }
  fs::path git_dir = git_repository_path(raw);
  git_repository_free(raw);
  POLY_TRY(write_alternates(git_dir, object_dirs));
  // Reopened so that the object database is loaded with the alternates in place.
  return open(dir);
}

Result<BranchSnapshot> GitRepo::branches() const {
  git_branch_iterator* it_raw = nullptr;
  if (git_branch_iterator_new(&it_raw, repo_.get(), GIT_BRANCH_LOCAL) != 0) {
    return libgit2_error("listing branches", path_);
  }
  BranchIterator it(it_raw);
  BranchSnapshot snapshot;
  git_reference* ref_raw = nullptr;
  git_branch_t type;
  int rc = 0;
  while ((rc = git_branch_next(&ref_raw, &type, it.get())) == 0) {
    Reference ref(ref_raw);
    const git_oid* target = git_reference_target(ref.get());
    const char* name = nullptr;
    if (target == nullptr || git_branch_name(&name, ref.get()) != 0) continue;  // symbolic
    snapshot.branches.push_back({name, *target});
  }
  if (rc != GIT_ITEROVER) return libgit2_error("listing branches", path_);
  snapshot.default_branch = head_branch();
  return snapshot;
}

std::string GitRepo::head_branch() const {
  git_reference* head_raw = nullptr;
  if (git_reference_lookup(&head_raw, repo_.get(), "HEAD") != 0) return {};
  Reference head(head_raw);
  const char* target = git_reference_symbolic_target(head.get());
  std::string_view t = target != nullptr ? target : "";
  return t.starts_with(kHeadsPrefix) ? std::string(t.substr(kHeadsPrefix.size())) : std::string();
}

Status GitRepo::add_remote(const std::string& name, const std::string& url, const BranchSnapshot& origin) {
  git_remote* remote_raw = nullptr;
  if (git_remote_create(&remote_raw, repo_.get(), name.c_str(), url.c_str()) != 0) {
    return libgit2_error("adding remote '" + name + "'", path_);
  }
  Remote remote(remote_raw);
  POLY_TRY(set_remote_refs(name, origin));
  return pack_refs();
}

Status GitRepo::pack_refs() {
  git_refdb* raw = nullptr;
  if (git_repository_refdb(&raw, repo_.get()) != 0) return libgit2_error("opening the refs", path_);
  Refdb refdb(raw);
  if (git_refdb_compress(refdb.get()) != 0) return libgit2_error("packing the refs", path_);
  return ok_status();
}

Status GitRepo::set_remote_refs(const std::string& name, const BranchSnapshot& origin) {
  const std::string prefix = "refs/remotes/" + name + "/";
  const std::string head = prefix + "HEAD";
  const bool has_head = origin.find(origin.default_branch) != nullptr;
  git_reference_iterator* it_raw = nullptr;
  std::string glob = prefix + "*";
  if (git_reference_iterator_glob_new(&it_raw, repo_.get(), glob.c_str()) != 0) {
    return libgit2_error("listing " + glob, path_);
  }
  ReferenceIterator it(it_raw);
  std::vector<std::string> stale;
  const char* ref_name = nullptr;
  while (git_reference_next_name(&ref_name, it.get()) == 0) {
    std::string_view ref = ref_name;
    bool keep = ref == head ? has_head : origin.find(std::string(ref.substr(prefix.size()))) != nullptr;
    if (!keep) stale.emplace_back(ref);
  }
  for (const auto& ref : stale) {
    if (git_reference_remove(repo_.get(), ref.c_str()) != 0) return libgit2_error("deleting " + ref, path_);
  }
  for (const auto& b : origin.branches) {
    git_reference* out = nullptr;
    std::string ref = prefix + b.name;
    // Only what moved is written: an origin that keeps every landed task's branch would
    // otherwise cost each refresh a ref file (and its log) per branch it ever had.
    git_oid current;
    if (git_reference_name_to_id(&current, repo_.get(), ref.c_str()) == 0 && git_oid_equal(&current, &b.commit))
      continue;
    if (git_reference_create(&out, repo_.get(), ref.c_str(), &b.commit, 1, "polyphony: mirror") != 0) {
      return libgit2_error("creating " + ref, path_);
    }
    git_reference_free(out);
  }
  if (!has_head) return ok_status();
  git_reference* out = nullptr;
  std::string target = prefix + origin.default_branch;
  if (git_reference_symbolic_create(&out, repo_.get(), head.c_str(), target.c_str(), 1, "polyphony: mirror") != 0) {
    return libgit2_error("creating " + head, path_);
  }
  git_reference_free(out);
  return ok_status();
}

Status GitRepo::restat_index_after_chown(const std::vector<std::string>* only) {
  const char* workdir = git_repository_workdir(repo_.get());
  if (workdir == nullptr) return ok_status();
  git_index* raw = nullptr;
  if (git_repository_index(&raw, repo_.get()) != 0 || git_index_read(raw, 1) != 0) {
    if (raw != nullptr) git_index_free(raw);
    return libgit2_error("reading the index", path_);
  }
  Index index(raw);
  const fs::path root = workdir;
  size_t changed = 0;
  const size_t count = only != nullptr ? only->size() : git_index_entrycount(index.get());
  for (size_t i = 0; i < count; ++i) {
    const git_index_entry* e = only != nullptr ? git_index_get_bypath(index.get(), (*only)[i].c_str(), 0)
                                               : git_index_get_byindex(index.get(), i);
    if (e == nullptr) continue;  // deleted
    struct stat st {};
    if (::lstat((root / e->path).c_str(), &st) != 0) continue;
    // nanoseconds only when the index keeps them (git built without USE_NSEC writes zeros).
    const bool nsec = e->mtime.nanoseconds != 0 || e->ctime.nanoseconds != 0;
    const bool same_file = e->file_size == static_cast<uint32_t>(st.st_size) &&
                           e->ino == static_cast<uint32_t>(st.st_ino) &&
                           e->mtime.seconds == static_cast<int32_t>(st.st_mtim.tv_sec) &&
                           (!nsec || e->mtime.nanoseconds == static_cast<uint32_t>(st.st_mtim.tv_nsec));
    if (!same_file ||
        (e->uid == st.st_uid && e->gid == st.st_gid && e->ctime.seconds == static_cast<int32_t>(st.st_ctim.tv_sec))) {
      continue;
    }
    git_index_entry copy = *e;
    std::string path = e->path;
    copy.path = path.c_str();
    copy.ctime.seconds = static_cast<int32_t>(st.st_ctim.tv_sec);
    copy.ctime.nanoseconds = nsec ? static_cast<uint32_t>(st.st_ctim.tv_nsec) : 0;
    copy.uid = st.st_uid;
    copy.gid = st.st_gid;
    if (git_index_add(index.get(), &copy) != 0) return libgit2_error("updating " + path + " in the index", path_);
    ++changed;
  }
  if (changed > 0 && git_index_write(index.get()) != 0) return libgit2_error("writing the index", path_);
  return ok_status();
}

namespace {

int record_path(git_checkout_notify_t, const char* path, const git_diff_file*, const git_diff_file*,
                const git_diff_file*, void* payload) {
  static_cast<std::vector<std::string>*>(payload)->emplace_back(path);
  return 0;
}

}  // namespace

Result<std::vector<std::string>> GitRepo::reset_to_new_branch(const std::string& branch, const git_oid& commit_id) {
  auto commit = lookup_commit(commit_id);
  POLY_TRY(commit);
  std::vector<std::string> touched;
  git_checkout_options co = GIT_CHECKOUT_OPTIONS_INIT;
  // The index's stat data tells which files are unchanged, so only the differences are written.
  co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_REMOVE_UNTRACKED | GIT_CHECKOUT_REMOVE_IGNORED;
  co.notify_flags = GIT_CHECKOUT_NOTIFY_UPDATED | GIT_CHECKOUT_NOTIFY_UNTRACKED | GIT_CHECKOUT_NOTIFY_IGNORED;
  co.notify_cb = record_path;
  co.notify_payload = &touched;
  if (git_checkout_tree(repo_.get(), reinterpret_cast<const git_object*>(commit->get()), &co) != 0) {
    return libgit2_error("checking out " + oid_hex(commit_id), path_);
  }
  git_reference* out = nullptr;
  std::string ref = std::string(kHeadsPrefix) + branch;
  if (git_reference_create(&out, repo_.get(), ref.c_str(), &commit_id, 1, "branch: created") != 0) {
    return libgit2_error("creating branch " + branch, path_);
  }
  git_reference_free(out);
  if (git_repository_set_head(repo_.get(), ref.c_str()) != 0) {
    return libgit2_error("checking out " + branch, path_);
  }
  return touched;
}

Result<std::vector<std::string>> GitRepo::create_branch_and_checkout(const std::string& branch, const git_oid& commit,
                                                                     bool move) {
  POLY_TRY(lookup_commit(commit));
  std::vector<std::string> touched;
  git_reference* out = nullptr;
  std::string ref = std::string(kHeadsPrefix) + branch;
  if (git_reference_create(&out, repo_.get(), ref.c_str(), &commit, move ? 1 : 0,
                           move ? "branch: rebased" : "branch: created") != 0) {
    return libgit2_error("creating branch " + branch, path_);
  }
  git_reference_free(out);
  git_checkout_options co = GIT_CHECKOUT_OPTIONS_INIT;
  co.checkout_strategy = GIT_CHECKOUT_FORCE;
  co.notify_flags = GIT_CHECKOUT_NOTIFY_UPDATED;
  co.notify_cb = record_path;
  co.notify_payload = &touched;
  if (git_checkout_head(repo_.get(), &co) != 0) {
    return libgit2_error("checking out " + branch, path_);
  }
  return touched;
}

Result<git_oid> GitRepo::resolve(const std::string& refname) const {
  git_oid oid;
  if (git_reference_name_to_id(&oid, repo_.get(), refname.c_str()) != 0) {
    return libgit2_error("resolving " + refname, path_);
  }
  return oid;
}

Result<Commit> GitRepo::lookup_commit(const git_oid& oid) const {
  git_commit* raw = nullptr;
  if (git_commit_lookup(&raw, repo_.get(), &oid) != 0) {
    return libgit2_error("looking up commit " + oid_hex(oid), path_);
  }
  return Commit(raw);
}

Result<Signature> GitRepo::signature(const CommitIdentity& identity) const {
  git_signature* raw = nullptr;
  if (git_signature_now(&raw, identity.name.c_str(), identity.email.c_str()) != 0) {
    return libgit2_error("making a signature for " + identity.email, path_);
  }
  return Signature(raw);
}

Status GitRepo::check_head_on(const std::string& branch) const {
  git_reference* raw = nullptr;
  if (git_reference_lookup(&raw, repo_.get(), "HEAD") != 0) {
    return libgit2_error("reading HEAD", path_);
  }
  Reference head(raw);
  const char* target = git_reference_symbolic_target(head.get());
  std::string expected = std::string(kHeadsPrefix) + branch;
  if (target == nullptr || expected != target) {
    std::string actual = target != nullptr ? target : "a detached commit";
    return make_error("git",
                      "HEAD is on " + actual + ", not on the task branch " + expected + "; check out " + branch +
                          " before committing",
                      path_.string());
  }
  return ok_status();
}

Result<git_oid> GitRepo::stage_work_tree() {
  git_index* raw = nullptr;
  if (git_repository_index(&raw, repo_.get()) != 0) return libgit2_error("opening the index", path_);
  Index index(raw);
  // update_all records changes and deletions of tracked files; add_all adds new files.
  if (git_index_update_all(index.get(), nullptr, nullptr, nullptr) != 0 ||
      git_index_add_all(index.get(), nullptr, GIT_INDEX_ADD_DEFAULT, nullptr, nullptr) != 0 ||
      git_index_write(index.get()) != 0) {
    return libgit2_error("staging the work tree", path_);
  }
  git_oid tree;
  if (git_index_write_tree(&tree, index.get()) != 0) {
    return libgit2_error("writing the staged tree", path_);
  }
  return tree;
}

Result<std::optional<git_oid>> GitRepo::commit_work_tree(const std::string& branch, const CommitIdentity& identity,
                                                         const std::string& message) {
  POLY_TRY(check_head_on(branch));
  std::string ref = std::string(kHeadsPrefix) + branch;
  auto parent_id = resolve(ref);
  POLY_TRY(parent_id);
  auto parent = lookup_commit(*parent_id);
  POLY_TRY(parent);
  auto tree_id = stage_work_tree();
  POLY_TRY(tree_id);
  if (git_oid_equal(git_commit_tree_id(parent->get()), &*tree_id)) return std::optional<git_oid>();
  git_tree* tree_raw = nullptr;
  if (git_tree_lookup(&tree_raw, repo_.get(), &*tree_id) != 0) {
    return libgit2_error("looking up the staged tree", path_);
  }
  Tree tree(tree_raw);
  auto sig = signature(identity);
  POLY_TRY(sig);
  const git_commit* parents[] = {parent->get()};
  git_oid commit;
  if (git_commit_create(&commit, repo_.get(), ref.c_str(), sig->get(), sig->get(), nullptr, message.c_str(), tree.get(),
                        1, parents) != 0) {
    return libgit2_error("committing on " + branch, path_);
  }
  return std::optional<git_oid>(commit);
}

Result<int> GitRepo::count_ahead(const git_oid& head, const git_oid& base) const {
  size_t ahead = 0;
  size_t behind = 0;
  if (git_graph_ahead_behind(&ahead, &behind, repo_.get(), &head, &base) != 0) {
    return libgit2_error("counting commits ahead of " + oid_hex(base), path_);
  }
  return static_cast<int>(ahead);
}

Result<bool> GitRepo::is_ancestor(const git_oid& ancestor, const git_oid& descendant) const {
  if (git_oid_equal(&ancestor, &descendant)) return true;
  int rc = git_graph_descendant_of(repo_.get(), &descendant, &ancestor);
  if (rc < 0) return libgit2_error("comparing " + oid_hex(ancestor) + " with " + oid_hex(descendant), path_);
  return rc == 1;
}

namespace {

// Adds to `out` what `tree` has that `base` (nullptr: nothing) lacks at the same path, subtrees
// included; stops at `limit` (then the caller packs instead). Gitlinks are not objects of ours.
Status new_in_tree(git_repository* repo, const git_tree* tree, const git_tree* base, std::vector<git_oid>& out,
                   size_t limit, const fs::path& where) {
  const size_t n = git_tree_entrycount(tree);
  for (size_t i = 0; i < n && out.size() <= limit; ++i) {
    const git_tree_entry* e = git_tree_entry_byindex(tree, i);
    const git_tree_entry* old = base != nullptr ? git_tree_entry_byname(base, git_tree_entry_name(e)) : nullptr;
    if (old != nullptr && git_oid_equal(git_tree_entry_id(e), git_tree_entry_id(old))) continue;
    const git_object_t type = git_tree_entry_type(e);
    if (type == GIT_OBJECT_BLOB) {
      out.push_back(*git_tree_entry_id(e));
    } else if (type == GIT_OBJECT_TREE) {
      out.push_back(*git_tree_entry_id(e));
      git_tree* sub_raw = nullptr;
      if (git_tree_lookup(&sub_raw, repo, git_tree_entry_id(e)) != 0) return libgit2_error("reading a tree", where);
      Tree sub(sub_raw);
      Tree old_sub;
      if (old != nullptr && git_tree_entry_type(old) == GIT_OBJECT_TREE) {
        git_tree* raw = nullptr;
        if (git_tree_lookup(&raw, repo, git_tree_entry_id(old)) != 0) return libgit2_error("reading a tree", where);
        old_sub.reset(raw);
      }
      POLY_TRY(new_in_tree(repo, sub.get(), old_sub.get(), out, limit, where));
    }
  }
  return ok_status();
}

}  // namespace

Status GitRepo::copy_objects_to(const git_oid& head, const git_oid& known, const fs::path& objects_dir) const {
  git_revwalk* walk_raw = nullptr;
  if (git_revwalk_new(&walk_raw, repo_.get()) != 0) return libgit2_error("walking commits", path_);
  Revwalk walk(walk_raw);
  // The commits reachable from `head` but not from `known`; walked once to list their objects,
  // and again by the packbuilder when they are too many to write loose.
  auto start_walk = [&]() -> Status {
    if (git_revwalk_reset(walk.get()) != 0 || git_revwalk_push(walk.get(), &head) != 0 ||
        git_revwalk_hide(walk.get(), &known) != 0) {
      return libgit2_error("walking " + oid_hex(head) + " not in " + oid_hex(known), path_);
    }
    return ok_status();
  };
  POLY_TRY(start_walk());
  // Each new commit with what its tree adds to its first parent's: the parent is either known
  // (so the other repository has its objects) or new itself (so they are in this list).
  std::vector<git_oid> objects;
  git_oid id;
  int walked = 0;
  while (objects.size() <= kLooseObjectLimit && (walked = git_revwalk_next(&id, walk.get())) == 0) {
    auto commit = lookup_commit(id);
    POLY_TRY(commit);
    objects.push_back(id);
    git_tree* tree_raw = nullptr;
    if (git_commit_tree(&tree_raw, commit->get()) != 0)
      return libgit2_error("reading the tree of " + oid_hex(id), path_);
    Tree tree(tree_raw);
    Tree parent_tree;
    if (git_commit_parentcount(commit->get()) > 0) {
      git_commit* parent_raw = nullptr;
      if (git_commit_parent(&parent_raw, commit->get(), 0) != 0)
        return libgit2_error("reading a parent of " + oid_hex(id), path_);
      Commit parent(parent_raw);
      git_tree* raw = nullptr;
      if (git_commit_tree(&raw, parent.get()) != 0) return libgit2_error("reading a parent's tree", path_);
      parent_tree.reset(raw);
    }
    if (!parent_tree || !git_oid_equal(git_tree_id(tree.get()), git_tree_id(parent_tree.get()))) {
      objects.push_back(*git_tree_id(tree.get()));
      POLY_TRY(new_in_tree(repo_.get(), tree.get(), parent_tree.get(), objects, kLooseObjectLimit, path_));
    }
  }
  if (walked != 0 && walked != GIT_ITEROVER) return libgit2_error("walking commits", path_);
  if (objects.empty()) return ok_status();
  if (objects.size() > kLooseObjectLimit) {
    git_packbuilder* raw = nullptr;
    if (git_packbuilder_new(&raw, repo_.get()) != 0) return libgit2_error("starting a pack", path_);
    Packbuilder pb(raw);
    POLY_TRY(start_walk());
    if (git_packbuilder_insert_walk(pb.get(), walk.get()) != 0) {
      return libgit2_error("collecting the objects of " + oid_hex(head) + " not in " + oid_hex(known), path_);
    }
    if (git_packbuilder_write(pb.get(), (objects_dir / "pack").c_str(), 0444, nullptr, nullptr) != 0) {
      return libgit2_error("writing a pack into " + (objects_dir / "pack").string(), path_);
    }
    return ok_status();
  }
  git_odb* source_raw = nullptr;
  if (git_repository_odb(&source_raw, repo_.get()) != 0) return libgit2_error("opening the objects", path_);
  Odb source(source_raw);
  git_odb* target_raw = nullptr;
  if (git_odb_open(&target_raw, objects_dir.c_str()) != 0) return libgit2_error("opening the objects", objects_dir);
  Odb target(target_raw);
  for (const auto& oid : objects) {
    git_odb_object* raw = nullptr;
    if (git_odb_read(&raw, source.get(), &oid) != 0) return libgit2_error("reading object " + oid_hex(oid), path_);
    OdbObject object(raw);
    git_oid written;
    if (git_odb_write(&written, target.get(), git_odb_object_data(object.get()), git_odb_object_size(object.get()),
                      git_odb_object_type(object.get())) != 0) {
      return libgit2_error("writing object " + oid_hex(oid), objects_dir);
    }
  }
  return ok_status();
}

Status GitRepo::write_bundle(const git_oid& head, const git_oid& known, const std::string& ref,
                             const fs::path& path) const {
  git_revwalk* walk_raw = nullptr;
  if (git_revwalk_new(&walk_raw, repo_.get()) != 0) return libgit2_error("walking commits", path_);
  Revwalk walk(walk_raw);
  if (git_revwalk_push(walk.get(), &head) != 0 || git_revwalk_hide(walk.get(), &known) != 0) {
    return libgit2_error("walking " + oid_hex(head) + " not in " + oid_hex(known), path_);
  }
  git_packbuilder* pb_raw = nullptr;
  if (git_packbuilder_new(&pb_raw, repo_.get()) != 0) return libgit2_error("starting a pack", path_);
  Packbuilder pb(pb_raw);
  if (git_packbuilder_insert_walk(pb.get(), walk.get()) != 0) {
    return libgit2_error("collecting the objects of " + oid_hex(head), path_);
  }
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) return make_error("io", std::string("cannot create the bundle: ") + std::strerror(errno), path.string());
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const std::string header = "# v2 git bundle\n-" + oid_hex(known) + "\n" + oid_hex(head) + " " + ref + "\n\n";
  auto write_all = [](int out, const char* data, size_t size) {
    while (size > 0) {
      const ssize_t n = ::write(out, data, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  };
  if (!write_all(fd, header.data(), header.size())) {
    return make_error("io", std::string("cannot write the bundle: ") + std::strerror(errno), path.string());
  }
  struct Sink {
    int fd;
    bool (*write_all)(int, const char*, size_t);
  } sink{fd, +write_all};
  auto on_data = [](void* buf, size_t size, void* payload) -> int {
    auto* out = static_cast<Sink*>(payload);
    return out->write_all(out->fd, static_cast<const char*>(buf), size) ? 0 : -1;
  };
  if (git_packbuilder_foreach(pb.get(), on_data, &sink) != 0) {
    return make_error("io", "cannot write the bundle's pack", path.string());
  }
  return ok_status();
}

bool GitRepo::is_bare() const {
  return git_repository_is_bare(repo_.get()) == 1;
}

Result<std::string> GitRepo::needs_receive_pack() const {
  if (git_repository_is_bare(repo_.get()) != 1) return std::string("the origin has a work tree");
  git_config* raw = nullptr;
  if (git_repository_config_snapshot(&raw, repo_.get()) != 0) return libgit2_error("reading the config", path_);
  std::unique_ptr<git_config, GitFree<git_config, git_config_free>> config(raw);
  git_config_iterator* it_raw = nullptr;
  if (git_config_iterator_glob_new(
          &it_raw, config.get(), "^(receive\\..*|transfer\\.fsckobjects|core\\.sharedrepository|core\\.hookspath)$") !=
      0) {
    return libgit2_error("reading the config", path_);
  }
  std::unique_ptr<git_config_iterator, GitFree<git_config_iterator, git_config_iterator_free>> it(it_raw);
  git_config_entry* entry = nullptr;
  if (git_config_next(&entry, it.get()) == 0) return std::string("the origin's config sets ") + entry->name;
  const fs::path hooks = fs::path(git_repository_commondir(repo_.get())) / "hooks";
  for (const char* hook : {"pre-receive", "update", "post-receive", "post-update", "reference-transaction",
                           "push-to-checkout", "proc-receive"}) {
    if (::access((hooks / hook).c_str(), X_OK) == 0) return std::string("the origin has a ") + hook + " hook";
  }
  return std::string();
}

Status GitRepo::take_landing(const GitRepo& source, const git_oid& head, const std::string& base_ref,
                             const std::string& branch_ref) {
  const fs::path objects_dir = fs::path(git_repository_commondir(repo_.get())) / "objects";
  git_oid seen;
  if (git_reference_name_to_id(&seen, repo_.get(), base_ref.c_str()) != 0) {
    return libgit2_error("reading " + base_ref, path_);
  }
  auto rejected = [&](const git_oid& at) {
    return make_error("push_rejected",
                      base_ref + " is at " + oid_hex(at) + ", which " + oid_hex(head) + " does not descend from",
                      path_.string());
  };
  auto forward = source.is_ancestor(seen, head);
  if (!forward.ok() || !*forward) return rejected(seen);
  // The objects first (harmless until a ref names them), then the task branch, then the base:
  // a crash in between leaves the branch pushed and the base where it was, never the reverse,
  // so a retry's landed_earlier() is never fooled.
  if (!git_oid_equal(&seen, &head)) {
    POLY_TRY(source.copy_objects_to(head, seen, objects_dir));
    git_odb* odb = nullptr;
    const bool reread = git_repository_odb(&odb, repo_.get()) == 0 && git_odb_refresh(odb) == 0;
    if (odb != nullptr) git_odb_free(odb);
    if (!reread) return libgit2_error("rereading the objects", path_);
  }
  POLY_TRY(set_ref(branch_ref, head, "polyphony: push"));
  // The base moves under git's own lock, and only forward from what it is under that lock.
  git_transaction* raw = nullptr;
  if (git_transaction_new(&raw, repo_.get()) != 0) return libgit2_error("starting a ref transaction", path_);
  std::unique_ptr<git_transaction, GitFree<git_transaction, git_transaction_free>> tx(raw);
  if (git_transaction_lock_ref(tx.get(), base_ref.c_str()) != 0) return libgit2_error("locking " + base_ref, path_);
  git_oid current;
  if (git_reference_name_to_id(&current, repo_.get(), base_ref.c_str()) != 0) {
    return libgit2_error("reading " + base_ref, path_);
  }
  if (!git_oid_equal(&current, &seen)) {
    forward = source.is_ancestor(current, head);
    if (!forward.ok() || !*forward) return rejected(current);
  }
  if (git_transaction_set_target(tx.get(), base_ref.c_str(), &head, nullptr, "polyphony: land") != 0 ||
      git_transaction_commit(tx.get()) != 0) {
    return libgit2_error("moving " + base_ref + " to " + oid_hex(head), path_);
  }
  return ok_status();
}

Status GitRepo::set_ref(const std::string& refname, const git_oid& target, const std::string& why) {
  git_reference* raw = nullptr;
  if (git_reference_create(&raw, repo_.get(), refname.c_str(), &target, 1, why.c_str()) != 0) {
    return libgit2_error("pointing " + refname + " at " + oid_hex(target), path_);
  }
  Reference ref(raw);
  return ok_status();
}

Result<std::optional<std::string>> GitRepo::read_file_at(const git_oid& commit_id, const std::string& file) const {
  using Content = std::optional<std::string>;
  auto commit = lookup_commit(commit_id);
  POLY_TRY(commit);
  git_tree* tree_raw = nullptr;
  if (git_commit_tree(&tree_raw, commit->get()) != 0) return libgit2_error("reading a tree", path_);
  Tree tree(tree_raw);
  git_tree_entry* entry_raw = nullptr;
  int rc = git_tree_entry_bypath(&entry_raw, tree.get(), file.c_str());
  if (rc == GIT_ENOTFOUND) return Content();
  if (rc != 0) return libgit2_error("looking up " + file, path_);
  TreeEntry entry(entry_raw);
  if (git_tree_entry_type(entry.get()) != GIT_OBJECT_BLOB) return Content();
  git_blob* blob_raw = nullptr;
  if (git_blob_lookup(&blob_raw, repo_.get(), git_tree_entry_id(entry.get())) != 0) {
    return libgit2_error("reading " + file, path_);
  }
  Blob blob(blob_raw);
  const char* data = static_cast<const char*>(git_blob_rawcontent(blob.get()));
  return Content(std::string(data, static_cast<size_t>(git_blob_rawsize(blob.get()))));
}

Result<std::vector<std::string>> GitRepo::conflict_paths(git_index* index) const {
  git_index_conflict_iterator* raw = nullptr;
  if (git_index_conflict_iterator_new(&raw, index) != 0) {
    return libgit2_error("listing merge conflicts", path_);
  }
  ConflictIterator it(raw);
  std::set<std::string> paths;
  const git_index_entry* entries[3] = {};
  while (git_index_conflict_next(&entries[0], &entries[1], &entries[2], it.get()) == 0) {
    for (const auto* e : entries) {
      if (e != nullptr) paths.insert(e->path);
    }
  }
  return std::vector<std::string>(paths.begin(), paths.end());
}

Result<git_oid> GitRepo::tree_of(const git_oid& commit) const {
  auto c = lookup_commit(commit);
  POLY_TRY(c);
  return *git_commit_tree_id(c->get());
}

Result<MergeOutcome> GitRepo::replay(const git_oid& base, const git_oid& head, const git_oid& onto,
                                     const CommitIdentity& identity) {
  git_revwalk* walk_raw = nullptr;
  if (git_revwalk_new(&walk_raw, repo_.get()) != 0) return libgit2_error("starting a revision walk", path_);
  Revwalk walk(walk_raw);
  git_revwalk_sorting(walk.get(), GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE);
  if (git_revwalk_push(walk.get(), &head) != 0 || git_revwalk_hide(walk.get(), &base) != 0) {
    return libgit2_error("walking " + oid_hex(base) + ".." + oid_hex(head), path_);
  }
  auto sig = signature(identity);
  POLY_TRY(sig);
  git_oid current = onto;
  git_oid next;
  while (git_revwalk_next(&next, walk.get()) == 0) {
    auto commit = lookup_commit(next);
    POLY_TRY(commit);
    auto ours = lookup_commit(current);
    POLY_TRY(ours);
    const unsigned int mainline = git_commit_parentcount(commit->get()) > 1 ? 1 : 0;
    git_merge_options mo = GIT_MERGE_OPTIONS_INIT;
    git_index* raw = nullptr;
    if (git_cherrypick_commit(&raw, repo_.get(), commit->get(), ours->get(), mainline, &mo) != 0) {
      return libgit2_error("replaying " + oid_hex(next) + " onto " + oid_hex(current), path_);
    }
    Index index(raw);
    if (git_index_has_conflicts(index.get())) {
      auto paths = conflict_paths(index.get());
      POLY_TRY(paths);
      return MergeOutcome{std::nullopt, std::move(*paths)};
    }
    git_oid tree_id;
    git_tree* tree_raw = nullptr;
    if (git_index_write_tree_to(&tree_id, index.get(), repo_.get()) != 0 ||
        git_tree_lookup(&tree_raw, repo_.get(), &tree_id) != 0) {
      return libgit2_error("writing a replayed tree", path_);
    }
    Tree tree(tree_raw);
    const git_commit* parents[] = {ours->get()};
    git_oid made;
    if (git_commit_create(&made, repo_.get(), nullptr, git_commit_author(commit->get()), sig->get(), nullptr,
                          git_commit_message(commit->get()), tree.get(), 1, parents) != 0) {
      return libgit2_error("creating a replayed commit", path_);
    }
    current = made;
  }
  return MergeOutcome{current, {}};
}

}  // namespace polyphony::detail
