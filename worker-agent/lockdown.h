// What the worker imposes on every container it starts, whatever a RunSpec says: limits that a
// hostile agent cannot lift, the worker's own allow-list of images, networks and mount sources,
// and the checks that notice an agent pushing against them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "protocol/messages.h"

namespace polyphony {

// Limits of a task container (config.yaml `container:`). Every capability is dropped (cap_add
// gives some back) and no-new-privileges is always set; these are the rest.
struct ContainerLimits {
  int64_t pids_limit = 512;                    // PidsLimit; 0: none
  int64_t workspace_limit_bytes = 10LL << 30;  // disk use of the workspace; 0: none
  int64_t output_limit_bytes = 16LL << 20;     // output kept per attempt; 0: none
  bool read_only_root = true;                  // ReadonlyRootfs, with tmpfs /tmp and $HOME
  std::vector<std::string> cap_add;

  // Canonical text of the fields that shape a container (part of the warm pool's key).
  std::string id() const;
};

// What a RunSpec may name. An empty list allows nothing.
struct AllowList {
  std::vector<std::string> images;
  std::vector<std::string> networks;
  std::vector<std::filesystem::path> mount_roots;  // a mount's source must be one, or under one
};

// Why the worker refuses `spec`, naming the field ("image", "network_mode",
// "agent.mounts[0].host_path", ...); nullopt when it is inside `allowed`. Mount sources are
// compared after resolving symlinks, so a link out of an allowed root does not pass.
std::optional<std::string> refusal(const protocol::RunSpec& spec, const AllowList& allowed);

// Bytes of disk under `dir` (allocated blocks), not following symlinks nor crossing into other
// filesystems; stops counting once past `stop_after` (0: counts everything).
int64_t disk_usage(const std::filesystem::path& dir, int64_t stop_after = 0);

// How many times the pids cgroup of the process `host_pid` refused a fork for its limit
// (pids.events "max"); nullopt when that cannot be read (cgroup v1 or v2).
std::optional<int64_t> pids_limit_refusals(int host_pid);

// "10 GiB", "512 MiB", "300 bytes": a size for people.
std::string human_bytes(int64_t bytes);

// Reads the file at `path` as root without trusting it: opened with O_NOFOLLOW|O_NONBLOCK (a
// symlink, say to /etc/shadow or /dev/zero, is refused; a FIFO does not block), it must be a
// regular file of at most `max_bytes`. Error "untrusted_file" says which rule it broke,
// "not_found" when there is no file.
Result<std::string> read_untrusted_file(const std::filesystem::path& path, int64_t max_bytes);

}  // namespace polyphony
