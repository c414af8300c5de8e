// Calibration of the complexity score against labelled real tasks (see calibration.h).
#include "coordinator/calibration.h"

#include <cstdio>
#include <fstream>
#include <sstream>

#include "coordinator/score_index.h"

namespace polyphony {

namespace fs = std::filesystem;

namespace {

std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    const char n = s[++i];
    out += n == 'n' ? '\n' : n == 't' ? '\t' : n;
  }
  return out;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> out;
  size_t b = 0;
  for (size_t t; (t = line.find('\t', b)) != std::string::npos; b = t + 1) out.push_back(line.substr(b, t - b));
  out.push_back(line.substr(b));
  return out;
}

std::optional<Band> parse_band(const std::string& s) {
  if (s == "low") return Band::kLow;
  if (s == "mid") return Band::kMid;
  if (s == "high") return Band::kHigh;
  return std::nullopt;
}

// The thresholds (solo_max <= review_max) with the most band hits; ties keep the first found.
void best_thresholds(CalibrationReport& r) {
  r.best_hits = -1;
  for (int solo = 0; solo <= 10; ++solo) {
    for (int review = solo; review <= 10; ++review) {
      ScoringPolicy p;
      p.solo_max = solo;
      p.review_max = review;
      int hits = 0;
      for (const auto& t : r.tasks) hits += band_for(t.score.total, p) == t.labelled->band ? 1 : 0;
      if (hits > r.best_hits) {
        r.best_hits = hits;
        r.best_solo_max = solo;
        r.best_review_max = review;
      }
    }
  }
}

}  // namespace

const char* band_name(Band b) {
  switch (b) {
    case Band::kLow:
      return "low";
    case Band::kMid:
      return "mid";
    case Band::kHigh:
      return "high";
  }
  return "low";
}

Band band_for(int total, const ScoringPolicy& p) {
  switch (plan_for(total, p)) {
    case Plan::kSolo:
      return Band::kLow;
    case Plan::kReview:
      return Band::kMid;
    default:
      return Band::kHigh;
  }
}

Result<std::vector<LabelledTask>> read_labelled_tasks(const fs::path& tsv) {
  std::ifstream in(tsv);
  if (!in) return make_error("io", "cannot read " + tsv.string(), tsv.string());
  std::vector<LabelledTask> out;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string where = tsv.string() + ":" + std::to_string(n);
    if (line.empty() || line[0] == '#') continue;
    const auto f = split_tabs(line);
    if (f.size() < 4) {
      return make_error(
          "parse",
          "expected band, base, title and description separated by tabs, got " + std::to_string(f.size()) + " field(s)",
          where);
    }
    auto band = parse_band(f[0]);
    if (!band) return make_error("parse", "the band must be low, mid or high, got '" + f[0] + "'", where);
    if (f[1].empty() || f[2].empty()) return make_error("parse", "the base and the title must not be empty", where);
    LabelledTask t;
    t.band = *band;
    t.base = f[1];
    t.task.title = unescape(f[2]);
    t.task.body = unescape(f[3]);
    t.line = n;
    out.push_back(std::move(t));
  }
  if (out.empty()) return make_error("parse", "no labelled task in the file", tsv.string());
  return out;
}

Result<CalibrationReport> calibrate(const std::vector<LabelledTask>& tasks, const fs::path& repo,
                                    const ScoringPolicy& policy, ScoreIndexCache& indexes) {
  CalibrationReport r;
  for (const auto& t : tasks) {
    auto index = indexes.at(repo, t.base);
    if (!index.ok()) {
      Error e = index.error();
      e.message = "line " + std::to_string(t.line) + ": " + e.message;
      return e;
    }
    CalibratedTask c{&t, score(collect_signals(t.task, **index), policy), Band::kLow};
    c.predicted = band_for(c.score.total, policy);
    r.band_hits += c.predicted == t.band ? 1 : 0;
    r.tasks.push_back(std::move(c));
  }
  for (size_t i = 0; i < r.tasks.size(); ++i) {
    for (size_t j = 0; j < r.tasks.size(); ++j) {
      const auto& lo = r.tasks[i];
      const auto& hi = r.tasks[j];
      if (lo.labelled->band >= hi.labelled->band) continue;
      r.pairs += 1;
      if (lo.score.total < hi.score.total) r.pairs_ordered += 1;
      if (lo.score.total == hi.score.total) r.pairs_ordered += 0.5;
    }
  }
  best_thresholds(r);
  return r;
}

std::string format_report(const CalibrationReport& r, const ScoringPolicy& p) {
  std::ostringstream o;
  o << "band  score  predicted  task\n";
  for (const auto& t : r.tasks) {
    char row[64];
    std::snprintf(row, sizeof row, "%-5s %5d  %-9s  ", band_name(t.labelled->band), t.score.total,
                  band_name(t.predicted));
    o << row << (t.predicted == t.labelled->band ? "  " : "! ") << t.labelled->task.title << "\n";
  }
  char figures[512];
  std::snprintf(figures, sizeof figures,
                "\nband accuracy: %d of %zu (%.0f%%) with solo 0-%d, review %d-%d, strong %d-10\n"
                "cross-band pairs ordered: %.1f of %.0f (%.0f%%; a tie counts half)\n"
                "best thresholds for this set: solo_max %d, review_max %d (%d of %zu)\n",
                r.band_hits, r.tasks.size(), 100 * r.accuracy(), p.solo_max, p.solo_max + 1, p.review_max,
                p.review_max + 1, r.pairs_ordered, r.pairs, 100 * r.ordering(), r.best_solo_max, r.best_review_max,
                r.best_hits, r.tasks.size());
  o << figures;
  return o.str();
}

}  // namespace polyphony
