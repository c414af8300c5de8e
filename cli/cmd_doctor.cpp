// `polyphony doctor`: checks this host for what Polyphony needs and says, one line a check,
// what is fine and what to do about the rest.
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/doctor.h"

namespace polyphony::cli {

namespace {

constexpr const char* kDoctorFooter =
    R"(One line each: the Docker engine (which socket, its version), the worker image and the agent
CLIs it holds, each agent's CLI, each identity in identities.yaml (variables set, files
readable), the container network, free disk in workspace_root, and, when `polyphony serve`
runs, its workers' clocks. Exit 0 when nothing is a problem (warnings are printed but keep 0),
1 otherwise.)";

std::string label(Health h) {
  switch (h) {
    case Health::kOk:
      return "OK";
    case Health::kSkipped:
      return "SKIPPED";
    case Health::kWarning:
      return "WARNING";
    case Health::kProblem:
      return "PROBLEM";
  }
  return "?";
}

void print_text(const std::vector<Finding>& findings) {
  for (const auto& f : findings) {
    std::cout << std::left << std::setw(9) << label(f.health) << f.check << ": " << f.message;
    if (f.health != Health::kOk && !f.where.empty()) std::cout << " (" << f.where << ")";
    std::cout << "\n";
  }
}

nlohmann::json findings_json(const std::vector<Finding>& findings, const std::string& home) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& f : findings) {
    list.push_back({{"check", f.check}, {"health", health_name(f.health)}, {"message", f.message}, {"where", f.where}});
  }
  return {{"home", home}, {"ok", !has_problem(findings)}, {"findings", list}};
}

int doctor(const Args& args) {
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  std::vector<Finding> findings;
  std::error_code ec;
  if (!std::filesystem::is_directory(settings->config.home, ec)) {
    findings.push_back({"home", Health::kWarning,
                        settings->config.home.string() + " does not exist: the built-in defaults are used "
                                                         "(`polyphony init` writes them)",
                        settings->config.home.string()});
  }
  for (auto& f : run_doctor(*settings, DoctorOptions{})) findings.push_back(std::move(f));
  if (args.has("json")) {
    std::cout << findings_json(findings, settings->config.home.string()).dump(2) << "\n";
  } else {
    print_text(findings);
  }
  size_t problems = 0;
  for (const auto& f : findings) problems += f.health == Health::kProblem ? 1 : 0;
  if (problems == 0) return kExitOk;
  std::cerr << program_name() << ": doctor: " << problems << " problem(s)\n";
  return kExitFailed;
}

}  // namespace

void add_doctor(Command& polyphony) {
  polyphony.add("doctor", "check this host: Docker, image, agent CLIs, identities, network, disk, clocks", doctor)
      .flag("--json", "the findings as JSON")
      .footer(kDoctorFooter);
}

}  // namespace polyphony::cli
