// Signal collection: which files and definitions a task names, read from the repository's
// scoring index, and the auth/PII and concurrency keywords of the task and the touched code.
// Pure: works on an index already built.
#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string_view>

#include "coordinator/score_index.h"
#include "coordinator/score_words.h"
#include "coordinator/scoring.h"

namespace polyphony {

namespace {

using detail::is_ident_char;
using detail::is_ident_start;
using detail::lower;

// At most this many files and definitions count as touched; the rest are named in a note.
constexpr size_t kMaxTouchedFiles = 8;
constexpr size_t kMaxTouchedSymbols = 8;
constexpr size_t kMaxDefinitionsPerName = 3;

// Tokens of the task text that look like paths ("src/auth.py", "zip.c").
std::vector<std::string> path_tokens(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    while (!cur.empty() && (cur.back() == '.' || cur.back() == ':' || cur.back() == '?' || cur.back() == '!'))
      cur.pop_back();
    while (cur.rfind("./", 0) == 0) cur = cur.substr(2);
    const auto dot = cur.rfind('.');
    const bool has_ext = dot != std::string::npos && dot > 0 && dot + 1 < cur.size() &&
                         std::isalpha(static_cast<unsigned char>(cur[dot + 1]));
    if ((has_ext || cur.find('/') != std::string::npos) && cur.size() > 2 && cur.find("://") == std::string::npos &&
        std::find(out.begin(), out.end(), cur) == out.end()) {
      out.push_back(cur);
    }
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

struct NamedSymbol {
  std::string name;
  std::string why;
  int rank = 0;  // 0 backticks, 1 written name(), 2 an identifier that looks like code
};

bool looks_like_code(const std::string& w) {
  if (w.find('_') != std::string::npos && w.find_first_not_of('_') != std::string::npos) return true;
  for (size_t i = 1; i < w.size(); ++i) {
    if (std::islower(static_cast<unsigned char>(w[i - 1])) && std::isupper(static_cast<unsigned char>(w[i])))
      return true;
  }
  return false;
}

// Identifiers the task names: in backticks, written with (), or shaped like code (snake_case,
// camelCase). Plain words never name a symbol.
std::vector<NamedSymbol> named_symbols(const std::string& text) {
  std::map<std::string, NamedSymbol> best;
  auto offer = [&](const std::string& name, int rank, const std::string& why) {
    auto it = best.find(name);
    if (it == best.end() || rank < it->second.rank) best[name] = {name, why, rank};
  };
  bool in_ticks = false;
  for (size_t i = 0; i < text.size();) {
    if (text[i] == '`') {
      in_ticks = !in_ticks;
      ++i;
      continue;
    }
    if (!is_ident_start(text[i]) ||
        (i > 0 && (is_ident_char(text[i - 1]) || text[i - 1] == '.' || text[i - 1] == '/'))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && is_ident_char(text[j])) ++j;
    const std::string w = text.substr(i, j - i);
    const bool path_part = j < text.size() && (text[j] == '.' || text[j] == '/') && j + 1 < text.size() &&
                           std::isalpha(static_cast<unsigned char>(text[j + 1]));
    if (!path_part && w.size() >= 3) {
      if (in_ticks)
        offer(w, 0, "in backticks");
      else if (j + 1 < text.size() && text[j] == '(' && text[j + 1] == ')')
        offer(w, 1, "written " + w + "()");
      else if (looks_like_code(w))
        offer(w, 2, "identifier in the task");
    }
    i = j;
  }
  std::vector<NamedSymbol> out;
  for (auto& [n, s] : best) out.push_back(s);
  std::stable_sort(out.begin(), out.end(), [](const NamedSymbol& a, const NamedSymbol& b) { return a.rank < b.rank; });
  return out;
}

std::string without_extension(const std::string& path) {
  const auto slash = path.rfind('/');
  const auto dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash) || dot == 0) return path;
  return path.substr(0, dot);
}

bool path_ends_with(const std::string& path, const std::string& tail) {
  return path == tail ||
         (path.size() > tail.size() && path.compare(path.size() - tail.size(), tail.size(), tail) == 0 &&
          path[path.size() - tail.size() - 1] == '/');
}

// Files a path token names: exactly (or as a path's tail), else the same path with another
// extension (the task was written before a rename such as .txt -> .adoc).
std::vector<std::pair<const IndexedFile*, std::string>> files_named(const ScoreIndex& idx, const std::string& token) {
  std::vector<std::pair<const IndexedFile*, std::string>> out;
  for (const auto& f : idx.files) {
    if (path_ends_with(f.path, token)) out.push_back({&f, "named in the task"});
  }
  if (!out.empty()) return out;
  const std::string stem = without_extension(token);
  if (stem == token) return out;
  for (const auto& f : idx.files) {
    if (path_ends_with(without_extension(f.path), stem)) {
      out.push_back({&f, "named in the task as " + token + " (the extension changed)"});
    }
  }
  return out;
}

struct Touched {
  std::vector<TouchedFile> files;
  std::set<std::string> paths;
  std::vector<std::string> capped;
};

void touch(Touched& t, const IndexedFile& f, const std::string& why) {
  if (t.paths.count(f.path)) return;
  if (t.files.size() >= kMaxTouchedFiles) {
    t.capped.push_back(f.path);
    return;
  }
  t.paths.insert(f.path);
  t.files.push_back({f.path, file_kind_name(f.kind), f.lines_of_code, f.nesting, why});
}

std::string location(const ScoreIndex& idx, const Definition& d) {
  return idx.files[d.file].path + ":" + std::to_string(d.line) + (d.end > d.line ? "-" + std::to_string(d.end) : "");
}

// The definitions of one named symbol, in code files only.
std::optional<SymbolUse> resolve_symbol(const ScoreIndex& idx, const NamedSymbol& n, Touched& t) {
  SymbolUse u{n.name, 0, 0, {}, 0, 0, 0, n.why};
  size_t used = 0;
  const auto defs = idx.find(n.name);
  // A function's body is what a change to it reads: its macros (renames, prefixes) and
  // prototypes count only for a name that has no body here.
  const bool has_body = std::any_of(defs.begin(), defs.end(), [&](const Definition* d) {
    return idx.files[d->file].kind == FileKind::kCode && d->end > d->line;
  });
  for (const Definition* d : defs) {
    const IndexedFile& f = idx.files[d->file];
    if (f.kind != FileKind::kCode || used >= kMaxDefinitionsPerName) continue;
    if (has_body && d->end <= d->line) continue;
    if (d->kind == "prototype" && used > 0) continue;
    ++used;
    u.defined_in.push_back(location(idx, *d) + (d->kind == "function" ? "" : " (" + d->kind + ")"));
    u.lines += d->lines;
    u.nesting = std::max(u.nesting, d->nesting);
    u.branches += d->branches;
    touch(t, f, "defines " + n.name + "()");
  }
  if (used == 0) return std::nullopt;
  if (auto it = idx.calls.find(n.name); it != idx.calls.end()) {
    u.call_sites = it->second.sites;
    u.files_calling = it->second.files;
  }
  return u;
}

void add_hit(std::map<std::string, KeywordHit>& hits, const std::string& k, const std::string& where, int weight) {
  KeywordHit& h = hits[k];
  h.keyword = k;
  h.found_in.push_back(where);
  h.weight = std::max(h.weight, weight);
}

void task_keywords(const std::string& text, const std::vector<detail::Keyword>& list,
                   std::map<std::string, KeywordHit>& hits) {
  const auto tokens = detail::word_tokens(text);
  for (const auto& k : list) {
    if (detail::count_phrase(tokens, k.phrase) > 0) add_hit(hits, k.name, "task", kTaskKeywordWeight);
  }
}

void file_keywords(const IndexedFile& f, const std::map<std::string, KeywordCount>& counts,
                   std::map<std::string, KeywordHit>& hits) {
  for (const auto& [k, c] : counts) {
    if (c.in_code > 0) add_hit(hits, k, f.path + " (" + std::to_string(c.in_code) + ")", kCodeKeywordWeight);
    if (c.in_comments > 0) {
      add_hit(hits, k, f.path + " comments (" + std::to_string(c.in_comments) + ")", kCommentKeywordWeight);
    }
  }
}

std::vector<KeywordHit> to_hits(const std::map<std::string, KeywordHit>& m) {
  std::vector<KeywordHit> out;
  for (const auto& [k, h] : m) {
    if (h.weight > 0) out.push_back(h);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const KeywordHit& a, const KeywordHit& b) { return a.weight > b.weight; });
  return out;
}

// The task type the text implies when none was given: (type, the word it came from).
std::pair<std::string, std::string> infer_type(const std::string& text) {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> types{
      {"security", {"cve", "vulnerability", "exploit", "injection", "overflow", "underflow", "use after free"}},
      {"migration", {"migration", "migrate", "schema"}},
  };
  const auto tokens = detail::word_tokens(text);
  for (const auto& [type, words] : types) {
    for (const auto& w : words) {
      if (detail::count_phrase(tokens, detail::word_tokens(w)) > 0) return {type, w};
    }
  }
  return {};
}

// Words of the task that say it makes something new or reworks something, rather than fixes.
std::vector<std::string> scope_words(const std::string& text) {
  static const std::set<std::string> words{"add",        "adds",   "added",    "implement", "implements", "introduce",
                                           "introduces", "feat",   "feature",  "new",       "provide",    "refactor",
                                           "rewrite",    "rework", "redesign", "support",   "replace",    "reusable"};
  std::set<std::string> found;
  for (const auto& t : detail::word_tokens(text)) {
    if (words.count(t)) found.insert(t);
  }
  return {found.begin(), found.end()};
}

}  // namespace

std::vector<std::string> task_focus(const TaskRequest& task) {
  const std::string text = task.title + "\n" + task.body;
  std::vector<std::string> out;
  for (const auto& n : named_symbols(text)) out.push_back(n.name);
  for (const auto& token : path_tokens(text)) {
    const auto slash = token.rfind('/');
    const std::string base = slash == std::string::npos ? token : token.substr(slash + 1);
    if (base.empty()) continue;
    out.push_back(base);
    if (const std::string stem = without_extension(base); stem != base && !stem.empty()) out.push_back(stem);
  }
  return out;
}

Signals collect_signals(const TaskRequest& task, const ScoreIndex& idx) {
  Signals s;
  s.risk = task.risk;
  s.task_type = task.task_type;
  if (s.task_type.empty()) {
    auto [type, word] = infer_type(task.title + "\n" + task.body);
    s.task_type = type;
    s.type_inferred = word;
  }
  s.files_scanned = static_cast<int>(idx.files.size());
  s.scan_note = idx.scan_note;
  s.parser = idx.parser;
  const std::string text = task.title + "\n" + task.body;
  Touched t;
  for (const auto& token : path_tokens(text)) {
    for (const auto& [f, why] : files_named(idx, token)) touch(t, *f, why);
  }
  size_t symbols_named = 0;
  for (const auto& n : named_symbols(text)) {
    if (s.symbols.size() >= kMaxTouchedSymbols) {
      if (!idx.find(n.name).empty()) ++symbols_named;
      continue;
    }
    if (auto u = resolve_symbol(idx, n, t)) s.symbols.push_back(std::move(*u));
  }
  s.files = std::move(t.files);
  if (symbols_named > 0) {
    s.notes.push_back(std::to_string(symbols_named) + " more named symbol(s) left out (at most " +
                      std::to_string(kMaxTouchedSymbols) + " count)");
  }
  if (!t.capped.empty()) {
    s.notes.push_back(std::to_string(t.capped.size()) + " more named file(s) left out (at most " +
                      std::to_string(kMaxTouchedFiles) + " count), e.g. " + t.capped.front());
  }
  s.named_nothing = s.files.empty() && s.symbols.empty();
  s.task_words = static_cast<int>(detail::word_tokens(text).size());
  s.scope_words = scope_words(text);
  std::map<std::string, KeywordHit> security, concurrency;
  task_keywords(text, detail::security_keywords(), security);
  task_keywords(text, detail::concurrency_keywords(), concurrency);
  for (const auto& tf : s.files) {
    const IndexedFile* f = idx.file(tf.path);
    if (!f || !tf.counts()) continue;
    file_keywords(*f, f->security, security);
    file_keywords(*f, f->concurrency, concurrency);
  }
  s.security = to_hits(security);
  s.concurrency = to_hits(concurrency);
  return s;
}

Signals collect_signals(const TaskRequest& task, const RepoText& repo) {
  auto idx = build_score_index(repo);
  if (!idx.ok()) {
    ScoreIndex empty;
    empty.parser = "no index: " + idx.error().message;
    return collect_signals(task, empty);
  }
  return collect_signals(task, *idx);
}

}  // namespace polyphony
