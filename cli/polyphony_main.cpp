// polyphony: the command-line client and, with `serve`, the coordinator.
#include "cli/cli.h"

int main(int argc, char** argv) {
  return polyphony::cli::polyphony_main(std::vector<std::string>(argv + 1, argv + argc));
}
