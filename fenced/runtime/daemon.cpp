#include "daemon.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "audit_file.h"
#include "engine.h"
#include "key.h"
#include "message.h"
#include "replay.h"

namespace vguard::fenced {
namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using Socket = asio::generic::stream_protocol::socket;
using Acceptor = asio::basic_socket_acceptor<asio::generic::stream_protocol>;

namespace {

constexpr auto kReadDeadline = std::chrono::seconds(5);
constexpr auto kTickInterval = std::chrono::milliseconds(200);
constexpr std::size_t kReplayCapacity = 1 << 20;

std::int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
TimeMs mono_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string describe_peer(Socket& s, bool local) {
  if (local) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
      return "unix:pid=" + std::to_string(cred.pid) + ",uid=" + std::to_string(cred.uid);
    return "unix:?";
  }
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(s.native_handle(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    ::inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    ::inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(a->sin6_port));
  }
  if (ss.ss_family == AF_VSOCK) {
    auto* a = reinterpret_cast<sockaddr_vm*>(&ss);
    return "vsock:" + std::to_string(a->svm_cid) + ":" + std::to_string(a->svm_port);
  }
  return "?";
}

bool peer_is_root(Socket& s) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  return cred.uid == 0 || cred.uid == ::geteuid();
}

}  // namespace

struct Daemon::Impl final : HypervisorListener {
  Impl(DaemonOptions o, Hypervisor& h, Logger& l)
      : opts(std::move(o)),
        hv(h),
        log(l),
        engine(opts.config.policy()),
        replay(static_cast<std::int64_t>(opts.config.replay_window) * 1000, kReplayCapacity),
        tick(io),
        reconnect(io),
        signals(io) {
    for (const auto& k : opts.config.keys) keys[k.key.id] = k.key.bytes;
  }

  DaemonOptions opts;
  Hypervisor& hv;
  Logger& log;
  asio::io_context io{1};
  asio::thread_pool pool{2};
  Engine engine;
  proto::ReplayGuard replay;
  std::map<proto::KeyId, std::string> keys;
  std::unique_ptr<AuditFile> audit;
  std::vector<std::unique_ptr<Acceptor>> acceptors;
  asio::steady_timer tick;
  asio::steady_timer reconnect;
  asio::signal_set signals;
  bool connecting = false;
  bool stopping = false;
  std::uint64_t next_request = 1;

  struct Waiter {
    asio::steady_timer* wake = nullptr;
    std::optional<proto::Response> response;
  };
  std::map<std::uint64_t, Waiter*> waiters;

  // ---- HypervisorListener: libvirt's event thread; re-post to the io thread ----
  void on_domain_event(const DomainInfo& d) noexcept override {
    asio::post(io, [this, d] { feed(HvDomain{d}); });
  }
  void on_connection_lost(const Error& why) noexcept override {
    asio::post(io, [this, msg = why.message()] {
      feed(HvLost{msg});
      schedule_reconnect(std::chrono::seconds(opts.config.reconnect_interval));
    });
  }

  // ---- engine plumbing ----
  void feed(Input in) { execute(engine.handle(Event{mono_ms(), std::move(in)})); }

  void execute(const std::vector<Command>& cmds) {
    // Commands run in order. If an audit write fails, no later reply may claim success and no later action
    // may run: the forensic record must exist before its consequence (safety-design.md §1.3).
    bool audit_failed = false;
    std::string audit_error;
    for (const auto& c : cmds) {
      if (const auto* a = std::get_if<Audit>(&c)) {
        if (audit_failed) continue;
        auto r = audit->append(a->type, a->fields, a->sync, unix_ms());
        if (!r) {
          audit_failed = true;
          audit_error = r.error().message();
          VG_LOG(log, Level::critical, "audit", "forensic log write failed: {}", audit_error);
        }
      } else if (const auto* l = std::get_if<LogLine>(&c)) {
        log.write(l->level, "engine", l->text);
      } else if (const auto* d = std::get_if<DoDestroy>(&c)) {
        if (audit_failed) {
          asio::post(io, [this, op = d->op, audit_error] { feed(OpDone{op, false, "not run: forensic log write failed: " + audit_error}); });
          continue;
        }
        run_blocking(d->op, [this, u = d->uuid] { return hv.destroy(u); });
      } else if (const auto* s = std::get_if<DoStart>(&c)) {
        if (audit_failed) {
          asio::post(io, [this, op = s->op, audit_error] { feed(OpDone{op, false, "not run: forensic log write failed: " + audit_error}); });
          continue;
        }
        run_blocking(s->op, [this, u = s->uuid] { return hv.start(u); });
      } else if (const auto* rep = std::get_if<Reply>(&c)) {
        proto::Response resp = rep->response;
        if (audit_failed) {
          resp = proto::Response{};
          resp.status = proto::Status::failure;
          resp.error = static_cast<std::uint16_t>(errc::io_error);
          resp.message = "forensic log write failed: " + audit_error;
        }
        deliver(rep->request, std::move(resp));
      }
    }
  }

  template <class F>
  void run_blocking(std::uint64_t op, F fn) {
    asio::post(pool, [this, op, fn = std::move(fn)]() mutable {
      Result<void> r = fn();
      OpDone done{op, static_cast<bool>(r), r ? std::string() : r.error().message()};
      asio::post(io, [this, done] { feed(done); });
    });
  }

  void deliver(std::uint64_t id, proto::Response resp) {
    auto it = waiters.find(id);
    if (it == waiters.end()) return;  // the client went away; the outcome is in the log
    it->second->response = std::move(resp);
    it->second->wake->cancel();
  }

  // ---- hypervisor connection ----
  void try_connect() {
    if (connecting || stopping) return;
    connecting = true;
    asio::post(pool, [this] {
      auto c = hv.connect();
      Result<std::vector<DomainInfo>> listing = c ? hv.list_domains() : Result<std::vector<DomainInfo>>(c.error());
      asio::post(io, [this, listing = std::move(listing)] {
        connecting = false;
        if (listing) {
          feed(HvConnected{*listing});
        } else {
          feed(HvLost{listing.error().message()});
          VG_LOG(log, Level::warning, "libvirt", "cannot connect to {}: {}; retrying in {} s", opts.config.libvirt_uri,
                 listing.error().message(), opts.config.reconnect_interval);
          schedule_reconnect(std::chrono::seconds(opts.config.reconnect_interval));
        }
      });
    });
  }

  void schedule_reconnect(std::chrono::seconds after) {
    if (stopping) return;
    reconnect.expires_after(after);
    reconnect.async_wait([this](boost::system::error_code ec) {
      if (!ec && !engine.hypervisor_connected()) try_connect();
    });
  }

  void arm_tick() {
    tick.expires_after(kTickInterval);
    tick.async_wait([this](boost::system::error_code ec) {
      if (ec || stopping) return;
      feed(Tick{});
      arm_tick();
    });
  }

  // ---- listeners ----
  Result<void> listen_on(const asio::generic::stream_protocol::endpoint& ep, const std::string& what, bool local) {
    auto acc = std::make_unique<Acceptor>(io);
    boost::system::error_code ec;
    acc->open(ep.protocol(), ec);
    if (!ec && !local) acc->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc->bind(ep, ec);
    if (!ec) acc->listen(64, ec);
    if (ec) return make_error(errc::io_error, "cannot listen on " + what + ": " + ec.message());
    VG_LOG(log, Level::notice, "listen", "listening on {}", what);
    asio::co_spawn(io, accept_loop(*acc, local), asio::detached);
    acceptors.push_back(std::move(acc));
    return {};
  }

  Result<void> open_listeners() {
    for (const auto& text : opts.config.listen) {
      auto l = parse_listen(text);
      if (!l) return l.error();
      if (l->kind == ListenAddress::Kind::vsock) {
        sockaddr_vm sa{};
        sa.svm_family = AF_VSOCK;
        sa.svm_cid = VMADDR_CID_ANY;
        sa.svm_port = l->port;
        asio::generic::stream_protocol::endpoint ep(&sa, sizeof sa, 0);
        if (auto r = listen_on(ep, text, false); !r) {
          // vsock exists only where the kernel has it (a host with vhost-vsock); elsewhere the other
          // listeners still serve, and the missing one is logged loudly.
          if (r.error().context.find("not supported") == std::string::npos) return r;
          VG_LOG(log, Level::warning, "listen", "{}: kernel has no vsock support; listener skipped", text);
        }
        continue;
      }
      boost::system::error_code ec;
      auto addr = asio::ip::make_address(l->host, ec);
      if (ec) return make_error(errc::bad_config, "listen address '" + l->host + "' is not a numeric IP address");
      asio::generic::stream_protocol::endpoint ep(asio::ip::tcp::endpoint(addr, static_cast<unsigned short>(l->port)));
      if (auto r = listen_on(ep, text, false); !r) return r;
    }
    // The control socket: root only (mode 0600, and the peer's uid is checked on every connection).
    const auto& path = opts.config.control_socket;
    std::error_code fec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), fec);
    ::unlink(path.c_str());
    const mode_t old = ::umask(0177);
    auto r = listen_on(asio::generic::stream_protocol::endpoint(asio::local::stream_protocol::endpoint(path)),
                       "unix:" + path, true);
    ::umask(old);
    if (!r) return r;
    ::chmod(path.c_str(), 0600);
    return {};
  }

  awaitable<void> accept_loop(Acceptor& acc, bool local) {
    for (;;) {
      auto [ec, sock] = co_await acc.async_accept(asio::as_tuple(use_awaitable));
      if (ec) {
        if (ec == asio::error::operation_aborted || stopping) co_return;
        VG_LOG(log, Level::warning, "listen", "accept failed: {}", ec.message());
        continue;
      }
      asio::co_spawn(io, session(std::move(sock), local), asio::detached);
    }
  }

  // Answers a request we could not authenticate: signed with the empty key, so the client shows the reason
  // but can never mistake it for a result. msg is the error's context; the client adds the code's text.
  std::string unsigned_refusal(errc code, const std::string& msg) {
    proto::Response r;
    r.status = proto::Status::failure;
    r.error = static_cast<std::uint16_t>(code);
    r.message = msg;
    return proto::encode_response(proto::kLocalKeyId, "", r);
  }

  void audit_refusal(const std::string& peer, const std::string& key, const Error& e) {
    boost::json::object f{{"requester", peer}, {"key", key}, {"reason", e.message()}};
    if (auto r = audit->append("refused", f, false, unix_ms()); !r)
      VG_LOG(log, Level::critical, "audit", "forensic log write failed: {}", r.error().message());
    VG_LOG(log, Level::warning, "request", "refused request from {}: {}", peer, e.message());
  }

  awaitable<std::optional<std::string>> read_frame(Socket& sock, std::string& err) {
    asio::steady_timer deadline(io);
    deadline.expires_after(kReadDeadline);
    bool timed_out = false;
    deadline.async_wait([&](boost::system::error_code ec) {
      if (!ec) {
        timed_out = true;
        boost::system::error_code ignore;
        sock.cancel(ignore);
      }
    });
    std::string frame(4, '\0');
    auto [ec, n] = co_await asio::async_read(sock, asio::buffer(frame), asio::as_tuple(use_awaitable));
    if (ec) {
      err = timed_out ? "no request within 5 s" : (n == 0 ? "" : "truncated frame: " + std::to_string(n) + " of 4 length bytes");
      co_return std::nullopt;
    }
    auto len = proto::frame_length(frame);
    if (!len) {
      err = len.error().context;
      co_return std::nullopt;
    }
    frame.resize(4 + *len);
    auto [ec2, n2] =
        co_await asio::async_read(sock, asio::buffer(frame.data() + 4, *len), asio::as_tuple(use_awaitable));
    deadline.cancel();
    if (ec2) {
      err = "truncated frame: got " + std::to_string(n2) + " of " + std::to_string(*len) + " bytes" +
            (timed_out ? " within 5 s" : "");
      co_return std::nullopt;
    }
    co_return frame;
  }

  awaitable<void> session(Socket sock, bool local) {
    const std::string peer = describe_peer(sock, local);
    if (local && !peer_is_root(sock)) {
      audit_refusal(peer, "-", make_error(errc::permission_denied, "control socket peer is not root"));
      co_return;
    }
    std::string err;
    auto frame = co_await read_frame(sock, err);
    if (!frame) {
      if (!err.empty()) {
        const Error e = make_error(errc::bad_frame, err);  // err is already a full sentence
        audit_refusal(peer, "-", e);
        co_await write_quiet(sock, unsigned_refusal(errc::bad_frame, e.context));
      }
      co_return;
    }
    auto id = proto::peek_key_id(*frame);
    std::string key;
    std::string key_label = "-";
    bool known = false;
    if (id) {
      if (*id == proto::kLocalKeyId) {
        known = local;  // the empty key is valid only on the root-only control socket
        key_label = "local-root";
      } else if (auto it = keys.find(*id); it != keys.end()) {
        known = true;
        key = it->second;
        key_label = proto::key_id_hex(*id);
      } else {
        key_label = proto::key_id_hex(*id);
      }
    }
    if (!known) {
      const Error e = id ? make_error(errc::unknown_key, "key id " + key_label + " is not configured on this host")
                         : id.error();
      audit_refusal(peer, key_label, e);
      co_await write_quiet(sock, unsigned_refusal(static_cast<errc>(e.code.value()), e.context));
      co_return;
    }
    auto decoded = proto::decode_frame(*frame, key);
    if (!decoded || !decoded->request) {
      const Error e = decoded ? make_error(errc::bad_frame, "expected a request frame") : decoded.error();
      audit_refusal(peer, key_label, e);
      co_await write_quiet(sock, unsigned_refusal(static_cast<errc>(e.code.value()), e.context));
      co_return;
    }
    const proto::Request& req = *decoded->request;
    proto::Response resp;
    if (auto fresh = replay.check(req.nonce, req.timestamp_ms, unix_ms()); !fresh) {
      audit_refusal(peer, key_label, fresh.error());
      resp.status = proto::Status::failure;
      resp.error = static_cast<std::uint16_t>(fresh.error().code.value());
      resp.message = fresh.error().message();
    } else {
      const std::uint64_t rid = next_request++;
      asio::steady_timer wake(io);
      wake.expires_at(asio::steady_timer::time_point::max());
      Waiter w{&wake, std::nullopt};
      waiters[rid] = &w;
      std::optional<proto::KeyId> kid;
      if (*id != proto::kLocalKeyId) kid = *id;
      feed(RequestIn{rid, peer, kid, req});
      if (!w.response) {
        auto [ec] = co_await wake.async_wait(asio::as_tuple(use_awaitable));
        (void)ec;
      }
      waiters.erase(rid);
      if (!w.response) co_return;  // shutting down
      resp = std::move(*w.response);
    }
    resp.nonce = req.nonce;
    co_await write_quiet(sock, proto::encode_response(*id, key, resp));
  }

  awaitable<void> write_quiet(Socket& sock, std::string data) {
    auto [ec, n] = co_await asio::async_write(sock, asio::buffer(data), asio::as_tuple(use_awaitable));
    (void)n;
    if (ec) VG_LOG(log, Level::info, "request", "could not send answer: {}", ec.message());
    boost::system::error_code ignore;
    sock.shutdown(asio::socket_base::shutdown_both, ignore);
  }

  void wait_signal() {
    signals.async_wait([this](boost::system::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        // There is no reload: a changed key set must not take effect half-way. Restart to apply changes.
        VG_LOG(log, Level::notice, "daemon", "SIGHUP ignored: restart vguardd to apply configuration changes");
        wait_signal();
        return;
      }
      shutdown();
    });
  }

  void shutdown() {
    if (stopping) return;
    stopping = true;
    VG_LOG(log, Level::notice, "daemon", "stopping");
    if (auto r = audit->append("daemon", {{"event", "stop"}, {"pid", ::getpid()}, {"pending", engine.pending()}}, true,
                               unix_ms());
        !r)
      VG_LOG(log, Level::critical, "audit", "forensic log write failed: {}", r.error().message());
    for (auto& a : acceptors) {
      boost::system::error_code ignore;
      a->close(ignore);
    }
    tick.cancel();
    reconnect.cancel();
    for (auto& [id, w] : waiters) w->wake->cancel();
    ::unlink(opts.config.control_socket.c_str());
    if (!opts.config.pid_file.empty()) ::unlink(opts.config.pid_file.c_str());
    io.stop();
  }
};

Daemon::Daemon(DaemonOptions opts, Hypervisor& hv, Logger& log)
    : impl_(std::make_unique<Impl>(std::move(opts), hv, log)) {}

Daemon::~Daemon() {
  impl_->hv.set_listener(nullptr);  // no libvirt event may reach a destroyed io_context
  impl_->pool.join();
}

Result<void> Daemon::start() {
  auto& d = *impl_;
  auto audit = AuditFile::open(d.opts.config.log_file);
  if (!audit) return audit.error();
  d.audit = std::move(*audit);
  if (auto r = d.open_listeners(); !r) return r;
  if (!d.opts.config.pid_file.empty()) {
    std::ofstream(d.opts.config.pid_file) << ::getpid() << "\n";
  }
  d.hv.set_listener(&d);
  boost::json::object f{{"event", "start"}, {"pid", ::getpid()}, {"libvirt_uri", d.opts.config.libvirt_uri},
                        {"keys", d.opts.config.keys.size()}};
  if (auto r = d.audit->append("daemon", f, true, unix_ms()); !r) return r;
  if (d.opts.install_signal_handlers) {
    d.signals.add(SIGTERM);
    d.signals.add(SIGINT);
    d.signals.add(SIGHUP);
    d.wait_signal();
  }
  d.try_connect();
  d.arm_tick();
  return {};
}

void Daemon::run() { impl_->io.run(); }

void Daemon::stop() {
  asio::post(impl_->io, [this] { impl_->shutdown(); });
}

}  // namespace vguard::fenced
