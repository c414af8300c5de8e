// Truncated, oversized and garbage frames, and wrong frame counts, sent to a running
// coordinator's worker and client sockets: each is dropped, and the coordinator keeps serving.
#include <catch2/catch.hpp>

#include <zmq_addon.hpp>

#include "fleet_support.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

// Frames that must not decode, or must not be acted on.
std::vector<std::string> garbage_bodies() {
  protocol::Hello h;
  h.worker_id = "garbage";
  h.hostname = "h";
  h.version = "v";
  const std::string hello = protocol::encode(h);
  std::string random(4096, '\0');
  uint32_t x = 12345;
  for (auto& ch : random) ch = static_cast<char>((x = x * 1103515245 + 12345) >> 16);
  return {
      "",                                                     // empty
      hello.substr(0, hello.size() / 2),                      // truncated
      hello.substr(0, 1),                                     // one byte
      random,                                                 // noise
      std::string("\x82\xa1v\x01\xa4type\xa5hello", 13),      // a hello without fields
      std::string("\x82\xa1v\x02\xa4type\xa9heartbeat", 17),  // another protocol version
      std::string("\x82\xa1v\x01\xa4type\xa4"
                  "evil",
                  12),                         // an unknown type
      std::string("\xdf\xff\xff\xff\xff", 5),  // a map claiming 4G entries
      std::string(64, '\x91'),                 // arrays nested 64 deep
      hello + "trailing",                      // bytes after the map
  };
}

}  // namespace

TEST_CASE("garbage on the worker socket is dropped and a good worker still registers and gets work",
          "[fleet][hostile]") {
  LogCapture log;
  FleetCoordinator c;
  c.start();
  REQUIRE_FALSE(c.start_error());
  {
    FakeWorker noise(c.context(), c.worker_endpoint(), "noise-1");
    for (const auto& body : garbage_bodies()) noise.send_frames({body});
    noise.send_frames({"a", "b"});                                     // two frames from a DEALER
    noise.send_frames({"", "x", "y", "z"});                            // four
    noise.send_frames({"", protocol::encode(protocol::Heartbeat{})});  // REQ-style, unregistered
    protocol::TaskResult r;                                            // a valid message from an unregistered peer
    r.task_id = "t1";
    r.attempt = 1;
    r.outcome = "failed";
    r.failure_kind = "infra";
    r.branch = "polyphony/t1";
    noise.send(r);
    // A registered worker sending messages only the coordinator may send.
    noise.hello();
    REQUIRE(noise.wait_for<protocol::Welcome>());
    protocol::Welcome w;
    w.coordinator_id = "impostor";
    noise.send(w);
    noise.send(protocol::Submit{"x", "", "app", "", "", "", {}, ""});
  }
  {
    // Larger than kMaxFrameBytes: libzmq drops the connection before the frame is assembled.
    FakeWorker big(c.context(), c.worker_endpoint(), "big-1");
    big.send_frames({std::string(protocol::kMaxFrameBytes + 1024, 'x')});
    CHECK_FALSE(big.wait_for<protocol::Welcome>(std::chrono::milliseconds(300)));
  }
  REQUIRE(eventually([&] { return log.contains("dropped a message of 3 frames"); }, std::chrono::seconds(10)));
  CHECK(log.contains("dropped a frame from peer"));
  CHECK(log.contains("unregistered peer"));
  CHECK(log.contains("unexpected welcome"));

  FakeWorker good(c.context(), c.worker_endpoint(), "good-1", {}, 2);
  good.hello();
  REQUIRE(good.wait_for<protocol::Welcome>());
  const std::string id = submit(c.context(), c.client_endpoint(), "After the noise");
  auto dispatch = good.wait_for<protocol::Dispatch>();
  REQUIRE(dispatch);
  CHECK(dispatch->spec.task_id == id);
}

TEST_CASE("garbage on the client socket gets a refusal or nothing, and the next query is answered",
          "[fleet][hostile]") {
  FleetCoordinator c;
  c.start();
  REQUIRE_FALSE(c.start_error());
  zmq::socket_t client(c.context(), zmq::socket_type::dealer);
  client.set(zmq::sockopt::linger, 0);
  client.connect(c.client_endpoint());
  int refusals = 0;
  for (const auto& body : garbage_bodies()) {
    client.send(zmq::buffer(body), zmq::send_flags::none);
    zmq::pollitem_t items[] = {{client.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, std::chrono::seconds(5));
    zmq::message_t reply;
    REQUIRE(client.recv(reply, zmq::recv_flags::dontwait));
    auto m = protocol::decode(reply.to_string_view());
    REQUIRE(m.ok());
    const auto* r = std::get_if<protocol::ClientReply>(&*m);
    REQUIRE(r != nullptr);
    CHECK_FALSE(r->ok);
    ++refusals;
  }
  CHECK(refusals == static_cast<int>(garbage_bodies().size()));
  // Messages only workers send are refused too.
  auto wrong = ask(c.context(), c.client_endpoint(), protocol::Heartbeat{});
  REQUIRE(wrong);
  CHECK_FALSE(std::get<protocol::ClientReply>(*wrong).ok);
  // Wrong frame counts are dropped without an answer.
  std::array<zmq::const_buffer, 3> three{zmq::str_buffer("a"), zmq::str_buffer("b"), zmq::str_buffer("c")};
  zmq::send_multipart(client, three);
  {
    zmq::socket_t big(c.context(), zmq::socket_type::dealer);
    big.set(zmq::sockopt::linger, 0);
    big.connect(c.client_endpoint());
    big.send(zmq::buffer(std::string(protocol::kMaxFrameBytes + 1, 'x')), zmq::send_flags::none);
  }
  auto table = ask(c.context(), c.client_endpoint(), protocol::WorkersQuery{});
  REQUIRE(table);
  CHECK(std::holds_alternative<protocol::WorkersReply>(*table));
  const std::string id = submit(c.context(), c.client_endpoint(), "Still serving");
  auto q = ask(c.context(), c.client_endpoint(), protocol::Control{id, "query"});
  REQUIRE(q);
  CHECK(std::get<protocol::ClientReply>(*q).ok);
}
