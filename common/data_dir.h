// Where a program finds Polyphony's data files: docker/ (the worker image's Dockerfile, the
// scripted agent, agents.lock), installed by `cmake --install` or in the source tree.
#pragma once

#include <filesystem>
#include <vector>

#include "common/result.h"

namespace polyphony {

// The places to look, in order, for the program at `program`: <program's dir>/../share/polyphony
// (the install layout, wherever the prefix and DESTDIR put it), the source tree the program was
// built from (a build-tree run), and the configured <prefix>/share/polyphony (a program copied
// elsewhere). Pure: no I/O.
std::vector<std::filesystem::path> data_dir_candidates(const std::filesystem::path& program);

// The first of data_dir_candidates(this program) that holds docker/Dockerfile. Error
// "not_found" naming every place tried.
Result<std::filesystem::path> data_dir();

}  // namespace polyphony
