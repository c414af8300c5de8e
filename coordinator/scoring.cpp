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

DimensionScore depth_score(const Signals& s, const ScoringPolicy& p) {
  DimensionScore d{Dimension::kCyclomaticDepth, 0, {}};
  int loc = 0, nesting = 0;
  for (const auto& f : s.files) {
    loc += f.lines_of_code;
    nesting = std::max(nesting, f.nesting);
  }
  d.value = std::max(cut(loc, p.lines_of_code), cut(nesting, p.nesting));
  if (s.files.empty()) {
    d.evidence.push_back("no file in the repository is named by the task or matches its words");
    return d;
  }
  d.evidence.push_back(std::to_string(loc) + " lines of code in " + std::to_string(s.files.size()) +
                       " touched file(s) " + range_text(p.lines_of_code));
  d.evidence.push_back("deepest nesting " + std::to_string(nesting) + " " + range_text(p.nesting));
  add_items(d.evidence, s.files, [](const TouchedFile& f) {
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
                       " function(s) " + range_text(p.call_sites));
  add_items(d.evidence, s.symbols, [](const SymbolUse& u) {
    return u.name + "(): " + std::to_string(u.call_sites) + " call site(s) in " + std::to_string(u.files_calling) +
           " file(s), defined in " + join(u.defined_in);
  });
  return d;
}

DimensionScore keyword_score(Dimension dim, const std::vector<KeywordHit>& hits, const ScoreCutOffs& c,
                             const std::string& kind) {
  DimensionScore d{dim, cut(static_cast<int>(hits.size()), c), {}};
  if (hits.empty()) {
    d.evidence.push_back("no " + kind + " keyword in the task or the touched files");
    return d;
  }
  d.evidence.push_back(std::to_string(hits.size()) + " distinct " + kind + " keyword(s) " + range_text(c));
  add_items(d.evidence, hits, [](const KeywordHit& h) { return "'" + h.keyword + "' in " + join(h.found_in); });
  return d;
}

DimensionScore domain_score(const Signals& s) {
  DimensionScore d{Dimension::kDomainInvariants, std::min(2, domain_points(s.risk, s.task_type)), {}};
  d.evidence.push_back("risk " + (s.risk.empty() ? std::string("(none)") : s.risk) + ", task type " +
                       (s.task_type.empty() ? std::string("(none)") : s.task_type) +
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

Plan plan_for(int total, const ScoringPolicy& p) {
  if (total <= p.solo_max) return Plan::kSolo;
  return total <= p.review_max ? Plan::kReview : Plan::kStrong;
}

}  // namespace polyphony
