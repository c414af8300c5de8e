// `polyphony keys gen`: makes a CURVE key pair for a coordinator, worker or client.
#include <iostream>

#include "cli/cli.h"
#include "common/ids.h"
#include "protocol/security.h"

namespace polyphony::cli {

namespace {

constexpr const char* kKeysFooter =
    R"(Writes DIR/NAME.key (the CURVE secret key) and DIR/NAME.pub (its public key), both mode 0600.
DIR defaults to $POLYPHONY_HOME/keys. Give NAME.pub to the peers that should accept NAME:
a worker's or client's .pub goes into the coordinator's allowed_workers_dir or
allowed_clients_dir; the coordinator's .pub goes to each worker (coordinator_public_key_file)
and client (--coordinator-key).)";

int keys_gen(const Args& args) {
  const std::string name = args.get("name");
  if (!is_valid_id(name)) {
    return report(make_error("usage", "give a name of 1-64 characters from A-Z a-z 0-9 _ - (e.g. worker1)", "--name"));
  }
  const std::filesystem::path dir =
      args.has("out") ? std::filesystem::path(args.get("out")) : polyphony_home() / "keys";
  auto keys = protocol::generate_key_pair();
  if (!keys.ok()) return report(keys.error());
  if (auto s = protocol::write_key_pair(dir, name, *keys, args.has("force")); !s.ok()) return report(s.error());
  std::cout << "secret key: " << (dir / (name + ".key")).string() << "\n"
            << "public key: " << (dir / (name + ".pub")).string() << "  " << keys->public_key << "\n";
  return kExitOk;
}

}  // namespace

void add_keys(Command& polyphony) {
  polyphony.add("keys", "CURVE keys for a fleet", nullptr)
      .add("gen", "make a CURVE key pair (NAME.key secret, NAME.pub public)", keys_gen)
      .option("--name", "NAME", "the key pair's name, e.g. worker1")
      .option("--out", "DIR", "where to write it (default: $POLYPHONY_HOME/keys)")
      .flag("--force", "replace a key pair of that name")
      .footer(kKeysFooter);
}

}  // namespace polyphony::cli
