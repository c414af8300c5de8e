// Typed, located reads from yaml-cpp nodes.
#include "common/yaml_reader.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace polyphony {

namespace {

std::string kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "an undefined value";
  }
}

}  // namespace

Result<YAML::Node> YamlReader::load_string(const std::string& text) const {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    std::string w = file_ + ":" + std::to_string(e.mark.line + 1) + ":" + std::to_string(e.mark.column + 1);
    return make_error("config", "malformed YAML: " + e.msg, w);
  } catch (const YAML::Exception& e) {
    return make_error("config", std::string("malformed YAML: ") + e.what(), file_);
  }
}

Result<YAML::Node> YamlReader::load() const {
  std::ifstream in(file_);
  if (!in) {
    if (!std::filesystem::exists(file_)) return YAML::Node();
    return make_error("config", "cannot read the file (check its permissions)", file_);
  }
  std::stringstream ss;
  ss << in.rdbuf();
  return load_string(ss.str());
}

std::string YamlReader::where(const YAML::Node& node) const {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null() || mark.line < 0) return file_;
  if (built_in_) return file_ + " (missing: built-in default, line " + std::to_string(mark.line + 1) + ")";
  return file_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

int YamlReader::line(const YAML::Node& node) const {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() || mark.line < 0 ? 0 : mark.line + 1;
}

Error YamlReader::error(const YAML::Node& node, const std::string& message) const {
  return make_error("config", message, where(node));
}

Status YamlReader::expect_map(const YAML::Node& node, const std::string& what) const {
  if (!node.IsMap()) return error(node, what + " must be a mapping (key: value), got " + kind_of(node));
  return {};
}

Status YamlReader::check_keys(const YAML::Node& node, std::initializer_list<std::string_view> allowed,
                              const std::string& what) const {
  POLY_TRY(expect_map(node, what));
  std::set<std::string> seen;
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) return error(kv.first, "duplicate key '" + key + "' in " + what);
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string expected;
    for (auto a : allowed) expected += (expected.empty() ? "" : ", ") + std::string(a);
    return error(kv.first, "unknown key '" + key + "' in " + what + " (expected one of: " + expected + ")");
  }
  return {};
}

Result<std::string> YamlReader::as_string(const YAML::Node& node, const std::string& what) const {
  if (!node.IsScalar()) return error(node, what + " must be a string, got " + kind_of(node));
  return node.Scalar();
}

Result<int64_t> YamlReader::as_int(const YAML::Node& node, const std::string& what) const {
  if (node.IsScalar()) {
    try {
      size_t used = 0;
      const std::string& s = node.Scalar();
      long long v = std::stoll(s, &used, 10);
      if (used == s.size()) return static_cast<int64_t>(v);
    } catch (const std::exception&) {
    }
  }
  return error(node, what + " must be an integer, got " + kind_of(node));
}

Result<double> YamlReader::as_double(const YAML::Node& node, const std::string& what) const {
  if (node.IsScalar()) {
    try {
      size_t used = 0;
      const std::string& s = node.Scalar();
      double v = std::stod(s, &used);
      if (used == s.size()) return v;
    } catch (const std::exception&) {
    }
  }
  return error(node, what + " must be a number, got " + kind_of(node));
}

Result<bool> YamlReader::as_bool(const YAML::Node& node, const std::string& what) const {
  if (node.IsScalar()) {
    const std::string& s = node.Scalar();
    if (s == "true" || s == "yes" || s == "on") return true;
    if (s == "false" || s == "no" || s == "off") return false;
  }
  return error(node, what + " must be true or false, got " + kind_of(node));
}

Result<std::vector<std::string>> YamlReader::as_string_list(const YAML::Node& node, const std::string& what) const {
  if (!node.IsSequence()) return error(node, what + " must be a list of strings, got " + kind_of(node));
  std::vector<std::string> out;
  for (size_t i = 0; i < node.size(); ++i) {
    auto s = as_string(node[i], what + "[" + std::to_string(i) + "]");
    if (!s.ok()) return s.error();
    out.push_back(*s);
  }
  return out;
}

Result<std::map<std::string, std::string>> YamlReader::as_string_map(const YAML::Node& node,
                                                                     const std::string& what) const {
  POLY_TRY(expect_map(node, what));
  std::map<std::string, std::string> out;
  for (const auto& kv : node) {
    auto s = as_string(kv.second, what + "." + kv.first.Scalar());
    if (!s.ok()) return s.error();
    out[kv.first.Scalar()] = *s;
  }
  return out;
}

}  // namespace polyphony
