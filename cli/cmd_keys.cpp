// `polyphony keys gen`: makes a CURVE key pair for a coordinator, worker or client.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "cli/cli.h"
#include "common/ids.h"
#include "common/private_files.h"
#include "dashboard/dashboard.h"
#include "protocol/security.h"

namespace polyphony::cli {

namespace {

constexpr const char* kKeysFooter =
    R"(Writes DIR/NAME.key (the CURVE secret key) and DIR/NAME.pub (its public key), both mode 0600.
DIR defaults to $POLYPHONY_HOME/keys. Give NAME.pub to the peers that should accept NAME:
a worker's or client's .pub goes into the coordinator's allowed_workers_dir or
allowed_clients_dir; the coordinator's .pub goes to each worker (coordinator_public_key_file)
and client (--coordinator-key).
With --http it writes DIR/NAME.token (NAME defaults to http), a bearer token for the web dashboard:
set coordinator.http_token_file to it, and give it to the dashboard's users and to Prometheus.)";

// DIR/NAME.token holding a new dashboard token, mode 0600; never over an existing one without --force.
int http_token_gen(const std::string& name, const std::filesystem::path& dir, bool force) {
  if (auto s = make_private_dir(dir); !s.ok()) return report(s.error());
  const std::filesystem::path path = dir / (name + ".token");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (force ? O_TRUNC : O_EXCL), 0600);
  if (fd < 0) {
    const std::string why = errno == EEXIST ? "it exists; pass --force to replace it" : std::strerror(errno);
    return report(make_error("io", "cannot write the token file: " + why, path.string()));
  }
  const std::string token = dashboard::new_token() + "\n";
  const bool written = ::write(fd, token.data(), token.size()) == static_cast<ssize_t>(token.size());
  ::close(fd);
  if (!written) return report(make_error("io", "cannot write the token file", path.string()));
  make_private(path);
  std::cout << "token: " << path.string() << "\n"
            << "set in config.yaml:  coordinator: {http_token_file: " << path.string() << "}\n";
  return kExitOk;
}

int keys_gen(const Args& args) {
  const std::string name = args.get("name", args.has("http") ? "http" : "");
  if (!is_valid_id(name)) {
    return report(make_error("usage", "give a name of 1-64 characters from A-Z a-z 0-9 _ - (e.g. worker1)", "--name"));
  }
  const std::filesystem::path dir =
      args.has("out") ? std::filesystem::path(args.get("out")) : polyphony_home() / "keys";
  if (args.has("http")) return http_token_gen(name, dir, args.has("force"));
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
      .flag("--http", "make a bearer token for the web dashboard instead (NAME.token)")
      .footer(kKeysFooter);
}

}  // namespace polyphony::cli
