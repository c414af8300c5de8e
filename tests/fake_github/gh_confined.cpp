// Runs the real `gh` with the test's name resolution: in a private mount namespace whose
// /etc/hosts is the one next to this program (ghe.localhost -> 127.0.0.1), so the stand-in
// GitHub server is reached and nothing outside this one gh process sees the change.
//
// Called through a symlink <dir>/gh made by FakeGithub. <dir> holds:
//   hosts   bind-mounted over /etc/hosts
//   gh.env  KEY=VALUE lines set in gh's environment (GH_ENTERPRISE_TOKEN, SSL_CERT_FILE,
//           GH_CONFIG_DIR); REAL_GH names the gh to run (default /usr/bin/gh)
// Everything else (argv, stdin, the caller's environment, GH_HOST) passes through unchanged.
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

int die(const std::string& what) {
  std::cerr << "gh_confined: " << what << ": " << std::strerror(errno) << "\n";
  return 127;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 1) return 127;
  const fs::path dir = fs::path(argv[0]).parent_path();
  std::string real_gh = "/usr/bin/gh";
  std::ifstream env(dir / "gh.env");
  if (!env) return die("cannot read " + (dir / "gh.env").string());
  for (std::string line; std::getline(env, line);) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq), value = line.substr(eq + 1);
    if (key == "REAL_GH")
      real_gh = value;
    else
      setenv(key.c_str(), value.c_str(), 1);
  }
  if (unshare(CLONE_NEWNS) != 0) return die("unshare(CLONE_NEWNS) (tests run as root)");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return die("making / private");
  const std::string hosts = (dir / "hosts").string();
  if (mount(hosts.c_str(), "/etc/hosts", nullptr, MS_BIND, nullptr) != 0) return die("bind-mounting " + hosts);
  std::vector<char*> args{const_cast<char*>("gh")};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  execv(real_gh.c_str(), args.data());
  return die("running " + real_gh);
}
