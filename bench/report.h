// Benchmark figures: samples to median and p95, and the table (or JSON) bench/run prints.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace polyphony::bench {

// One figure of the table. ratio = value / baseline when both are known. `target` is the text
// shown; `pass` is empty for figures that carry no target (p95 rows, context).
struct Row {
  std::string name;
  double value = 0;
  std::string unit;
  std::optional<double> baseline;
  std::optional<double> ratio;
  std::string target;
  std::optional<bool> pass;
  std::string note;
};

// Median (mean of the two middle samples for an even count) and p95 (nearest rank) of samples;
// both 0 for no samples.
double median(std::vector<double> samples);
double p95(std::vector<double> samples);

// A row with value and baseline, ratio = value / baseline (none when baseline is 0).
Row compare(std::string name, double value, double baseline, std::string unit);

// The table: figure, value, baseline, ratio, target, pass; then the notes, numbered.
std::string format_table(const std::vector<Row>& rows);
// A JSON list of objects: name, value, unit, baseline, ratio, target, pass (and note).
std::string format_json(const std::vector<Row>& rows);

}  // namespace polyphony::bench
