// Where the programs look for their data files (docker/): beside an installed program first.
#include <catch2/catch.hpp>

#include "common/data_dir.h"

using namespace polyphony;
namespace fs = std::filesystem;

TEST_CASE("data files are looked for under the program's prefix, then the source tree, then the configured prefix") {
  struct Case {
    fs::path program;
    fs::path beside;  // where the install layout puts the data files for that program
  };
  const fs::path rel = POLYPHONY_BIN_TO_DATA_DIR;
  const std::vector<Case> cases = {
      {"/test-prefix/bin/polyphony", ("/test-prefix/bin" / rel).lexically_normal()},
      {"/tmp/test-destdir/usr/local/bin/polyphony-worker",
       ("/tmp/test-destdir/usr/local/bin" / rel).lexically_normal()},
      {"/test-prefix/bin/../bin/polyphony-submit", ("/test-prefix/bin" / rel).lexically_normal()},
  };
  for (const auto& c : cases) {
    CAPTURE(c.program);
    const auto dirs = data_dir_candidates(c.program);
    REQUIRE(dirs.size() == 3);
    CHECK(dirs[0] == c.beside);
    CHECK(dirs[1] == fs::path(POLYPHONY_SOURCE_DIR).lexically_normal());
    CHECK(dirs[2] == fs::path(POLYPHONY_INSTALL_DATA_DIR));
  }
}

TEST_CASE("a program installed under the configured prefix looks there once") {
  const auto dirs = data_dir_candidates(fs::path(POLYPHONY_INSTALL_BIN_DIR) / "polyphony");
  CHECK(dirs == std::vector<fs::path>{fs::path(POLYPHONY_INSTALL_DATA_DIR), fs::path(POLYPHONY_SOURCE_DIR)});
}

TEST_CASE("a program run from the build tree finds the source tree's docker files") {
  auto dir = data_dir();
  REQUIRE(dir.ok());
  CHECK(*dir == fs::path(POLYPHONY_SOURCE_DIR).lexically_normal());
  CHECK(fs::is_regular_file(*dir / "docker" / "scripted-agent"));
}
