// Typed, located reads from yaml-cpp nodes: every error names file:line:col.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace polyphony {

class YamlReader {
 public:
  explicit YamlReader(std::string file) : file_(std::move(file)) {}
  // A reader of the built-in default text of `file`, which does not exist: places in it are
  // named "<file> (missing: built-in default, line L)", never as a file:line that is not there.
  static YamlReader built_in_default(std::string file) {
    YamlReader y(std::move(file));
    y.built_in_ = true;
    return y;
  }

  // Parses the file; a missing file is an empty (null) document.
  Result<YAML::Node> load() const;
  // Parses text as if it came from file_.
  Result<YAML::Node> load_string(const std::string& text) const;

  // "file:line:col" of the node (or just "file"); see built_in_default.
  std::string where(const YAML::Node& node) const;
  int line(const YAML::Node& node) const;
  Error error(const YAML::Node& node, const std::string& message) const;

  Status expect_map(const YAML::Node& node, const std::string& what) const;
  // Every key of `node` must be in `allowed`; else an error at the unknown key.
  Status check_keys(const YAML::Node& node, std::initializer_list<std::string_view> allowed,
                    const std::string& what) const;

  Result<std::string> as_string(const YAML::Node& node, const std::string& what) const;
  Result<int64_t> as_int(const YAML::Node& node, const std::string& what) const;
  Result<double> as_double(const YAML::Node& node, const std::string& what) const;
  Result<bool> as_bool(const YAML::Node& node, const std::string& what) const;
  Result<std::vector<std::string>> as_string_list(const YAML::Node& node, const std::string& what) const;
  Result<std::map<std::string, std::string>> as_string_map(const YAML::Node& node, const std::string& what) const;

  const std::string& file() const { return file_; }
  bool is_built_in_default() const { return built_in_; }

 private:
  std::string file_;
  bool built_in_ = false;
};

}  // namespace polyphony
