// An encoded frame crosses a real ZeroMQ DEALER -> ROUTER pair and decodes on the other side.
#include <catch2/catch.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "protocol/messages.h"
#include "sample_messages.h"

using namespace polyphony::protocol;

TEST_CASE("a hello crosses DEALER to ROUTER over inproc and a welcome comes back", "[zmq]") {
  zmq::context_t context;
  zmq::socket_t router(context, zmq::socket_type::router);
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  for (zmq::socket_t* s : {&router, &dealer}) {
    s->set(zmq::sockopt::rcvtimeo, 5000);
    s->set(zmq::sockopt::linger, 0);
    s->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxFrameBytes));
  }
  const Hello hello = samples::hello();
  dealer.set(zmq::sockopt::routing_id, hello.worker_id);
  router.bind("inproc://protocol-test");
  dealer.connect("inproc://protocol-test");

  const std::string body = encode(hello);
  REQUIRE(dealer.send(zmq::buffer(body), zmq::send_flags::none));

  std::vector<zmq::message_t> parts;
  REQUIRE(zmq::recv_multipart(router, std::back_inserter(parts)) == 2);
  CHECK(parts[0].to_string() == hello.worker_id);
  const auto received = decode(parts[1].to_string_view());
  REQUIRE(received.ok());
  CHECK(*received == Message(hello));

  const std::string reply = encode(samples::welcome());
  std::array<zmq::const_buffer, 2> envelope = {zmq::buffer(parts[0].data(), parts[0].size()), zmq::buffer(reply)};
  REQUIRE(zmq::send_multipart(router, envelope));
  zmq::message_t answer;
  REQUIRE(dealer.recv(answer));
  CHECK_FALSE(answer.more());
  const auto welcome = decode(answer.to_string_view());
  REQUIRE(welcome.ok());
  CHECK(*welcome == Message(samples::welcome()));
}
