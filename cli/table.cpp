// Text tables fitted to the terminal, and the colour and width rules they follow.
#include "cli/table.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace polyphony::cli {

namespace {

constexpr size_t kGap = 2;
constexpr char kEsc = '\x1b';

bool is_continuation(unsigned char c) {
  return (c & 0xC0) == 0x80;
}

// Bytes of the escape sequence starting at text[i] (an ESC).
size_t escape_length(std::string_view text, size_t i) {
  if (i + 1 >= text.size()) return 1;
  const char kind = text[i + 1];
  size_t j = i + 2;
  if (kind == '[') {  // CSI: parameters, then one final byte in 0x40..0x7E
    while (j < text.size() && !(text[j] >= 0x40 && text[j] <= 0x7E)) ++j;
    return std::min(j + 1, text.size()) - i;
  }
  if (kind == ']') {  // OSC: up to BEL or ESC backslash
    while (j < text.size() && text[j] != '\a' && !(text[j] == kEsc && j + 1 < text.size() && text[j + 1] == '\\')) ++j;
    if (j < text.size()) j += text[j] == '\a' ? 1 : 2;
    return std::min(j, text.size()) - i;
  }
  return 2;
}

// Bytes of the UTF-8 code point starting at text[i].
size_t code_point_length(std::string_view text, size_t i) {
  size_t n = 1;
  while (i + n < text.size() && is_continuation(static_cast<unsigned char>(text[i + n]))) ++n;
  return n;
}

const char* sgr(Colour colour) {
  switch (colour) {
    case Colour::kRed:
      return "\x1b[31m";
    case Colour::kGreen:
      return "\x1b[32m";
    case Colour::kYellow:
      return "\x1b[33m";
    case Colour::kBlue:
      return "\x1b[34m";
    case Colour::kMagenta:
      return "\x1b[35m";
    case Colour::kCyan:
      return "\x1b[36m";
    case Colour::kDim:
      return "\x1b[2m";
    case Colour::kBold:
      return "\x1b[1m";
    case Colour::kNone:
      return "";
  }
  return "";
}

std::string rtrim(std::string s) {
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

}  // namespace

size_t terminal_width(bool tty, int ioctl_columns, const char* columns_env) {
  if (!tty) return 0;
  if (ioctl_columns > 0) return static_cast<size_t>(ioctl_columns);
  if (columns_env != nullptr && *columns_env != '\0') {
    char* end = nullptr;
    const long n = std::strtol(columns_env, &end, 10);
    if (*end == '\0' && n > 0 && n < 100000) return static_cast<size_t>(n);
  }
  return 80;
}

bool colour_wanted(bool tty, const char* no_color_env, const char* term_env) {
  if (!tty) return false;
  if (no_color_env != nullptr && *no_color_env != '\0') return false;
  return term_env == nullptr || std::string_view(term_env) != "dumb";
}

Terminal stdout_terminal() {
  Terminal t;
  t.tty = isatty(STDOUT_FILENO) == 1;
  int columns = 0;
  winsize ws{};
  if (t.tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0) columns = ws.ws_col;
  t.width = terminal_width(t.tty, columns, std::getenv("COLUMNS"));
  t.colour = colour_wanted(t.tty, std::getenv("NO_COLOR"), std::getenv("TERM"));
  return t;
}

size_t display_width(std::string_view text) {
  size_t width = 0;
  for (size_t i = 0; i < text.size();) {
    if (text[i] == kEsc) {
      i += escape_length(text, i);
      continue;
    }
    ++width;
    i += code_point_length(text, i);
  }
  return width;
}

std::string strip_escapes(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    if (text[i] == kEsc) {
      i += escape_length(text, i);
      continue;
    }
    out += text[i++];
  }
  return out;
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    // C1 controls (U+0080..U+009F, as UTF-8 C2 80..C2 9F) include the 8-bit CSI.
    if (c == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) <= 0x9F &&
        is_continuation(static_cast<unsigned char>(text[i + 1]))) {
      out += ' ';
      ++i;
    } else {
      out += (c < 0x20 || c == 0x7F) ? ' ' : static_cast<char>(c);
    }
  }
  return out;
}

std::string truncate_to(std::string_view text, size_t width) {
  if (display_width(text) <= width) return std::string(text);
  if (width == 0) return "";
  std::string out;
  size_t used = 0;
  for (size_t i = 0; i < text.size() && used + 1 < width; ++used) {
    const size_t n = code_point_length(text, i);
    out += text.substr(i, n);
    i += n;
  }
  return out + "…";
}

std::vector<std::string> wrap_to(std::string_view text, size_t width) {
  std::vector<std::string> lines;
  std::string line;
  size_t line_width = 0;
  auto flush = [&] {
    lines.push_back(rtrim(line));
    line.clear();
    line_width = 0;
  };
  for (size_t i = 0; i < text.size();) {
    const size_t space = text.find(' ', i);
    std::string_view word = text.substr(i, space == std::string_view::npos ? std::string_view::npos : space - i);
    i = space == std::string_view::npos ? text.size() : space + 1;
    if (word.empty()) continue;
    size_t w = display_width(word);
    if (line_width > 0 && line_width + 1 + w > width) flush();
    while (w > width && width > 0) {  // a word longer than a line is cut at a code point
      size_t bytes = 0;
      for (size_t taken = 0; taken < width - line_width; ++taken) bytes += code_point_length(word, bytes);
      line += word.substr(0, bytes);
      flush();
      word = word.substr(bytes);
      w = display_width(word);
    }
    if (line_width > 0) {
      line += ' ';
      ++line_width;
    }
    line += word;
    line_width += w;
  }
  if (!line.empty() || lines.empty()) flush();
  return lines;
}

std::string paint(std::string_view text, Colour colour, bool enabled) {
  if (!enabled || colour == Colour::kNone || text.empty()) return std::string(text);
  return std::string(sgr(colour)) + std::string(text) + "\x1b[0m";
}

namespace {

size_t least_width(const Column& c, size_t natural) {
  if (c.overflow == Overflow::kKeep) return natural;
  return std::min(natural, c.min_width > 0 ? c.min_width : display_width(c.header));
}

// Total width of the shown columns (width > 0) with gaps between them.
size_t total_width(const std::vector<size_t>& widths, size_t gap) {
  size_t total = 0, shown = 0;
  for (size_t w : widths) {
    total += w;
    shown += w > 0;
  }
  return total + (shown > 0 ? gap * (shown - 1) : 0);
}

// Leaves out hideable columns, lowest hide_order first, until the rest fit at their minimum.
void hide_columns(const std::vector<Column>& columns, std::vector<size_t>& widths, size_t width, size_t gap) {
  std::vector<size_t> least;
  for (size_t c = 0; c < columns.size(); ++c) least.push_back(least_width(columns[c], widths[c]));
  std::vector<size_t> order;
  for (size_t c = 0; c < columns.size(); ++c) {
    if (columns[c].hide_order > 0) order.push_back(c);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return columns[a].hide_order < columns[b].hide_order; });
  for (size_t c : order) {
    if (total_width(least, gap) <= width) return;
    least[c] = 0;
    widths[c] = 0;
  }
}

}  // namespace

std::vector<size_t> fit_widths(const std::vector<Column>& columns, const std::vector<size_t>& natural, size_t width,
                               size_t gap) {
  std::vector<size_t> widths = natural;
  if (width == 0 || widths.empty()) return widths;
  hide_columns(columns, widths, width, gap);
  size_t total = total_width(widths, gap);
  while (total > width) {
    size_t widest = widths.size();
    for (size_t c = 0; c < widths.size(); ++c) {
      if (widths[c] == 0 || widths[c] <= least_width(columns[c], natural[c])) continue;
      if (widest == widths.size() || widths[c] > widths[widest]) widest = c;
    }
    if (widest == widths.size()) break;
    --widths[widest];
    --total;
  }
  return widths;
}

void Table::add_row(std::vector<Cell> cells) {
  cells.resize(columns_.size());
  for (auto& cell : cells) cell.text = printable(cell.text);
  rows_.push_back(std::move(cells));
}

std::string Table::render(const Terminal& term) const {
  std::vector<size_t> natural;
  for (const auto& column : columns_) natural.push_back(display_width(column.header));
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size(); ++c) natural[c] = std::max(natural[c], display_width(row[c].text));
  }
  const std::vector<size_t> widths = fit_widths(columns_, natural, term.width, kGap);
  // One row: each cell cut or wrapped to its width, then laid out line by line.
  auto render_row = [&](const std::vector<Cell>& row) {
    std::vector<std::vector<std::string>> parts;
    size_t height = 1;
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string& text = row[c].text;
      if (widths[c] == 0)
        parts.push_back({});
      else if (display_width(text) <= widths[c])
        parts.push_back({text});
      else if (columns_[c].overflow == Overflow::kWrap)
        parts.push_back(wrap_to(text, widths[c]));
      else
        parts.push_back({truncate_to(text, widths[c])});
      height = std::max(height, parts.back().size());
    }
    std::string out;
    for (size_t line = 0; line < height; ++line) {
      std::string text;
      for (size_t c = 0; c < row.size(); ++c) {
        if (widths[c] == 0) continue;  // left out
        const std::string part = line < parts[c].size() ? parts[c][line] : "";
        text += paint(part, row[c].colour, term.colour);
        text += std::string(widths[c] - std::min(widths[c], display_width(part)) + kGap, ' ');
      }
      out += rtrim(std::move(text)) + "\n";
    }
    return out;
  };
  std::vector<Cell> header;
  for (const auto& column : columns_) header.push_back({column.header, Colour::kBold});
  std::string out = render_row(header);
  for (const auto& row : rows_) out += render_row(row);
  return out;
}

}  // namespace polyphony::cli
