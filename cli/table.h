// Text tables for the terminal: columns fitted to its width, colours that never reach a pipe.
// Everything but stdout_terminal() is pure, so the layout is tested given a width and a TTY flag.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace polyphony::cli {

// Where output goes. width 0: no limit (not a terminal: nothing is cut, lines stay whole).
struct Terminal {
  bool tty = false;
  size_t width = 0;
  bool colour = false;
};

// The width to fit: 0 when not a TTY; else the kernel's (TIOCGWINSZ, `ioctl_columns` > 0),
// else $COLUMNS when it is a positive number, else 80.
size_t terminal_width(bool tty, int ioctl_columns, const char* columns_env);
// Colours only on a TTY, never when NO_COLOR is set to anything non-empty (no-color.org) or
// TERM is "dumb".
bool colour_wanted(bool tty, const char* no_color_env, const char* term_env);
// stdout as it is now (isatty, TIOCGWINSZ, $COLUMNS, $NO_COLOR, $TERM).
Terminal stdout_terminal();

// Columns `text` takes on a terminal: one per UTF-8 code point; escape sequences (CSI
// "ESC [ ... final", and a lone ESC with the next byte) take none.
size_t display_width(std::string_view text);
// `text` without escape sequences.
std::string strip_escapes(std::string_view text);
// Control characters (newlines, tabs, ESC ...) each become one space: text from the state DB
// or an agent can neither break a row nor send escape codes to the terminal.
std::string printable(std::string_view text);
// At most `width` columns of `text` (no escape sequences): cut at a code point, ending with
// "…" when anything was cut.
std::string truncate_to(std::string_view text, size_t width);
// `text` in lines of at most `width` columns, broken at spaces where possible.
std::vector<std::string> wrap_to(std::string_view text, size_t width);

enum class Colour { kNone, kRed, kGreen, kYellow, kBlue, kMagenta, kCyan, kDim, kBold };
// `text` between the colour's SGR code and a reset when `enabled`, else `text` unchanged.
std::string paint(std::string_view text, Colour colour, bool enabled);

// What a column does when the table is wider than the terminal.
enum class Overflow {
  kKeep,      // never shortened (ids)
  kTruncate,  // cut, ending with "…"
  kWrap,      // continued on the next lines of the row
};

struct Column {
  std::string header;
  Overflow overflow = Overflow::kTruncate;
  size_t min_width = 0;  // shrinks no further; 0: the header's width
  // 0: always shown. Otherwise the column is left out when the table cannot fit with it (each
  // column at its minimum), those with the lowest hide_order first: on a narrow terminal the
  // widest column keeps room to be read rather than every column being cut to a few characters.
  int hide_order = 0;
};

struct Cell {
  std::string text;  // made printable() when the table renders it
  Colour colour = Colour::kNone;
};

// Widths of the columns for `natural` widths fitted into `width` (0: no limit) with `gap`
// spaces between columns. Columns that cannot fit at their minimum widths are left out (width
// 0) by hide_order; then, while too wide, the widest shrinkable column loses a column. When
// every shrinkable column is at its minimum and none can be left out, the table stays wider.
std::vector<size_t> fit_widths(const std::vector<Column>& columns, const std::vector<size_t>& natural, size_t width,
                               size_t gap);

class Table {
 public:
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // A row of one cell per column (missing cells are empty, extra ones are dropped).
  void add_row(std::vector<Cell> cells);
  bool empty() const { return rows_.empty(); }

  // The header and the rows, each line ending in "\n" without trailing spaces. Columns are
  // separated by two spaces; on a terminal the table fits term.width when its shrinkable
  // columns allow, and colours appear only when term.colour.
  std::string render(const Terminal& term) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<Cell>> rows_;
};

}  // namespace polyphony::cli
