// RunSpec.land_mode: "merge" by default and when absent, "branch" for GitHub mode, nothing else.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "protocol/messages.h"
#include "sample_messages.h"

using namespace polyphony::protocol;
using nlohmann::json;

namespace {

std::string frame(const json& j) {
  const auto bytes = json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

TEST_CASE("land_mode round-trips, and a dispatch without it lands by merging") {
  Dispatch d = samples::dispatch();
  CHECK(d.spec.land_mode == "merge");
  d.spec.land_mode = "branch";
  auto back = decode(encode(d));
  REQUIRE(back.ok());
  CHECK(std::get<Dispatch>(*back).spec.land_mode == "branch");

  json j = json::from_msgpack(encode(samples::dispatch()));
  j["spec"].erase("land_mode");
  auto old = decode(frame(j));
  REQUIRE(old.ok());
  CHECK(std::get<Dispatch>(*old).spec.land_mode == "merge");
}

TEST_CASE("an unknown land_mode is refused naming the field") {
  json j = json::from_msgpack(encode(samples::dispatch()));
  j["spec"]["land_mode"] = "rebase";
  auto r = decode(frame(j));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().where == "dispatch.spec.land_mode");
  CHECK_THAT(r.error().message, Catch::Contains("merge, branch"));
}
