// CURVE on the coordinator's TCP endpoints: allow-listed workers and clients get in, others
// are refused by the ZAP handler and logged, and the coordinator keeps serving.
#include <catch2/catch.hpp>

#include "fleet_support.h"

using namespace polyphony;
using namespace polyphony::testing;
using protocol::CurveClientKeys;

namespace {

struct Keys {
  protocol::CurveKeyPair coordinator, worker, client, stranger;
};

// Writes the coordinator's key pair to keys/, the worker's .pub to keys/workers and the
// client's .pub to keys/clients; returns every pair.
Keys write_fleet_keys(const std::filesystem::path& home) {
  Keys k{*protocol::generate_key_pair(), *protocol::generate_key_pair(), *protocol::generate_key_pair(),
         *protocol::generate_key_pair()};
  REQUIRE(protocol::write_key_pair(home / "keys", "coordinator", k.coordinator, false).ok());
  REQUIRE(protocol::write_key_pair(home / "keys/workers", "worker1", k.worker, false).ok());
  REQUIRE(protocol::write_key_pair(home / "keys/clients", "ops", k.client, false).ok());
  std::filesystem::remove(home / "keys/workers/worker1.key");
  std::filesystem::remove(home / "keys/clients/ops.key");
  return k;
}

const char* kCurveConfig =
    "coordinator:\n"
    "  secret_key_file: keys/coordinator.key\n"
    "  public_key_file: keys/coordinator.pub\n"
    "  allowed_workers_dir: keys/workers\n"
    "  allowed_clients_dir: keys/clients\n";

}  // namespace

TEST_CASE("over CURVE an allowed worker registers and gets work, and an unknown key never registers",
          "[fleet][curve]") {
  LogCapture log;
  FleetCoordinator c(kCurveConfig);
  const Keys k = write_fleet_keys(c.home());
  c.start();
  REQUIRE_FALSE(c.start_error());

  FakeWorker stranger(c.context(), c.worker_endpoint(), "stranger-1", {}, 4,
                      CurveClientKeys{k.stranger, k.coordinator.public_key});
  stranger.hello();
  REQUIRE(eventually([&] { return log.contains("is not in the allow-list"); }, std::chrono::seconds(10)));
  CHECK(log.contains("refused a connection from 127.0.0.1"));

  FakeWorker worker(c.context(), c.worker_endpoint(), "worker-1", {}, 2,
                    CurveClientKeys{k.worker, k.coordinator.public_key});
  worker.hello();
  REQUIRE(worker.wait_for<protocol::Welcome>());
  const std::string id = submit(c.context(), c.client_endpoint(), "Over CURVE");
  auto d = worker.wait_for<protocol::Dispatch>();
  REQUIRE(d);
  CHECK(d->spec.task_id == id);
  CHECK_FALSE(stranger.wait_for<protocol::Welcome>(std::chrono::milliseconds(300)));

  auto row = worker_row(c.context(), c.client_endpoint(), "worker-1");
  REQUIRE(row);
  CHECK(row->key == "worker1");
  CHECK_FALSE(worker_row(c.context(), c.client_endpoint(), "stranger-1"));
}

TEST_CASE("a worker that trusts the wrong coordinator key, or speaks plain TCP, never registers", "[fleet][curve]") {
  FleetCoordinator c(kCurveConfig);
  const Keys k = write_fleet_keys(c.home());
  c.start();
  REQUIRE_FALSE(c.start_error());
  FakeWorker wrong_server(c.context(), c.worker_endpoint(), "w-1", {}, 1,
                          CurveClientKeys{k.worker, k.stranger.public_key});
  FakeWorker plain(c.context(), c.worker_endpoint(), "w-2", {}, 1);
  wrong_server.hello();
  plain.hello();
  CHECK_FALSE(wrong_server.wait_for<protocol::Welcome>(std::chrono::milliseconds(700)));
  CHECK_FALSE(plain.wait_for<protocol::Welcome>(std::chrono::milliseconds(300)));
  // ... and the coordinator still serves the allowed worker.
  FakeWorker good(c.context(), c.worker_endpoint(), "w-3", {}, 1, CurveClientKeys{k.worker, k.coordinator.public_key});
  good.hello();
  CHECK(good.wait_for<protocol::Welcome>());
}

TEST_CASE("the client endpoint over TCP admits only allow-listed client keys", "[fleet][curve]") {
  LogCapture log;
  const int port = free_port();
  const std::string client_tcp = "tcp://127.0.0.1:" + std::to_string(port);
  FleetCoordinator c(std::string(kCurveConfig) + "  client_endpoint: " + client_tcp + "\n");
  const Keys k = write_fleet_keys(c.home());
  // The harness binds only the ipc client endpoint: run a coordinator of our own on TCP.
  c.write_config();
  auto settings = load_settings(c.home());
  REQUIRE(settings.ok());
  CHECK(settings->config.client_endpoint == client_tcp);
  zmq::context_t ctx;
  auto coordinator = Coordinator::create(ctx, *settings, {}, {client_tcp});
  REQUIRE(coordinator.ok());
  std::atomic<bool> stop{false};
  std::thread loop([&] { (*coordinator)->run(stop); });
  auto allowed = ask(ctx, client_tcp, protocol::WorkersQuery{}, std::chrono::seconds(5),
                     CurveClientKeys{k.client, k.coordinator.public_key});
  auto worker_key = ask(ctx, client_tcp, protocol::WorkersQuery{}, std::chrono::milliseconds(700),
                        CurveClientKeys{k.worker, k.coordinator.public_key});
  auto plain = ask(ctx, client_tcp, protocol::WorkersQuery{}, std::chrono::milliseconds(300));
  stop = true;
  loop.join();
  REQUIRE(allowed);
  CHECK(std::holds_alternative<protocol::WorkersReply>(*allowed));
  CHECK_FALSE(worker_key);  // a worker's key is not a client's
  CHECK_FALSE(plain);
  CHECK(log.contains("polyphony-clients"));
}

TEST_CASE("a coordinator refuses to start on plain non-loopback TCP, or with a world-readable secret key",
          "[fleet][curve]") {
  {
    FleetCoordinator c("coordinator: {insecure: true}\n");
    c.start();
    REQUIRE_FALSE(c.start_error());
  }
  TempDir dir;
  for (const auto& [name, text] : default_config_files()) write_file(dir / name, text);
  auto settings = load_settings(dir.path());
  REQUIRE(settings.ok());
  zmq::context_t ctx;
  auto plain = Coordinator::create(ctx, *settings, {"tcp://0.0.0.0:" + std::to_string(free_port())}, {});
  REQUIRE_FALSE(plain.ok());
  CHECK(plain.error().message.find("coordinator.secret_key_file") != std::string::npos);

  FleetCoordinator c(kCurveConfig);
  write_fleet_keys(c.home());
  std::filesystem::permissions(c.home() / "keys/coordinator.key", std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  c.start();
  REQUIRE(c.start_error());
  CHECK(c.start_error()->message.find("chmod 600") != std::string::npos);
  CHECK(c.start_error()->where.find("config.yaml:") != std::string::npos);
}

TEST_CASE("a worker id stays with the CURVE key it first registered with: another allowed key is refused and logged",
          "[fleet][curve]") {
  LogCapture log;
  FleetCoordinator c(kCurveConfig);
  const Keys k = write_fleet_keys(c.home());
  const auto other = *protocol::generate_key_pair();
  REQUIRE(protocol::write_key_pair(c.home() / "keys/workers", "worker2", other, false).ok());
  std::filesystem::remove(c.home() / "keys/workers/worker2.key");
  c.start();
  REQUIRE_FALSE(c.start_error());
  {
    FakeWorker first(c.context(), c.worker_endpoint(), "worker-1", {}, 1,
                     CurveClientKeys{k.worker, k.coordinator.public_key});
    first.hello();
    REQUIRE(first.wait_for<protocol::Welcome>());
  }
  // The first connection is gone (the coordinator lists it lost, so the ROUTER holds no
  // connection under its id any more); a holder of another allowed key claims its id.
  c.clock().jump(3000);  // past its liveness budget, without waiting for it
  REQUIRE(eventually(
      [&] {
        auto r = worker_row(c.context(), c.client_endpoint(), "worker-1");
        return r && r->state == "lost";
      },
      std::chrono::seconds(15)));
  bool refused = false;
  {
    FakeWorker impostor(c.context(), c.worker_endpoint(), "worker-1", {}, 1,
                        CurveClientKeys{other, k.coordinator.public_key});
    // Until the ROUTER has let go of the first connection's routing id, a hello under it is
    // refused for that (a busy machine takes a few seconds); then for its key.
    for (int i = 0; i < 100 && !refused; ++i) {
      impostor.hello();
      CHECK_FALSE(impostor.wait_for<protocol::Welcome>(std::chrono::milliseconds(200)));
      refused = log.contains("refused hello from worker worker-1: it registered with CURVE key \"worker1\"");
    }
  }
  CHECK(refused);
  auto row = worker_row(c.context(), c.client_endpoint(), "worker-1");
  REQUIRE(row);
  CHECK(row->key == "worker1");
  // The rightful key still gets back in.
  FakeWorker back(c.context(), c.worker_endpoint(), "worker-1", {}, 1,
                  CurveClientKeys{k.worker, k.coordinator.public_key});
  bool welcomed = false;
  for (int i = 0; i < 100 && !welcomed; ++i) {  // again once the ROUTER lets go of the impostor's connection
    back.hello();
    welcomed = back.wait_for<protocol::Welcome>(std::chrono::milliseconds(300)).has_value();
  }
  CHECK(welcomed);
}
