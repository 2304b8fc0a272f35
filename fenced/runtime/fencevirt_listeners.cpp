#include "fencevirt_listeners.h"

#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <set>

#include "crypto.h"
#include "executed_digests.h"
#include "fence_virt.h"
#include "fencevirt_sockets.h"
#include "request_history.h"

namespace vguard::fenced {
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using Socket = asio::generic::stream_protocol::socket;
using Acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;
namespace fv = fencevirt;

namespace {

constexpr auto kCallbackDeadline = std::chrono::seconds(5);  // fence_virtd: 5 s connect back
constexpr auto kRequestDeadline = std::chrono::seconds(5);   // TCP/vsock: the 176 bytes after accept
constexpr auto kExchangeDeadline =
    std::chrono::seconds(20);  // the challenge-response (fence_virtd: 10 s a step)
constexpr auto kWriteDeadline = std::chrono::seconds(10);
constexpr auto kSerialConnectDeadline = std::chrono::seconds(3);
constexpr int kMaxSessions = 64;  // per stream listener

std::int64_t mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// status, monitor and list read the map and change nothing.
bool is_read(fv::Op op) { return op == fv::Op::status || op == fv::Op::devstatus || op == fv::Op::hostlist; }

std::string op_name(fv::Op op) {
  switch (op) {
    case fv::Op::null:
      return "null";
    case fv::Op::off:
      return "off";
    case fv::Op::reboot:
      return "reboot";
    case fv::Op::on:
      return "on";
    case fv::Op::status:
      return "status";
    case fv::Op::devstatus:
      return "monitor";
    case fv::Op::hostlist:
      return "list";
  }
  return "?";
}

// vguard's power state as libvirt's virDomainState number, which fence_xvm's host list carries. "other" is a
// live process in a state vguard does not name (blocked, shutting down, crashed, pmsuspended): never 5.
std::uint8_t libvirt_state(proto::PowerState s) {
  switch (s) {
    case proto::PowerState::running:
      return 1;
    case proto::PowerState::paused:
      return 3;
    case proto::PowerState::shutoff:
      return 5;
    case proto::PowerState::other:
      return 2;
    case proto::PowerState::unknown:
      return 0;
  }
  return 0;
}

std::string endpoint_text(const asio::ip::address& a, unsigned port) {
  return a.is_v6() ? "[" + a.to_string() + "]:" + std::to_string(port)
                   : a.to_string() + ":" + std::to_string(port);
}

std::string peer_of(Socket& s) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(s.native_handle(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    asio::ip::address_v4 v4(ntohl(a->sin_addr.s_addr));
    return endpoint_text(v4, ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), &a->sin6_addr, 16);
    return endpoint_text(asio::ip::address_v6(b), ntohs(a->sin6_port));
  }
  if (ss.ss_family == AF_VSOCK) {
    auto* a = reinterpret_cast<sockaddr_vm*>(&ss);
    return "vsock:" + std::to_string(a->svm_cid) + ":" + std::to_string(a->svm_port);
  }
  return "?";
}

// Closes a socket when the deadline of the current phase passes, so reads and writes are plain async
// operations (they fail once the socket is closed): one timer per phase instead of one per read, which keeps
// a request's cost close to fence_virtd's blocking loop.
class Watchdog {
 public:
  explicit Watchdog(std::shared_ptr<Socket> s) : sock_(std::move(s)), timer_(sock_->get_executor()) {}
  ~Watchdog() { timer_.cancel(); }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  /// (Re)starts the deadline; a previous one no longer applies.
  void arm(std::chrono::steady_clock::duration d) {
    timer_.expires_after(d);
    timer_.async_wait([s = sock_](boost::system::error_code ec) {
      if (ec) return;
      boost::system::error_code ignore;
      s->close(ignore);
    });
  }
  void disarm() { timer_.cancel(); }

 private:
  std::shared_ptr<Socket> sock_;
  asio::steady_timer timer_;
};

// What a request came to: a response byte, or a host list.
struct Answer {
  std::uint8_t code = fv::kRespFail;
  std::optional<std::vector<fv::HostRecord>> hosts;
};

std::string stream_bytes(const Answer& a) {
  if (!a.hosts) return std::string(1, static_cast<char>(a.code));
  std::string out(1, static_cast<char>(fv::kRespHostList));
  for (const auto& h : *a.hosts) out += fv::encode_host(h);
  out += fv::host_terminator();
  out += static_cast<char>(fv::kRespSuccess);  // the backend's hostlist result, which fence_virtd sends too
  return out;
}

std::string serial_bytes(const Answer& a) {
  if (!a.hosts) return fv::encode_serial_response(a.code);
  std::string out = fv::encode_serial_response(fv::kRespHostList);
  for (const auto& h : *a.hosts) out += fv::encode_host(h);
  out += fv::host_terminator();
  out += fv::encode_serial_response(fv::kRespSuccess);
  return out;
}

}  // namespace

struct FenceVirtListeners::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& i, asio::thread_pool& p, const DaemonConfig& c, FenceVirtHost& h, Logger& l)
      : io(i), pool(p), cfg(c), host(h), log(l), rescan(i) {}
  ~Impl() { sync_pool.join(); }  // flushes already handed over finish (they only close descriptors)

  struct KeyEntry {
    std::string name;
    proto::KeyId id{};
    std::string bytes;
  };
  // One signed listener (multicast, TCP or vsock). Each keeps its own duplicate history, like fence_virtd.
  struct Signed {
    std::string name;
    const FenceVirtSigned* cfg = nullptr;
    std::vector<KeyEntry> keys;
    RequestHistory history;
    std::vector<std::unique_ptr<Acceptor>> acceptors;
    int sessions = 0;
  };

  asio::io_context& io;
  asio::thread_pool& pool;
  const DaemonConfig& cfg;
  FenceVirtHost& host;
  Logger& log;
  bool closed = false;
  std::unique_ptr<ExecutedDigests> digests;
  // The replay memory's fdatasync runs here, overlapping the callback and the challenge-response (the client
  // takes milliseconds to answer), instead of on the io thread or the libvirt pool.
  asio::thread_pool sync_pool{1};
  Signed xvm, tcp, vsock;
  std::unique_ptr<asio::ip::udp::socket> mcast;
  // serial
  RequestHistory serial_history;
  asio::steady_timer rescan;
  std::map<std::string, std::shared_ptr<Socket>> serial_conns;  // by socket path
  bool scanning = false;

  // Coroutines are spawned with this handler: a listener coroutine never throws by design; if one does, state
  // may be inconsistent, so fail fast like the daemon's sessions.
  auto on_done() {
    return [this](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        VG_LOG(log, Level::critical, "fence_virt", "listener failed: {}", ex.what());
      } catch (...) {
      }
      std::abort();
    };
  }

  // ---- set-up ----
  Result<void> setup_keys(Signed& s, const char* name, const FenceVirtSigned& c) {
    s.name = name;
    s.cfg = &c;
    for (const auto& kn : c.keys) {
      auto it =
          std::find_if(cfg.keys.begin(), cfg.keys.end(), [&](const KeyConfig& k) { return k.name == kn; });
      if (it == cfg.keys.end())
        return make_error(errc::bad_config, std::string(name) + ": no [key." + kn + "]");
      s.keys.push_back({kn, it->key.id, it->key.bytes});
    }
    return {};
  }

  Result<void> start() {
    const auto& fc = cfg.fence_virt;
    if (!fc.any_enabled()) return {};
    if (fc.xvm.enabled || fc.tcp.enabled || fc.vsock.enabled) {
      auto d = ExecutedDigests::open(fc.replay_file, fc.replay_entries);
      if (!d) return d.error();
      digests = std::move(*d);
      VG_LOG(log, Level::notice, "fence_virt",
             "replay memory {}: {} executed requests remembered (at most {})", fc.replay_file,
             digests->size(), digests->capacity());
    }
    if (fc.xvm.enabled) {
      if (auto r = setup_keys(xvm, "fence_xvm", fc.xvm); !r) return r;
      auto s = open_multicast_socket(fc.xvm.multicast_address, fc.xvm.port, fc.xvm.interface);
      if (!s)
        return make_error(
            s.error().code.value() == static_cast<int>(errc::bad_config) ? errc::bad_config : errc::io_error,
            "[fence_xvm]: " + s.error().context);
      mcast = std::make_unique<asio::ip::udp::socket>(io);
      boost::system::error_code ec;
      mcast->assign(s->is_v6 ? asio::ip::udp::v6() : asio::ip::udp::v4(), s->fd, ec);
      if (ec) {
        ::close(s->fd);
        return make_error(errc::io_error, "[fence_xvm]: " + ec.message());
      }
      VG_LOG(log, Level::notice, "listen", "fence_xvm multicast on {}:{}{} (hash >= {}, auth {}, keys {}{})",
             fc.xvm.multicast_address, fc.xvm.port,
             fc.xvm.interface.empty() ? "" : " dev " + fc.xvm.interface, fv::hash_name(fc.xvm.hash),
             fv::hash_name(fc.xvm.auth), fmt::join(fc.xvm.keys, ","),
             fc.xvm.allow_all_domains ? ", allow_all_domains" : "");
      asio::co_spawn(io, mcast_loop(shared_from_this()), on_done());
    }
    if (fc.tcp.enabled) {
      if (auto r = setup_keys(tcp, "fence_virt_tcp", fc.tcp); !r) return r;
      for (const auto& text : fc.tcp.listen) {
        auto l = parse_listen(text);
        if (!l) return l.error();
        boost::system::error_code ec;
        auto addr = asio::ip::make_address(l->host, ec);
        if (ec) return make_error(errc::bad_config, "[fence_virt_tcp] listen '" + text + "' is not numeric");
        asio::generic::stream_protocol::endpoint ep(
            asio::ip::tcp::endpoint(addr, static_cast<unsigned short>(l->port)));
        if (auto r = listen_stream(tcp, ep, "fence_virt tcp " + text); !r) return r;
      }
    }
    if (fc.vsock.enabled) {
      if (auto r = setup_keys(vsock, "fence_virt_vsock", fc.vsock); !r) return r;
      sockaddr_vm sa{};
      sa.svm_family = AF_VSOCK;
      sa.svm_cid = VMADDR_CID_ANY;
      sa.svm_port = fc.vsock.port;
      asio::generic::stream_protocol::endpoint ep(&sa, sizeof sa, 0);
      if (auto r = listen_stream(vsock, ep, "fence_virt vsock:" + std::to_string(fc.vsock.port)); !r) {
        // Only where the kernel has vsock; the other listeners still serve, and the gap is logged loudly.
        if (r.error().context.find("not supported") == std::string::npos) return r;
        VG_LOG(log, Level::warning, "listen",
               "fence_virt vsock:{}: kernel has no vsock support; listener skipped", fc.vsock.port);
      }
    }
    if (fc.serial.enabled) {
      VG_LOG(log, Level::notice, "listen", "fence_virt {} sockets in {} (libvirt {}, {} groups{})",
             fc.serial.vmchannel ? "vmchannel" : "serial", fc.serial.path, serial_uri(),
             fc.serial.groups.size(), fc.serial.allow_all_domains ? ", allow_all_domains" : "");
      scan_serial();
    }
    return {};
  }

  Result<void> listen_stream(Signed& s, const asio::generic::stream_protocol::endpoint& ep,
                             const std::string& what) {
    auto acc = std::make_unique<Acceptor>(io);
    boost::system::error_code ec;
    acc->open(ep.protocol(), ec);
    if (!ec && ep.protocol().family() != AF_VSOCK)
      acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(16, ec);
    if (ec) return make_error(errc::io_error, "cannot listen on " + what + ": " + ec.message());
    VG_LOG(log, Level::notice, "listen", "{} (hash >= {}, auth {}, keys {}{})", what,
           fv::hash_name(s.cfg->hash), fv::hash_name(s.cfg->auth), fmt::join(s.cfg->keys, ","),
           s.cfg->allow_all_domains ? ", allow_all_domains" : "");
    asio::co_spawn(io, accept_loop(shared_from_this(), &s, acc.get()), on_done());
    s.acceptors.push_back(std::move(acc));
    return {};
  }

  void close() {
    closed = true;
    boost::system::error_code ignore;
    if (mcast) mcast->close(ignore);
    for (Signed* s : {&xvm, &tcp, &vsock})
      for (auto& a : s->acceptors) a->close(ignore);
    rescan.cancel();
    for (auto& [path, sock] : serial_conns) sock->close(ignore);
  }

  // ---- shared steps ----
  struct Verified {
    fv::Request req;
    const KeyEntry* key = nullptr;
  };

  // Verifies against every key the listener accepts, all of them every time (each comparison is constant-time
  // and the loop does not stop early), then decodes.
  Result<Verified> verify(const Signed& s, std::string_view pkt) const {
    if (pkt.size() != fv::kRequestSize)
      return make_error(errc::bad_frame, "truncated or oversize request: " + std::to_string(pkt.size()) +
                                             " bytes (a fence_xvm request has 176)");
    const KeyEntry* match = nullptr;
    std::optional<Error> first_error;
    for (const auto& k : s.keys) {
      auto r = fv::verify(pkt, k.bytes, s.cfg->hash);
      if (r && !match) match = &k;
      if (!r && !first_error) first_error = r.error();
    }
    if (!match) {
      if (first_error && first_error->code != make_error_code(errc::bad_mac)) return *first_error;
      return make_error(errc::bad_mac, "digest does not verify with any key of [" + s.name +
                                           "] (wrong key or altered packet)");
    }
    auto req = fv::decode(pkt);
    if (!req) return req.error();
    return Verified{std::move(*req), match};
  }

  static std::string describe(const fv::Request& r) {
    return "op " + op_name(r.op) + ", domain '" + r.domain + "', seqno " + std::to_string(r.seqno) +
           ", hash " + std::string(fv::hash_name(r.hash));
  }

  // One digest's way to the disk. Settled on the io thread.
  struct Durable {
    explicit Durable(asio::io_context& io) : wake(io) {
      wake.expires_at(asio::steady_timer::time_point::max());
    }
    asio::steady_timer wake;
    bool done = false;
    std::string error;  // empty: durable
  };

  // After verification: the replay memory (refused, logged), then the duplicate history (dropped silently,
  // like fence_virtd: every client sends several copies), then the digest is appended to the replay memory
  // and its flush started. nullptr: the request goes no further. The caller awaits durable() before the
  // request can reach the engine, so no executed request is ever missing from the memory after a crash.
  // then_first runs once the request is admitted, before the digest is written (the multicast listener starts
  // its callback there, so the client works on its challenge while the digest goes to disk).
  template <class F>
  std::shared_ptr<Durable> admit(Signed& s, const Verified& v, std::string_view pkt, const std::string& peer,
                                 F&& then_first) {
    const std::string_view digest = pkt.substr(fv::kDigestOffset, fv::kHashFieldSize);
    if (digests->contains(digest)) {
      host.refused(peer, s.name, v.key->name,
                   "replayed packet: this signed request was already executed (" + describe(v.req) + ")");
      return nullptr;
    }
    const auto op = static_cast<std::uint8_t>(v.req.op);
    if (s.history.seen(op, v.req.seqno, v.req.domain, mono_ms())) {
      VG_LOG(log, Level::debug, "fence_virt",
             "{}: duplicate of a request being handled or handled < 10 s ago, "
             "dropped | peer={} {}",
             s.name, peer, describe(v.req));
      return nullptr;
    }
    s.history.record(op, v.req.seqno, v.req.domain, mono_ms());
    then_first();
    if (is_read(v.req.op) || v.req.op == fv::Op::null) {
      // A read is remembered (a replay is refused, also after a restart of vguardd) but not flushed: only a
      // kernel crash can lose it, and a read replayed after that changes nothing. What changes state is
      // flushed before it runs.
      if (auto w = digests->remember_written(digest); !w) {
        s.history.forget(op, v.req.seqno, v.req.domain);
        host.refused(peer, s.name, v.key->name,
                     "cannot record the request in the replay memory: " + w.error().message());
        return nullptr;
      }
      auto d = std::make_shared<Durable>(io);
      d->done = true;
      return d;
    }
    auto fd = digests->append_unsynced(digest);
    if (!fd) {
      s.history.forget(op, v.req.seqno, v.req.domain);
      host.refused(peer, s.name, v.key->name,
                   "cannot record the request in the replay memory: " + fd.error().message());
      return nullptr;
    }
    auto d = std::make_shared<Durable>(io);
    asio::post(sync_pool, [fd = *fd, d, ex = io.get_executor()]() mutable {
      auto r = ExecutedDigests::sync_and_close(fd);
      std::string err = r ? std::string() : r.error().message();
      asio::post(ex, [d = std::move(d), err = std::move(err)] {
        d->done = true;
        d->error = err;
        d->wake.cancel();
      });
    });
    return d;
  }

  static awaitable<std::string> durable(std::shared_ptr<Durable> d) {
    if (!d->done) co_await d->wake.async_wait(asio::as_tuple(use_awaitable));
    co_return d->done ? d->error : std::string("replay memory flush did not finish");
  }

  // Reads buf.size() bytes unless the peer closes first or the session's watchdog closes the socket. Returns
  // the number read, so a truncated request can be named.
  static awaitable<std::size_t> read_exact(std::shared_ptr<Socket> sock, std::string& buf) {
    auto [ec, n] = co_await asio::async_read(*sock, asio::buffer(buf), asio::as_tuple(use_awaitable));
    co_return n;
  }
  static awaitable<bool> write_all(std::shared_ptr<Socket> sock, std::string data) {
    auto [ec, n] = co_await asio::async_write(*sock, asio::buffer(data), asio::as_tuple(use_awaitable));
    co_return !ec;
  }
  static void close_socket(Socket& s) {
    boost::system::error_code ignore;
    s.shutdown(asio::socket_base::shutdown_both, ignore);
    s.close(ignore);
  }

  // The challenge-response in fence_virtd's server order: answer the client's C1, send C2, check its answer.
  // Returns an empty string on success, else the reason.
  static awaitable<std::string> exchange(std::shared_ptr<Socket> sock, fv::Hash auth, std::string key) {
    std::string c1(fv::kChallengeSize, '\0');
    if (co_await read_exact(sock, c1) != c1.size()) co_return "no 64-byte challenge from the client";
    const auto answer = fv::challenge_response(auth, key, c1);
    const auto c2 = fv::new_challenge();
    std::string out(reinterpret_cast<const char*>(answer.data()), answer.size());
    out.append(reinterpret_cast<const char*>(c2.data()), c2.size());
    if (!co_await write_all(sock, std::move(out))) co_return "cannot send the challenge";
    std::string reply(fv::kChallengeSize, '\0');
    if (co_await read_exact(sock, reply) != reply.size()) co_return "no answer to our challenge";
    if (!fv::check_response(auth, key, std::string_view(reinterpret_cast<const char*>(c2.data()), c2.size()),
                            reply))
      co_return "the client failed our challenge (wrong key or auth algorithm)";
    co_return std::string();
  }

  // Maps the fence_virt op to the engine's request and its answer back. nullopt: the daemon is stopping.
  awaitable<std::optional<Answer>> execute(fv::Op op, std::string domain, proto::KeyId key,
                                           std::string requester, std::string listener) {
    Answer a;
    if (op == fv::Op::null) {
      // fence_virtd's libvirt backend answers the NULL operation with failure; so does vguardd, without
      // asking.
      host.record("outcome",
                  {{"requester", requester},
                   {"listener", listener},
                   {"action", "null"},
                   {"result", "failure"},
                   {"reason", "null operation"}},
                  false);
      a.code = fv::kRespFail;
      co_return a;
    }
    proto::Request nreq;
    const std::string nonce = proto::random_bytes(nreq.nonce.size());
    std::memcpy(nreq.nonce.data(), nonce.data(), nreq.nonce.size());
    nreq.timestamp_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    switch (op) {
      case fv::Op::off:
        nreq.action = proto::Action::off;
        break;
      case fv::Op::reboot:
        nreq.action = proto::Action::reboot;
        break;
      case fv::Op::on:
        nreq.action = proto::Action::on;
        break;
      case fv::Op::status:
        nreq.action = proto::Action::status;
        break;
      case fv::Op::devstatus:
        nreq.action = proto::Action::monitor;
        break;
      case fv::Op::hostlist:
        nreq.action = proto::Action::list;
        break;
      case fv::Op::null:
        break;
    }
    // The target is a UUID when it is a canonical UUID (the engine parses it), else a name; RF_UUID is not
    // relied on, as no fence_virtd reads it.
    if (op != fv::Op::devstatus && op != fv::Op::hostlist) nreq.target = std::move(domain);
    auto resp = co_await host.ask(std::move(requester), key, std::move(nreq));
    if (!resp) co_return std::nullopt;
    if (op == fv::Op::hostlist && resp->status == proto::Status::success) {
      a.hosts.emplace();
      auto doms = resp->domains;
      // fence_virtd sorts by name ignoring case.
      std::sort(doms.begin(), doms.end(), [](const auto& x, const auto& y) {
        return std::lexicographical_compare(x.name.begin(), x.name.end(), y.name.begin(), y.name.end(),
                                            [](char c, char d) { return std::tolower(c) < std::tolower(d); });
      });
      for (const auto& d : doms) a.hosts->push_back({d.name, d.uuid.str(), libvirt_state(d.state)});
      co_return a;
    }
    switch (resp->status) {
      case proto::Status::success:
        a.code = fv::kRespSuccess;
        break;
      case proto::Status::off:
        a.code = fv::kRespOff;
        break;
      case proto::Status::denied:
        a.code = fv::kRespPerm;
        break;
      case proto::Status::failure:
        a.code = fv::kRespFail;
        break;
    }
    co_return a;
  }

  // ---- multicast ----
  static awaitable<void> mcast_loop(std::shared_ptr<Impl> self) {
    std::string buf(2048, '\0');
    asio::ip::udp::endpoint sender;
    for (;;) {
      auto [ec, n] =
          co_await self->mcast->async_receive_from(asio::buffer(buf), sender, asio::as_tuple(use_awaitable));
      if (self->closed || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        VG_LOG(self->log, Level::warning, "fence_virt", "fence_xvm: receive failed: {}", ec.message());
        continue;
      }
      const std::string peer = endpoint_text(sender.address(), sender.port());
      if (n != fv::kRequestSize) {
        // fence_virtd does not check the length; a short datagram must not be read as a request.
        self->host.refused(peer, "fence_xvm", "-",
                           "datagram of " + std::to_string(n) + " bytes (a fence_xvm request has 176)");
        continue;
      }
      asio::co_spawn(self->io, mcast_request(self, buf.substr(0, n), peer), self->on_done());
    }
  }

  static awaitable<void> mcast_request(std::shared_ptr<Impl> self, std::string pkt, std::string peer) {
    Signed& s = self->xvm;
    auto v = self->verify(s, pkt);
    if (!v) {
      self->host.refused(peer, s.name, "-", v.error().message());
      co_return;
    }
    const fv::Request& req = v->req;
    asio::ip::address cb;
    if (req.family == AF_INET && req.addrlen == 4) {
      asio::ip::address_v4::bytes_type b;
      std::copy_n(req.address.begin(), 4, b.begin());
      cb = asio::ip::address_v4(b);
    } else if (req.family == AF_INET6 && req.addrlen == 16) {
      asio::ip::address_v6::bytes_type b;
      std::copy_n(req.address.begin(), 16, b.begin());
      cb = asio::ip::address_v6(b);
    } else {
      self->host.refused(peer, s.name, v->key->name,
                         "no usable callback address (family " + std::to_string(req.family) + ", length " +
                             std::to_string(req.addrlen) + ")");
      co_return;
    }
    if (req.port == 0) {
      self->host.refused(peer, s.name, v->key->name, "callback port 0");
      co_return;
    }
    const std::string callback = endpoint_text(cb, req.port);
    // Connect back to the client (fence_virtd allows 5 s): a non-blocking connect started before the digest
    // is written, completed below.
    auto sock = std::make_shared<Socket>(self->io);
    const asio::generic::stream_protocol::endpoint ep(asio::ip::tcp::endpoint(cb, req.port));
    boost::system::error_code ec;
    bool pending = false;
    auto flushed = self->admit(s, *v, pkt, peer, [&] {
      sock->open(ep.protocol(), ec);
      if (!ec) sock->non_blocking(true, ec);
      if (ec) return;
      if (::connect(sock->native_handle(), ep.data(), static_cast<socklen_t>(ep.size())) == 0) return;
      if (errno == EINPROGRESS)
        pending = true;
      else
        ec = boost::system::error_code(errno, boost::system::system_category());
    });
    if (!flushed) co_return;
    Watchdog wd(sock);
    wd.arm(kCallbackDeadline);
    if (!ec && pending) {
      std::tie(ec) = co_await sock->async_wait(asio::socket_base::wait_write, asio::as_tuple(use_awaitable));
      int err = 0;
      socklen_t len = sizeof err;
      if (!ec && sock->is_open() &&
          ::getsockopt(sock->native_handle(), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err)
        ec = boost::system::error_code(err, boost::system::system_category());
    }
    if (ec || !sock->is_open()) {
      // Not executed; the client re-sends (re-signed, a new digest) and that copy must be served.
      s.history.forget(static_cast<std::uint8_t>(req.op), req.seqno, req.domain);
      VG_LOG(self->log, Level::info, "fence_virt", "fence_xvm: cannot call back {} | peer={} {}", callback,
             peer, describe(req));
      co_return;
    }
    co_await serve_stream(self, &s, sock, wd, *v, flushed, "fence_xvm " + peer + " callback " + callback);
  }

  // The part TCP, vsock and multicast (after the callback) share: challenge-response, execute, answer.
  // wd belongs to the caller's frame, which outlives this call.
  static awaitable<void> serve_stream(std::shared_ptr<Impl> self, Signed* s, std::shared_ptr<Socket> sock,
                                      Watchdog& wd, Verified v, std::shared_ptr<Durable> flushed,
                                      std::string requester) {
    const proto::KeyId id = s->cfg->allow_all_domains ? fencevirt_allow_all_id(s->name) : v.key->id;
    const std::string who = requester + " key " + v.key->name;
    std::string why;
    std::optional<Answer> a;
    if (is_read(v.req.op)) {
      // A read changes nothing, so the engine may answer while the client is still busy with the
      // challenge-response; the answer is sent only once the client passed it and the digest is durable.
      using namespace asio::experimental::awaitable_operators;
      wd.arm(kExchangeDeadline + std::chrono::seconds(self->cfg.request_timeout));
      std::tie(why, a) = co_await (exchange(sock, s->cfg->auth, v.key->bytes) &&
                                   self->execute(v.req.op, v.req.domain, id, who, s->name));
    } else {
      // Anything that changes state waits for the peer's proof of the key and for the durable digest.
      wd.arm(kExchangeDeadline);
      why = co_await exchange(sock, s->cfg->auth, v.key->bytes);
    }
    wd.disarm();
    if (!why.empty()) {
      self->host.refused(requester, s->name, v.key->name, why + " (" + describe(v.req) + ")");
      close_socket(*sock);
      co_return;
    }
    if (const std::string err = co_await durable(flushed); !err.empty()) {
      self->host.refused(requester, s->name, v.key->name,
                         "not executed: " + err + " (" + describe(v.req) + ")");
      close_socket(*sock);
      co_return;
    }
    if (!a && !is_read(v.req.op))
      a = co_await self->execute(v.req.op, v.req.domain, id, who, s->name);
    wd.arm(kWriteDeadline);
    if (a && !co_await write_all(sock, stream_bytes(*a)))
      VG_LOG(self->log, Level::info, "fence_virt", "{}: answer not delivered | requester={}", s->name,
             requester);
    close_socket(*sock);
  }

  // ---- TCP and vsock ----
  static awaitable<void> accept_loop(std::shared_ptr<Impl> self, Signed* s, Acceptor* acc) {
    asio::steady_timer backoff(self->io);
    for (;;) {
      auto [ec, raw] = co_await acc->async_accept(asio::as_tuple(use_awaitable));
      if (self->closed || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        VG_LOG(self->log, Level::warning, "fence_virt", "{}: accept failed: {}; pausing 100 ms", s->name,
               ec.message());
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(asio::as_tuple(use_awaitable));
        continue;
      }
      auto sock = std::make_shared<Socket>(std::move(raw));
      if (s->sessions >= kMaxSessions) {
        self->host.refused(peer_of(*sock), s->name, "-", "too many concurrent connections");
        close_socket(*sock);
        continue;
      }
      ++s->sessions;
      asio::co_spawn(self->io, stream_session(self, s, sock), [self, s](std::exception_ptr e) {
        --s->sessions;
        self->on_done()(e);
      });
    }
  }

  static awaitable<void> stream_session(std::shared_ptr<Impl> self, Signed* s, std::shared_ptr<Socket> sock) {
    const std::string peer = peer_of(*sock);
    std::string pkt(fv::kRequestSize, '\0');
    Watchdog wd(sock);
    wd.arm(kRequestDeadline);
    const std::size_t n = co_await read_exact(sock, pkt);
    if (n != pkt.size()) {
      if (n > 0)
        self->host.refused(peer, s->name, "-",
                           "truncated request: " + std::to_string(n) + " of 176 bytes within 5 s");
      close_socket(*sock);
      co_return;
    }
    auto v = self->verify(*s, pkt);
    if (!v) {
      self->host.refused(peer, s->name, "-", v.error().message());
      close_socket(*sock);
      co_return;
    }
    auto flushed = self->admit(*s, *v, pkt, peer, [] {});
    if (!flushed) {
      close_socket(*sock);
      co_return;
    }
    co_await serve_stream(self, s, sock, wd, std::move(*v), flushed, s->name + " " + peer);
  }

  // ---- serial / vmchannel ----
  std::string serial_uri() const {
    return cfg.fence_virt.serial.libvirt_uri.empty() ? cfg.libvirt_uri : cfg.fence_virt.serial.libvirt_uri;
  }

  // Lists the guests' sockets on the pool (libvirt blocks), then connects to new ones on the io thread.
  void scan_serial() {
    if (closed || scanning) return;
    scanning = true;
    const auto& sc = cfg.fence_virt.serial;
    asio::post(pool, [self = shared_from_this(), uri = serial_uri(), dir = sc.path, vmc = sc.vmchannel] {
      auto found = discover_guest_sockets(uri, dir, vmc);
      asio::post(self->io, [self, found = std::move(found)] {
        self->scanning = false;
        if (self->closed) return;
        if (!found) {
          VG_LOG(self->log, Level::warning, "fence_virt", "serial: {}", found.error().message());
        } else {
          for (const auto& g : *found) {
            if (self->serial_conns.count(g.path)) continue;
            auto sock = std::make_shared<Socket>(self->io);
            self->serial_conns[g.path] = sock;
            asio::co_spawn(self->io, serial_session(self, g, sock), self->on_done());
          }
        }
        self->rescan.expires_after(std::chrono::seconds(self->cfg.fence_virt.serial.rescan));
        self->rescan.async_wait([self](boost::system::error_code ec) {
          if (!ec) self->scan_serial();
        });
      });
    });
  }

  // The requester's Policy identity: the first group naming the guest (by name or UUID), or allow-all.
  std::optional<proto::KeyId> serial_identity(const GuestSocket& g, std::string& label) const {
    const auto& sc = cfg.fence_virt.serial;
    if (sc.allow_all_domains) {
      label = "allow_all_domains";
      return fencevirt_allow_all_id("fence_virt_serial");
    }
    for (std::size_t i = 0; i < sc.groups.size(); ++i)
      for (const auto& glob : sc.groups[i])
        if (glob_match(glob, g.name) || glob_match(glob, g.uuid)) {
          label = "group" + std::to_string(i + 1);
          return fencevirt_serial_group_id(i);
        }
    return std::nullopt;
  }

  static awaitable<void> serial_session(std::shared_ptr<Impl> self, GuestSocket g,
                                        std::shared_ptr<Socket> sock) {
    const std::string peer = "guest " + g.name + " (" + g.uuid + ") via " + g.path;
    {
      const asio::generic::stream_protocol::endpoint ep{asio::local::stream_protocol::endpoint(g.path)};
      boost::system::error_code ec;
      sock->open(ep.protocol(), ec);
      Watchdog wd(sock);
      wd.arm(kSerialConnectDeadline);
      if (!ec) std::tie(ec) = co_await sock->async_connect(ep, asio::as_tuple(use_awaitable));
      if (ec || !sock->is_open()) {
        VG_LOG(self->log, Level::debug, "fence_virt",
               "serial: cannot connect to {}; retrying at the next scan", peer);
        self->serial_conns.erase(g.path);
        co_return;
      }
    }
    VG_LOG(self->log, Level::info, "fence_virt", "serial: connected to {}", peer);
    const std::string magic = fv::encode_serial_response(0).substr(0, 4);
    std::string buf;
    std::string chunk(512, '\0');
    bool noted_garbage = false;
    for (;;) {
      auto [ec, n] = co_await sock->async_read_some(asio::buffer(chunk), asio::as_tuple(use_awaitable));
      if (ec || self->closed) break;
      buf.append(chunk, 0, n);
      for (;;) {
        // Resynchronise on the magic (fence_virtd reads blind 74-byte blocks and never recovers).
        const auto at = buf.find(magic);
        const std::size_t skip = at == std::string::npos ? (buf.size() > 3 ? buf.size() - 3 : 0) : at;
        if (skip > 0) {
          if (!noted_garbage)
            self->host.refused(peer, "fence_virt_serial", "-",
                               std::to_string(skip) + " bytes before the magic skipped");
          noted_garbage = true;
          buf.erase(0, skip);
        }
        if (buf.size() < fv::kSerialRequestSize) break;
        noted_garbage = false;
        auto r = fv::decode_serial(std::string_view(buf).substr(0, fv::kSerialRequestSize));
        buf.erase(0, fv::kSerialRequestSize);
        if (!r) {
          self->host.refused(peer, "fence_virt_serial", "-", r.error().message());
          continue;
        }
        co_await serial_request(self, g, sock, std::move(*r), peer);
      }
    }
    VG_LOG(self->log, Level::info, "fence_virt", "serial: {} closed", peer);
    close_socket(*sock);
    self->serial_conns.erase(g.path);
  }

  static awaitable<void> serial_request(std::shared_ptr<Impl> self, GuestSocket g,
                                        std::shared_ptr<Socket> sock, fv::SerialRequest r, std::string peer) {
    // Per guest: two guests' requests never suppress each other (fence_virtd keeps one history for all).
    const auto op = static_cast<std::uint8_t>(r.op);
    const std::string dup_key = g.uuid + "/" + r.domain;
    if (self->serial_history.seen(op, r.seqno, dup_key, mono_ms())) {
      VG_LOG(self->log, Level::debug, "fence_virt", "serial: duplicate request dropped | peer={} seqno={}",
             peer, r.seqno);
      co_return;
    }
    self->serial_history.record(op, r.seqno, dup_key, mono_ms());
    std::string label;
    auto id = self->serial_identity(g, label);
    Answer a;
    if (!id) {
      self->host.refused(
          peer, "fence_virt_serial", "-",
          "guest is in no [fence_virt_serial] group: may not " + op_name(r.op) + " '" + r.domain + "'");
      a.code = fv::kRespPerm;
    } else {
      auto ans = co_await self->execute(r.op, r.domain, *id, peer + " " + label, "fence_virt_serial");
      if (!ans) co_return;
      a = std::move(*ans);
    }
    Watchdog wd(sock);  // a guest that stops reading loses its connection, not the listener
    wd.arm(kWriteDeadline);
    if (!co_await write_all(sock, serial_bytes(a)))
      VG_LOG(self->log, Level::info, "fence_virt", "serial: answer not delivered | peer={}", peer);
  }
};

FenceVirtListeners::FenceVirtListeners(asio::io_context& io, asio::thread_pool& pool, const DaemonConfig& cfg,
                                       FenceVirtHost& host, Logger& log)
    : impl_(std::make_shared<Impl>(io, pool, cfg, host, log)) {}

FenceVirtListeners::~FenceVirtListeners() { impl_->close(); }

Result<void> FenceVirtListeners::start() { return impl_->start(); }

void FenceVirtListeners::close() { impl_->close(); }

}  // namespace vguard::fenced
