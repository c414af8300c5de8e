// `polyphony image build`: the worker image made offline from a debootstrapped Debian rootfs
// (no registry needed), with the agent user, /workspace and the scripted agent baked in.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "common/result.h"
#include "worker-agent/docker_client.h"

namespace polyphony {

// The value of the image's `polyphony.image.version` label: "<recipe>-<12 hex digits of the
// scripted agent's sha256>". Bump the recipe number in image_builder.cpp whenever the build
// steps change; editing docker/scripted-agent changes it by itself.
extern const std::string kImageVersion;

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
  // Receives one line for each step, for the person waiting at the terminal.
  std::function<void(const std::string&)> progress;
};

// Makes `options.tag` an image labelled polyphony.image.version=kImageVersion. Returns true
// when it built (imported) the image, false when an up-to-date one already existed.
// Needs root the first time (debootstrap, chown); later builds reuse the cached rootfs and
// tarball, so a rebuild after the image was deleted takes seconds. Concurrent builds on one
// cache directory wait for each other. Errors: "docker_unreachable", "docker", "io",
// "process" (debootstrap/tar failed; the message carries their stderr), "not_found"
// (debootstrap is not installed), "permission" (a step that needs root), "timeout".
Result<bool> build_worker_image(DockerClient& docker, const ImageBuildOptions& options);

// The first Debian archive URI in apt's sources under `etc_apt` (sources.list and
// sources.list.d/*.list in one-line format, sources.list.d/*.sources in deb822 format),
// preferring an entry whose suites include bookworm and skipping security archives.
// Trailing '/' removed. Error "not_found" when there is none.
Result<std::string> apt_mirror_from_sources(const std::filesystem::path& etc_apt = "/etc/apt");

}  // namespace polyphony
