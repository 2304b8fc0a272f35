#include "client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>

#include "crypto.h"

namespace vguard::proto {
namespace {

using Clock = std::chrono::steady_clock;

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
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

Error sys_error(errc e, const std::string& what) { return make_error(e, what + ": " + std::strerror(errno)); }

// Waits for fd to become ready for ev (POLLIN/POLLOUT) before the deadline.
Result<void> wait_fd(int fd, short ev, Clock::time_point deadline, const std::string& what) {
  for (;;) {
    pollfd p{fd, ev, 0};
    const int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return {};
    if (n == 0) return make_error(errc::timed_out, what);
    if (errno != EINTR) return sys_error(errc::io_error, what);
  }
}

Result<Fd> connect_to(const sockaddr* sa, socklen_t len, int family, Clock::time_point deadline,
                      const std::string& where) {
  Fd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (fd.get() < 0) return sys_error(errc::not_running, "socket for " + where);
  if (::connect(fd.get(), sa, len) < 0) {
    if (errno != EINPROGRESS) return sys_error(errc::not_running, "cannot connect to " + where);
    auto w = wait_fd(fd.get(), POLLOUT, deadline, "connecting to " + where);
    if (!w) return w.error();
    int err = 0;
    socklen_t el = sizeof err;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) {
      errno = err;
      return sys_error(errc::not_running, "cannot connect to " + where);
    }
  }
  return fd;
}

Result<Fd> open_endpoint(const Endpoint& ep, Clock::time_point deadline) {
  const std::string where = ep.describe();
  switch (ep.kind) {
    case Endpoint::Kind::unix_socket: {
      sockaddr_un sa{};
      sa.sun_family = AF_UNIX;
      if (ep.path.empty() || ep.path.size() >= sizeof sa.sun_path)
        return make_error(errc::not_running, "bad Unix socket path '" + ep.path + "'");
      std::memcpy(sa.sun_path, ep.path.data(), ep.path.size());
      return connect_to(reinterpret_cast<sockaddr*>(&sa), sizeof sa, AF_UNIX, deadline, where);
    }
    case Endpoint::Kind::vsock: {
      sockaddr_vm sa{};
      sa.svm_family = AF_VSOCK;
      sa.svm_cid = ep.cid;
      sa.svm_port = ep.port;
      return connect_to(reinterpret_cast<sockaddr*>(&sa), sizeof sa, AF_VSOCK, deadline, where);
    }
    case Endpoint::Kind::tcp: {
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      const std::string port = std::to_string(ep.port);
      const int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
      if (rc != 0) return make_error(errc::not_running, "cannot resolve " + ep.host + ": " + ::gai_strerror(rc));
      std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
      Error last = make_error(errc::not_running, "no address for " + where);
      for (addrinfo* ai = res; ai; ai = ai->ai_next) {
        auto fd = connect_to(ai->ai_addr, ai->ai_addrlen, ai->ai_family, deadline, where);
        if (fd) return fd;
        last = fd.error();
      }
      return last;
    }
  }
  return make_error(errc::not_running, "unknown endpoint kind");
}

Result<void> write_all(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto w = wait_fd(fd, POLLOUT, deadline, "sending request");
      if (!w) return w;
      continue;
    }
    return sys_error(errc::io_error, "sending request");
  }
  return {};
}

Result<void> read_exact(int fd, char* buf, std::size_t len, Clock::time_point deadline) {
  std::size_t got = 0;
  while (got < len) {
    const ssize_t n = ::recv(fd, buf + got, len - got, 0);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) return make_error(errc::io_error, "vguardd closed the connection before answering");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      auto w = wait_fd(fd, POLLIN, deadline, "waiting for vguardd's answer");
      if (!w) return w;
      continue;
    }
    return sys_error(errc::io_error, "reading answer");
  }
  return {};
}

std::int64_t unix_ms() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace

std::string Endpoint::describe() const {
  switch (kind) {
    case Kind::tcp:
      return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
    case Kind::unix_socket: return "unix:" + path;
    case Kind::vsock: return "vsock:" + std::to_string(cid) + ":" + std::to_string(port);
  }
  return "?";
}

Result<Response> call(const CallOptions& opts, Action action, const std::string& target, std::uint8_t flags) {
  const auto deadline = Clock::now() + opts.timeout;
  if (target.size() > kMaxString) return make_error(errc::bad_frame, "target name too long");
  auto fd = open_endpoint(opts.endpoint, deadline);
  if (!fd) return fd.error();

  Request req;
  const std::string nonce = random_bytes(kNonceLen);
  std::memcpy(req.nonce.data(), nonce.data(), kNonceLen);
  req.timestamp_ms = unix_ms();
  req.action = action;
  req.flags = flags;
  // Ask vguardd to decide within 90 % of our own deadline, so its answer arrives while we still wait for it.
  req.budget_ms = static_cast<std::uint32_t>(opts.timeout.count() * 9 / 10);
  req.target = target;
  const std::string_view key = opts.key ? std::string_view(opts.key->bytes) : std::string_view();
  const KeyId key_id = opts.key ? opts.key->id : kLocalKeyId;
  if (auto w = write_all(fd->get(), encode_request(key_id, key, req), deadline); !w) return w.error();

  std::string frame(4, '\0');
  if (auto r = read_exact(fd->get(), frame.data(), 4, deadline); !r) return r.error();
  auto len = frame_length(frame);
  if (!len) return len.error();
  frame.resize(4 + *len);
  if (auto r = read_exact(fd->get(), frame.data() + 4, *len, deadline); !r) return r.error();

  auto id = peek_key_id(frame);
  if (!id) return id.error();
  if (*id != key_id) {
    // vguardd could not verify our request, so it answered unsigned (local key id). Its text explains
    // why, but it proves nothing: report it as an error, never as a result.
    auto f = decode_frame(frame, std::string_view());
    if (f && f->response) {
      // Anyone can forge an unsigned answer: it may explain a failure, never choose a meaningful outcome
      // such as "permission denied" (fence_vguard's exit 3).
      auto code = static_cast<errc>(f->response->error);
      if (code == errc::ok || code == errc::permission_denied) code = errc::operation_failed;
      return make_error(code, "vguardd refused the request: " + f->response->message);
    }
    return make_error(errc::bad_mac, "answer signed with an unexpected key");
  }
  auto f = decode_frame(frame, key);
  if (!f) return f.error();
  if (!f->response) return make_error(errc::bad_frame, "expected a response frame");
  if (f->response->nonce != req.nonce) return make_error(errc::bad_frame, "answer does not match our request nonce");
  return std::move(*f->response);
}

}  // namespace vguard::proto
