// `polyphony image build`: the worker image made offline from a debootstrapped Debian rootfs
// (no container registry needed), with the agent user, /workspace, the scripted agent and the
// agent CLIs pinned in docker/agents.lock (installed with npm) baked in.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "worker-agent/agents_lock.h"
#include "worker-agent/docker_client.h"

namespace polyphony {

// The value of the `polyphony.image.version` label of an image carrying `agents`:
// "<recipe>-<12 hex digits of the scripted agent's sha256>-<agents_digest(agents)>". Bump the
// recipe number in image_builder.cpp whenever the build steps change; editing
// docker/scripted-agent, a pin in docker/agents.lock, or the selection changes it by itself.
std::string image_version(const std::vector<AgentPin>& agents);

struct ImageBuildOptions {
  std::string tag = "polyphony-worker:latest";
  // Rebuild the rootfs tarball (from the cached debootstrap, no download) and re-import,
  // even when an up-to-date image exists.
  bool force = false;
  // Where the debootstrapped rootfs and the image tarball are kept between builds.
  // Empty: $POLYPHONY_CACHE_DIR, else /var/cache/polyphony.
  std::filesystem::path cache_dir;
  // Debian archive for debootstrap. Empty: apt_mirror_from_sources(), else deb.debian.org.
  std::string mirror;
  // The agent CLIs to install (see select_agents); nullopt: every one docker/agents.lock pins.
  std::optional<std::vector<AgentPin>> agents;
  // The npm that installs them: a path, or a name looked up on PATH.
  std::string npm = "npm";
  // Receives one line for each step, for the person waiting at the terminal.
  std::function<void(const std::string&)> progress;
};

// Makes `options.tag` an image labelled polyphony.image.version=image_version(agents). Returns
// true when it built (imported) the image, false when an up-to-date one already existed.
// Each agent is installed with npm (no install scripts) into <cache>/agents/, keyed by its pin,
// so a rebuild downloads nothing; the image gets the npm package holding the native executable
// under /opt/polyphony/agents/<name>/ and /usr/local/bin/<name> linking to it (no node needed).
// Before it returns, every agent's `<name> --version` runs in a container of the new image as
// uid 1000 without network and must print the pinned version; otherwise the image is removed.
// Needs root the first time (debootstrap, chown); later builds reuse the cached rootfs and
// tarball, so a rebuild after the image was deleted takes seconds. Concurrent builds on one
// cache directory wait for each other. Errors: "docker_unreachable", "docker", "io",
// "process" (debootstrap/npm/tar failed, or an agent did not run; the message carries their
// output), "not_found" (debootstrap or npm is not installed), "permission" (a step that needs
// root), "config" (the compiled-in agents.lock does not parse), "timeout".
Result<bool> build_worker_image(DockerClient& docker, const ImageBuildOptions& options);

// The first Debian archive URI in apt's sources under `etc_apt` (sources.list and
// sources.list.d/*.list in one-line format, sources.list.d/*.sources in deb822 format),
// preferring an entry whose suites include bookworm and skipping security archives.
// Trailing '/' removed. Error "not_found" when there is none.
Result<std::string> apt_mirror_from_sources(const std::filesystem::path& etc_apt = "/etc/apt");

}  // namespace polyphony
