// CURVE key files, allow-lists, the ZAP verdict, and a CURVE handshake over real sockets.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <zmq.hpp>

#include "protocol/security.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::protocol;
using polyphony::testing::TempDir;
using polyphony::testing::write_file;

namespace {

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

}  // namespace

TEST_CASE("a generated key pair is written as name.key and name.pub, both 0600, and reads back") {
  TempDir dir;
  auto keys = generate_key_pair();
  REQUIRE(keys.ok());
  REQUIRE(write_key_pair(dir / "keys", "worker1", *keys, false).ok());
  CHECK(mode_of(dir / "keys/worker1.key") == 0600);
  CHECK(mode_of(dir / "keys/worker1.pub") == 0600);
  auto secret = read_key_file(dir / "keys/worker1.key", true);
  auto pub = read_key_file(dir / "keys/worker1.pub", false);
  REQUIRE(secret.ok());
  REQUIRE(pub.ok());
  CHECK(*secret == keys->secret_key);
  CHECK(*pub == keys->public_key);
  CHECK(*public_key_of(*secret) == keys->public_key);
}

TEST_CASE("keys gen does not overwrite a key pair unless forced") {
  TempDir dir;
  auto first = generate_key_pair();
  auto second = generate_key_pair();
  REQUIRE(write_key_pair(dir.path(), "w", *first, false).ok());
  auto again = write_key_pair(dir.path(), "w", *second, false);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().message.find("--force") != std::string::npos);
  CHECK(*read_key_file(dir / "w.key", true) == first->secret_key);
  REQUIRE(write_key_pair(dir.path(), "w", *second, true).ok());
  CHECK(*read_key_file(dir / "w.key", true) == second->secret_key);
}

TEST_CASE("a secret key file readable by others is refused, naming the file and the setting") {
  TempDir dir;
  auto keys = generate_key_pair();
  REQUIRE(write_key_pair(dir.path(), "w", *keys, false).ok());
  std::filesystem::permissions(dir / "w.key", std::filesystem::perms::group_read, std::filesystem::perm_options::add);
  auto r = read_key_file(dir / "w.key", true, "config.yaml:7:3");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().where == "config.yaml:7:3");
  CHECK(r.error().message.find("chmod 600") != std::string::npos);
}

TEST_CASE("key files that do not hold one Z85 key are refused") {
  TempDir dir;
  const std::vector<std::string> bad{
      "", "# only a comment\n", "short\n",
      "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\nrq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\n"};
  for (const auto& text : bad) {
    INFO(text);
    write_file(dir / "bad.pub", text);
    CHECK_FALSE(read_key_file(dir / "bad.pub", false).ok());
  }
  CHECK_FALSE(read_key_file(dir / "missing.pub", false).ok());
}

TEST_CASE("an allow-list holds every .pub of its directory, named by file, and the inline keys") {
  TempDir dir;
  auto a = generate_key_pair();
  auto b = generate_key_pair();
  auto c = generate_key_pair();
  REQUIRE(write_key_pair(dir / "allowed", "alpha", *a, false).ok());
  REQUIRE(write_key_pair(dir / "allowed", "beta", *b, false).ok());
  auto list = load_allow_list(dir / "allowed", {c->public_key}, "allowed_worker_keys");
  REQUIRE(list.ok());
  CHECK(list->size() == 3);
  CHECK(list->at(a->public_key) == "alpha");
  CHECK(list->at(b->public_key) == "beta");
  CHECK(list->at(c->public_key) == "allowed_worker_keys[0]");
  CHECK(list->count(a->secret_key) == 0);
}

TEST_CASE("the ZAP verdict admits allow-listed CURVE keys per domain and NULL peers") {
  const std::string w = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";
  const std::string c = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
  const std::map<std::string, AllowList> lists{{kWorkersDomain, {{w, "worker1"}}}, {kClientsDomain, {{c, "ops"}}}};
  struct Case {
    std::string domain, mechanism, key;
    bool allowed;
    std::string user;
  };
  const std::vector<Case> cases{
      {kWorkersDomain, "CURVE", w, true, "worker1"},
      {kClientsDomain, "CURVE", c, true, "ops"},
      {kWorkersDomain, "CURVE", c, false, ""},
      {kClientsDomain, "CURVE", w, false, ""},
      {"other", "CURVE", w, false, ""},
      {kWorkersDomain, "PLAIN", "", false, ""},
      {kWorkersDomain, "NULL", "", true, ""},
  };
  for (const auto& k : cases) {
    INFO(k.domain << " " << k.mechanism << " " << k.key);
    auto v = zap_verdict(k.domain, k.mechanism, k.key, lists);
    CHECK(v.allowed == k.allowed);
    CHECK(v.user_id == k.user);
    CHECK(v.reason.empty() == k.allowed);
  }
}

namespace {

// Whether a DEALER with `client` keys gets an answer from a CURVE ROUTER guarded by `zap`.
bool handshake_succeeds(zmq::context_t& ctx, ZapHandler& zap, zmq::socket_t& router, const CurveClientKeys& client,
                        const std::string& endpoint, std::string* user) {
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  make_curve_client(dealer, client);
  dealer.connect(endpoint);
  dealer.send(zmq::str_buffer("ping"), zmq::send_flags::none);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t items[] = {{zap.socket().handle(), 0, ZMQ_POLLIN, 0}, {router.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 2, std::chrono::milliseconds(50));
    if (items[0].revents & ZMQ_POLLIN) zap.serve();
    if (items[1].revents & ZMQ_POLLIN) {
      zmq::message_t id, body;
      REQUIRE(router.recv(id));
      REQUIRE(router.recv(body));
      *user = peer_user_id(body);
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("over TCP a CURVE server admits an allowed key, names it, and refuses an unknown one", "[zmq]") {
  zmq::context_t ctx;
  auto server = generate_key_pair();
  auto allowed = generate_key_pair();
  auto stranger = generate_key_pair();
  auto zap = ZapHandler::bind(ctx, {{kWorkersDomain, {{allowed->public_key, "worker1"}}}});
  REQUIRE(zap.ok());
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  make_curve_server(router, *server, kWorkersDomain);
  router.bind("tcp://127.0.0.1:*");
  const std::string endpoint = router.get(zmq::sockopt::last_endpoint);
  std::string user;
  CHECK(handshake_succeeds(ctx, **zap, router, {*allowed, server->public_key}, endpoint, &user));
  CHECK(user == "worker1");
  CHECK_FALSE(handshake_succeeds(ctx, **zap, router, {*stranger, server->public_key}, endpoint, &user));
  // A client that trusts the wrong server key never gets through either.
  CHECK_FALSE(handshake_succeeds(ctx, **zap, router, {*allowed, stranger->public_key}, endpoint, &user));
}
