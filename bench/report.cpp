// Benchmark figures: statistics and the printed table.
#include "bench/report.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace polyphony::bench {

double median(std::vector<double> s) {
  if (s.empty()) return 0;
  std::sort(s.begin(), s.end());
  const size_t n = s.size();
  return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

double p95(std::vector<double> s) {
  if (s.empty()) return 0;
  std::sort(s.begin(), s.end());
  const size_t rank = static_cast<size_t>(std::ceil(0.95 * static_cast<double>(s.size())));
  return s[std::max<size_t>(rank, 1) - 1];
}

Row compare(std::string name, double value, double baseline, std::string unit) {
  Row r;
  r.name = std::move(name);
  r.value = value;
  r.unit = std::move(unit);
  r.baseline = baseline;
  if (baseline != 0) r.ratio = value / baseline;
  return r;
}

namespace {

std::string number(double v) {
  char buf[64];
  if (std::fabs(v) >= 100 || v == std::floor(v))
    std::snprintf(buf, sizeof buf, "%.0f", v);
  else if (std::fabs(v) >= 10)
    std::snprintf(buf, sizeof buf, "%.1f", v);
  else
    std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string with_unit(double v, const std::string& unit) {
  return number(v) + (unit.empty() ? "" : " " + unit);
}

std::string pad(const std::string& s, size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

}  // namespace

std::string format_table(const std::vector<Row>& rows) {
  std::vector<std::vector<std::string>> cells{{"figure", "value", "baseline", "ratio", "target", "pass"}};
  for (const auto& r : rows) {
    char ratio[32] = "-";
    if (r.ratio) std::snprintf(ratio, sizeof ratio, "%.2fx", *r.ratio);
    cells.push_back({r.name, with_unit(r.value, r.unit), r.baseline ? with_unit(*r.baseline, r.unit) : "-", ratio,
                     r.target.empty() ? "-" : r.target, !r.pass ? "-" : (*r.pass ? "PASS" : "FAIL")});
  }
  std::vector<size_t> width(cells[0].size(), 0);
  for (const auto& line : cells) {
    for (size_t i = 0; i < line.size(); ++i) width[i] = std::max(width[i], line[i].size());
  }
  std::ostringstream out;
  for (size_t l = 0; l < cells.size(); ++l) {
    for (size_t i = 0; i < cells[l].size(); ++i) out << pad(cells[l][i], i + 1 < cells[l].size() ? width[i] + 2 : 0);
    out << "\n";
    if (l == 0) {
      size_t total = 0;
      for (size_t w : width) total += w + 2;
      out << std::string(total - 2, '-') << "\n";
    }
  }
  bool any_note = false;
  for (const auto& r : rows) {
    if (r.note.empty()) continue;
    if (!any_note) out << "\nnotes:\n";
    any_note = true;
    out << "  " << r.name << ": " << r.note << "\n";
  }
  return out.str();
}

std::string format_json(const std::vector<Row>& rows) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json j{{"name", r.name}, {"value", r.value}, {"unit", r.unit}};
    j["baseline"] = r.baseline ? nlohmann::json(*r.baseline) : nlohmann::json(nullptr);
    j["ratio"] = r.ratio ? nlohmann::json(*r.ratio) : nlohmann::json(nullptr);
    j["target"] = r.target.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.target);
    j["pass"] = r.pass ? nlohmann::json(*r.pass) : nlohmann::json(nullptr);
    if (!r.note.empty()) j["note"] = r.note;
    list.push_back(std::move(j));
  }
  return list.dump(2) + "\n";
}

}  // namespace polyphony::bench
