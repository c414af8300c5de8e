// `polyphony config check`: loads the four files and reports every problem with file:line.
#include <iostream>

#include "cli/cli.h"
#include "coordinator/policy_check.h"

namespace polyphony::cli {

namespace fs = std::filesystem;

namespace {

// What the files hold, as far as each loaded; `errors` has each loader's first problem.
struct Loaded {
  std::optional<std::map<std::string, Identity>> identities;
  std::optional<std::map<std::string, AgentProfile>> agents;
  std::optional<RoutingPolicy> routing;
  std::vector<std::string> errors;
};

template <class T>
void keep(Result<T> r, std::optional<T>& out, std::vector<std::string>& errors) {
  if (r.ok()) {
    out = std::move(*r);
  } else {
    errors.push_back(r.error().to_string());
  }
}

Loaded load_each(const fs::path& home) {
  Loaded l;
  if (auto c = load_config(home / "config.yaml", home); !c.ok()) l.errors.push_back(c.error().to_string());
  keep(load_identities(home / "identities.yaml"), l.identities, l.errors);
  keep(load_agents(home / "agents.yaml"), l.agents, l.errors);
  keep(load_routing(home / "routing.yaml"), l.routing, l.errors);
  return l;
}

int check(const fs::path& home) {
  Loaded l = load_each(home);
  std::vector<std::string> problems = l.errors;
  if (l.identities && l.agents && l.routing) {
    for (const auto& p : check_policy(*l.routing, *l.agents, *l.identities)) {
      problems.push_back((home / p.file).string() + ":" + std::to_string(p.line) + ": " + p.message);
    }
  }
  // A missing or empty file loads as the defaults: said, not called consistent. No home at all
  // is a problem.
  std::vector<std::string> notes;
  if (!fs::is_directory(home)) {
    problems.push_back(home.string() + ": no such directory (run `polyphony init`, or set POLYPHONY_HOME)");
  } else {
    for (const char* name : {"config.yaml", "identities.yaml", "agents.yaml", "routing.yaml"}) {
      std::error_code ec;
      const fs::path file = home / name;
      if (!fs::exists(file, ec)) {
        notes.push_back(file.string() + ": missing: the built-in defaults are used (`polyphony init` writes them)");
      } else if (fs::is_regular_file(file, ec) && fs::file_size(file, ec) == 0) {
        notes.push_back(file.string() + ": empty: the built-in defaults are used");
      }
    }
  }
  for (const auto& p : problems) std::cout << p << "\n";
  if (!problems.empty()) {
    std::cerr << "polyphony: config check: " << problems.size() << " problem(s) in " << home.string() << "\n";
    return kExitUsage;
  }
  for (const auto& n : notes) std::cout << n << "\n";
  std::cout << "config check: " << home.string() << ": config.yaml, identities.yaml, agents.yaml and routing.yaml are "
            << "consistent" << (notes.empty() ? "" : " (" + std::to_string(notes.size()) + " of them the defaults)") << " (" << l.routing->rules.size() << " rule(s), " << l.agents->size() << " agent(s))\n";
  return kExitOk;
}

}  // namespace

int cmd_config(const std::vector<std::string>& argv) {
  auto args = parse_args(argv, {});
  if (!args.ok()) return report(args.error());
  if (args->positional.size() != 1 || args->positional[0] != "check") {
    return report(make_error("usage", "usage: polyphony config check", "config"));
  }
  return check(polyphony_home());
}

}  // namespace polyphony::cli
