// `polyphony <command>`: finds the subcommand and runs it.
#include <iostream>

#include "cli/cli.h"
#include "common/data_dir.h"
#include "common/log.h"

namespace polyphony::cli {

namespace {

int print_version(const Args&) {
  auto data = data_dir();  // image build's docker/ files: under the install prefix, else the source tree
  std::cout << "polyphony " << POLYPHONY_VERSION << "\n"
            << "data: " << (data ? data->string() : data.error().message) << "\n";
  return kExitOk;
}

// `polyphony completion bash`: the completion script of the three programs.
int print_bash_completion(const Args&) {
  std::cout << polyphony_command_line().bash_completion() << "\n"
            << worker_command_line().bash_completion() << "\n"
            << submit_command_line().bash_completion();
  return kExitOk;
}

// `polyphony help [COMMAND...]`: the help of the program or of the command named.
int print_help(const Args& args) {
  const CommandLine line = polyphony_command_line();
  const std::string text = line.help(args.positional);
  if (text.empty()) {
    std::string name;
    for (const auto& w : args.positional) name += (name.empty() ? "" : " ") + w;
    return report(make_error("usage", "unknown command '" + name + "' (`polyphony --help` lists them)", "help"));
  }
  std::cout << text;
  return kExitOk;
}

}  // namespace

CommandLine polyphony_command_line() {
  // With no command: the usage on stderr, a usage error; --version prints the version.
  CommandLine line("polyphony", "Runs coding agents in containers, one per task, and lands only verified work.",
                   [](const Args& args) {
                     if (args.has("version")) return print_version(args);
                     std::cerr << polyphony_command_line().help();
                     return kExitUsage;
                   });
  Command root = line.root();
  root.flag("--version", "print the version and where its data files (docker/) are");
  for (auto add : {add_init, add_serve, add_spawn, add_status, add_control, add_cleanup, add_route, add_config,
                   add_workers, add_doctor, add_keys, add_mcp}) {
    add(root);
  }
  root.add("version", "print the version and where its data files (docker/) are", print_version);
  root.add("completion", "print a shell completion script", nullptr)
      .add("bash",
           "the bash completion of polyphony, polyphony-worker and polyphony-submit: "
           "source <(polyphony completion bash)",
           print_bash_completion);
  root.add("help", "print the help of the program or of a command", print_help)
      .positionals("COMMAND", "the command, e.g. status or image build");
  return line;
}

int polyphony_main(const std::vector<std::string>& args) {
  init_logging("info");
  return polyphony_command_line().run(args);
}

namespace {
std::string g_program_name = "polyphony";
}  // namespace

void set_program_name(const std::string& name) {
  g_program_name = name;
}

const std::string& program_name() {
  return g_program_name;
}

int report(const Error& e) {
  std::cerr << g_program_name << ": " << e.to_string() << "\n";
  return (e.code == "usage" || e.code == "config") ? kExitUsage : kExitFailed;
}

std::optional<Settings> load_or_report() {
  auto s = load_settings(polyphony_home());
  if (!s.ok()) {
    report(s.error());
    return std::nullopt;
  }
  return *s;
}

}  // namespace polyphony::cli
