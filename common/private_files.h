// POLYPHONY_HOME is private: its directories 0700 and its files 0600 whatever the umask, since
// it holds the state DB, logs, keys, the client socket and the workspaces.
#pragma once

#include <filesystem>

#include "common/config.h"
#include "common/result.h"

namespace polyphony {

// Creates `dir` (and its parents) when missing, and makes it 0700.
Status make_private_dir(const std::filesystem::path& dir);

// Makes `path` 0700 (a directory) or 0600 (anything else) when it exists; a symlink is left
// alone, not followed.
void make_private(const std::filesystem::path& path);

// Opens `path` for appending, creating it 0600; -1 with errno set on failure.
int open_private_append(const std::filesystem::path& path);

// The home and what Polyphony keeps in it: the config files, the DBs and their WAL files, the
// client socket, keys/ and logs/ (all they hold), the workspace root and the mirrors directory
// (themselves: what is in them is mounted into containers and keeps its own modes). The log
// directory and the workspace root are created when missing.
Status secure_home(const Config& config);

}  // namespace polyphony
