// Finds the data files beside an installed program, else in the source tree.
#include "common/data_dir.h"

#include <algorithm>
#include <system_error>

namespace polyphony {

namespace fs = std::filesystem;

std::vector<fs::path> data_dir_candidates(const fs::path& program) {
  std::vector<fs::path> out;
  auto add = [&](const fs::path& p) {
    if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  };
  if (program.has_parent_path()) add((program.parent_path() / POLYPHONY_BIN_TO_DATA_DIR).lexically_normal());
  add(fs::path(POLYPHONY_SOURCE_DIR).lexically_normal());
  add(fs::path(POLYPHONY_INSTALL_DATA_DIR).lexically_normal());
  return out;
}

Result<fs::path> data_dir() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  std::string tried;
  for (const auto& dir : data_dir_candidates(ec ? fs::path() : self)) {
    if (fs::is_regular_file(dir / "docker" / "Dockerfile", ec)) return dir;
    tried += (tried.empty() ? "" : ", ") + dir.string();
  }
  return make_error("not_found", "cannot find Polyphony's data files (docker/Dockerfile under none of " + tried +
                                     "); install them with `cmake --install <build dir>`");
}

}  // namespace polyphony
