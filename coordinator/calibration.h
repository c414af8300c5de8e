// Calibrating the complexity score against labelled tasks: a TSV of real tasks with the band
// (low, mid, high) of what their change turned out to be, scored against the repository at each
// task's base. Reports band accuracy (low -> solo, mid -> review, high -> strong under the
// policy's thresholds), the share of cross-band pairs the totals order correctly, and the
// thresholds that fit the set best.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/result.h"
#include "coordinator/scoring.h"

namespace polyphony {

class ScoreIndexCache;

enum class Band { kLow = 0, kMid = 1, kHigh = 2 };

// "low", "mid", "high".
const char* band_name(Band b);

struct LabelledTask {
  Band band = Band::kLow;
  std::string base;  // the commit (or branch) the task starts from
  TaskRequest task;  // title and body
  int line = 0;      // in the TSV
};

// Reads `band<TAB>base<TAB>title<TAB>description[<TAB>anything]` lines; '#' lines and blank lines
// are skipped; \n, \t and \\ in the description are unescaped. Errors "parse" naming file:line.
Result<std::vector<LabelledTask>> read_labelled_tasks(const std::filesystem::path& tsv);

struct CalibratedTask {
  const LabelledTask* labelled = nullptr;
  Score score;
  Band predicted = Band::kLow;
};

struct CalibrationReport {
  std::vector<CalibratedTask> tasks;
  int band_hits = 0;
  double pairs = 0;          // cross-band pairs
  double pairs_ordered = 0;  // of them, the lower band scored lower (a tie counts half)
  int best_solo_max = 0;     // the thresholds with the highest band accuracy on this set
  int best_review_max = 0;
  int best_hits = 0;
  double accuracy() const { return tasks.empty() ? 0 : static_cast<double>(band_hits) / tasks.size(); }
  double ordering() const { return pairs == 0 ? 1 : pairs_ordered / pairs; }
};

// The band a total falls in under the policy's thresholds.
Band band_for(int total, const ScoringPolicy& policy);

// Scores each task against `repo` at its base (through `indexes`) and compares. Errors: the
// first task whose base cannot be read ("git", naming the TSV line).
Result<CalibrationReport> calibrate(const std::vector<LabelledTask>& tasks, const std::filesystem::path& repo,
                                    const ScoringPolicy& policy, ScoreIndexCache& indexes);

// The report as text: one line per task (band, total, predicted, title), then the figures.
std::string format_report(const CalibrationReport& report, const ScoringPolicy& policy);

}  // namespace polyphony
