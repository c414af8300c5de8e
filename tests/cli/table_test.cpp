// The terminal table: width and colour rules, fitting, cutting and wrapping, given a width and
// a TTY flag.
#include <catch2/catch.hpp>

#include <sstream>

#include "cli/cli.h"
#include "cli/table.h"

using namespace polyphony::cli;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

const std::string kReason =
    "verify failed: `make test` exited with status 2 after the agent's third attempt, and the same tree failed before";

Table task_table() {
  Table t({{"ID", Overflow::kKeep}, {"STATE", Overflow::kKeep}, {"BRANCH"}, {"REASON", Overflow::kWrap, 12}});
  t.add_row({{"a1b2c3d4"}, {"BLOCKED", Colour::kRed}, {"polyphony/a1b2c3d4-fix-the-login-page-redirect"}, {kReason}});
  t.add_row({{"e5f6a7b8"}, {"LANDED", Colour::kGreen}, {"polyphony/e5f6a7b8-docs"}, {""}});
  return t;
}

}  // namespace

TEST_CASE("the width to fit comes from the terminal, else COLUMNS, else 80, and is unlimited off a terminal") {
  struct Case {
    bool tty;
    int ioctl_columns;
    const char* columns;
    size_t width;
  };
  const std::vector<Case> cases{
      {false, 120, "100", 0}, {true, 120, "100", 120}, {true, 0, "100", 100}, {true, 0, nullptr, 80},
      {true, 0, "", 80},      {true, 0, "wide", 80},   {true, 0, "0", 80},    {true, 0, "-5", 80},
  };
  for (const auto& c : cases) {
    INFO("tty " << c.tty << " ioctl " << c.ioctl_columns << " COLUMNS " << (c.columns ? c.columns : "(unset)"));
    CHECK(terminal_width(c.tty, c.ioctl_columns, c.columns) == c.width);
  }
}

TEST_CASE("colours are wanted only on a terminal without NO_COLOR and with a TERM other than dumb") {
  struct Case {
    bool tty;
    const char* no_color;
    const char* term;
    bool colour;
  };
  const std::vector<Case> cases{
      {true, nullptr, "xterm-256color", true},
      {true, nullptr, nullptr, true},
      {true, "", "xterm", true},
      {true, "1", "xterm", false},
      {true, "0", "xterm", false},
      {true, nullptr, "dumb", false},
      {false, nullptr, "xterm", false},
  };
  for (const auto& c : cases) {
    INFO("tty " << c.tty << " NO_COLOR " << (c.no_color ? c.no_color : "(unset)") << " TERM "
                << (c.term ? c.term : "(unset)"));
    CHECK(colour_wanted(c.tty, c.no_color, c.term) == c.colour);
  }
}

TEST_CASE("display width counts code points and ignores escape sequences") {
  CHECK(display_width("LANDED") == 6);
  CHECK(display_width("\x1b[32mLANDED\x1b[0m") == 6);
  CHECK(display_width("\x1b[1;31mx\x1b[0m y") == 3);
  CHECK(display_width("\x1b]0;title\x07ok") == 2);
  CHECK(display_width("héllo…") == 6);
  CHECK(strip_escapes("\x1b[32mLANDED\x1b[0m") == "LANDED");
  CHECK(paint("LANDED", Colour::kGreen, true) == "\x1b[32mLANDED\x1b[0m");
  CHECK(paint("LANDED", Colour::kGreen, false) == "LANDED");
}

TEST_CASE("text from outside can neither break a row nor send escape codes") {
  CHECK(printable("line one\nline two\ttab") == "line one line two tab");
  CHECK(printable("\x1b[2Jwiped") == " [2Jwiped");
  CHECK(printable("8-bit \xc2\x9b"
                  "31m csi") == "8-bit  31m csi");
  CHECK(printable("héllo") == "héllo");
}

TEST_CASE("truncation cuts at a code point and says so with an ellipsis") {
  CHECK(truncate_to("abcdef", 6) == "abcdef");
  CHECK(truncate_to("abcdef", 4) == "abc…");
  CHECK(truncate_to("ééééé", 3) == "éé…");
  CHECK(display_width(truncate_to("ééééé", 3)) == 3);
  CHECK(truncate_to("abc", 0).empty());
}

TEST_CASE("wrapping breaks at spaces, and cuts a word longer than the line") {
  CHECK(wrap_to("the quick brown fox", 10) == std::vector<std::string>{"the quick", "brown fox"});
  CHECK(wrap_to("abcdefghij klm", 4) == std::vector<std::string>{"abcd", "efgh", "ij", "klm"});
  CHECK(wrap_to("", 5) == std::vector<std::string>{""});
  for (const auto& line : wrap_to(kReason, 17)) CHECK(display_width(line) <= 17);
}

TEST_CASE("fitting shrinks the widest shrinkable column first and never a kept one") {
  const std::vector<Column> columns{{"ID", Overflow::kKeep}, {"BRANCH"}, {"REASON", Overflow::kWrap}};
  auto widths = fit_widths(columns, {8, 30, 100}, 80, 2);
  CHECK(widths == std::vector<size_t>{8, 30, 38});  // the reason gave up its columns first
  widths = fit_widths(columns, {8, 30, 100}, 60, 2);
  CHECK(widths == std::vector<size_t>{8, 24, 24});  // then both, evenly
  CHECK(fit_widths(columns, {8, 30, 100}, 0, 2) == std::vector<size_t>{8, 30, 100});
  // Every shrinkable column at its header's width: the table stays wider than asked.
  widths = fit_widths(columns, {8, 30, 100}, 10, 2);
  CHECK(widths == std::vector<size_t>{8, 6, 6});
}

TEST_CASE("a terminal too narrow for every column leaves out the hideable ones, lowest hide order first") {
  const std::vector<Column> columns{{"ID", Overflow::kKeep},
                                    {"SCORE", Overflow::kKeep, 0, 1},
                                    {"BRANCH", Overflow::kTruncate, 20, 2},
                                    {"REASON", Overflow::kWrap, 30}};
  const std::vector<size_t> natural{8, 5, 60, 150};
  CHECK(fit_widths(columns, natural, 80, 2) == std::vector<size_t>{8, 5, 30, 31});  // all fit at their minimum
  CHECK(fit_widths(columns, natural, 64, 2) == std::vector<size_t>{8, 0, 22, 30});  // the score is left out
  CHECK(fit_widths(columns, natural, 60, 2) == std::vector<size_t>{8, 0, 0, 50});   // and then the branch
  CHECK(fit_widths(columns, natural, 20, 2) == std::vector<size_t>{8, 0, 0, 30});   // none left to leave out
  CHECK(fit_widths(columns, natural, 0, 2) == natural);

  Table t(columns);
  t.add_row({{"a1b2c3d4"}, {"7"}, {"polyphony/a1b2c3d4-fix-the-login-page-redirect"}, {kReason}});
  const std::string out = t.render(Terminal{true, 60, false});
  INFO(out);
  CHECK(out.find("SCORE") == std::string::npos);
  CHECK(out.find("BRANCH") == std::string::npos);
  CHECK(out.rfind("ID        REASON\n", 0) == 0);
  for (const auto& line : lines_of(out)) CHECK(display_width(line) <= 60);
}

TEST_CASE("on a narrow terminal every line fits, the id stays whole and the reason wraps whole") {
  Terminal term{true, 60, false};
  const std::string out = task_table().render(term);
  INFO(out);
  for (const auto& line : lines_of(out)) {
    CHECK(display_width(line) <= 60);
    CHECK(line.back() != ' ');
  }
  CHECK(out.find("a1b2c3d4") != std::string::npos);
  CHECK(out.find("e5f6a7b8") != std::string::npos);
  std::stringstream words(kReason);
  for (std::string word; words >> word;) CHECK(out.find(word) != std::string::npos);  // wrapped, nothing cut
  CHECK(out.find("…") != std::string::npos);                                          // the branch was cut
  CHECK(out.find('\x1b') == std::string::npos);
}

TEST_CASE("with colours the states are painted and the widths still ignore the escape codes") {
  Terminal term{true, 60, true};
  const std::string out = task_table().render(term);
  CHECK(out.find("\x1b[31mBLOCKED\x1b[0m") != std::string::npos);
  CHECK(out.find("\x1b[32mLANDED\x1b[0m") != std::string::npos);
  for (const auto& line : lines_of(out)) CHECK(display_width(line) <= 60);
  // The same layout as without colours, escape codes aside.
  CHECK(strip_escapes(out) == task_table().render(Terminal{true, 60, false}));
}

TEST_CASE("off a terminal nothing is cut or coloured and each row stays on one line") {
  const std::string out = task_table().render(Terminal{});
  const auto lines = lines_of(out);
  REQUIRE(lines.size() == 3);
  CHECK(lines[1].find(kReason) != std::string::npos);
  CHECK(lines[1].find("polyphony/a1b2c3d4-fix-the-login-page-redirect") != std::string::npos);
  CHECK(out.find('\x1b') == std::string::npos);
  CHECK(lines[0].rfind("ID        STATE    BRANCH", 0) == 0);  // columns two spaces apart
}

TEST_CASE("ages read as how long ago, and times for programs as ISO 8601 UTC") {
  const int64_t now = 1764698400000;  // 2025-12-02T18:00:00Z
  struct Case {
    int64_t then;
    std::string text;
  };
  const std::vector<Case> cases{
      {now - 12000, "12s ago"},
      {now - 3 * 60000, "3m ago"},
      {now - 2 * 3600000, "2h ago"},
      {now - 4 * 86400000LL, "4d ago"},
      {now + 500, "0s ago"},
      {now + 5 * 60000, "in 5m"},
      {0, "-"},
  };
  for (const auto& c : cases) CHECK(ago(c.then, now) == c.text);
  CHECK(iso_utc(now) == "2025-12-02T18:00:00Z");
  CHECK(iso_utc(now + 999) == "2025-12-02T18:00:00Z");
  CHECK(iso_utc(0).empty());
}
