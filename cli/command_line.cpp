// The command lines of the programs, on CLI11: definitions, parsing with errors naming the flag,
// help, and the bash completion script generated from the same definitions.
#include "cli/command_line.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <sstream>

#include "cli/cli.h"

namespace polyphony::cli {

namespace {

// The long name of a flag with its dashes ("--repo"), else its short one ("-f").
std::string flag_name(const CLI::Option& o) {
  if (!o.get_lnames().empty()) return "--" + o.get_lnames().front();
  return o.get_snames().empty() ? o.get_name() : "-" + o.get_snames().front();
}

// The key Args uses for a flag: its name without dashes.
std::string flag_key(const CLI::Option& o) {
  const std::string name = flag_name(o);
  return name.substr(name.find_first_not_of('-'));
}

bool is_switch(const CLI::Option& o) {
  return o.get_type_size() == 0;
}

// The options a command takes, in the order defined, -h/--help left out.
std::vector<const CLI::Option*> flags_of(const CLI::App& app) {
  return app.get_options([&](const CLI::Option* o) { return !o->get_positional() && o != app.get_help_ptr(); });
}

std::vector<const CLI::App*> subcommands_of(const CLI::App& app) {
  return app.get_subcommands({});
}

// The words that name `app` after the program ({"image", "build"}); {} for the program itself.
std::vector<std::string> command_words(const CLI::App& app) {
  std::vector<std::string> words;
  for (const CLI::App* a = &app; a->get_parent() != nullptr; a = a->get_parent()) {
    words.insert(words.begin(), a->get_name());
  }
  return words;
}

std::string command_path(const CLI::App& app) {
  std::string path;
  for (const auto& w : command_words(app)) path += (path.empty() ? "" : " ") + w;
  return path;
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : ", ") + w;
  return out;
}

// CLI11 starts its messages about a flag with the flag's name: "--repo: 1 required TEXT
// missing", "--repo: At Most 1 required but received 2", "json was given a disallowed flag
// override". Said again in our words, naming the flag.
Error usage_error(const CLI::ParseError& e) {
  const std::string m = e.what();
  std::string name = m.substr(0, m.find_first_of(": "));
  if (!name.empty() && name.front() != '-') name = (name.size() == 1 ? "-" : "--") + name;
  if (m.find(" required ") != std::string::npos && m.find(" missing") != std::string::npos) {
    return make_error("usage", name + " needs a value", name);
  }
  if (m.find("At Most") != std::string::npos) return make_error("usage", name + " given more than once", name);
  if (m.find("flag override") != std::string::npos) return make_error("usage", name + " takes no value", name);
  return make_error("usage", m);
}

// An argument no definition took: an unknown flag, an unknown command, or an argument given to
// a command that takes none. `flag_like`: it came before `--`, so it may be a flag.
Error leftover_error(const CLI::App& app, const std::string& word, bool flag_like = true) {
  const std::string path = command_path(app);
  const std::string command = path.empty() ? app.get_name() : path;
  if (flag_like && word.size() > 1 && word.front() == '-') {
    const std::string name = word.substr(0, word.find('='));
    std::vector<std::string> known;
    for (const auto* o : flags_of(app)) known.push_back(flag_name(*o));
    return make_error("usage",
                      "unknown option " + name + " (" + command +
                          (known.empty() ? " takes no options)" : " takes: " + joined(known) + ")"),
                      name);
  }
  const auto subs = subcommands_of(app);
  if (!subs.empty()) {
    std::vector<std::string> names;
    for (const auto* s : subs) names.push_back(s->get_name());
    return make_error("usage", "unknown command '" + word + "' (" + command + " takes: " + joined(names) + ")", path);
  }
  return make_error("usage", "unexpected argument '" + word + "'", path);
}

bool takes_positionals(const CLI::App& app) {
  return !app.get_options([](const CLI::Option* o) { return o->get_positional(); }).empty();
}

// What the parse gave `app`.
Args args_of(const CLI::App& app) {
  Args out;
  for (const auto* o : app.get_options()) {
    if (o == app.get_help_ptr() || o->count() == 0) continue;
    if (o->get_positional()) {
      out.positional = o->results();
    } else if (is_switch(*o)) {
      out.switches.insert(flag_key(*o));
    } else {
      out.values[flag_key(*o)] = o->results();
    }
  }
  return out;
}

// The command named last: the program's app or the deepest subcommand given.
CLI::App* named_command(CLI::App& root) {
  CLI::App* app = &root;
  while (!app->get_subcommands().empty()) app = app->get_subcommands().front();
  return app;
}

const CLI::App* find_command(const CLI::App& root, const std::vector<std::string>& path) {
  const CLI::App* app = &root;
  for (const auto& word : path) {
    const CLI::App* next = nullptr;
    for (const auto* s : subcommands_of(*app)) {
      if (s->get_name() == word) next = s;
    }
    if (next == nullptr) return nullptr;
    app = next;
  }
  return app;
}

void configure(CLI::App& app) {
  app.allow_extras();  // left over arguments are reported by us, naming them
  app.require_subcommand(0, 1);
}

}  // namespace

Command& Command::flag(const std::string& names, const std::string& help) {
  app_->add_flag(names, help)->disable_flag_override();
  return *this;
}

Command& Command::option(const std::string& names, const std::string& value_name, const std::string& help) {
  app_->add_option(names, help)->type_name(value_name);
  return *this;
}

Command& Command::repeatable(const std::string& names, const std::string& value_name, const std::string& help) {
  app_->add_option(names, help)->type_name(value_name + " ...")->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  return *this;
}

Command& Command::positionals(const std::string& name, const std::string& help) {
  app_->add_option(name, help)->type_name("")->expected(0, -1)->allow_extra_args();
  return *this;
}

Command& Command::footer(const std::string& text) {
  app_->footer(text);
  return *this;
}

Command Command::add(const std::string& name, const std::string& description, Handler handler) {
  CLI::App* sub = app_->add_subcommand(name, description);
  configure(*sub);
  line_->handlers_[sub] = std::move(handler);
  return Command(*line_, *sub);
}

CommandLine::CommandLine(const std::string& program, const std::string& description, Handler handler)
    : app_(std::make_unique<CLI::App>(description, program)) {
  app_->set_help_flag("-h,--help", "print this help and exit");
  app_->get_formatter()->column_width(30);
  configure(*app_);
  handlers_[app_.get()] = std::move(handler);
}

CommandLine::~CommandLine() = default;
CommandLine::CommandLine(CommandLine&&) noexcept = default;
CommandLine& CommandLine::operator=(CommandLine&&) noexcept = default;

Command CommandLine::root() {
  return Command(*this, *app_);
}

const std::string& CommandLine::program() const {
  return app_->get_name();
}

int CommandLine::run(const std::vector<std::string>& argv) {
  set_program_name(program());  // in every message
  app_->clear();
  // `--` ends the flags: what follows are positional arguments of the command named last, even
  // those that start with '-'. (CLI11 2.1 hands them to the parent command when the subcommand
  // has no positional argument still required, so they are set aside here.)
  const auto mark = std::find(argv.begin(), argv.end(), "--");
  const std::vector<std::string> after_mark(mark == argv.end() ? mark : mark + 1, argv.end());
  std::vector<std::string> reversed(std::make_reverse_iterator(mark), argv.rend());  // CLI11 takes them last first
  try {
    app_->parse(reversed);
  } catch (const CLI::CallForHelp&) {
    std::cout << app_->help();  // of the command named last
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    return report(usage_error(e));
  }
  CLI::App* command = named_command(*app_);
  for (const CLI::App* app = command; app != nullptr; app = app->get_parent()) {
    const auto left = app->remaining();
    if (!left.empty()) return report(leftover_error(*app, left.front()));
  }
  Args args = args_of(*command);
  if (!after_mark.empty()) {
    if (!takes_positionals(*command)) return report(leftover_error(*command, after_mark.front(), false));
    args.positional.insert(args.positional.end(), after_mark.begin(), after_mark.end());
  }
  const Handler& handler = handlers_.at(command);
  if (!handler) {
    // A command that only groups others (`image`, `config`): which one?
    std::cerr << help(command_words(*command));
    std::vector<std::string> names;
    for (const auto* s : subcommands_of(*command)) names.push_back(s->get_name());
    const std::string what = command->get_name() + " takes a command: " + joined(names);
    return report(make_error("usage", what, command_path(*command)));
  }
  try {
    return handler(args);
  } catch (const std::exception& e) {
    std::cerr << program_name() << ": internal error: " << e.what() << "\n";
    return kExitFailed;
  }
}

std::string CommandLine::help(const std::vector<std::string>& path) const {
  const CLI::App* app = find_command(*app_, path);
  if (app == nullptr) return "";
  if (app == app_.get()) return app->help();
  std::string prev = program();
  for (size_t i = 0; i + 1 < path.size(); ++i) prev += " " + path[i];
  return app->help(prev);
}

std::vector<CommandLine::CommandFlags> CommandLine::commands() const {
  std::vector<CommandFlags> out;
  std::function<void(const CLI::App&, std::vector<std::string>)> walk = [&](const CLI::App& app,
                                                                            std::vector<std::string> path) {
    CommandFlags c{path, {}};
    for (const auto* o : flags_of(app)) c.flags.push_back(flag_name(*o));
    out.push_back(std::move(c));
    for (const auto* s : subcommands_of(app)) {
      auto sub = path;
      sub.push_back(s->get_name());
      walk(*s, sub);
    }
  };
  walk(*app_, {});
  return out;
}

namespace {

// A bash function body's case arm: "image build") echo "--force --agents" ;;
std::string case_arm(const std::string& path, const std::string& words) {
  return "    \"" + path + "\") echo \"" + words + "\" ;;\n";
}

}  // namespace

std::string CommandLine::bash_completion() const {
  std::string fn = "_" + program();
  std::replace(fn.begin(), fn.end(), '-', '_');
  std::string subcommands, flags, valued;
  for (const auto& c : commands()) {
    const CLI::App* app = find_command(*app_, c.path);
    std::string path, subs, words = "--help -h";
    for (const auto& w : c.path) path += (path.empty() ? "" : " ") + w;
    for (const auto* s : subcommands_of(*app)) subs += (subs.empty() ? "" : " ") + s->get_name();
    for (const auto* o : flags_of(*app)) {
      for (const auto& l : o->get_lnames()) words += " --" + l;
      for (const auto& n : o->get_snames()) words += " -" + n;
      if (is_switch(*o)) continue;
      for (const auto& l : o->get_lnames()) valued += "    \"" + path + " --" + l + "\") return 0 ;;\n";
      for (const auto& n : o->get_snames()) valued += "    \"" + path + " -" + n + "\") return 0 ;;\n";
    }
    if (!subs.empty()) subcommands += case_arm(path, subs);
    flags += case_arm(path, words);
  }
  std::ostringstream out;
  out << "# bash completion for " << program() << ", generated from its command definitions by\n"
      << "# `polyphony completion bash`. Load it with: source <(polyphony completion bash)\n"
      << fn << "_commands() {\n  case \"$1\" in\n"
      << subcommands << "  esac\n}\n"
      << fn << "_flags() {\n  case \"$1\" in\n"
      << flags << "  esac\n}\n"
      << "# Whether flag $2 of command $1 takes a value.\n"
      << fn << "_takes_value() {\n  case \"$1 $2\" in\n"
      << valued << "  esac\n  return 1\n}\n"
      << fn << "() {\n"
      << "  local cur=${COMP_WORDS[COMP_CWORD]} path= word i\n"
      << "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
      << "    word=${COMP_WORDS[i]}\n"
      << "    if [[ $word == -* ]]; then\n"
      << "      [[ $word != *=* ]] && " << fn << "_takes_value \"$path\" \"$word\" && i=$((i + 1))\n"
      << "      continue\n"
      << "    fi\n"
      << "    [[ \" $(" << fn << "_commands \"$path\") \" == *\" $word \"* ]] && path=${path:+$path }$word\n"
      << "  done\n"
      << "  if ((COMP_CWORD > 1)) && " << fn << "_takes_value \"$path\" \"${COMP_WORDS[COMP_CWORD - 1]}\"; then\n"
      << "    COMPREPLY=()  # the flag's value: bash's default (file names)\n"
      << "    return\n"
      << "  fi\n"
      << "  local words\n"
      << "  words=$(" << fn << "_commands \"$path\")\n"
      << "  [[ $cur == -* || -z $words ]] && words=$(" << fn << "_flags \"$path\")\n"
      << "  mapfile -t COMPREPLY < <(compgen -W \"$words\" -- \"$cur\")\n"
      << "}\n"
      << "complete -o default -F " << fn << " " << program() << "\n";
  return out.str();
}

}  // namespace polyphony::cli
