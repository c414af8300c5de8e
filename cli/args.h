// A small command-line parser: positional arguments and --flags, with errors naming the flag.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace polyphony::cli {

struct FlagSpec {
  std::string name;        // without dashes
  bool takes_value = true;
  bool repeatable = false;
};

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;  // flag -> values
  std::set<std::string> switches;                          // boolean flags present

  bool has(const std::string& flag) const { return switches.count(flag) || values.count(flag); }
  std::string get(const std::string& flag, const std::string& fallback = "") const {
    auto it = values.find(flag);
    return it == values.end() || it->second.empty() ? fallback : it->second.back();
  }
  std::vector<std::string> all(const std::string& flag) const {
    auto it = values.find(flag);
    return it == values.end() ? std::vector<std::string>{} : it->second;
  }
};

// Parses argv[first..]. "--flag value", "--flag=value", "--switch", "--" ends flags.
// Errors (code "usage") name the flag: unknown, missing value, given twice.
Result<Args> parse_args(const std::vector<std::string>& argv, const std::vector<FlagSpec>& flags);

}  // namespace polyphony::cli
