// The plain-TCP rule, as a table.
#include <catch2/catch.hpp>

#include "common/endpoint_policy.h"

using namespace polyphony;

TEST_CASE("which endpoints count as loopback TCP") {
  struct Case {
    const char* endpoint;
    bool loopback;
  };
  const std::vector<Case> cases{
      {"tcp://127.0.0.1:7701", true},    {"tcp://127.3.2.1:1", true},
      {"tcp://localhost:7701", true},    {"tcp://127.0.0.1;127.0.0.2:7701", true},
      {"tcp://0.0.0.0:7701", false},     {"tcp://*:7701", false},
      {"tcp://10.0.0.1:7701", false},    {"tcp://128.0.0.1:7701", false},
      {"tcp://127.0.0.256:7701", false}, {"tcp://127.0.0.1.evil.com:7701", false},
      {"tcp://eth0:7701", false},        {"tcp://10.0.0.1;127.0.0.1:7701", false},
      {"ipc:///tmp/x.sock", false},      {"tcp://", false},
  };
  for (const auto& c : cases) {
    INFO(c.endpoint);
    CHECK(is_loopback_tcp(c.endpoint) == c.loopback);
  }
}

TEST_CASE("plain endpoints: ipc and inproc always, loopback TCP only when insecure, nothing else") {
  struct Case {
    const char* endpoint;
    bool insecure;
    bool allowed;
  };
  const std::vector<Case> cases{
      {"ipc:///tmp/c.sock", false, true},   {"inproc://workers", false, true},
      {"tcp://127.0.0.1:7701", true, true}, {"tcp://127.0.0.1:7701", false, false},
      {"tcp://0.0.0.0:7701", true, false},  {"tcp://192.168.1.4:7701", true, false},
      {"tcp://*:7701", false, false},       {"ws://127.0.0.1:80", true, false},
  };
  for (const auto& c : cases) {
    INFO(c.endpoint << " insecure=" << c.insecure);
    auto s =
        check_plain_endpoint(c.endpoint, c.insecure, "coordinator.secret_key_file", "coordinator.insecure", "here");
    CHECK(s.ok() == c.allowed);
    if (!s.ok()) {
      CHECK(s.error().where == "here");
      CHECK(s.error().message.find("coordinator.secret_key_file") != std::string::npos);
    }
  }
}

TEST_CASE("a Z85 key is 40 characters of the Z85 alphabet") {
  CHECK(is_z85_key("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"));
  CHECK_FALSE(is_z85_key("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf"));    // 39
  CHECK_FALSE(is_z85_key("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7x"));  // 41
  CHECK_FALSE(is_z85_key("rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]y\"7"));  // '"' is not Z85
}
