// polyphony-worker: the worker-agent for a Docker host.
#include "cli/cli.h"

int main(int argc, char** argv) {
  return polyphony::cli::worker_main(std::vector<std::string>(argv + 1, argv + argc));
}
