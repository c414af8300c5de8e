// Keyword lists and the tokenizer shared by the scoring index and the task's signals.
#include "coordinator/score_words.h"

#include <cctype>

namespace polyphony::detail {

namespace {

std::vector<Keyword> make(std::initializer_list<Phrase> phrases) {
  std::vector<Keyword> out;
  for (const auto& p : phrases) {
    std::string name;
    for (const auto& w : p) name += (name.empty() ? "" : " ") + w;
    out.push_back({p, name});
  }
  return out;
}

}  // namespace

const std::vector<Keyword>& security_keywords() {
  static const std::vector<Keyword> k = make({{"auth"},
                                              {"authn"},
                                              {"authz"},
                                              {"authenticate"},
                                              {"authentication"},
                                              {"authorization"},
                                              {"authorize"},
                                              {"login"},
                                              {"logout"},
                                              {"password"},
                                              {"passwd"},
                                              {"token"},
                                              {"secret"},
                                              {"session"},
                                              {"oauth"},
                                              {"jwt"},
                                              {"crypto"},
                                              {"encrypt"},
                                              {"decrypt"},
                                              {"cipher"},
                                              {"permission"},
                                              {"privilege"},
                                              {"credential"},
                                              {"pii"},
                                              {"ssn"},
                                              {"email"},
                                              {"credit", "card"},
                                              {"private", "key"},
                                              {"cookie"},
                                              {"csrf"},
                                              {"hmac"},
                                              {"acl"},
                                              {"rbac"},
                                              {"social", "security"},
                                              {"tls"},
                                              {"ssl"},
                                              {"certificate"},
                                              {"overflow"},
                                              {"cve"},
                                              {"vulnerability"},
                                              {"redact"},
                                              {"sanitize"}});
  return k;
}

const std::vector<Keyword>& concurrency_keywords() {
  static const std::vector<Keyword> k = make({{"lock"},
                                              {"unlock"},
                                              {"mutex"},
                                              {"transaction"},
                                              {"atomic"},
                                              {"race"},
                                              {"deadlock"},
                                              {"thread"},
                                              {"threading"},
                                              {"async"},
                                              {"await"},
                                              {"semaphore"},
                                              {"concurrent"},
                                              {"concurrency"},
                                              {"parallel"},
                                              {"spinlock"},
                                              {"rwlock"},
                                              {"goroutine"},
                                              {"condition", "variable"},
                                              {"condvar"},
                                              {"synchronized"},
                                              {"lockfile"},
                                              {"reentrant"},
                                              {"volatile"}});
  return k;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string> word_tokens(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (!std::isalpha(c)) {
      if (!cur.empty()) out.push_back(lower(cur));
      cur.clear();
      continue;
    }
    const bool upper = std::isupper(c);
    const bool prev_lower = !cur.empty() && std::islower(static_cast<unsigned char>(cur.back()));
    const bool acronym_end = !cur.empty() && std::isupper(static_cast<unsigned char>(cur.back())) &&
                             i + 1 < text.size() && std::islower(static_cast<unsigned char>(text[i + 1]));
    if (upper && (prev_lower || acronym_end)) {
      out.push_back(lower(cur));
      cur.clear();
    }
    cur += static_cast<char>(c);
  }
  if (!cur.empty()) out.push_back(lower(cur));
  return out;
}

int count_phrase(const std::vector<std::string>& tokens, const Phrase& phrase) {
  auto word_is = [](const std::string& token, const std::string& word, bool plural) {
    return token == word || (plural && (token == word + "s" || token == word + "es"));
  };
  int n = 0;
  for (size_t i = 0; i + phrase.size() <= tokens.size(); ++i) {
    bool all = true;
    for (size_t k = 0; k < phrase.size() && all; ++k) all = word_is(tokens[i + k], phrase[k], k + 1 == phrase.size());
    if (all) ++n;
  }
  return n;
}

}  // namespace polyphony::detail
