// polyphony-runner: PID 1 of a task container, started by the worker (see runner/runner.h).
#include <cstdio>

#include "runner/runner.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fputs("usage: polyphony-runner SOCKET\n"
               "PID 1 of a Polyphony task container: the worker mounts and starts it.\n",
               stderr);
    return 64;
  }
  return polyphony::runner::serve(argv[1]);
}
