// polyphony-runner: PID 1 of a task container, started by the worker (see runner/runner.h).
// It takes one argument and no flags: too little for the CLI library, and it links statically.
#include <cstdio>
#include <cstring>

#include "runner/runner.h"

namespace {

constexpr const char* kUsage =
    "usage: polyphony-runner SOCKET\n"
    "PID 1 of a Polyphony task container: the worker mounts and starts it, and talks to it on the\n"
    "unix socket SOCKET.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && (std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0)) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (argc != 2) {
    std::fputs(kUsage, stderr);
    return 64;
  }
  return polyphony::runner::serve(argv[1]);
}
