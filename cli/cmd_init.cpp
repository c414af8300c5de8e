// `polyphony init`: writes the commented config files and checks the prerequisites.
#include <algorithm>
#include <fstream>
#include <iostream>

#include "cli/cli.h"
#include "common/data_dir.h"
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
  all &=
      check(engine, "Docker engine" + (host.ok() ? " at " + *host : std::string()),
            host.ok() ? "the engine does not answer: start it, or run scripts/ensure-docker.sh" : host.error().message);
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

// `init --skills DIR`: each skill (skills/<name>/SKILL.md) into DIR/<name>/, e.g. Claude Code's
// ~/.claude/skills. Leaves POLYPHONY_HOME alone.
int install_skills(const Args& args) {
  const fs::path to = args.get("skills");
  if (to.empty()) return report(make_error("usage", "--skills needs a directory, e.g. ~/.claude/skills", "--skills"));
  auto data = data_dir();
  if (!data.ok()) return report(data.error());
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(*data / "skills", ec)) {
    if (fs::exists(entry.path() / "SKILL.md")) names.push_back(entry.path().filename().string());
  }
  if (names.empty()) return report(make_error("not_found", "no skills found", (*data / "skills").string()));
  std::sort(names.begin(), names.end());
  std::string existing;
  for (const auto& name : names) {
    const fs::path file = to / name / "SKILL.md";
    if (fs::exists(file)) existing += (existing.empty() ? "" : ", ") + file.string();
  }
  if (!existing.empty() && !args.has("force")) {
    return report(
        make_error("usage", "refusing to overwrite " + existing + " (use --force to replace them)", "--skills"));
  }
  std::string list;
  for (const auto& name : names) {
    fs::create_directories(to / name, ec);
    if (ec || !fs::copy_file(*data / "skills" / name / "SKILL.md", to / name / "SKILL.md",
                             fs::copy_options::overwrite_existing, ec)) {
      return report(make_error("io", "cannot write the skill: " + ec.message(), (to / name / "SKILL.md").string()));
    }
    list += (list.empty() ? "" : ", ") + name;
  }
  std::cerr << "polyphony: installed the skills " << list << " in " << to.string() << "\n";
  return kExitOk;
}

int init(const Args& args) {
  if (args.has("skills")) return install_skills(args);
  const fs::path home = polyphony_home();
  const auto files = default_config_files();
  if (!args.has("force")) {
    std::string existing;
    for (const auto& [name, text] : files) {
      if (fs::exists(home / name)) existing += (existing.empty() ? "" : ", ") + (home / name).string();
    }
    if (!existing.empty()) {
      return report(
          make_error("usage", "refusing to overwrite " + existing + " (use --force to replace them)", "init"));
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
      .flag("--force", "replace the files that are there")
      .option("--skills", "DIR",
              "instead: install the agent skills (delegation, team, review) in DIR, e.g. "
              "~/.claude/skills");
}

}  // namespace polyphony::cli
