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
  for (const auto& p : problems) std::cout << p << "\n";
  if (!problems.empty()) {
    std::cerr << "polyphony: config check: " << problems.size() << " problem(s) in " << home.string() << "\n";
    return kExitUsage;
  }
  std::cout << "config check: " << home.string() << ": config.yaml, identities.yaml, agents.yaml and routing.yaml are "
            << "consistent (" << l.routing->rules.size() << " rule(s), " << l.agents->size() << " agent(s))\n";
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
