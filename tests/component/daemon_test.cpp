// The whole daemon core (runtime + engine + forensic log) against a hypervisor, driven through real sockets
// with the real client: every action by name and by UUID, denied keys, unknown domains, bad input, replay,
// libvirt connection loss. Runs twice: on the in-memory FakeHypervisor and on libvirt's test:/// driver.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "audit.h"
#include "client.h"
#include "crypto.h"
#include "daemon.h"
#include "fake_hypervisor.h"
#include "key.h"
#include "libvirt_hypervisor.h"

namespace vguard::fenced {
namespace {

using proto::Action;
using proto::PowerState;
using proto::Status;
using namespace std::chrono_literals;

const std::string kAlpha = "11111111-1111-1111-1111-111111111111";
const std::string kBeta = "22222222-2222-2222-2222-222222222222";
const std::string kGamma = "33333333-3333-3333-3333-333333333333";

class NullLogger final : public Logger {
 public:
  void write(Level, std::string_view, std::string_view) override {}
};

std::string read_file(const std::string& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Param: true = libvirt test driver, false = FakeHypervisor.
class DaemonTest : public ::testing::TestWithParam<bool> {
 protected:
  std::string dir;
  proto::Key guest_key, other_key, stranger_key;
  std::unique_ptr<Hypervisor> hv;
  FakeHypervisor* fake = nullptr;
  NullLogger log;
  std::unique_ptr<Daemon> daemon;
  std::thread runner;
  DaemonConfig cfg;

  proto::Key make_key(const std::string& name, const std::string& bytes) {
    const std::string p = dir + "/" + name + ".key";
    std::ofstream(p, std::ios::binary) << bytes;
    return *proto::load_key_file(p);
  }

  void SetUp() override {
    static int counter = 0;  // short paths: a Unix socket path has at most 107 bytes
    dir = ::testing::TempDir() + "/vgd-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    guest_key = make_key("guest", "guest-key-0123456789abcdef-guest");
    other_key = make_key("other", "other-key-0123456789abcdef-other");
    stranger_key = make_key("stranger", "stranger-key-0123456789abcdef-xx");

    cfg.path = dir + "/vguard.conf";
    cfg.control_socket = dir + "/vguardd.sock";
    cfg.log_file = dir + "/forensic.log";
    cfg.replay_window = 30;
    cfg.request_timeout = 10;
    cfg.reconnect_interval = 1;
    cfg.keys.push_back(KeyConfig{"guests-a", dir + "/guest.key", {"vm-alpha", "vm-gamma", kBeta}, guest_key, 0});
    cfg.keys.push_back(KeyConfig{"guests-b", dir + "/other.key", {}, other_key, 0});

    if (GetParam()) {
      cfg.libvirt_uri = "test://" + std::string(VG_TEST_DATA) + "/libvirt/testnode.xml";
      hv = std::make_unique<LibvirtHypervisor>(cfg.libvirt_uri);
    } else {
      auto f = std::make_unique<FakeHypervisor>();
      f->add({*Uuid::parse(kAlpha), "vm-alpha", PowerState::running});
      f->add({*Uuid::parse(kBeta), "vm-beta", PowerState::running});
      f->add({*Uuid::parse(kGamma), "vm-gamma", PowerState::shutoff});
      fake = f.get();
      hv = std::move(f);
    }
    daemon = std::make_unique<Daemon>(DaemonOptions{cfg, false}, *hv, log);
    auto r = daemon->start();
    ASSERT_TRUE(r) << r.error().message();
    runner = std::thread([this] { daemon->run(); });
    // Ready when monitor succeeds (libvirt connected).
    for (int i = 0; i < 100; ++i) {
      auto m = call(Action::monitor, "", std::nullopt);
      if (m && m->status == Status::success) return;
      std::this_thread::sleep_for(20ms);
    }
    FAIL() << "daemon did not become ready";
  }

  void TearDown() override {
    if (daemon) daemon->stop();
    if (runner.joinable()) runner.join();
    daemon.reset();
    hv.reset();
    std::filesystem::remove_all(dir);
  }

  Result<proto::Response> call(Action a, const std::string& target, std::optional<proto::Key> key,
                               std::uint8_t flags = 0) {
    proto::CallOptions o;
    o.endpoint.kind = proto::Endpoint::Kind::unix_socket;
    o.endpoint.path = cfg.control_socket;
    o.key = std::move(key);
    o.timeout = 10s;
    return proto::call(o, a, target, flags);
  }

  // Sends raw bytes on the control socket and returns everything the daemon answers before closing.
  std::string raw(const std::string& bytes, bool half_close = true) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, cfg.control_socket.c_str(), sizeof sa.sun_path - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
    if (half_close) ::shutdown(fd, SHUT_WR);
    std::string out;
    char buf[4096];
    timeval tv{8, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
  }

  // Decodes an answer the daemon could not sign for us (refusals of unauthenticated input).
  proto::Response unsigned_answer(const std::string& bytes) {
    auto f = proto::decode_frame(bytes, "");
    EXPECT_TRUE(f) << (f ? "" : f.error().message());
    if (!f || !f->response) return {};
    return *f->response;
  }

  proto::Request request(Action a, const std::string& target) {
    proto::Request r;
    const std::string n = proto::random_bytes(16);
    std::memcpy(r.nonce.data(), n.data(), 16);
    r.timestamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    r.action = a;
    r.target = target;
    return r;
  }

  Status status_of(const std::string& target) {
    auto r = call(Action::status, target, std::nullopt);
    EXPECT_TRUE(r) << (r ? "" : r.error().message());
    return r ? r->status : Status::failure;
  }

  std::string log_text() { return read_file(cfg.log_file); }
  std::size_t refusals() {
    std::size_t n = 0;
    std::istringstream in(log_text());
    std::string line;
    while (std::getline(in, line))
      if (line.find("\"type\":\"refused\"") != std::string::npos) ++n;
    return n;
  }
};

TEST_P(DaemonTest, EveryActionByNameAndUuid) {
  for (const std::string& target : {std::string("vm-alpha"), kAlpha}) {
    auto s = call(Action::status, target, guest_key);
    ASSERT_TRUE(s) << s.error().message();
    EXPECT_EQ(s->status, Status::success) << target;

    auto off = call(Action::off, target, guest_key);
    ASSERT_TRUE(off) << off.error().message();
    EXPECT_EQ(off->status, Status::success) << off->message;
    EXPECT_EQ(status_of(target), Status::off);
    if (fake) {
      EXPECT_EQ(fake->get(*Uuid::parse(kAlpha))->state, PowerState::shutoff);
    }

    auto off2 = call(Action::off, target, guest_key);
    ASSERT_TRUE(off2);
    EXPECT_EQ(off2->status, Status::success) << "off is idempotent";

    auto reboot_off = call(Action::reboot, target, guest_key);
    ASSERT_TRUE(reboot_off);
    EXPECT_EQ(reboot_off->status, Status::success);
    EXPECT_EQ(status_of(target), Status::off) << "reboot never starts a domain that was off";

    auto on = call(Action::on, target, guest_key);
    ASSERT_TRUE(on);
    EXPECT_EQ(on->status, Status::success) << on->message;
    EXPECT_EQ(status_of(target), Status::success);

    auto reboot = call(Action::reboot, target, guest_key);
    ASSERT_TRUE(reboot);
    EXPECT_EQ(reboot->status, Status::success) << reboot->message;
    EXPECT_EQ(status_of(target), Status::success);
  }
  auto l = call(Action::list, "", guest_key);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->domains.size(), 3u);
  auto ls = call(Action::list_status, "", other_key);
  ASSERT_TRUE(ls);
  EXPECT_TRUE(ls->domains.empty()) << "a key with no allow line sees nothing";
  auto m = call(Action::monitor, "", guest_key);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, Status::success);
  audit::VerifyReport rep = audit::verify_log(log_text());
  EXPECT_TRUE(rep.ok) << rep.problem;
  EXPECT_GT(rep.records, 20u);
}

TEST_P(DaemonTest, DeniedKeyChangesNothing) {
  auto r = call(Action::off, "vm-alpha", other_key);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::denied);
  EXPECT_NE(r->message.find("may not act"), std::string::npos);
  EXPECT_EQ(status_of("vm-alpha"), Status::success);
  EXPECT_NE(log_text().find("\"result\":\"denied\""), std::string::npos);
}

TEST_P(DaemonTest, UnknownDomainIsNeverOff) {
  auto r = call(Action::status, "vm-missing", std::nullopt);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::failure);
  EXPECT_NE(r->message.find("no domain 'vm-missing'"), std::string::npos);
  r = call(Action::off, "44444444-4444-4444-4444-444444444444", std::nullopt);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::failure);
}

TEST_P(DaemonTest, UnconfiguredKeyRefused) {
  auto r = call(Action::off, "vm-alpha", stranger_key);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(errc::unknown_key));
  EXPECT_NE(r.error().message().find("not configured"), std::string::npos);
  EXPECT_EQ(status_of("vm-alpha"), Status::success);
  EXPECT_EQ(refusals(), 1u);
}

TEST_P(DaemonTest, WrongKeyBytesRefused) {
  // Right key id, wrong key bytes: the MAC does not verify.
  const auto frame = proto::encode_request(guest_key.id, "not-the-guest-key-bytes-at-all", request(Action::off, "vm-alpha"));
  auto resp = unsigned_answer(raw(frame));
  EXPECT_EQ(resp.status, Status::failure);
  EXPECT_EQ(resp.error, static_cast<std::uint16_t>(errc::bad_mac));
  EXPECT_EQ(status_of("vm-alpha"), Status::success);
  EXPECT_EQ(refusals(), 1u);
}

TEST_P(DaemonTest, LocalKeyOnlyOnControlSocketAndReplayRefused) {
  const auto req = request(Action::off, "vm-alpha");
  const auto frame = proto::encode_request(guest_key.id, guest_key.bytes, req);
  auto first = proto::decode_frame(raw(frame), guest_key.bytes);
  ASSERT_TRUE(first) << first.error().message();
  EXPECT_EQ(first->response->status, Status::success);
  ASSERT_TRUE(call(Action::on, "vm-alpha", std::nullopt));
  // The same bytes again: refused, domain untouched.
  auto second = proto::decode_frame(raw(frame), guest_key.bytes);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->response->status, Status::failure);
  EXPECT_EQ(second->response->error, static_cast<std::uint16_t>(errc::replayed_nonce));
  EXPECT_EQ(status_of("vm-alpha"), Status::success);
  EXPECT_EQ(refusals(), 1u);
}

TEST_P(DaemonTest, StaleTimestampRefused) {
  auto req = request(Action::off, "vm-alpha");
  req.timestamp_ms -= 31000;
  auto resp = proto::decode_frame(raw(proto::encode_request(guest_key.id, guest_key.bytes, req)), guest_key.bytes);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->response->error, static_cast<std::uint16_t>(errc::stale_timestamp));
  EXPECT_NE(resp->response->message.find("window"), std::string::npos);
  EXPECT_EQ(status_of("vm-alpha"), Status::success);
}

TEST_P(DaemonTest, MalformedInputRefused) {
  struct Case {
    const char* name;
    std::string bytes;
    errc want;
  };
  const auto good = proto::encode_request(guest_key.id, guest_key.bytes, request(Action::off, "vm-alpha"));
  std::string unknown_action = good.substr(0, good.size() - 32);
  unknown_action[4 + 1 + 1 + 8 + 16 + 8] = 99;
  unknown_action += std::string(proto::as_view(proto::hmac_sha256(guest_key.bytes, unknown_action)));
  const Case cases[] = {
      {"truncated", good.substr(0, good.size() / 2), errc::bad_frame},
      {"truncated prefix", good.substr(0, 3), errc::bad_frame},
      {"oversize", std::string("\xff\xff\x0f\x00", 4) + std::string(100, 'x'), errc::bad_frame},
      {"zero length", std::string(4, '\0'), errc::bad_frame},
      {"unknown action", unknown_action, errc::unknown_action},
  };
  std::size_t n = 0;
  for (const auto& c : cases) {
    const auto answer = raw(c.bytes);
    ASSERT_FALSE(answer.empty()) << c.name;
    auto resp = unsigned_answer(answer);
    EXPECT_EQ(resp.status, Status::failure) << c.name;
    EXPECT_EQ(resp.error, static_cast<std::uint16_t>(c.want)) << c.name << ": " << resp.message;
    EXPECT_FALSE(resp.message.empty()) << c.name;
    EXPECT_EQ(refusals(), ++n) << c.name << " refusal logged";
  }
  EXPECT_EQ(status_of("vm-alpha"), Status::success);
  EXPECT_TRUE(audit::verify_log(log_text()).ok);
}

TEST_P(DaemonTest, DaemonUnreachableIsClearError) {
  proto::CallOptions o;
  o.endpoint.kind = proto::Endpoint::Kind::unix_socket;
  o.endpoint.path = dir + "/nothing-here.sock";
  o.timeout = 2s;
  auto r = proto::call(o, Action::status, "vm-alpha");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(errc::not_running));
  EXPECT_NE(r.error().message().find("nothing-here.sock"), std::string::npos);
}

TEST_P(DaemonTest, HookPrepareOnlyLocal) {
  auto r = call(Action::hook_prepare, kAlpha, std::nullopt, proto::kFlagTargetIsUuid);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::success);
  r = call(Action::hook_prepare, kAlpha, guest_key, proto::kFlagTargetIsUuid);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::denied);
}

TEST_P(DaemonTest, ConnectionFloodIsCappedAndRecovers) {
  std::vector<int> fds;
  auto open_conn = [&] {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, cfg.control_socket.c_str(), sizeof sa.sun_path - 1);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    return fd;
  };
  for (int i = 0; i < 256; ++i) fds.push_back(open_conn());
  std::this_thread::sleep_for(200ms);
  // One more than the cap: closed at once, without an answer.
  int extra = open_conn();
  timeval tv{3, 0};
  ::setsockopt(extra, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char c;
  EXPECT_EQ(::recv(extra, &c, 1, 0), 0) << "connection over the cap is closed";
  ::close(extra);
  for (int fd : fds) ::close(fd);
  // Service is back once the idle connections are gone.
  Result<proto::Response> r = make_error(errc::busy);
  for (int i = 0; i < 100 && !(r = call(Action::monitor, "", std::nullopt)); ++i) std::this_thread::sleep_for(50ms);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->status, Status::success);
}

TEST_P(DaemonTest, RefusalRecordsAreRateLimited) {
  for (int i = 0; i < 60; ++i) raw(std::string(4, '\0'));
  std::this_thread::sleep_for(1100ms);
  raw(std::string(4, '\0'));  // rolls the one-second window: the suppressed count is written
  const std::size_t n = refusals();
  EXPECT_LE(n, 45u) << "at most 20 refusal records a second";
  EXPECT_GE(n, 20u);
  EXPECT_NE(log_text().find("\"type\":\"refused-suppressed\""), std::string::npos);
  EXPECT_TRUE(audit::verify_log(log_text()).ok);
}

INSTANTIATE_TEST_SUITE_P(Hypervisors, DaemonTest, ::testing::Values(false, true),
                         [](const auto& p) { return p.param ? "LibvirtTestDriver" : "Fake"; });

// Connection loss needs a hypervisor the test can take away: the fake.
class DaemonLossTest : public DaemonTest {};
TEST_P(DaemonLossTest, LibvirtLostMeansUnknownThenRecovers) {
  fake->set_reachable(false);
  Result<proto::Response> r = make_error(errc::ok);
  for (int i = 0; i < 100; ++i) {
    r = call(Action::status, kGamma, std::nullopt);
    if (r && r->status == Status::failure) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, Status::failure) << "a shut-off domain is unknown, not off, while libvirt is away";
  EXPECT_EQ(r->error, static_cast<std::uint16_t>(errc::hypervisor_unreachable));
  auto off = call(Action::off, "vm-alpha", guest_key);
  ASSERT_TRUE(off);
  EXPECT_EQ(off->status, Status::failure);
  EXPECT_EQ(fake->get(*Uuid::parse(kAlpha))->state, PowerState::running);
  fake->set_reachable(true);
  for (int i = 0; i < 200 && status_of(kGamma) != Status::off; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(status_of(kGamma), Status::off) << "reconnected and listed again";
  EXPECT_NE(log_text().find("\"event\":\"lost\""), std::string::npos);
}
INSTANTIATE_TEST_SUITE_P(Fake, DaemonLossTest, ::testing::Values(false));

}  // namespace
}  // namespace vguard::fenced
