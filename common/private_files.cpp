// POLYPHONY_HOME and what Polyphony keeps in it, private to their owner.
#include "common/private_files.h"

#include <fcntl.h>
#include <sys/stat.h>

namespace polyphony {

namespace fs = std::filesystem;

Status make_private_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("io", "cannot create the directory: " + ec.message(), dir.string());
  make_private(dir);
  return {};
}

void make_private(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || S_ISLNK(st.st_mode)) return;
  (void)::chmod(path.c_str(), S_ISDIR(st.st_mode) ? 0700 : 0600);
}

int open_private_append(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) (void)::fchmod(fd, 0600);
  return fd;
}

namespace {

// `dir` and everything under it.
void make_private_tree(const fs::path& dir) {
  make_private(dir);
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) make_private(it->path());
}

void make_private_db(const fs::path& db) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) make_private(db.string() + suffix);
}

}  // namespace

Status secure_home(const Config& config) {
  POLY_TRY(make_private_dir(config.home));
  for (const char* name : {"config.yaml", "identities.yaml", "agents.yaml", "routing.yaml", "coordinator.sock"}) {
    make_private(config.home / name);
  }
  make_private_db(config.state_db);
  make_private_db(config.queue_db);
  make_private_tree(config.home / "keys");
  // Made now, private, rather than later by whoever writes there first.
  POLY_TRY(make_private_dir(config.log_dir));
  make_private_tree(config.log_dir);
  POLY_TRY(make_private_dir(config.workspace_root));
  return {};
}

}  // namespace polyphony
