// `polyphony config check`: loads the four files and reports every problem with file:line.
// `polyphony config show`: the configuration in effect, each value with where it came from.
#include <iostream>

#include "cli/cli.h"
#include "cli/config_view.h"
#include "cli/table.h"
#include "coordinator/policy_check.h"
#include "protocol/security.h"

namespace polyphony::cli {

namespace fs = std::filesystem;

namespace {

// What the files hold, as far as each loaded; `errors` has each loader's first problem.
struct Loaded {
  std::optional<std::map<std::string, Identity>> identities;
  std::optional<std::map<std::string, AgentProfile>> agents;
  std::optional<RoutingPolicy> routing;
  std::optional<Config> config;
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
  keep(load_config(home / "config.yaml", home), l.config, l.errors);
  keep(load_identities(home / "identities.yaml"), l.identities, l.errors);
  keep(load_agents(home / "agents.yaml"), l.agents, l.errors);
  keep(load_routing(home / "routing.yaml"), l.routing, l.errors);
  return l;
}

int check(const fs::path& home) {
  Loaded l = load_each(home);
  std::vector<std::string> problems = l.errors;
  // The key files are read as `serve` and `polyphony-worker` read them at start.
  if (l.config) {
    for (const auto& e : protocol::check_key_files(*l.config)) problems.push_back(e.to_string());
  }
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
            << "consistent" << (notes.empty() ? "" : " (" + std::to_string(notes.size()) + " of them the defaults)")
            << " (" << l.routing->rules.size() << " rule(s), " << l.agents->size() << " agent(s))\n";
  return kExitOk;
}

constexpr const char* kShowFooter =
    R"(Each value with the file:line that set it or "default" (the built-in value). Credentials
are never printed: an identity's variable shows the host variable it comes from and whether it
is set; token-like values show as <redacted>. --json prints the same as {home, files, values:
[{file, key, value, source, line}]}.)";

std::string source_of(const ConfigEntry& e, const fs::path& home, bool full_path) {
  if (e.line == 0) return "default";
  return (full_path ? (home / e.file).string() : e.file) + ":" + std::to_string(e.line);
}

int show(const fs::path& home, bool as_json) {
  auto settings = load_settings(home);
  if (!settings.ok()) {
    report(settings.error());
    std::cerr << "polyphony: `polyphony config check` lists every problem\n";
    return kExitUsage;
  }
  const std::vector<ConfigEntry> entries = describe_config(home, *settings);
  const char* files[] = {"config.yaml", "identities.yaml", "agents.yaml", "routing.yaml"};
  if (as_json) {
    nlohmann::json out{
        {"home", home.string()}, {"files", nlohmann::json::object()}, {"values", nlohmann::json::array()}};
    for (const char* f : files) {
      std::error_code ec;
      out["files"][f] = {{"path", (home / f).string()}, {"exists", fs::exists(home / f, ec)}};
    }
    for (const auto& e : entries) {
      out["values"].push_back({{"file", e.file},
                               {"key", e.key},
                               {"value", e.value},
                               {"source", source_of(e, home, true)},
                               {"line", e.line > 0 ? nlohmann::json(e.line) : nlohmann::json(nullptr)}});
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  const Terminal term = stdout_terminal();
  std::cout << "POLYPHONY_HOME " << home.string() << "\n";
  for (const char* f : files) {
    std::error_code ec;
    const bool exists = fs::exists(home / f, ec);
    std::cout << "\n"
              << paint(f, Colour::kBold, term.colour) << "  " << (home / f).string()
              << (exists ? "" : "  (missing: the built-in defaults)") << "\n";
    Table table({{"KEY", Overflow::kKeep}, {"VALUE", Overflow::kWrap, 12}, {"SOURCE", Overflow::kKeep}});
    for (const auto& e : entries) {
      if (e.file != f) continue;
      table.add_row({{e.key}, {e.text}, {source_of(e, home, false), e.line == 0 ? Colour::kDim : Colour::kNone}});
    }
    std::cout << table.render(term);
  }
  return kExitOk;
}

}  // namespace

void add_config(Command& polyphony) {
  Command config = polyphony.add("config", "check or show the configuration under POLYPHONY_HOME", nullptr);
  config.add("check",
             "load config.yaml, identities.yaml, agents.yaml and routing.yaml and report every problem "
             "with file:line",
             [](const Args&) { return check(polyphony_home()); });
  config
      .add("show", "the configuration in effect, value by value, each with its file:line or \"default\"",
           [](const Args& args) { return show(polyphony_home(), args.has("json")); })
      .flag("--json", "the same as JSON")
      .footer(kShowFooter);
}

}  // namespace polyphony::cli
