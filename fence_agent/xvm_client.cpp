#include "xvm_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <ifaddrs.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace vguard::agent {
namespace {

using namespace std::chrono_literals;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  ~Fd() { reset(); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

void debug(const Options& o, const std::string& line) {
  if (o.debug > 0) std::fprintf(stderr, "%s\n", line.c_str());
}

int remaining_ms(XvmClock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - XvmClock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

Error sys_error(errc e, const std::string& what) { return make_error(e, what + ": " + std::strerror(errno)); }

Result<void> wait_fd(int fd, short ev, XvmClock::time_point deadline, const std::string& what) {
  for (;;) {
    pollfd p{fd, ev, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return {};
    if (n == 0) return make_error(errc::timed_out, what);
    if (errno != EINTR) return sys_error(errc::io_error, what);
  }
}

void set_nonblocking(int fd) {
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl >= 0) ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

Result<void> write_all(int fd, std::string_view data, XvmClock::time_point deadline,
                       const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == ENOTSOCK) n = ::write(fd, data.data(), data.size());  // serial device
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (auto w = wait_fd(fd, POLLOUT, deadline, what); !w) return w;
      continue;
    }
    return sys_error(errc::io_error, what);
  }
  return {};
}

// Reads exactly len bytes. EOF is an io_error naming `eof_means`.
Result<void> read_exact(int fd, char* buf, std::size_t len, XvmClock::time_point deadline,
                        const std::string& what, const std::string& eof_means) {
  std::size_t got = 0;
  while (got < len) {
    const ssize_t n = ::read(fd, buf + got, len - got);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0 || (n < 0 && errno == ECONNRESET)) return make_error(errc::io_error, eof_means);
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (auto w = wait_fd(fd, POLLIN, deadline, what); !w) return w.error();
      continue;
    }
    return sys_error(errc::io_error, what);
  }
  return {};
}

std::uint32_t random_u32() {
  std::uint32_t v = 0;
  // getrandom of 4 bytes from an initialised pool never fails short; loop on EINTR only.
  while (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
    if (errno != EINTR) VG_ASSERT(false, "getrandom failed");
  }
  return v;
}

fencevirt::Hash hash_of(const std::string& name) {
  std::string lower;
  for (const char c : name) lower += static_cast<char>((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
  const auto h = fencevirt::hash_from_name(lower);
  VG_ASSERT(h.has_value(), "hash/auth names are checked by the option parser");
  return *h;
}

std::uint8_t request_flags_xvm(const Options& o) {
  return (o.use_uuid && !request_target(o).empty()) ? fencevirt::kFlagUuid : std::uint8_t{0};
}

fencevirt::Request base_request(const Options& o, std::uint32_t seqno) {
  fencevirt::Request r;
  const auto op = xvm_op(o.op);
  VG_ASSERT(op.has_value(), "only network ops reach the xvm client");
  r.op = *op;
  r.hash = hash_of(o.hash);
  r.flags = request_flags_xvm(o);
  r.domain = request_target(o);
  r.seqno = seqno;
  return r;
}

// ---- connecting ----

Result<Fd> connect_stream(const sockaddr* sa, socklen_t len, int family, XvmClock::time_point deadline,
                          const std::string& where) {
  Fd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return sys_error(errc::not_running, "socket for " + where);
  if (::connect(fd.get(), sa, len) < 0) {
    if (errno != EINPROGRESS) return sys_error(errc::not_running, "cannot connect to " + where);
    if (auto w = wait_fd(fd.get(), POLLOUT, deadline, "connecting to " + where); !w) return w.error();
    int err = 0;
    socklen_t el = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) {
      errno = err;
      return sys_error(errc::not_running, "cannot connect to " + where);
    }
  }
  if (family != AF_VSOCK) {
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  }
  return fd;
}

Result<Fd> connect_tcp(const std::string& host, std::uint16_t port, XvmClock::time_point deadline) {
  const std::string where =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port_text = std::to_string(port);
  const int rc = ::getaddrinfo(host.c_str(), port_text.c_str(), &hints, &res);
  if (rc != 0) return make_error(errc::not_running, "cannot resolve " + host + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
  Error last = make_error(errc::not_running, "no address for " + where);
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    auto fd = connect_stream(ai->ai_addr, ai->ai_addrlen, ai->ai_family, deadline, where);
    if (fd) return fd;
    last = fd.error();
  }
  return last;
}

Result<Fd> connect_vsock(std::uint32_t cid, std::uint16_t port, XvmClock::time_point deadline) {
  sockaddr_vm sa{};
  sa.svm_family = AF_VSOCK;
  sa.svm_cid = cid;
  sa.svm_port = port;
  return connect_stream(reinterpret_cast<sockaddr*>(&sa), sizeof sa, AF_VSOCK, deadline,
                        fmt::format("vsock:{}:{}", cid, port));
}

// ---- multicast ----

struct LocalAddress {
  bool ipv6 = false;
  std::array<std::uint8_t, 16> bytes{};
  unsigned ifindex = 0;
  std::string text;
};

// The local addresses fence_xvm sends from (§1.7): every address of the family, 127.0.0.1 included; for IPv6
// without ::1 and without link-local fe80::/10.
std::vector<LocalAddress> local_addresses(bool ipv6) {
  std::vector<LocalAddress> out;
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return out;
  std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> guard(list, &::freeifaddrs);
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr) continue;
    LocalAddress la;
    la.ipv6 = ipv6;
    char text[INET6_ADDRSTRLEN] = {};
    if (!ipv6 && a->ifa_addr->sa_family == AF_INET) {
      const auto* sin = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
      std::memcpy(la.bytes.data(), &sin->sin_addr, 4);
      ::inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
    } else if (ipv6 && a->ifa_addr->sa_family == AF_INET6) {
      const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
      if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) || IN6_IS_ADDR_LINKLOCAL(&sin6->sin6_addr)) continue;
      std::memcpy(la.bytes.data(), &sin6->sin6_addr, 16);
      ::inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
    } else {
      continue;
    }
    la.text = text;
    la.ifindex = a->ifa_name != nullptr ? ::if_nametoindex(a->ifa_name) : 0;
    bool dup = false;
    for (const auto& x : out) dup = dup || x.bytes == la.bytes;
    if (!dup) out.push_back(std::move(la));
  }
  return out;
}

// The callback listener on *:port (fence_xvm: SO_REUSEADDR, backlog 10), bound before anything is sent. The
// port is busy while another fence_xvm / fence_vguard of this guest waits for its callback: retry every 100
// ms until the deadline.
Result<Fd> callback_listener(const Options& o, bool ipv6, XvmClock::time_point deadline) {
  for (;;) {
    Fd fd(::socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) return sys_error(errc::io_error, "callback listener socket");
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = 0;
    if (ipv6) {
      sockaddr_in6 sa{};
      sa.sin6_family = AF_INET6;
      sa.sin6_addr = in6addr_any;
      sa.sin6_port = htons(o.port);
      rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    } else {
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_addr.s_addr = htonl(INADDR_ANY);
      sa.sin_port = htons(o.port);
      rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    }
    if (rc == 0 && ::listen(fd.get(), 10) == 0) return fd;
    if (errno != EADDRINUSE)
      return sys_error(errc::io_error, fmt::format("callback listener on TCP port {}", o.port));
    debug(o, fmt::format("TCP port {} is busy (another fence agent waiting for its callback?); retrying",
                         o.port));
    if (remaining_ms(deadline) <= 0)
      return make_error(errc::timed_out,
                        fmt::format("waiting for TCP port {} for the callback (busy: another "
                                    "fence agent waiting for its callback?)",
                                    o.port));
    std::this_thread::sleep_for(
        std::min<std::chrono::milliseconds>(100ms, std::chrono::milliseconds(remaining_ms(deadline))));
  }
}

// Sends one signed copy from `from` to the group. Returns the errno of a failure, 0 on success.
int send_copy(const Options& o, const MulticastGroup& g, const LocalAddress& from, std::string_view key,
              std::uint32_t seqno) {
  Fd s(::socket(g.ipv6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (s.get() < 0) return errno;
  fencevirt::Request r = base_request(o, seqno);
  r.port = o.port;
  std::memcpy(r.address.data(), from.bytes.data(), g.ipv6 ? 16 : 4);
  r.addrlen = g.ipv6 ? 16 : 4;
  r.family = g.ipv6 ? AF_INET6 : AF_INET;
  fencevirt::sign(r, key);  // fresh random bytes for every copy
  const std::string packet = fencevirt::encode(r);
  const int hops = 2;
  ssize_t n = -1;
  if (g.ipv6) {
    const unsigned ifindex = from.ifindex;
    const int loop = 1;
    ::setsockopt(s.get(), IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex);
    ::setsockopt(s.get(), IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops);
    ::setsockopt(s.get(), IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &loop, sizeof loop);
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(o.port);
    ::inet_pton(AF_INET6, g.address.c_str(), &to.sin6_addr);
    n = ::sendto(s.get(), packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  } else {
    in_addr ifaddr{};
    std::memcpy(&ifaddr, from.bytes.data(), 4);
    ::setsockopt(s.get(), IPPROTO_IP, IP_MULTICAST_IF, &ifaddr, sizeof ifaddr);
    ::setsockopt(s.get(), IPPROTO_IP, IP_MULTICAST_TTL, &hops, sizeof hops);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(o.port);
    ::inet_pton(AF_INET, g.address.c_str(), &to.sin_addr);
    n = ::sendto(s.get(), packet.data(), packet.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  }
  return n == static_cast<ssize_t>(packet.size()) ? 0 : (errno != 0 ? errno : EIO);
}

Result<XvmAnswer> multicast_call(const Options& o, const std::string& key, XvmClock::time_point deadline) {
  std::string why;
  const auto group = multicast_group(o, &why);
  if (!group) return make_error(errc::bad_config, why);
  auto listener = callback_listener(o, group->ipv6, deadline);
  if (!listener) return listener.error();
  const auto from = local_addresses(group->ipv6);
  if (from.empty())
    return make_error(errc::bad_config,
                      fmt::format("no local {} address to send from", group->ipv6 ? "IPv6" : "IPv4"));
  const std::uint32_t seqno = random_u32();
  const auto period = std::chrono::milliseconds(100LL * o.retrans);
  int rounds = 0;
  Fd conn;
  while (conn.get() < 0) {
    ++rounds;
    int sent = 0;
    int last_errno = 0;
    for (const auto& a : from) {
      const int e = send_copy(o, *group, a, key, seqno);
      if (e == 0) {
        ++sent;
      } else {
        last_errno = e;
        debug(o, fmt::format("sending from {} to {}:{} failed: {}", a.text, group->address, o.port,
                             std::strerror(e)));
      }
    }
    debug(o, fmt::format("round {}: request {} sent from {} of {} local addresses", rounds, seqno, sent,
                         from.size()));
    if (sent == 0)
      return make_error(errc::io_error, fmt::format("cannot send to {}:{}: {}",
                                                    group->ipv6 ? "[" + group->address + "]" : group->address,
                                                    o.port, std::strerror(last_errno)));
    // Wait one retransmit period (or what is left of the deadline) for one callback.
    const auto round_end = std::min(deadline, XvmClock::now() + period);
    for (;;) {
      pollfd p{listener->get(), POLLIN, 0};
      const int n = ::poll(&p, 1, remaining_ms(round_end));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return sys_error(errc::io_error, "waiting for the callback");
      if (n == 0) break;
      sockaddr_storage peer{};
      socklen_t plen = sizeof peer;
      const int c =
          ::accept4(listener->get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (c < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
        return sys_error(errc::io_error, "accepting the callback");
      }
      conn = Fd(c);
      if (o.debug > 0) {
        char host[NI_MAXHOST] = {};
        ::getnameinfo(reinterpret_cast<sockaddr*>(&peer), plen, host, sizeof host, nullptr, 0,
                      NI_NUMERICHOST);
        debug(o, fmt::format("callback from {}", host));
      }
      break;
    }
    if (conn.get() >= 0) break;
    if (remaining_ms(deadline) <= 0) {
      return make_error(
          errc::timed_out,
          fmt::format("no callback from fence_virtd within {} s, {} transmission(s) to {}:{} (wrong "
                      "key, a hash weaker than fence_virtd's minimum, no fence_virtd on that group "
                      "and port, or TCP port {} blocked)",
                      o.timeout_s, rounds, group->ipv6 ? "[" + group->address + "]" : group->address, o.port,
                      o.port));
    }
  }
  listener->reset();  // one connection only: other daemons' callbacks are refused
  const int one = 1;
  ::setsockopt(conn.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
  return xvm_exchange(conn.get(), hash_of(o.auth), key, deadline);
}

Result<XvmAnswer> read_host_list(int fd, XvmClock::time_point deadline, XvmAnswer answer) {
  constexpr std::size_t kMaxRecords = 1 << 16;
  std::string rec(fencevirt::kHostRecordSize, '\0');
  for (std::size_t i = 0; i < kMaxRecords; ++i) {
    if (auto r = read_exact(fd, rec.data(), rec.size(), deadline, "reading the host list",
                            "fence_virtd closed the connection inside the host list");
        !r)
      return r.error();
    const fencevirt::HostRecord h = fencevirt::decode_host(rec);
    if (h.domain.empty() && h.uuid.empty()) return answer;  // the terminator
    answer.hosts.push_back(XvmHost{h.domain, h.uuid, h.state});
  }
  return make_error(errc::bad_frame, "host list longer than 65536 records");
}

Result<XvmAnswer> read_answer(int fd, XvmClock::time_point deadline, const std::string& eof_means) {
  char byte = 0;
  if (auto r = read_exact(fd, &byte, 1, deadline, "waiting for fence_virtd's answer", eof_means); !r)
    return r.error();
  XvmAnswer a;
  a.response = static_cast<std::uint8_t>(byte);
  if (a.response != fencevirt::kRespHostList) return a;
  return read_host_list(fd, deadline, std::move(a));
}

Result<Fd> open_serial(const Options& o) {
  const std::string dev = o.serial_device.value_or("");
  std::string why;
  const auto params = parse_serial_params(o.serial_params, &why);
  if (!params) return make_error(errc::bad_config, why);
  Fd fd(::open(dev.c_str(), O_RDWR | O_NOCTTY | O_EXCL | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) return sys_error(errc::not_running, "cannot open " + dev);
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  if (::fcntl(fd.get(), F_SETLK, &lk) < 0) return sys_error(errc::busy, "cannot lock " + dev);
  termios t{};
  if (::tcgetattr(fd.get(), &t) < 0) return sys_error(errc::io_error, dev + " is not a terminal");
  ::cfmakeraw(&t);
  speed_t speed = B9600;
  switch (params->speed) {
    case 2400:
      speed = B2400;
      break;
    case 9600:
      speed = B9600;
      break;
    case 19200:
      speed = B19200;
      break;
    case 38400:
      speed = B38400;
      break;
    case 57600:
      speed = B57600;
      break;
    case 115200:
      speed = B115200;
      break;
    default:
      break;
  }
  tcflag_t bits = CS8;
  switch (params->bits) {
    case 5:
      bits = CS5;
      break;
    case 6:
      bits = CS6;
      break;
    case 7:
      bits = CS7;
      break;
    default:
      break;
  }
  // fence_virt: speed | CLOCAL | CRTSCTS | CREAD | bits.
  t.c_cflag = bits | CLOCAL | CRTSCTS | CREAD;
  if (params->parity != 'N') t.c_cflag |= PARENB;
  if (params->parity == 'O') t.c_cflag |= PARODD;
  if (params->stop == 2) t.c_cflag |= CSTOPB;
  ::cfsetispeed(&t, speed);
  ::cfsetospeed(&t, speed);
  if (::tcsetattr(fd.get(), TCSANOW, &t) < 0) return sys_error(errc::io_error, "cannot configure " + dev);
  ::tcflush(fd.get(), TCIOFLUSH);
  // fence_virt's 300 ms "hangup" of the modem lines; a pty or virtio console without them just says no.
  int lines = TIOCM_DTR | TIOCM_RTS;
  if (::ioctl(fd.get(), TIOCMBIC, &lines) == 0) {
    std::this_thread::sleep_for(300ms);
    ::ioctl(fd.get(), TIOCMBIS, &lines);
  }
  return fd;
}

}  // namespace

std::optional<fencevirt::Op> xvm_op(Op op) {
  switch (op) {
    case Op::off:
      return fencevirt::Op::off;
    case Op::reboot:
      return fencevirt::Op::reboot;
    case Op::on:
      return fencevirt::Op::on;
    case Op::status:
      return fencevirt::Op::status;
    case Op::monitor:
      return fencevirt::Op::devstatus;
    case Op::list:
    case Op::list_status:
      return fencevirt::Op::hostlist;
    case Op::null:
    case Op::metadata:
    case Op::validate_all:
      return std::nullopt;
  }
  return std::nullopt;
}

std::string xvm_stream_request(const Options& o, std::string_view key, std::uint32_t seqno) {
  fencevirt::Request r = base_request(o, seqno);
  fencevirt::sign(r, key);
  return fencevirt::encode(r);
}

Result<XvmAnswer> xvm_exchange(int fd, fencevirt::Hash auth, std::string_view key,
                               XvmClock::time_point deadline) {
  set_nonblocking(fd);
  if (auth != fencevirt::Hash::none) {
    // Client order (§2.2): our challenge first, check fence_virtd's answer, then answer its challenge.
    const auto c1 = fencevirt::new_challenge();
    const std::string_view c1v(reinterpret_cast<const char*>(c1.data()), c1.size());
    if (auto w = write_all(fd, c1v, deadline, "sending the challenge"); !w) return w.error();
    std::string resp(fencevirt::kChallengeSize, '\0');
    if (auto r = read_exact(
            fd, resp.data(), resp.size(), deadline, "waiting for the challenge response",
            "fence_virtd closed the connection before answering the challenge (wrong key or hash?)");
        !r)
      return r.error();
    if (!fencevirt::check_response(auth, key, c1v, resp))
      return make_error(errc::bad_mac, "Invalid response to challenge (wrong key or auth type)");
    std::string c2(fencevirt::kChallengeSize, '\0');
    if (auto r = read_exact(fd, c2.data(), c2.size(), deadline, "waiting for fence_virtd's challenge",
                            "fence_virtd closed the connection before its challenge");
        !r)
      return r.error();
    const auto mine = fencevirt::challenge_response(auth, key, c2);
    if (auto w = write_all(fd, std::string_view(reinterpret_cast<const char*>(mine.data()), mine.size()),
                           deadline, "answering the challenge");
        !w)
      return w.error();
  }
  return read_answer(
      fd, deadline,
      auth != fencevirt::Hash::none
          ? "fence_virtd closed the connection without answering: it did not accept our challenge "
            "response (wrong key or auth type?)"
          : "fence_virtd closed the connection without answering (wrong key, hash or auth type?)");
}

Result<XvmAnswer> xvm_serial_exchange(int fd, const fencevirt::SerialRequest& req,
                                      XvmClock::time_point deadline) {
  set_nonblocking(fd);
  if (auto w = write_all(fd, fencevirt::encode_serial(req), deadline, "sending the request"); !w)
    return w.error();
  // The response starts with the magic "abba" (u32 0x61626261, LE); skip anything before it.
  static constexpr char kMagic[4] = {0x61, 0x62, 0x62, 0x61};
  constexpr std::size_t kMaxSkip = 1 << 16;
  char window[4] = {0, 0, 0, 0};
  std::size_t seen = 0;
  for (;;) {
    char c = 0;
    if (auto r = read_exact(fd, &c, 1, deadline, "waiting for fence_virtd's answer",
                            "the channel closed before fence_virtd answered");
        !r)
      return r.error();
    std::memmove(window, window + 1, 3);
    window[3] = c;
    if (++seen >= 4 && std::memcmp(window, kMagic, 4) == 0) break;
    if (seen > kMaxSkip) return make_error(errc::bad_frame, "no answer magic in 64 KiB from the channel");
  }
  return read_answer(fd, deadline, "the channel closed after the answer magic");
}

Result<XvmAnswer> xvm_call(const Options& o, const std::string& key) {
  const auto deadline = XvmClock::now() + std::chrono::seconds(o.timeout_s);
  switch (o.transport()) {
    case Transport::multicast:
      return multicast_call(o, key, deadline);
    case Transport::tcp:
    case Transport::vsock: {
      auto fd = o.transport() == Transport::tcp ? connect_tcp(o.ipaddr, o.port, deadline)
                                                : connect_vsock(o.vsock_cid.value_or(2), o.port, deadline);
      if (!fd) return fd.error();
      const std::string packet = xvm_stream_request(o, key, random_u32());
      if (auto w = write_all(fd->get(), packet, deadline, "sending the request"); !w) return w.error();
      return xvm_exchange(fd->get(), hash_of(o.auth), key, deadline);
    }
    case Transport::vmchannel:
    case Transport::serial: {
      auto fd = o.transport() == Transport::vmchannel ? connect_tcp(o.channel_address, o.port, deadline)
                                                      : open_serial(o);
      if (!fd) return fd.error();
      fencevirt::SerialRequest req;
      req.op = *xvm_op(o.op);
      req.flags = 0;  // fence_virt never sets RF_UUID on this channel
      req.domain = request_target(o);
      req.seqno = random_u32();
      return xvm_serial_exchange(fd->get(), req, deadline);
    }
    case Transport::unix_socket:
      break;
  }
  return make_error(errc::bad_config, "unix_socket is only available with protocol vguard");
}

}  // namespace vguard::agent
