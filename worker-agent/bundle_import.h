// A git bundle taken in as data: the agent's branch, written by `git bundle create` inside the
// task container and streamed out, goes into a repository the worker made and configured. No
// git program and no repository of the agent's is involved on this side.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace polyphony {

// What a v2 bundle's header says: the commits the receiver must have, and the refs it carries.
struct BundleHeader {
  std::vector<std::string> prerequisites;                 // hex ids
  std::vector<std::pair<std::string, std::string>> refs;  // {hex id, ref name}
};

// Parses a bundle header (from "# v2 git bundle\n" up to, without, the blank line that ends it).
// Error "bad_bundle" naming the line when it is not one. Pure.
Result<BundleHeader> parse_bundle_header(std::string_view text);

// Streams a bundle into the object database of `repo_dir` (a repository this process made):
// header first, then its pack indexed as it arrives (thin packs completed from that repository's
// objects and alternates). At most `max_bytes` are taken.
class BundleImport {
 public:
  static Result<std::unique_ptr<BundleImport>> start(const std::filesystem::path& repo_dir, size_t max_bytes);
  virtual ~BundleImport() = default;
  // Takes the next bytes. Errors: "too_big" past max_bytes, "bad_bundle", "git".
  virtual Status add(std::string_view data) = 0;
  // Ends the pack and returns the id `ref` points at in the bundle, once its commit is in the
  // repository. Errors: "bad_bundle" (no such ref, or not exactly one ref, or cut short), "git".
  virtual Result<std::string> finish(const std::string& ref) = 0;
};

}  // namespace polyphony
