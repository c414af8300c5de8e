// decode survives hostile input: truncation, random bytes, lying sizes, deep nesting, huge frames.
#include <catch2/catch.hpp>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>
#include <random>

#include "protocol/messages.h"
#include "sample_messages.h"

using namespace polyphony::protocol;

namespace {

std::string bytes(std::initializer_list<unsigned char> b) {
  return std::string(b.begin(), b.end());
}

// decode must answer with a value or a protocol error; anything else fails the test.
void check_answers(const std::string& frame) {
  const auto r = decode(frame);
  if (!r.ok()) {
    CHECK(r.error().code == "protocol");
    CHECK_FALSE(r.error().where.empty());
  }
}

void check_refused_at_frame(const std::string& frame, const std::string& part) {
  const auto r = decode(frame);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "protocol");
  CHECK(r.error().where == "frame");
  CHECK_THAT(r.error().message, Catch::Contains(part));
}

std::string to_frame(const nlohmann::json& j) {
  const auto b = nlohmann::json::to_msgpack(j);
  return std::string(b.begin(), b.end());
}

// A frame whose map header announces `entries` pairs; the caller appends them.
template <class F>
std::string packed(F&& fill) {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(&buffer);
  fill(pk);
  return std::string(buffer.data(), buffer.size());
}

}  // namespace

TEST_CASE("every proper prefix of a valid dispatch frame is refused as truncated", "[codec][garbage]") {
  const std::string frame = encode(samples::dispatch());
  REQUIRE(decode(frame).ok());
  for (size_t n = 0; n < frame.size(); ++n) {
    INFO("prefix length " << n);
    check_refused_at_frame(frame.substr(0, n), "truncated");
  }
}

TEST_CASE("random byte buffers never crash or throw", "[codec][garbage]") {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<size_t> length(0, 300);
  for (int i = 0; i < 5000; ++i) {
    std::string frame(length(rng), '\0');
    for (char& c : frame) c = static_cast<char>(byte(rng));
    check_answers(frame);
  }
}

TEST_CASE("mutated valid frames decode to a consistent message or a clean error", "[codec][garbage]") {
  std::mt19937 rng(7);
  const auto messages = samples::all();
  for (int i = 0; i < 5000; ++i) {
    std::string frame = encode(messages[static_cast<size_t>(i) % messages.size()]);
    std::uniform_int_distribution<size_t> pos(0, frame.size() - 1);
    for (int flips = 1 + i % 4; flips > 0; --flips) frame[pos(rng)] = static_cast<char>(rng());
    const auto r = decode(frame);
    if (r.ok()) {
      CHECK(decode(encode(*r)).ok());
      CHECK(*decode(encode(*r)) == *r);
    } else {
      CHECK(r.error().code == "protocol");
    }
  }
}

TEST_CASE("an array claiming four billion elements is refused without allocating them", "[codec][garbage]") {
  check_refused_at_frame(bytes({0xdd, 0xff, 0xff, 0xff, 0xff}), "claims more elements than the frame holds");
  check_refused_at_frame(bytes({0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v'}), "claims more elements");
  const std::string in_message = packed([](auto& pk) {
    pk.pack_map(3);
    pk.pack(std::string("v"));
    pk.pack(1);
    pk.pack(std::string("type"));
    pk.pack(std::string("hello"));
    pk.pack(std::string("labels"));
    pk.pack_array(0xffffffffu);
  });
  check_refused_at_frame(in_message, "claims more elements");
}

TEST_CASE("a string or bin claiming a huge length is refused as truncated", "[codec][garbage]") {
  check_refused_at_frame(bytes({0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b'}), "truncated");
  check_refused_at_frame(bytes({0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00}), "truncated");
}

TEST_CASE("nesting deeper than the limit is refused", "[codec][garbage]") {
  check_refused_at_frame(std::string(100000, '\x91') + '\xc0', "nesting deeper than 16 levels");
  const std::string deep_extension = packed([](auto& pk) {
    pk.pack_map(3);
    pk.pack(std::string("v"));
    pk.pack(1);
    pk.pack(std::string("type"));
    pk.pack(std::string("heartbeat"));
    pk.pack(std::string("future"));
    for (size_t i = 0; i < kMaxNestingDepth; ++i) pk.pack_array(1);
    pk.pack_nil();
  });
  check_refused_at_frame(deep_extension, "nesting deeper");
}

TEST_CASE("nesting up to the limit in an unknown field is accepted", "[codec][garbage]") {
  const std::string frame = packed([](auto& pk) {
    pk.pack_map(4);
    pk.pack(std::string("v"));
    pk.pack(1);
    pk.pack(std::string("type"));
    pk.pack(std::string("heartbeat"));
    pk.pack(std::string("seq"));
    pk.pack(5);
    pk.pack(std::string("future"));
    for (size_t i = 0; i + 1 < kMaxNestingDepth; ++i) pk.pack_array(1);  // 16 levels in all
    pk.pack_nil();
  });
  CHECK(decode(frame).ok());
}

namespace {

// A heartbeat whose unknown field "x" holds an array of `n` nils.
std::string heartbeat_with_nils(size_t n) {
  return packed([n](auto& pk) {
    pk.pack_map(4);
    pk.pack(std::string("v"));
    pk.pack(1);
    pk.pack(std::string("type"));
    pk.pack(std::string("heartbeat"));
    pk.pack(std::string("seq"));
    pk.pack(1);
    pk.pack(std::string("x"));
    pk.pack_array(static_cast<uint32_t>(n));
    for (size_t i = 0; i < n; ++i) pk.pack_nil();
  });
}

}  // namespace

TEST_CASE("a frame of more than kMaxFrameValues values is refused before unpacking", "[codec][garbage]") {
  check_refused_at_frame(heartbeat_with_nils(kMaxFrameValues), "more than 1048576 MessagePack values");
}

TEST_CASE("a frame of many values within the limit decodes", "[codec][garbage]") {
  CHECK(decode(heartbeat_with_nils(kMaxFrameValues - 100)).ok());
}

TEST_CASE("a frame over kMaxFrameBytes is refused before unpacking", "[codec][garbage]") {
  LogChunk big = samples::log_chunk();
  big.data.assign(kMaxFrameBytes, 'x');
  const std::string frame = encode(big);
  REQUIRE(frame.size() > kMaxFrameBytes);
  check_refused_at_frame(frame, "exceeds the limit of 16777216 bytes");
  // Bytes that are not MessagePack at all get the same answer: the size is checked first.
  check_refused_at_frame(std::string(kMaxFrameBytes + 1, '\xc1'), "exceeds the limit");
}

TEST_CASE("a frame of exactly kMaxFrameBytes is still decoded", "[codec][garbage]") {
  LogChunk big = samples::log_chunk();
  big.data.clear();
  const size_t overhead = encode(big).size() + 3;  // bin8 header grows to bin32: 3 more bytes
  big.data.assign(kMaxFrameBytes - overhead, 'y');
  const std::string frame = encode(big);
  REQUIRE(frame.size() == kMaxFrameBytes);
  const auto r = decode(frame);
  REQUIRE(r.ok());
  CHECK(std::get<LogChunk>(*r).data.size() == big.data.size());
}

TEST_CASE("trailing bytes after the message map are refused", "[codec][garbage]") {
  check_refused_at_frame(encode(samples::heartbeat()) + '\xc0', "1 trailing bytes after the message");
  check_refused_at_frame(encode(samples::heartbeat()) + encode(samples::heartbeat()), "trailing bytes");
}

TEST_CASE("a frame that is not a map is refused", "[codec][garbage]") {
  const auto r = decode(bytes({0x92, 0x01, 0x02}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().where == "frame");
  CHECK(r.error().message == "expected map, got array");
  check_refused_at_frame(bytes({0xc1}), "malformed MessagePack");
  check_refused_at_frame("", "truncated");
}

TEST_CASE("duplicate and non-string keys are refused", "[codec][garbage]") {
  const std::string duplicate = packed([](auto& pk) {
    pk.pack_map(3);
    pk.pack(std::string("v"));
    pk.pack(1);
    pk.pack(std::string("type"));
    pk.pack(std::string("heartbeat"));
    pk.pack(std::string("v"));
    pk.pack(1);
  });
  check_refused_at_frame(duplicate, "duplicate key \"v\"");
  const std::string int_key = packed([](auto& pk) {
    pk.pack_map(1);
    pk.pack(1);
    pk.pack(1);
  });
  check_refused_at_frame(int_key, "expected string key, got integer");
}

TEST_CASE("invalid UTF-8 in a title is refused", "[codec][garbage]") {
  for (const std::string bad : {"\xff", "\xc3", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80"}) {
    nlohmann::json j = nlohmann::json::from_msgpack(encode(samples::dispatch()));
    j["spec"]["title"] = "ok " + bad;  // to_msgpack copies the bytes as they are
    const auto r = decode(to_frame(j));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().where == "dispatch.spec.title");
    CHECK(r.error().message == "invalid UTF-8 at byte 3");
  }
}

TEST_CASE("invalid UTF-8 in a map key is refused", "[codec][garbage]") {
  nlohmann::json j = nlohmann::json::from_msgpack(encode(samples::dispatch()));
  j["spec"]["agent"]["env"]["\xff"] = "x";
  const auto r = decode(to_frame(j));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().where == "dispatch.spec.agent.env");
  CHECK(r.error().message == "key: invalid UTF-8 at byte 0");
}

TEST_CASE("ext values are refused where a field is expected", "[codec][garbage]") {
  const std::string frame = packed([](auto& pk) {
    pk.pack_map(3);
    pk.pack(std::string("v"));
    pk.pack(1);
    pk.pack(std::string("type"));
    pk.pack(std::string("heartbeat"));
    pk.pack(std::string("seq"));
    pk.pack_ext(1, 5);
    pk.pack_ext_body("x", 1);
  });
  const auto r = decode(frame);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().where == "heartbeat.seq");
  CHECK(r.error().message == "expected integer, got ext");
}
