// The text form of a scoring index: what the cache writes to disk and reads back.
#include "coordinator/score_index.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/score_index_internal.h"

namespace polyphony {

using namespace score_index_internal;

namespace {

constexpr std::string_view kIndexHeader = "polyphony-score-index 4";

}  // namespace

std::string serialize_index(const ScoreIndex& idx) {
  std::string o;
  o.reserve(64 * (idx.files.size() + idx.definitions.size() + idx.calls.size()) + 256);
  auto num = [&](long long v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    o.append(buf, r.ptr);
  };
  o += kIndexHeader;
  o += "\ncommit " + idx.commit + "\nsource " + idx.source + "\nfiles_in_repo " + std::to_string(idx.files_in_repo) +
       "\nfiles_parsed " + std::to_string(idx.files_parsed) + "\nscan_note " + idx.scan_note + "\nparser " +
       idx.parser + "\n";
  if (!idx.built_from.empty()) o += "built_from " + idx.built_from + " " + std::to_string(idx.files_reparsed) + "\n";
  const IndexScan& sc = idx.scan;
  o += "scan";
  for (unsigned long long v :
       {static_cast<unsigned long long>(sc.files_read), static_cast<unsigned long long>(sc.skipped_binary),
        static_cast<unsigned long long>(sc.skipped_large), static_cast<unsigned long long>(sc.skipped_over_cap),
        static_cast<unsigned long long>(sc.bytes_read), static_cast<unsigned long long>(sc.limits.max_file_bytes),
        static_cast<unsigned long long>(sc.limits.max_files),
        static_cast<unsigned long long>(sc.limits.max_total_bytes)}) {
    o += ' ';
    o += std::to_string(v);
  }
  o += '\n';
  auto keywords = [&](char which, const std::map<std::string, KeywordCount>& m) {
    for (const auto& [k, c] : m) {
      std::string name = k;
      std::replace(name.begin(), name.end(), ' ', '+');
      o += "K ";
      o += which;
      o += ' ';
      o += name;
      o += ' ';
      num(c.in_code);
      o += ' ';
      num(c.in_comments);
      o += '\n';
    }
  };
  for (const auto& f : idx.files) {
    o += "F ";
    num(static_cast<int>(f.kind));
    o += ' ';
    num(f.lines_of_code);
    o += ' ';
    num(f.nesting);
    o += ' ';
    o += f.path;
    o += '\n';
    keywords('s', f.security);
    keywords('c', f.concurrency);
    if (!f.called.empty()) {
      o += "B";
      for (uint64_t w : f.called) {
        char buf[17];
        std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(w));
        o += ' ';
        o.append(buf, 16);
      }
      o += '\n';
    }
    for (const auto& [name, n] : f.calls) {
      o += "S ";
      num(n);
      o += ' ';
      o += name;
      o += '\n';
    }
  }
  for (const auto& d : idx.definitions) {
    o += "D ";
    o += d.kind;
    for (int v : {d.file, d.line, d.end, d.lines, d.nesting, d.branches}) {
      o += ' ';
      num(v);
    }
    o += ' ';
    o += d.name;
    o += '\n';
  }
  // ScoreIndex::calls is the files' S lines added up.
  o += "end\n";
  return o;
}

namespace {

// Reads space-separated fields of one index line; `fail` once a field is missing or not a number.
struct Fields {
  std::string_view rest;
  bool fail = false;

  std::string_view word() {
    const size_t sp = rest.find(' ');
    std::string_view w = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
    if (w.empty()) fail = true;
    return w;
  }
  int number() {
    std::string_view w = word();
    int v = 0;
    auto r = std::from_chars(w.data(), w.data() + w.size(), v);
    if (r.ec != std::errc() || r.ptr != w.data() + w.size()) fail = true;
    return v;
  }
};

bool parse_scan(std::string_view text, IndexScan& scan) {
  unsigned long long v[8];
  for (auto& n : v) {
    const size_t sp = text.find(' ');
    const std::string_view w = text.substr(0, sp);
    auto r = std::from_chars(w.data(), w.data() + w.size(), n);
    if (w.empty() || r.ec != std::errc() || r.ptr != w.data() + w.size()) return false;
    text = sp == std::string_view::npos ? std::string_view() : text.substr(sp + 1);
  }
  scan = {static_cast<int>(v[0]),
          static_cast<int>(v[1]),
          static_cast<int>(v[2]),
          static_cast<int>(v[3]),
          v[4],
          ScanLimits{v[5], static_cast<size_t>(v[6]), v[7]}};
  return text.empty();
}

}  // namespace

Result<ScoreIndex> parse_index(const std::string& text) {
  ScoreIndex idx;
  auto bad = [&](std::string_view why) {
    return make_error("parse", "not a scoring index: " + std::string(why), "index");
  };
  std::string_view all = text;
  size_t pos = 0;
  auto next_line = [&](std::string_view& line) {
    if (pos >= all.size()) return false;
    const size_t nl = all.find('\n', pos);
    line = all.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? all.size() : nl + 1;
    return true;
  };
  std::string_view line;
  if (!next_line(line) || line != kIndexHeader) return bad("wrong header");
  auto rest = [&](std::string_view key) -> std::optional<std::string> {
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      return std::string(line.substr(key.size() + 1));
    }
    if (line == key) return std::string();
    return std::nullopt;
  };
  bool ended = false;
  while (next_line(line)) {
    if (line == "end") {
      ended = true;
      break;
    }
    if (line.size() > 2 && line[1] == ' ' &&
        (line[0] == 'F' || line[0] == 'K' || line[0] == 'D' || line[0] == 'S' || line[0] == 'B')) {
      Fields l{line.substr(2)};
      if (line[0] == 'F') {
        IndexedFile f;
        const int kind = l.number();
        f.lines_of_code = l.number();
        f.nesting = l.number();
        f.path = std::string(l.rest);
        if (f.path.empty()) l.fail = true;
        f.kind = static_cast<FileKind>(std::clamp(kind, 0, static_cast<int>(FileKind::kOther)));
        idx.files.push_back(std::move(f));
      } else if (line[0] == 'K') {
        if (idx.files.empty()) return bad("a keyword before any file");
        const std::string_view which = l.word();
        std::string name(l.word());
        KeywordCount c;
        c.in_code = l.number();
        c.in_comments = l.number();
        std::replace(name.begin(), name.end(), '+', ' ');
        (which == "s" ? idx.files.back().security : idx.files.back().concurrency)[name] = c;
      } else if (line[0] == 'D') {
        Definition d;
        d.kind = std::string(l.word());
        d.file = l.number();
        d.line = l.number();
        d.end = l.number();
        d.lines = l.number();
        d.nesting = l.number();
        d.branches = l.number();
        d.name = std::string(l.word());
        if (d.file < 0 || d.file >= static_cast<int>(idx.files.size())) return bad("a definition names no file");
        idx.definitions.push_back(std::move(d));
      } else if (line[0] == 'B') {
        if (idx.files.empty()) return bad("called names before any file");
        auto& called = idx.files.back().called;
        while (!l.rest.empty()) {
          const std::string_view w = l.word();
          uint64_t v = 0;
          auto r = std::from_chars(w.data(), w.data() + w.size(), v, 16);
          if (r.ec != std::errc() || r.ptr != w.data() + w.size()) l.fail = true;
          called.push_back(v);
        }
      } else {
        if (idx.files.empty()) return bad("call sites before any file");
        const int sites = l.number();
        std::string name(l.word());
        idx.files.back().calls.emplace_hint(idx.files.back().calls.end(), std::move(name), sites);  // written in order
      }
      if (l.fail) return bad("malformed line '" + std::string(line.substr(0, 40)) + "'");
      continue;
    }
    if (auto v = rest("commit")) {
      idx.commit = *v;
    } else if (auto v = rest("source")) {
      idx.source = *v;
    } else if (auto v = rest("files_in_repo")) {
      idx.files_in_repo = std::atoi(v->c_str());
    } else if (auto v = rest("files_parsed")) {
      idx.files_parsed = std::atoi(v->c_str());
    } else if (auto v = rest("scan_note")) {
      idx.scan_note = *v;
    } else if (auto v = rest("parser")) {
      idx.parser = *v;
    } else if (auto v = rest("built_from")) {
      Fields l{*v};
      idx.built_from = std::string(l.word());
      idx.files_reparsed = l.number();
      if (l.fail) return bad("malformed built_from line");
    } else if (auto v = rest("scan")) {
      if (!parse_scan(*v, idx.scan)) return bad("malformed scan line");
    } else {
      return bad("unknown line '" + std::string(line.substr(0, 40)) + "'");
    }
  }
  if (!ended) return bad("truncated");
  total_calls(idx);
  idx.loaded_from_cache = true;
  return idx;
}

}  // namespace polyphony
