// xvm_peer: a minimal fence_xvm / fence_virt peer for tests/integration/xvm_server.sh, built on
// proto/fencevirt. It does what the Debian clients cannot: keep the exact bytes of a signed request and send
// them again (a captured packet, replayed), send a truncated datagram, and play a guest's serial socket.
//
//   xvm_peer mcast  --key FILE --op OP --domain NAME [--hash H] [--auth H] [--group ADDR] [--port P]
//                   [--src ADDR] [--save FILE] [--packet FILE] [--truncate N] [--wait SECONDS]
//       Signs a request (callback SRC:PORT; default 127.0.0.1:1229; group 225.0.0.12:1229), or takes the
//       bytes of
//       --packet as they are, sends it once to the group from SRC, listens on SRC:PORT for the server's
//       callback, and runs the client side of the challenge-response.
//   xvm_peer tcp    --key FILE --op OP --domain NAME --host ADDR --port P [...same...]
//       Connects to the server, sends the request, then the exchange (fence_virt -T).
//   xvm_peer serial --socket PATH --op OP --domain NAME [--seqno N] [--wait SECONDS]
//       Plays QEMU's side of a guest's serial socket: listens on the Unix socket PATH, waits for vguardd to
//       connect, sends the 74-byte request, prints the answer.
//   xvm_peer bridge --socket PATH --tcp-port P [--wait SECONDS]
//       A guest's channel for the real fence_virt in vmchannel mode (QEMU's guestfwd, in effect): listens on
//       the Unix socket PATH until vguardd connects, prints "ready", then accepts one TCP connection on
//       127.0.0.1:P (fence_virt -A 127.0.0.1 -p P) and copies bytes both ways until fence_virt closes.
//   xvm_peer vsock-cid
//       Prints this machine's vsock CID (exit 77 when the kernel has no vsock).
// Output: "response N" (and "host NAME UUID STATE" lines before it for a host list).
// Exit: 0 answered; 10 no callback / closed without an answer; 11 the server failed our challenge; 2 usage or
// system error.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "fence_virt.h"

namespace fv = vguard::fencevirt;

namespace {

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "xvm_peer: %s\n", msg.c_str());
  std::exit(2);
}

std::map<std::string, std::string> opts;
std::string opt(const std::string& k, const std::string& def = "") {
  auto it = opts.find(k);
  return it == opts.end() ? def : it->second;
}

fv::Op op_of(const std::string& s) {
  static const std::map<std::string, fv::Op> m = {{"null", fv::Op::null},     {"off", fv::Op::off},
                                                  {"reboot", fv::Op::reboot}, {"on", fv::Op::on},
                                                  {"status", fv::Op::status}, {"monitor", fv::Op::devstatus},
                                                  {"list", fv::Op::hostlist}};
  auto it = m.find(s);
  if (it == m.end()) die("unknown op " + s);
  return it->second;
}

// Waits until fd is readable (or writable) within ms; false on timeout.
bool wait_fd(int fd, short events, int ms) {
  pollfd p{fd, events, 0};
  for (;;) {
    const int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;
    return r > 0;
  }
}

// Reads exactly n bytes within ms; returns what it got (shorter on EOF or timeout).
std::string read_n(int fd, std::size_t n, int ms) {
  std::string out;
  while (out.size() < n) {
    if (!wait_fd(fd, POLLIN, ms)) break;
    char buf[4096];
    const ssize_t r = ::read(fd, buf, std::min(sizeof buf, n - out.size()));
    if (r <= 0) break;
    out.append(buf, static_cast<std::size_t>(r));
  }
  return out;
}

void write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const ssize_t w = ::write(fd, s.data() + off, s.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) die(std::string("write: ") + std::strerror(errno));
    off += static_cast<std::size_t>(w);
  }
}

std::string view(const std::array<std::uint8_t, 64>& a) {
  return {reinterpret_cast<const char*>(a.data()), a.size()};
}

// The client side of the exchange (fence-virt-protocol.md §2.2), then the answer. Returns the exit code.
int client_exchange(int fd, fv::Hash auth, const std::string& key, int ms) {
  const auto c1 = fv::new_challenge();
  write_all(fd, view(c1));
  const std::string r1 = read_n(fd, 64, ms);
  if (r1.size() != 64) {
    std::printf("closed before answering our challenge\n");
    return 10;
  }
  if (!fv::check_response(auth, key, view(c1), r1)) {
    std::printf("server failed our challenge\n");
    return 11;
  }
  const std::string c2 = read_n(fd, 64, ms);
  if (c2.size() != 64) {
    std::printf("no challenge from the server\n");
    return 10;
  }
  write_all(fd, view(fv::challenge_response(auth, key, c2)));
  const std::string b = read_n(fd, 1, ms);
  if (b.empty()) {
    std::printf("closed without an answer\n");
    return 10;
  }
  const auto code = static_cast<unsigned char>(b[0]);
  if (code == fv::kRespHostList) {
    for (;;) {
      const std::string rec = read_n(fd, fv::kHostRecordSize, ms);
      if (rec.size() != fv::kHostRecordSize) {
        std::printf("host list cut short\n");
        return 10;
      }
      const auto h = fv::decode_host(rec);
      if (h.domain.empty() && h.uuid.empty()) break;
      // Zero-filled records: every byte after each string's NUL is zero, and the pad too.
      bool clean = rec[129] == 0;
      for (std::size_t i = h.domain.size(); i < 64; ++i) clean = clean && rec[i] == 0;
      for (std::size_t i = 64 + h.uuid.size(); i < 128; ++i) clean = clean && rec[i] == 0;
      std::printf("host %s %s %u%s\n", h.domain.c_str(), h.uuid.c_str(), h.state,
                  clean ? "" : " NOT-ZERO-FILLED");
    }
    const std::string trailing = read_n(fd, 1, ms);
    std::printf("response %u%s\n", code, trailing.size() == 1 ? " trailing" : "");
    return 0;
  }
  std::printf("response %u\n", code);
  return 0;
}

std::string build_packet(bool callback, const std::string& key, const in_addr& src, std::uint16_t port) {
  if (!opt("packet").empty()) {
    std::ifstream in(opt("packet"), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().empty()) die("cannot read " + opt("packet"));
    return ss.str();
  }
  fv::Request r;
  r.op = op_of(opt("op", "status"));
  auto h = fv::hash_from_name(opt("hash", "sha256"));
  if (!h) die("bad hash");
  r.hash = *h;
  r.domain = opt("domain");
  r.seqno = opt("seqno").empty() ? static_cast<std::uint32_t>(::getpid() * 7919u % 1000000u)
                                 : static_cast<std::uint32_t>(std::stoul(opt("seqno")));
  if (callback) {
    r.addrlen = 4;
    std::memcpy(r.address.data(), &src, 4);
    r.family = AF_INET;
    r.port = port;
  }
  fv::sign(r, key);
  std::string pkt = fv::encode(r);
  if (!opt("save").empty()) std::ofstream(opt("save"), std::ios::binary) << pkt;
  return pkt;
}

int run_mcast(const std::string& key, fv::Hash auth, int ms) {
  in_addr src{}, group{};
  if (::inet_pton(AF_INET, opt("src", "127.0.0.1").c_str(), &src) != 1) die("bad --src");
  if (::inet_pton(AF_INET, opt("group", "225.0.0.12").c_str(), &group) != 1) die("bad --group");
  const auto port = static_cast<std::uint16_t>(std::stoul(opt("port", "1229")));
  std::string pkt = build_packet(true, key, src, port);
  // A replayed packet names its own callback: listen where it says.
  std::uint16_t cb_port = port;
  in_addr cb_addr = src;
  if (pkt.size() >= fv::kRequestSize) {
    cb_port = static_cast<std::uint16_t>(static_cast<unsigned char>(pkt[96]) |
                                         (static_cast<unsigned char>(pkt[97]) << 8));
    std::memcpy(&cb_addr, pkt.data() + 68, 4);
  }
  if (!opt("truncate").empty()) pkt.resize(std::stoul(opt("truncate")));

  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in la{};
  la.sin_family = AF_INET;
  la.sin_port = htons(cb_port);
  la.sin_addr = cb_addr;
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&la), sizeof la) != 0 || ::listen(lfd, 4) != 0)
    die(std::string("cannot listen for the callback: ") + std::strerror(errno));

  const int ufd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const unsigned char ttl = 2;
  ::setsockopt(ufd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
  ::setsockopt(ufd, IPPROTO_IP, IP_MULTICAST_IF, &src, sizeof src);
  sockaddr_in ga{};
  ga.sin_family = AF_INET;
  ga.sin_port = htons(port);
  ga.sin_addr = group;
  if (::sendto(ufd, pkt.data(), pkt.size(), 0, reinterpret_cast<sockaddr*>(&ga), sizeof ga) !=
      static_cast<ssize_t>(pkt.size()))
    die(std::string("sendto: ") + std::strerror(errno));
  ::close(ufd);
  if (!wait_fd(lfd, POLLIN, ms)) {
    std::printf("no callback\n");
    return 10;
  }
  const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(lfd);
  if (fd < 0) die("accept");
  const int rc = client_exchange(fd, auth, key, ms);
  ::close(fd);
  return rc;
}

int run_tcp(const std::string& key, fv::Hash auth, int ms) {
  in_addr host{};
  if (::inet_pton(AF_INET, opt("host", "127.0.0.1").c_str(), &host) != 1) die("bad --host");
  std::string pkt = build_packet(false, key, host, 0);
  if (!opt("truncate").empty()) pkt.resize(std::stoul(opt("truncate")));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(std::stoul(opt("port", "1229"))));
  a.sin_addr = host;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    die(std::string("connect: ") + std::strerror(errno));
  write_all(fd, pkt);
  if (pkt.size() != fv::kRequestSize) {
    // The server must close without answering.
    const std::string any = read_n(fd, 1, ms);
    std::printf(any.empty() ? "closed without an answer\n" : "unexpected bytes\n");
    ::close(fd);
    return any.empty() ? 10 : 2;
  }
  const int rc = client_exchange(fd, auth, key, ms);
  ::close(fd);
  return rc;
}

int run_serial(int ms) {
  const std::string path = opt("socket");
  if (path.empty()) die("--socket PATH");
  ::unlink(path.c_str());
  const int lfd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 1) != 0)
    die(std::string("cannot listen on ") + path + ": " + std::strerror(errno));
  if (!wait_fd(lfd, POLLIN, ms)) {
    std::printf("vguardd did not connect\n");
    ::unlink(path.c_str());
    return 10;
  }
  const int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(lfd);
  fv::SerialRequest r{op_of(opt("op", "status")), 0, opt("domain"),
                      static_cast<std::uint32_t>(std::stoul(opt("seqno", "4242")))};
  // Leading garbage first: a real serial line may carry noise, and vguardd resynchronises on the magic.
  write_all(fd, "zz" + fv::encode_serial(r));
  const std::string resp = read_n(fd, fv::kSerialResponseSize, ms);
  ::close(fd);
  ::unlink(path.c_str());
  if (resp.size() != fv::kSerialResponseSize || resp.substr(0, 4) != "abba") {
    std::printf("closed without an answer\n");
    return 10;
  }
  std::printf("response %u\n", static_cast<unsigned char>(resp[4]));
  return 0;
}

int run_bridge(int ms) {
  const std::string path = opt("socket");
  if (path.empty() || opt("tcp-port").empty()) die("--socket PATH --tcp-port P");
  ::unlink(path.c_str());
  const int ufd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un ua{};
  ua.sun_family = AF_UNIX;
  std::strncpy(ua.sun_path, path.c_str(), sizeof ua.sun_path - 1);
  if (::bind(ufd, reinterpret_cast<sockaddr*>(&ua), sizeof ua) != 0 || ::listen(ufd, 1) != 0)
    die(std::string("cannot listen on ") + path + ": " + std::strerror(errno));
  const int tfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(tfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in ta{};
  ta.sin_family = AF_INET;
  ta.sin_port = htons(static_cast<std::uint16_t>(std::stoul(opt("tcp-port"))));
  ta.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(tfd, reinterpret_cast<sockaddr*>(&ta), sizeof ta) != 0 || ::listen(tfd, 1) != 0)
    die(std::string("cannot listen on tcp: ") + std::strerror(errno));
  if (!wait_fd(ufd, POLLIN, ms)) {
    std::printf("vguardd did not connect\n");
    ::unlink(path.c_str());
    return 10;
  }
  const int guest = ::accept4(ufd, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(ufd);
  std::printf("ready\n");
  std::fflush(stdout);
  if (!wait_fd(tfd, POLLIN, ms)) {
    std::printf("fence_virt did not connect\n");
    ::unlink(path.c_str());
    return 10;
  }
  const int client = ::accept4(tfd, nullptr, nullptr, SOCK_CLOEXEC);
  ::close(tfd);
  pollfd fds[2] = {{client, POLLIN, 0}, {guest, POLLIN, 0}};
  char buf[4096];
  for (;;) {
    if (::poll(fds, 2, ms) <= 0) break;
    if (fds[0].revents) {
      const ssize_t n = ::read(client, buf, sizeof buf);
      if (n <= 0) break;  // fence_virt is done
      write_all(guest, std::string(buf, static_cast<std::size_t>(n)));
    }
    if (fds[1].revents) {
      const ssize_t n = ::read(guest, buf, sizeof buf);
      if (n <= 0) break;
      write_all(client, std::string(buf, static_cast<std::size_t>(n)));
    }
  }
  ::close(client);
  ::close(guest);
  ::unlink(path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) die("usage: xvm_peer mcast|tcp|serial --option value ...");
  const std::string mode = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0) die("expected --option, got " + k);
    opts[k.substr(2)] = argv[i + 1];
  }
  const int ms = std::stoi(opt("wait", "5")) * 1000;
  if (mode == "vsock-cid") {
    const int fd = ::open("/dev/vsock", O_RDONLY | O_CLOEXEC);
    unsigned int cid = 0;
    if (fd < 0 || ::ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) != 0) return 77;
    ::close(fd);
    std::printf("%u\n", cid);
    return 0;
  }
  if (mode == "serial") return run_serial(ms);
  if (mode == "bridge") return run_bridge(ms);
  std::string key;
  if (!opt("key").empty()) {
    auto k = fv::read_key_file(opt("key"));
    if (!k) die(k.error().message());
    key = *k;
  }
  auto auth = fv::hash_from_name(opt("auth", "sha256"));
  if (!auth || *auth == fv::Hash::none) die("bad --auth");
  if (mode == "mcast") return run_mcast(key, *auth, ms);
  if (mode == "tcp") return run_tcp(key, *auth, ms);
  die("unknown mode " + mode);
}
