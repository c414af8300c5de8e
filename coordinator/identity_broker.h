// The identity broker: named credential bundles become read-only mounts and env values.
#pragma once

#include "common/config.h"
#include "common/result.h"
#include "coordinator/router.h"

namespace polyphony {

// Resolves `identity` on this host: checks every mount's host path exists, reads env values
// (literal, from the host environment, or from a file), and registers every value as a secret
// so it is redacted from logs. Errors ("identity") name the identity and the missing piece.
Result<ResolvedIdentity> resolve_identity(const Identity& identity, const std::string& identities_file);

}  // namespace polyphony
