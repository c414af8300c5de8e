// Who the commits Polyphony itself makes (the agent's work committed, a rebase) are by.
#pragma once

#include <string>

namespace polyphony {

struct CommitIdentity {
  std::string name = "Polyphony";
  std::string email = "polyphony@localhost";
};

}  // namespace polyphony
