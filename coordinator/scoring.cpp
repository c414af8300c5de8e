// Score arithmetic: signals and cut-offs in, five dimension values with their evidence out. Pure.
#include "coordinator/scoring.h"

#include <algorithm>

namespace polyphony {

namespace {

// At most this many evidence lines name individual files or symbols; the rest are counted.
constexpr size_t kMaxEvidenceItems = 8;

std::string range_text(const ScoreCutOffs& c) {
  return "(1 at >= " + std::to_string(c.one) + ", 2 at >= " + std::to_string(c.two) + ")";
}

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : sep) + i;
  return out;
}

template <class T, class F>
void add_items(std::vector<std::string>& evidence, const std::vector<T>& items, F&& describe) {
  for (size_t i = 0; i < items.size() && i < kMaxEvidenceItems; ++i) evidence.push_back(describe(items[i]));
  if (items.size() > kMaxEvidenceItems) {
    evidence.push_back("... and " + std::to_string(items.size() - kMaxEvidenceItems) + " more");
  }
}

// From the touched definitions' size and nesting when the task names any; else from the touched
// code files as a whole; prose, translations, generated and vendored files never count.
DimensionScore depth_score(const Signals& s, const ScoringPolicy& p) {
  DimensionScore d{Dimension::kCyclomaticDepth, 0, {}};
  if (!s.symbols.empty()) {
    int lines = 0, nesting = 0, branches = 0;
    for (const auto& u : s.symbols) {
      lines += u.lines;
      nesting = std::max(nesting, u.nesting);
      branches += u.branches;
    }
    d.value = std::max(cut(lines, p.lines_of_code), cut(nesting, p.nesting));
    d.evidence.push_back(std::to_string(lines) + " lines in " + std::to_string(s.symbols.size()) +
                         " touched definition(s) " + range_text(p.lines_of_code));
    d.evidence.push_back("deepest nesting " + std::to_string(nesting) + " " + range_text(p.nesting) + ", " +
                         std::to_string(branches) + " branch(es)");
    add_items(d.evidence, s.symbols, [](const SymbolUse& u) {
      return u.name + "(): " + join(u.defined_in) + ", " + std::to_string(u.lines) + " lines, nesting " +
             std::to_string(u.nesting) + ", " + std::to_string(u.branches) + " branch(es) (" + u.why + ")";
    });
    return d;
  }
  int loc = 0, nesting = 0, counted = 0;
  for (const auto& f : s.files) {
    if (!f.counts()) continue;
    ++counted;
    loc += f.lines_of_code;
    nesting = std::max(nesting, f.nesting);
  }
  // A file named without a function: the change is somewhere in it, so its size counts at a
  // quarter (a whole file is not what a one-file fix reads).
  const int weighted = loc / 4;
  d.value = std::max(cut(weighted, p.lines_of_code), cut(nesting, p.nesting));
  if (s.named_nothing) {
    // Nothing to measure in the repository: the text says how much the task asks for.
    const int points = (s.task_words >= 40 ? 1 : 0) + (s.task_words >= 120 ? 1 : 0) + (s.scope_words.empty() ? 0 : 1);
    d.value = std::min(2, points);
    d.evidence.push_back(
        "the task names no file or symbol this repository has: nothing measured in it, the score "
        "leans on the task text");
    std::string scope;
    for (const auto& w : s.scope_words) scope += (scope.empty() ? "'" : ", '") + w + "'";
    d.evidence.push_back(std::to_string(s.task_words) + " word(s) in the task (1 at >= 40, 2 at >= 120); " +
                         (scope.empty() ? std::string("no word of new or reworked code") : scope + ": +1") + "; cap 2");
    return d;
  }
  if (counted == 0) {
    d.evidence.push_back("no touched code: only prose, translations, release notes, generated or vendored files");
  } else {
    d.evidence.push_back(std::to_string(loc) + " lines of code in " + std::to_string(counted) +
                         " touched file(s) naming no function, counted at a quarter: " + std::to_string(weighted) +
                         " " + range_text(p.lines_of_code));
    d.evidence.push_back("deepest nesting " + std::to_string(nesting) + " " + range_text(p.nesting));
  }
  add_items(d.evidence, s.files, [](const TouchedFile& f) {
    if (!f.counts()) {
      return f.path + ": " + f.kind + (f.lines_of_code < 0 ? ", not read (sampled)" : "") + ", not counted (" + f.why +
             ")";
    }
    return f.path + ": " + std::to_string(f.lines_of_code) + " lines, nesting " + std::to_string(f.nesting) + " (" +
           f.why + ")";
  });
  return d;
}

DimensionScore fan_out_score(const Signals& s, const ScoringPolicy& p) {
  DimensionScore d{Dimension::kFanOut, 0, {}};
  int calls = 0;
  for (const auto& sym : s.symbols) calls += sym.call_sites;
  d.value = cut(calls, p.call_sites);
  if (s.symbols.empty()) {
    d.evidence.push_back("the task names no function the repository defines");
    return d;
  }
  d.evidence.push_back(std::to_string(calls) + " call site(s) of " + std::to_string(s.symbols.size()) +
                       " touched definition(s) " + range_text(p.call_sites));
  add_items(d.evidence, s.symbols, [](const SymbolUse& u) {
    return u.name + "(): " + std::to_string(u.call_sites) + " call site(s) in " + std::to_string(u.files_calling) +
           " file(s)";
  });
  return d;
}

DimensionScore keyword_score(Dimension dim, const std::vector<KeywordHit>& hits, const ScoreCutOffs& c,
                             const std::string& kind) {
  int points = 0;
  for (const auto& h : hits) points += h.weight;
  DimensionScore d{dim, cut(points, c), {}};
  if (hits.empty()) {
    d.evidence.push_back("no " + kind + " keyword in the task or the touched code");
    return d;
  }
  d.evidence.push_back(std::to_string(points) + " weighted point(s) from " + std::to_string(hits.size()) + " " + kind +
                       " keyword(s) " + range_text(c) + "; in the task " + std::to_string(kTaskKeywordWeight) +
                       ", touched code " + std::to_string(kCodeKeywordWeight) + ", its comments " +
                       std::to_string(kCommentKeywordWeight));
  add_items(d.evidence, hits, [](const KeywordHit& h) {
    return "'" + h.keyword + "' " + std::to_string(h.weight) + ": " + join(h.found_in);
  });
  return d;
}

DimensionScore domain_score(const Signals& s) {
  DimensionScore d{Dimension::kDomainInvariants, std::min(2, domain_points(s.risk, s.task_type)), {}};
  const std::string type = s.task_type.empty()       ? std::string("(none)")
                           : s.type_inferred.empty() ? s.task_type
                                                     : s.task_type + " (inferred from '" + s.type_inferred + "')";
  d.evidence.push_back("risk " + (s.risk.empty() ? std::string("(none)") : s.risk) + ", task type " + type +
                       " (risk high 2, medium 1; type migration/security/billing/payments +1; cap 2)");
  return d;
}

}  // namespace

const char* dimension_name(Dimension d) {
  switch (d) {
    case Dimension::kCyclomaticDepth:
      return "cyclomatic_depth";
    case Dimension::kFanOut:
      return "fan_out";
    case Dimension::kSecurityBoundary:
      return "security_boundary";
    case Dimension::kConcurrency:
      return "concurrency";
    case Dimension::kDomainInvariants:
      return "domain_invariants";
  }
  return "unknown";
}

int cut(int measure, const ScoreCutOffs& c) {
  if (measure >= c.two) return 2;
  return measure >= c.one ? 1 : 0;
}

int domain_points(const std::string& risk, const std::string& task_type) {
  int points = risk == "high" ? 2 : risk == "medium" ? 1 : 0;
  for (const char* t : {"migration", "security", "billing", "payments"}) {
    if (task_type == t) ++points;
  }
  return points;
}

Score score(const Signals& s, const ScoringPolicy& p) {
  Score out;
  out.dimensions = {depth_score(s, p), fan_out_score(s, p),
                    keyword_score(Dimension::kSecurityBoundary, s.security, p.security_keywords, "auth/PII"),
                    keyword_score(Dimension::kConcurrency, s.concurrency, p.concurrency_keywords, "concurrency"),
                    domain_score(s)};
  for (const auto& d : out.dimensions) out.total += d.value;
  return out;
}

std::string score_summary(const Score& sc) {
  std::string out;
  for (const auto& d : sc.dimensions) {
    out += (out.empty() ? "" : "; ") + std::string(dimension_name(d.dimension)) + " " + std::to_string(d.value);
    if (!d.evidence.empty()) out += ": " + d.evidence.front();
  }
  return out;
}

Plan plan_for(int total, const ScoringPolicy& p) {
  if (total <= p.solo_max) return Plan::kSolo;
  return total <= p.review_max ? Plan::kReview : Plan::kStrong;
}

}  // namespace polyphony
