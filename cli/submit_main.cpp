// polyphony-submit: submits tasks to a coordinator from any machine.
#include "cli/cli.h"

int main(int argc, char** argv) {
  return polyphony::cli::submit_main(std::vector<std::string>(argv + 1, argv + argc));
}
