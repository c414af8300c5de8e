// The subcommands of `polyphony`, `polyphony-worker` and `polyphony-submit`.
#pragma once

#include <string>
#include <vector>

#include "cli/command_line.h"
#include "common/config.h"

namespace polyphony::cli {

// Exit codes: 0 success, 1 the operation failed, 2 bad usage or configuration.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// Entry points of the three programs; `args` excludes the program name.
int polyphony_main(const std::vector<std::string>& args);
int worker_main(const std::vector<std::string>& args);
int submit_main(const std::vector<std::string>& args);

// The programs' command lines: every command and flag, defined once.
CommandLine polyphony_command_line();
CommandLine worker_command_line();
CommandLine submit_command_line();

// Each defines its commands on `polyphony`'s command line (the program's root command).
void add_init(Command& polyphony);
void add_serve(Command& polyphony);
void add_spawn(Command& polyphony);
void add_status(Command& polyphony);   // status, show, logs
void add_control(Command& polyphony);  // cancel, retry
void add_cleanup(Command& polyphony);  // cleanup, image build
void add_route(Command& polyphony);
void add_config(Command& polyphony);
void add_workers(Command& polyphony);
void add_doctor(Command& polyphony);
void add_keys(Command& polyphony);
void add_mcp(Command& polyphony);

// The name this program calls itself in its messages: "polyphony" unless a main sets
// another ("polyphony-worker", "polyphony-submit").
void set_program_name(const std::string& name);
const std::string& program_name();

// Prints "<program>: <where>: <message>" to stderr and returns the exit code for the error.
int report(const Error& e);

// True while a `polyphony serve` holds this home's serve lock.
bool serve_is_running(const std::filesystem::path& home);

// Loads every file under POLYPHONY_HOME; on error prints it and returns nullopt.
std::optional<Settings> load_or_report();

// "3s", "5m", "2h", "4d" since `then_ms`.
std::string age(int64_t then_ms, int64_t now_ms);
// For people: "12s ago", "3m ago", "2h ago", "4d ago"; "in 5m" for a time still to come; "-"
// when `then_ms` is 0 (never).
std::string ago(int64_t then_ms, int64_t now_ms);
// For programs: "2026-11-25T18:00:01Z" (ISO 8601, UTC, whole seconds); "" when `ms` is 0.
std::string iso_utc(int64_t ms);

}  // namespace polyphony::cli
