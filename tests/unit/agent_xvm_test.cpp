// fence_vguard's protocol xvm / virt: the answer -> exit code mapping, the signed request, and the client
// side of the exchanges against an in-process fake fence_virtd (socketpair, loopback TCP, pty). The real
// fence_virtd (multicast and TCP) is tests/integration/agent_xvm.sh.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "agent.h"
#include "fence_virt.h"
#include "options.h"
#include "xvm_client.h"

namespace vguard::agent {
namespace {

using namespace std::chrono_literals;
using namespace std::string_literals;

const std::string kKey = "0123456789abcdef-test-key";

std::string str(const std::array<std::uint8_t, fencevirt::kChallengeSize>& a) {
  return std::string(reinterpret_cast<const char*>(a.data()), a.size());
}

// Helpers for the fake fence_virtd side (reads give up after 10 s, so a failing client never hangs the test).
bool read_n(int fd, std::string& out, std::size_t n) {
  out.assign(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return false;
    const ssize_t r = ::read(fd, out.data() + got, n - got);
    if (r <= 0) return false;
    got += static_cast<std::size_t>(r);
  }
  return true;
}
void write_s(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t w = ::write(fd, s.data(), s.size());
    if (w <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(w));
  }
}

// fence_virtd's half of §2.2: answer the client's challenge, challenge it, check its answer.
bool server_auth(int fd, fencevirt::Hash auth, const std::string& key) {
  std::string c1;
  if (!read_n(fd, c1, 64)) return false;
  write_s(fd, str(fencevirt::challenge_response(auth, key, c1)));
  const std::string c2 = str(fencevirt::new_challenge());
  write_s(fd, c2);
  std::string resp;
  if (!read_n(fd, resp, 64)) return false;
  return fencevirt::check_response(auth, key, c2, resp);
}

std::string host_record(std::string domain, std::string uuid, std::uint8_t state) {
  return fencevirt::encode_host(fencevirt::HostRecord{std::move(domain), std::move(uuid), state});
}

struct Pair {
  int client = -1;
  int server = -1;
  Pair() {
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    client = sv[0];
    server = sv[1];
  }
  ~Pair() {
    if (client >= 0) ::close(client);
    if (server >= 0) ::close(server);
  }
  void close_server() {
    ::close(server);
    server = -1;
  }
};

XvmClock::time_point soon(std::chrono::milliseconds d = 5000ms) { return XvmClock::now() + d; }

// ---- pure: list, needs-key, answers ----

TEST(AgentXvm, ListStatesNeverSayOffForAnActiveDomain) {
  EXPECT_EQ(xvm_list_state(1), "on");
  EXPECT_EQ(xvm_list_state(2), "on");
  EXPECT_EQ(xvm_list_state(3), "on");  // paused: fence_xvm says "off" here
  EXPECT_EQ(xvm_list_state(4), "on");
  EXPECT_EQ(xvm_list_state(5), "off");
  EXPECT_EQ(xvm_list_state(7), "on");
  EXPECT_EQ(xvm_list_state(0), "unknown");
  EXPECT_EQ(xvm_list_state(6), "unknown");
  EXPECT_EQ(xvm_list_state(200), "unknown");
  // fence_xvm's printf("%-32s %s %s\n").
  EXPECT_EQ(xvm_list_line({"vm-a", "6695eb01-f6a4-8304-79aa-97f2502e193f", 1}),
            "vm-a" + std::string(29, ' ') + "6695eb01-f6a4-8304-79aa-97f2502e193f on\n");
  EXPECT_EQ(xvm_list_line({std::string(40, 'n'), "u", 5}), std::string(40, 'n') + " u off\n");
}

TEST(AgentXvm, WhichRequestsNeedTheKey) {
  Options o;
  o.protocol = Protocol::xvm;
  EXPECT_TRUE(xvm_needs_key(o));  // multicast, sha256
  o.hash = "none";
  EXPECT_TRUE(xvm_needs_key(o));  // the challenge-response still needs it
  o.auth = "NONE";
  EXPECT_FALSE(xvm_needs_key(o));  // explicitly unauthenticated
  o.hash = "sha1";
  EXPECT_TRUE(xvm_needs_key(o));
  o.ipaddr_set = true;
  EXPECT_TRUE(xvm_needs_key(o));  // tcp
  Options v;
  v.protocol = Protocol::virt;
  EXPECT_FALSE(xvm_needs_key(v));  // vmchannel: no authentication in fence_virt's protocol
  v.serial_device = "/dev/ttyS1";
  EXPECT_FALSE(xvm_needs_key(v));
  v.vsock_cid = 2;
  EXPECT_TRUE(xvm_needs_key(v));
}

struct XvmAnswerCase {
  const char* name;
  Op op;
  std::uint8_t response;
  Outcome expect;
};

const std::vector<XvmAnswerCase> kXvmAnswers = {
    {"StatusOn", Op::status, 0, {0, "Status: ON\n", ""}},
    {"StatusOff", Op::status, 2, {2, "Status: OFF\n", ""}},
    {"StatusFailed", Op::status, 1, {1, "", "Operation failed\n"}},
    {"StatusDenied", Op::status, 3, {3, "", "Permission denied\n"}},
    {"StatusUnknown", Op::status, 9, {1, "", "Unknown response (9)\nOperation failed\n"}},
    {"StatusHostListIsUnknown", Op::status, 253, {1, "", "Unknown response (253)\nOperation failed\n"}},
    {"OffSuccess", Op::off, 0, {0, "", ""}},
    {"OffFailed", Op::off, 1, {1, "", "Operation failed\n"}},
    {"OffAnsweredOff", Op::off, 2, {1, "", "fence_virtd answered 'off' to off\nOperation failed\n"}},
    {"OffDenied", Op::off, 3, {3, "", "Permission denied\n"}},
    {"OnSuccess", Op::on, 0, {0, "", ""}},
    {"RebootSuccess", Op::reboot, 0, {0, "", ""}},
    {"RebootFailed", Op::reboot, 1, {1, "", "Operation failed\n"}},
    {"MonitorSuccess", Op::monitor, 0, {0, "", ""}},
    {"MonitorOff", Op::monitor, 2, {1, "", "fence_virtd answered 'off' to monitor\nOperation failed\n"}},
    {"ListPlainByte", Op::list, 0, {0, "", ""}},
    {"ListFailed", Op::list, 1, {1, "", "Operation failed\n"}},
};

void PrintTo(const XvmAnswerCase& c, std::ostream* os) { *os << c.name; }
class XvmAnswerTable : public ::testing::TestWithParam<XvmAnswerCase> {};

TEST_P(XvmAnswerTable, Maps) {
  const auto& c = GetParam();
  Options o;
  o.protocol = Protocol::xvm;
  o.op = c.op;
  o.target = "vm1";
  XvmAnswer a;
  a.response = c.response;
  EXPECT_EQ(interpret_xvm(o, a), c.expect);
}

INSTANTIATE_TEST_SUITE_P(AgentXvm, XvmAnswerTable, ::testing::ValuesIn(kXvmAnswers),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(AgentXvm, HostListPrintsEveryDomain) {
  for (Op op : {Op::list, Op::list_status}) {
    Options o;
    o.protocol = Protocol::xvm;
    o.op = op;
    XvmAnswer a;
    a.response = 253;
    a.hosts = {{"vm-a", "u-a", 1}, {"vm-b", "u-b", 5}, {"vm-c", "u-c", 3}};
    const Outcome out = interpret_xvm(o, a);
    EXPECT_EQ(out.exit_code, 0);
    EXPECT_EQ(out.out, xvm_list_line(a.hosts[0]) + xvm_list_line(a.hosts[1]) + xvm_list_line(a.hosts[2]));
    EXPECT_EQ(out.err, "");
  }
}

TEST(AgentXvm, TransportErrorsAreFailuresNamingTheEndpoint) {
  Options o = parse_stdin("protocol=xvm\naction=off\nplug=vm1\ntimeout=4\n").options;
  Outcome out = interpret_xvm(o, make_error(errc::timed_out, "no callback from fence_virtd within 4 s"));
  EXPECT_EQ(out, (Outcome{1, "",
                          "Timed out waiting for response: no callback from fence_virtd within 4 s\n"
                          "Operation failed\n"}));
  out = interpret_xvm(o, make_error(errc::bad_mac, "Invalid response to challenge (wrong key or auth type)"));
  EXPECT_EQ(out, (Outcome{1, "",
                          "fence_virtd at multicast:225.0.0.12:1229: Invalid response to challenge (wrong "
                          "key or auth type)\nOperation failed\n"}));
  o = parse_stdin("protocol=xvm\naction=status\nplug=vm1\nipaddr=::1\nipport=12290\ntimeout=4\n").options;
  out = interpret_xvm(o, make_error(errc::timed_out, "waiting for fence_virtd's answer"));
  EXPECT_EQ(out.err,
            "fence_virtd at tcp:[::1]:12290: timed out after 4 s waiting for fence_virtd's answer\n"
            "Operation failed\n");
  o = parse_stdin("protocol=virt\naction=status\nplug=vm1\nserial_device=/dev/ttyS1\n").options;
  out = interpret_xvm(o, make_error(errc::not_running, "cannot open /dev/ttyS1: No such file or directory"));
  EXPECT_EQ(out.err,
            "fence_virtd at serial:/dev/ttyS1: cannot open /dev/ttyS1: No such file or directory\n"
            "Operation failed\n");
  o = parse_stdin("protocol=virt\naction=status\nplug=vm1\n").options;
  EXPECT_EQ(endpoint_text(o), "vmchannel:10.0.2.179:1229");
  o = parse_stdin("protocol=xvm\nip_family=ipv6\n").options;
  EXPECT_EQ(endpoint_text(o), "multicast:[ff05::3:1]:1229");
  o = parse_stdin("protocol=xvm\nvsock=3\n").options;
  EXPECT_EQ(endpoint_text(o), "vsock:3:1229");
}

// Safety: exit 2 only for status answered "off" (2); exit 0 never from an error.
TEST(AgentXvm, ExitTwoOnlyForStatusOff) {
  for (Op op : {Op::on, Op::off, Op::reboot, Op::status, Op::monitor, Op::list, Op::list_status}) {
    Options o;
    o.protocol = Protocol::xvm;
    o.op = op;
    o.target = "vm1";
    for (int e = 1; e <= static_cast<int>(errc::busy); ++e) {
      const Outcome out = interpret_xvm(o, make_error(static_cast<errc>(e), "x"));
      EXPECT_EQ(out.exit_code, 1) << op_name(op) << " errc " << e;
      EXPECT_EQ(out.out, "");
    }
    for (int r = 0; r < 256; ++r) {
      XvmAnswer a;
      a.response = static_cast<std::uint8_t>(r);
      const Outcome out = interpret_xvm(o, a);
      EXPECT_EQ(out.exit_code == 2, op == Op::status && r == 2) << op_name(op) << " " << r;
      EXPECT_EQ(out.exit_code == 0, r == 0 || (r == 253 && (op == Op::list || op == Op::list_status)))
          << op_name(op) << " " << r;
      EXPECT_LE(out.exit_code, 3);
    }
  }
}

// ---- the signed request ----

TEST(AgentXvm, OpsOnTheWire) {
  EXPECT_EQ(xvm_op(Op::off), fencevirt::Op::off);
  EXPECT_EQ(xvm_op(Op::reboot), fencevirt::Op::reboot);
  EXPECT_EQ(xvm_op(Op::on), fencevirt::Op::on);
  EXPECT_EQ(xvm_op(Op::status), fencevirt::Op::status);
  EXPECT_EQ(xvm_op(Op::monitor), fencevirt::Op::devstatus);
  EXPECT_EQ(xvm_op(Op::list), fencevirt::Op::hostlist);
  EXPECT_EQ(xvm_op(Op::list_status), fencevirt::Op::hostlist);
  EXPECT_EQ(xvm_op(Op::null), std::nullopt);
  EXPECT_EQ(xvm_op(Op::metadata), std::nullopt);
  EXPECT_EQ(xvm_op(Op::validate_all), std::nullopt);
}

TEST(AgentXvm, StreamRequestIsSignedWithoutCallback) {
  Options o = parse_stdin("protocol=xvm\naction=off\nplug=vm1\nuse_uuid=1\nipaddr=127.0.0.1\n").options;
  const std::string p = xvm_stream_request(o, kKey, 123456);
  ASSERT_EQ(p.size(), fencevirt::kRequestSize);
  EXPECT_TRUE(fencevirt::verify(p, kKey, fencevirt::Hash::sha256));
  EXPECT_FALSE(fencevirt::verify(p, "another key", fencevirt::Hash::sha256));
  EXPECT_FALSE(fencevirt::verify(p, kKey, fencevirt::Hash::sha512));  // weaker than that minimum
  const auto r = fencevirt::decode(p);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->op, fencevirt::Op::off);
  EXPECT_EQ(r->hash, fencevirt::Hash::sha256);
  EXPECT_EQ(r->flags, fencevirt::kFlagUuid);
  EXPECT_EQ(r->domain, "vm1");
  EXPECT_EQ(r->addrlen, 0);
  EXPECT_EQ(r->port, 0);
  EXPECT_EQ(r->family, 0u);
  EXPECT_EQ(r->seqno, 123456u);
  // Fresh random bytes every time: two signings of the same request differ.
  EXPECT_NE(p, xvm_stream_request(o, kKey, 123456));

  o = parse_stdin("protocol=xvm\naction=list\nplug=vm1\nuse_uuid\nhash=SHA512\n").options;
  const auto l = fencevirt::decode(xvm_stream_request(o, kKey, 1));
  ASSERT_TRUE(l);
  EXPECT_EQ(l->op, fencevirt::Op::hostlist);
  EXPECT_EQ(l->hash, fencevirt::Hash::sha512);
  EXPECT_EQ(l->domain, "");  // no target for list
  EXPECT_EQ(l->flags, 0);

  o = parse_stdin("protocol=xvm\naction=status\nplug=vm1\nhash=none\nauth=none\n").options;
  const std::string unsigned_packet = xvm_stream_request(o, "", 7);
  EXPECT_TRUE(fencevirt::verify(unsigned_packet, "", fencevirt::Hash::none));
  EXPECT_EQ(unsigned_packet.substr(98, 6), std::string(6, '\0'));  // no random bytes
  EXPECT_EQ(unsigned_packet.substr(112), std::string(64, '\0'));   // no digest
}

// ---- the stream exchange (client side of §2.2) ----

TEST(AgentXvm, ExchangeRunsTheChallengeResponseClientFirst) {
  for (auto auth : {fencevirt::Hash::sha1, fencevirt::Hash::sha256, fencevirt::Hash::sha512}) {
    Pair p;
    bool server_ok = false;
    std::thread server([&] {
      server_ok = server_auth(p.server, auth, kKey);
      if (server_ok) write_s(p.server, "\x02");
    });
    const auto a = xvm_exchange(p.client, auth, kKey, soon());
    server.join();
    EXPECT_TRUE(server_ok);
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_EQ(a->response, 2);
    EXPECT_TRUE(a->hosts.empty());
  }
}

TEST(AgentXvm, ExchangeRefusesAServerWithAnotherKey) {
  Pair p;
  std::thread server([&] { server_auth(p.server, fencevirt::Hash::sha256, "not the key"); });
  const auto a = xvm_exchange(p.client, fencevirt::Hash::sha256, kKey, soon());
  p.close_server();
  server.join();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, make_error_code(errc::bad_mac));
  EXPECT_NE(a.error().context.find("Invalid response to challenge"), std::string::npos);
}

TEST(AgentXvm, ExchangeServerClosingAfterOurResponseIsAFailure) {
  Pair p;
  std::thread server([&] {
    std::string c1, resp;
    read_n(p.server, c1, 64);
    write_s(p.server, str(fencevirt::challenge_response(fencevirt::Hash::sha256, kKey, c1)));
    write_s(p.server, str(fencevirt::new_challenge()));
    read_n(p.server, resp, 64);
    p.close_server();  // "Remote failed challenge": no byte
  });
  const auto a = xvm_exchange(p.client, fencevirt::Hash::sha256, kKey, soon());
  server.join();
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, make_error_code(errc::io_error));
  EXPECT_NE(a.error().context.find("did not accept our challenge response"), std::string::npos);
}

TEST(AgentXvm, ExchangeWithoutAuthReadsTheByteRightAway) {
  Pair p;
  write_s(p.server, "\x00"s);
  const auto a = xvm_exchange(p.client, fencevirt::Hash::none, "", soon());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->response, 0);
}

TEST(AgentXvm, HostListUntilTheEmptyRecordToleratingGarbage) {
  Pair p;
  std::string rec_a = host_record("vm-a", "aaaaaaaa-1111-4111-8111-000000000001", 1);
  rec_a[63] = '3';  // fence_virtd's stack garbage in byte 63 and in the pad byte
  rec_a[127] = '>';
  rec_a[129] = 125;
  std::string rec_b = host_record("vm-b", "bbbbbbbb-2222-4222-8222-000000000002", 5);
  rec_b[10] = 'X';  // after the NUL: ignored
  write_s(p.server, "\xfd"s + rec_a + rec_b + fencevirt::host_terminator() + "\x00"s);
  const auto a = xvm_exchange(p.client, fencevirt::Hash::none, "", soon());
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->response, 253);
  ASSERT_EQ(a->hosts.size(), 2u);
  EXPECT_EQ(a->hosts[0], (XvmHost{"vm-a", "aaaaaaaa-1111-4111-8111-000000000001", 1}));
  EXPECT_EQ(a->hosts[1], (XvmHost{"vm-b", "bbbbbbbb-2222-4222-8222-000000000002", 5}));
}

TEST(AgentXvm, HostListWithoutTrailingByteOrTerminator) {
  {
    Pair p;  // no trailing byte (the cpg backend's 1, or none): fine
    write_s(p.server, "\xfd"s + host_record("x", "y", 1) + fencevirt::host_terminator());
    p.close_server();
    const auto a = xvm_exchange(p.client, fencevirt::Hash::none, "", soon());
    ASSERT_TRUE(a);
    EXPECT_EQ(a->hosts.size(), 1u);
  }
  {
    Pair p;  // cut inside the list: an error, not a short list
    write_s(p.server, "\xfd"s + host_record("x", "y", 1) + std::string(20, 'z'));
    p.close_server();
    const auto a = xvm_exchange(p.client, fencevirt::Hash::none, "", soon());
    ASSERT_FALSE(a);
    EXPECT_NE(a.error().context.find("inside the host list"), std::string::npos);
  }
}

TEST(AgentXvm, ExchangeHasADeadline) {
  Pair p;
  const auto t0 = XvmClock::now();
  const auto a = xvm_exchange(p.client, fencevirt::Hash::sha256, kKey, soon(200ms));
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, make_error_code(errc::timed_out));
  EXPECT_LT(XvmClock::now() - t0, 3s);
}

// ---- serial / vmchannel ----

TEST(AgentXvm, SerialExchangeSkipsToTheMagic) {
  Pair p;
  fencevirt::SerialRequest req;
  req.op = fencevirt::Op::status;
  req.domain = "vm1";
  req.seqno = 99;
  std::string got;
  std::thread server([&] {
    read_n(p.server, got, fencevirt::kSerialRequestSize);
    // Leading garbage, including a partial magic, then the magic and the response byte.
    write_s(p.server, "\x61\x62\x62\x00junk\x61\x62\x61\x62\x62\x61\x02"s);
  });
  const auto a = xvm_serial_exchange(p.client, req, soon());
  server.join();
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->response, 2);
  ASSERT_EQ(got.size(), fencevirt::kSerialRequestSize);
  EXPECT_EQ(got.substr(0, 4), "\x61\x62\x62\x61");
  const auto d = fencevirt::decode_serial(got);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->op, fencevirt::Op::status);
  EXPECT_EQ(d->domain, "vm1");
  EXPECT_EQ(d->seqno, 99u);
}

TEST(AgentXvm, SerialHostListAndMissingMagic) {
  {
    Pair p;
    fencevirt::SerialRequest req;
    req.op = fencevirt::Op::hostlist;
    std::thread server([&] {
      std::string got;
      read_n(p.server, got, fencevirt::kSerialRequestSize);
      write_s(p.server, "\x61\x62\x62\x61\xfd"s + host_record("vm-a", "u", 1) + fencevirt::host_terminator() +
                            "\x61\x62\x62\x61\x00"s);
    });
    const auto a = xvm_serial_exchange(p.client, req, soon());
    server.join();
    ASSERT_TRUE(a) << a.error().message();
    EXPECT_EQ(a->response, 253);
    ASSERT_EQ(a->hosts.size(), 1u);
    EXPECT_EQ(a->hosts[0].domain, "vm-a");
  }
  {
    Pair p;
    fencevirt::SerialRequest req;
    req.op = fencevirt::Op::off;
    req.domain = "vm1";
    std::thread server([&] {
      std::string got;
      read_n(p.server, got, fencevirt::kSerialRequestSize);
      write_s(p.server, std::string(100, 'a'));
      p.close_server();
    });
    const auto a = xvm_serial_exchange(p.client, req, soon());
    server.join();
    ASSERT_FALSE(a);
    EXPECT_EQ(a.error().code, make_error_code(errc::io_error));
  }
}

// A loopback TCP listener on an ephemeral port (127.0.0.1 only).
struct Listener {
  int fd = -1;
  std::uint16_t port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(::listen(fd, 4), 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    port = ntohs(sa.sin_port);
  }
  ~Listener() { ::close(fd); }
};

TEST(AgentXvm, TcpModeAgainstAFakeFenceVirtd) {
  Listener l;
  Options o = parse_stdin("protocol=xvm\naction=off\nplug=vm1\nipaddr=127.0.0.1\ntimeout=5\nipport=" +
                          std::to_string(l.port) + "\n")
                  .options;
  ASSERT_EQ(o.transport(), Transport::tcp);
  bool verified = false, authed = false;
  fencevirt::Request seen;
  std::thread server([&] {
    const int c = ::accept(l.fd, nullptr, nullptr);
    std::string packet;
    if (read_n(c, packet, fencevirt::kRequestSize)) {
      verified = static_cast<bool>(fencevirt::verify(packet, kKey, fencevirt::Hash::sha256));
      if (auto r = fencevirt::decode(packet)) seen = *r;
      authed = server_auth(c, fencevirt::Hash::sha256, kKey);
      if (authed) write_s(c, "\x00"s);
    }
    ::close(c);
  });
  const auto a = xvm_call(o, kKey);
  server.join();
  EXPECT_TRUE(verified);
  EXPECT_TRUE(authed);
  EXPECT_EQ(seen.op, fencevirt::Op::off);
  EXPECT_EQ(seen.domain, "vm1");
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(interpret_xvm(o, a), (Outcome{0, "", ""}));
}

TEST(AgentXvm, VmchannelAgainstAFakeFenceVirtd) {
  Listener l;
  Options o =
      parse_stdin("protocol=virt\naction=status\nplug=vm1\nchannel_address=127.0.0.1\ntimeout=5\nipport=" +
                  std::to_string(l.port) + "\n")
          .options;
  ASSERT_EQ(o.transport(), Transport::vmchannel);
  std::string got;
  std::thread server([&] {
    const int c = ::accept(l.fd, nullptr, nullptr);
    read_n(c, got, fencevirt::kSerialRequestSize);
    write_s(c, "\x61\x62\x62\x61\x02"s);
    ::close(c);
  });
  const auto a = xvm_call(o, "");
  server.join();
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(interpret_xvm(o, a), (Outcome{2, "Status: OFF\n", ""}));
  const auto d = fencevirt::decode_serial(got);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->domain, "vm1");
  EXPECT_EQ(d->flags, 0);
}

TEST(AgentXvm, SerialDeviceOverAPty) {
  int master = -1, slave = -1;
  char name[256] = {};
  ASSERT_EQ(::openpty(&master, &slave, name, nullptr, nullptr), 0);
  // The agent opens the slave by name; this fd stays open so that the master never reads EIO meanwhile.
  Options o = parse_stdin("protocol=virt\naction=on\nplug=vm1\nserial_device=" + std::string(name) +
                          "\nserial_params=57600,8N1\ntimeout=5\n")
                  .options;
  ASSERT_EQ(o.transport(), Transport::serial);
  std::string got;
  std::thread server([&] {
    if (read_n(master, got, fencevirt::kSerialRequestSize)) write_s(master, "noise\x61\x62\x62\x61\x00"s);
  });
  const auto a = xvm_call(o, "");
  server.join();
  ::close(master);
  ::close(slave);
  ASSERT_TRUE(a) << a.error().message();
  EXPECT_EQ(a->response, 0);
  const auto d = fencevirt::decode_serial(got);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->op, fencevirt::Op::on);
  EXPECT_EQ(d->domain, "vm1");
}

TEST(AgentXvm, SerialDeviceMissing) {
  Options o = parse_stdin("protocol=virt\naction=on\nplug=vm1\nserial_device=/nonexistent/ttyS9\n").options;
  const auto a = xvm_call(o, "");
  ASSERT_FALSE(a);
  EXPECT_EQ(a.error().code, make_error_code(errc::not_running));
  EXPECT_NE(a.error().context.find("/nonexistent/ttyS9"), std::string::npos);
}

}  // namespace
}  // namespace vguard::agent
