// The command lines of the programs: each command and its flags defined once, on CLI11 apps, and
// from that one definition the parse, `--help`, the top-level command list and the bash
// completion script. A command's code reads what was given as Args.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace CLI {
class App;
}  // namespace CLI

namespace polyphony::cli {

// What the command line gave one command: its positional arguments, the values of its flags
// (without dashes: "repo" for --repo), and the switches present.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;  // flag -> values, in the order given
  std::set<std::string> switches;                          // boolean flags present

  bool has(const std::string& flag) const { return switches.count(flag) || values.count(flag); }
  std::string get(const std::string& flag, const std::string& fallback = "") const {
    auto it = values.find(flag);
    return it == values.end() || it->second.empty() ? fallback : it->second.back();
  }
  std::vector<std::string> all(const std::string& flag) const {
    auto it = values.find(flag);
    return it == values.end() ? std::vector<std::string>{} : it->second;
  }
};

// Runs a command with what was given; returns the exit code (cli.h kExit*).
using Handler = std::function<int(const Args&)>;

class CommandLine;

// One command being defined: its flags, positional arguments, help text and subcommands.
// Every command answers -h and --help.
class Command {
 public:
  Command(CommandLine& line, CLI::App& app) : line_(&line), app_(&app) {}

  // A switch: "--json", or with a short name "-f,--follow".
  Command& flag(const std::string& names, const std::string& help);
  // A flag that takes one value ("--repo R", "--repo=R"), given at most once.
  Command& option(const std::string& names, const std::string& value_name, const std::string& help);
  // A flag that takes one value and may be given again, each value kept (--label L --label M).
  Command& repeatable(const std::string& names, const std::string& value_name, const std::string& help);
  // Positional arguments: any number of them (the command checks how many it takes). An argument
  // that starts with '-' is one only after `--`.
  Command& positionals(const std::string& name, const std::string& help);
  // Text printed after the flags in --help.
  Command& footer(const std::string& text);
  // A subcommand; `handler` runs when it is the last command named.
  Command add(const std::string& name, const std::string& description, Handler handler);

  CLI::App& app() const { return *app_; }

 private:
  CommandLine* line_;
  CLI::App* app_;
};

// A program's whole command line.
class CommandLine {
 public:
  // `handler` runs when no subcommand is named.
  CommandLine(const std::string& program, const std::string& description, Handler handler);
  ~CommandLine();
  CommandLine(CommandLine&&) noexcept;
  CommandLine& operator=(CommandLine&&) noexcept;

  Command root();

  // Parses `argv` (without the program name) and runs the command it names. --help and -h print
  // that command's help on stdout (exit 0); a usage error is printed as "<program>: <flag>:
  // <what>" on stderr (exit 2), naming the flag or the argument at fault.
  int run(const std::vector<std::string>& argv);

  // The help of the command at `path` (empty: the program's), as --help prints it.
  std::string help(const std::vector<std::string>& path = {}) const;

  // A bash script that completes this program's commands and flags (`complete -F`).
  std::string bash_completion() const;

  // Every command, as the words that name it after the program ({} for the program itself,
  // {"image", "build"}), with the long flags it takes ("--json"), -h/--help left out.
  struct CommandFlags {
    std::vector<std::string> path;
    std::vector<std::string> flags;
  };
  std::vector<CommandFlags> commands() const;

  const std::string& program() const;

 private:
  friend class Command;
  std::unique_ptr<CLI::App> app_;
  std::map<const CLI::App*, Handler> handlers_;
};

}  // namespace polyphony::cli
