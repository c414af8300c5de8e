// `polyphony config show`: the configuration in effect, each value with where it came from.
// Secrets never appear: identities' variables are named, never read out; anything that looks
// like a token is redacted.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"

namespace polyphony::cli {

// One value of the configuration in effect.
struct ConfigEntry {
  std::string file;      // "config.yaml", "identities.yaml", "agents.yaml" or "routing.yaml"
  std::string key;       // as written in the file: "container.image", "rules[0].agent"
  nlohmann::json value;  // secrets already redacted
  std::string text;      // the value for people
  int line = 0;          // where the file sets it; 0: the built-in default
};

// Every value of `settings` (as load_settings(home) gave it), with the line of the file under
// `home` that set it. Rereads the four files only to find those lines.
std::vector<ConfigEntry> describe_config(const std::filesystem::path& home, const Settings& settings);

// A known token prefix (sk-, ghp_, github_pat_, xoxb-, AKIA ...), or a long word mixing
// letters and digits the way keys do.
bool looks_like_secret(std::string_view value);
// A variable or flag name that holds a secret: *TOKEN*, *SECRET*, *PASSWORD*, *_KEY, ...
bool names_a_secret(std::string_view name);
// `text` with the password of a URL ("https://user:pw@host") and any token-like value replaced
// by "<redacted>".
std::string redact(std::string_view text);

}  // namespace polyphony::cli
