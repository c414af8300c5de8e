// Signal collection: which files and functions a task touches, how big and how called they are,
// and which auth/PII and concurrency keywords appear. Pure: works on text already read.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string_view>

#include "coordinator/scoring.h"

namespace polyphony {

namespace {

using Phrase = std::vector<std::string>;

const std::vector<Phrase>& security_keywords() {
  static const std::vector<Phrase> k{{"auth"},
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
                                     {"social", "security"}};
  return k;
}

const std::vector<Phrase>& concurrency_keywords() {
  static const std::vector<Phrase> k{{"lock"},
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
                                     {"synchronized"}};
  return k;
}

// Words too common to say which files or functions a task is about.
const std::set<std::string>& stopwords() {
  static const std::set<std::string> s{
      "the",    "and",   "for",   "with",   "when",   "from",   "that",    "this",  "into",   "should",  "not",
      "are",    "was",   "but",   "all",    "any",    "can",    "has",     "have",  "its",    "our",     "out",
      "use",    "used",  "uses",  "using",  "fix",    "fixes",  "fixed",   "add",   "adds",   "added",   "make",
      "new",    "bug",   "issue", "update", "remove", "change", "instead", "also",  "there",  "their",   "them",
      "then",   "than",  "they",  "will",   "would",  "could",  "does",    "doesn", "don",    "about",   "after",
      "before", "where", "which", "while",  "what",   "why",    "how",     "who",   "only",   "some",    "more",
      "most",   "other", "each",  "every",  "just",   "like",   "one",     "two",   "too",    "very",    "via",
      "code",   "file",  "files", "test",   "tests",  "main",   "src",     "lib",   "please", "support", "handle",
      "work",   "works", "way",   "get",    "set",    "return", "true",    "false", "null",   "none",    "run"};
  return s;
}

bool is_ident_start(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool is_ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Lowercased identifiers of the task text worth matching against file and function names.
std::set<std::string> task_words(const std::string& text) {
  std::set<std::string> out;
  for (size_t i = 0; i < text.size();) {
    if (!is_ident_start(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && is_ident_char(text[j])) ++j;
    std::string w = lower(std::string_view(text).substr(i, j - i));
    if (w.size() >= 3 && !stopwords().count(w)) out.insert(w);
    i = j;
  }
  return out;
}

// Tokens of the task text that look like paths ("src/auth.py", "login.py").
std::set<std::string> path_tokens(const std::string& text) {
  std::set<std::string> out;
  std::string cur;
  auto flush = [&] {
    while (!cur.empty() && (cur.back() == '.' || cur.back() == ':')) cur.pop_back();
    while (cur.rfind("./", 0) == 0) cur = cur.substr(2);
    if (cur.find_first_of("./") != std::string::npos && cur.size() > 2) out.insert(cur);
    cur.clear();
  };
  for (char c : text) {
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::string_view("\"'`()[]<>,;").find(c) != std::string_view::npos) {
      flush();
    } else {
      cur += c;
    }
  }
  flush();
  return out;
}

// Lowercase alphabetic words of code or prose, split at camelCase and non-letters.
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

bool word_is(const std::string& token, const std::string& word, bool allow_plural) {
  if (token == word) return true;
  return allow_plural && (token == word + "s" || token == word + "es");
}

int count_phrase(const std::vector<std::string>& tokens, const Phrase& phrase) {
  int n = 0;
  for (size_t i = 0; i + phrase.size() <= tokens.size(); ++i) {
    bool all = true;
    for (size_t k = 0; k < phrase.size() && all; ++k) all = word_is(tokens[i + k], phrase[k], k + 1 == phrase.size());
    if (all) ++n;
  }
  return n;
}

std::string join_phrase(const Phrase& p) {
  std::string out;
  for (const auto& w : p) out += (out.empty() ? "" : " ") + w;
  return out;
}

// Adds the keywords of `list` found in `tokens` to `hits` as found in `where`.
void find_keywords(const std::vector<Phrase>& list, const std::vector<std::string>& tokens, const std::string& where,
                   bool with_count, std::map<std::string, KeywordHit>& hits) {
  for (const auto& phrase : list) {
    int n = count_phrase(tokens, phrase);
    if (n == 0) continue;
    const std::string k = join_phrase(phrase);
    hits[k].keyword = k;
    hits[k].found_in.push_back(with_count ? where + " (" + std::to_string(n) + ")" : where);
  }
}

std::string basename_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Why the task touches `path` by name, or empty.
std::string name_match(const std::string& path, const std::set<std::string>& paths,
                       const std::set<std::string>& words) {
  for (const auto& p : paths) {
    if (p == path || (path.size() > p.size() && path.compare(path.size() - p.size(), p.size(), p) == 0 &&
                      path[path.size() - p.size() - 1] == '/')) {
      return "named in the task";
    }
  }
  std::string stem = basename_of(path);
  if (auto dot = stem.find('.'); dot != std::string::npos && dot > 0) stem = stem.substr(0, dot);
  if (words.count(lower(stem))) return "name matches '" + lower(stem) + "'";
  for (const auto& t : word_tokens(stem)) {
    if (words.count(t)) return "name matches '" + t + "'";
  }
  return {};
}

struct LineScan {
  int loc = 0;
  int nesting = 0;
};

LineScan measure(const std::string& content) {
  LineScan s;
  const bool braces = content.find('{') != std::string::npos;
  int depth = 0;
  size_t start = 0;
  while (start < content.size()) {
    size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    std::string_view line(content.data() + start, end - start);
    if (line.find_first_not_of(" \t\r") != std::string_view::npos) {
      ++s.loc;
      if (!braces) {
        int col = 0;
        for (char c : line) {
          if (c == ' ')
            col += 1;
          else if (c == '\t')
            col += 4;
          else
            break;
        }
        s.nesting = std::max(s.nesting, col / 4);
      }
    }
    for (char c : line) {
      if (!braces) break;
      if (c == '{') s.nesting = std::max(s.nesting, ++depth);
      if (c == '}') depth = std::max(0, depth - 1);
    }
    start = end + 1;
  }
  return s;
}

enum class Occurrence { kCall, kDefinition, kDeclaration };

std::string_view trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::string_view first_word(std::string_view s) {
  size_t e = 0;
  while (e < s.size() && (is_ident_char(s[e]) || s[e] == '#')) ++e;
  return s.substr(0, e);
}

// Drops a trailing qualifier ("Class::") so `void Class::name(` reads like `void name(`.
std::string_view strip_qualifier(std::string_view prefix) {
  while (prefix.size() >= 2 && prefix.substr(prefix.size() - 2) == "::") {
    prefix.remove_suffix(2);
    while (!prefix.empty() && is_ident_char(prefix.back())) prefix.remove_suffix(1);
  }
  return trim(prefix);
}

// Whether `name(` at the end of `prefix` on `line` defines, declares or calls the function.
Occurrence classify(std::string_view prefix, std::string_view line) {
  static const std::set<std::string_view> def_words{"def", "fn", "func", "function", "sub", "proc"};
  static const std::set<std::string_view> expr_words{"return", "if",     "else", "while",  "for",       "switch",
                                                     "case",   "throw",  "new",  "delete", "co_return", "co_await",
                                                     "await",  "yield",  "not",  "and",    "or",        "in",
                                                     "sizeof", "assert", "elif", "print",  "echo"};
  prefix = strip_qualifier(trim(prefix));
  if (prefix.empty()) return Occurrence::kCall;
  size_t last_space = prefix.find_last_of(" \t");
  std::string_view last = last_space == std::string_view::npos ? prefix : prefix.substr(last_space + 1);
  if (def_words.count(last) || prefix.rfind("func ", 0) == 0) return Occurrence::kDefinition;
  const char c = prefix.back();
  const bool type_like =
      is_ident_char(c) || c == '*' || c == '&' || (c == '>' && prefix.size() > 1 && prefix[prefix.size() - 2] != '-');
  if (!type_like || expr_words.count(first_word(prefix)) || prefix.find_first_of("=(,.") != std::string_view::npos) {
    return Occurrence::kCall;
  }
  return trim(line).back() == ';' ? Occurrence::kDeclaration : Occurrence::kDefinition;
}

bool is_comment(std::string_view line) {
  line = trim(line);
  if (line.rfind("#define", 0) == 0) return false;
  for (std::string_view m : {"//", "#", "/*", "*", "--"}) {
    if (line.rfind(m, 0) == 0) return true;
  }
  return false;
}

struct SymbolScan {
  int calls = 0;
  std::set<std::string> calling_files;
  std::vector<std::string> defined_in;
};

// Records every `name(` on `line` whose lowercase name is a task word.
void scan_line(std::string_view line, const std::string& path, const std::set<std::string>& words,
               std::map<std::string, SymbolScan>& out) {
  if (is_comment(line)) return;
  for (size_t i = 0; i < line.size();) {
    if (!is_ident_start(line[i]) || (i > 0 && is_ident_char(line[i - 1]))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < line.size() && is_ident_char(line[j])) ++j;
    size_t k = j;
    while (k < line.size() && line[k] == ' ') ++k;
    const std::string name(line.substr(i, j - i));
    if (k < line.size() && line[k] == '(' && words.count(lower(name))) {
      SymbolScan& s = out[name];
      switch (classify(line.substr(0, i), line)) {
        case Occurrence::kCall:
          ++s.calls;
          s.calling_files.insert(path);
          break;
        case Occurrence::kDefinition:
          if (s.defined_in.empty() || s.defined_in.back() != path) s.defined_in.push_back(path);
          break;
        case Occurrence::kDeclaration:
          break;
      }
    }
    i = j;
  }
}

std::map<std::string, SymbolScan> scan_symbols(const RepoText& repo, const std::set<std::string>& words) {
  std::map<std::string, SymbolScan> out;
  for (const auto& f : repo.files) {
    size_t start = 0;
    while (start < f.content.size()) {
      size_t end = f.content.find('\n', start);
      if (end == std::string::npos) end = f.content.size();
      scan_line(std::string_view(f.content).substr(start, end - start), f.path, words, out);
      start = end + 1;
    }
  }
  return out;
}

std::vector<KeywordHit> to_hits(const std::map<std::string, KeywordHit>& m) {
  std::vector<KeywordHit> out;
  for (const auto& [k, h] : m) out.push_back(h);
  return out;
}

std::string scan_note(const RepoText& repo) {
  std::string note;
  auto add = [&](int n, const std::string& what) {
    if (n > 0) note += (note.empty() ? "" : ", ") + std::to_string(n) + " " + what;
  };
  add(repo.skipped_binary, "binary file(s) skipped");
  add(repo.skipped_large, "file(s) over the size limit skipped");
  add(repo.skipped_over_cap, "file(s) beyond the scan cap skipped");
  return note;
}

}  // namespace

Signals collect_signals(const TaskRequest& task, const RepoText& repo) {
  Signals s;
  s.risk = task.risk;
  s.task_type = task.task_type;
  s.files_scanned = static_cast<int>(repo.files.size());
  s.scan_note = scan_note(repo);
  const std::string text = task.title + "\n" + task.body;
  const auto words = task_words(text);
  const auto paths = path_tokens(text);
  std::map<std::string, std::string> touched;  // path -> why
  for (const auto& f : repo.files) {
    if (auto why = name_match(f.path, paths, words); !why.empty()) touched[f.path] = why;
  }
  for (auto& [name, scan] : scan_symbols(repo, words)) {
    if (scan.defined_in.empty()) continue;  // not this repository's function
    s.symbols.push_back({name, scan.calls, static_cast<int>(scan.calling_files.size()), scan.defined_in});
    for (const auto& p : scan.defined_in) touched.emplace(p, "defines " + name + "()");
  }
  std::map<std::string, KeywordHit> security, concurrency;
  const auto task_tokens = word_tokens(text);
  find_keywords(security_keywords(), task_tokens, "task", false, security);
  find_keywords(concurrency_keywords(), task_tokens, "task", false, concurrency);
  for (const auto& f : repo.files) {
    auto it = touched.find(f.path);
    if (it == touched.end()) continue;
    LineScan m = measure(f.content);
    s.files.push_back({f.path, m.loc, m.nesting, it->second});
    const auto tokens = word_tokens(f.content);
    find_keywords(security_keywords(), tokens, f.path, true, security);
    find_keywords(concurrency_keywords(), tokens, f.path, true, concurrency);
  }
  s.security = to_hits(security);
  s.concurrency = to_hits(concurrency);
  return s;
}

}  // namespace polyphony
