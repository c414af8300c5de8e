// A small command-line parser with errors naming the flag.
#include "cli/args.h"

#include <algorithm>

namespace polyphony::cli {

Result<Args> parse_args(const std::vector<std::string>& argv, const std::vector<FlagSpec>& flags) {
  Args out;
  bool flags_done = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (flags_done || a.size() < 2 || a.rfind("--", 0) != 0) {
      if (!flags_done && a.size() > 1 && a[0] == '-' && a != "-") {
        return make_error("usage", "unknown option '" + a + "' (options start with --)", a);
      }
      out.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      flags_done = true;
      continue;
    }
    std::string name = a.substr(2);
    std::string value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    auto spec = std::find_if(flags.begin(), flags.end(), [&](const FlagSpec& f) { return f.name == name; });
    if (spec == flags.end()) {
      std::string known;
      for (const auto& f : flags) known += (known.empty() ? "--" : ", --") + f.name;
      return make_error("usage", "unknown option --" + name + (known.empty() ? "" : " (this command takes: " + known + ")"),
                        "--" + name);
    }
    if (!spec->takes_value) {
      if (inline_value) return make_error("usage", "--" + name + " takes no value", "--" + name);
      out.switches.insert(name);
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= argv.size()) return make_error("usage", "--" + name + " needs a value", "--" + name);
      value = argv[++i];
    }
    if (!spec->repeatable && out.values.count(name)) {
      return make_error("usage", "--" + name + " given more than once", "--" + name);
    }
    out.values[name].push_back(value);
  }
  return out;
}

}  // namespace polyphony::cli
