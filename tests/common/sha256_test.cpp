// SHA-256 against the FIPS 180-4 examples and sha256sum.
#include <catch2/catch.hpp>

#include <string>

#include "common/process.h"
#include "common/sha256.h"

using namespace polyphony;

TEST_CASE("sha256_hex matches the published test vectors") {
  struct Case {
    std::string input;
    std::string digest;
  };
  auto c = GENERATE(values<Case>({
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {std::string(1000000, 'a'), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  }));
  CHECK(sha256_hex(c.input) == c.digest);
}

TEST_CASE("sha256_hex agrees with sha256sum across block boundaries") {
  for (size_t n : {55u, 56u, 63u, 64u, 65u, 119u, 120u, 1000u}) {
    std::string text;
    for (size_t i = 0; i < n; ++i) text.push_back(char('a' + i % 26));
    ProcessOptions po;
    po.stdin_data = text;
    auto sum = run_checked({"sha256sum"}, po);
    REQUIRE(sum.ok());
    INFO("length " << n);
    CHECK(sha256_hex(text) == sum->out.substr(0, 64));
  }
}
