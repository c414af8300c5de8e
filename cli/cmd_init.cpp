// `polyphony init`: writes the commented config files and checks the prerequisites.
#include <fstream>
#include <iostream>

#include "cli/cli.h"
#include "common/private_files.h"
#include "common/process.h"
#include "worker-agent/docker_client.h"

namespace polyphony::cli {

namespace fs = std::filesystem;

namespace {

// Prints one prerequisite line; returns whether it holds.
bool check(bool ok, const std::string& what, const std::string& hint) {
  std::cerr << (ok ? "  ok      " : "  missing ") << what;
  if (!ok) std::cerr << "\n          " << hint;
  std::cerr << "\n";
  return ok;
}

}  // namespace

// Docker engine, git, and the worker image; returns true when all are there.
bool check_prerequisites(const Config& config) {
  bool all = true;
  auto host = resolve_docker_host(config.docker_host);
  bool engine = false;
  std::unique_ptr<DockerClient> docker;
  if (host.ok()) {
    docker = make_docker_client(*host);
    engine = docker->ping().ok();
  }
  all &= check(engine, "Docker engine" + (host.ok() ? " at " + *host : std::string()),
               host.ok() ? "the engine does not answer: start it, or run scripts/ensure-docker.sh"
                         : host.error().message);
  all &= check(!find_program("git").empty(), "git", "install git (apt-get install git)");
  bool image = false;
  if (engine) {
    auto present = docker->image_exists(config.container.image);
    image = present.ok() && *present;
  }
  all &= check(image, "worker image " + config.container.image, "build it with: polyphony image build");
  return all;
}

namespace {

int init(const Args& args) {
  const fs::path home = polyphony_home();
  const auto files = default_config_files();
  if (!args.has("force")) {
    std::string existing;
    for (const auto& [name, text] : files) {
      if (fs::exists(home / name)) existing += (existing.empty() ? "" : ", ") + (home / name).string();
    }
    if (!existing.empty()) {
      return report(make_error("usage", "refusing to overwrite " + existing + " (use --force to replace them)", "init"));
    }
  }
  if (auto s = make_private_dir(home); !s.ok()) return report(s.error());
  for (const auto& [name, text] : files) {
    std::ofstream out(home / name, std::ios::trunc);
    out << text;
    if (!out) return report(make_error("io", "cannot write the file", (home / name).string()));
    make_private(home / name);
  }
  std::cerr << "polyphony: wrote config.yaml, identities.yaml, agents.yaml, routing.yaml to " << home.string() << "\n";
  auto settings = load_settings(home);
  if (!settings.ok()) return report(settings.error());
  std::cerr << "prerequisites:\n";
  check_prerequisites(settings->config);
  return kExitOk;
}

}  // namespace

void add_init(Command& polyphony) {
  polyphony.add("init", "create POLYPHONY_HOME (~/.polyphony) with commented config files", init)
      .flag("--force", "replace the files that are there");
}

}  // namespace polyphony::cli
