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
#include "cluster_engine.h"
#include "cluster_msg.h"
#include "engine.h"
#include "fencevirt_listeners.h"
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
constexpr auto kWriteDeadline = std::chrono::seconds(10);
constexpr auto kStopGrace = std::chrono::seconds(10);
constexpr int kMaxSessions = 256;       // per listener
constexpr int kRefusalsPerSecond = 20;  // forensic records of refused requests, beyond which they are counted
constexpr auto kTickInterval = std::chrono::milliseconds(200);
constexpr std::size_t kReplayCapacity = 1 << 16;  // per key

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

struct Daemon::Impl final : HypervisorListener, BusListener, FenceVirtHost {
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
  Engine engine;                            // standalone mode
  std::unique_ptr<ClusterEngine> cluster;   // cluster mode
  std::unique_ptr<Bus> owned_bus;           // when the daemon owns its bus (vguardd); destroyed before io
  bool hv_up = false;
  proto::ReplayGuard replay;
  std::map<proto::KeyId, std::string> keys;
  std::unique_ptr<AuditFile> audit;
  asio::steady_timer tick;
  asio::steady_timer reconnect;
  asio::signal_set signals;
  bool connecting = false;
  bool stopping = false;
  std::uint64_t next_request = 1;
  int ops_in_flight = 0;

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
  void feed(Input in) {
    if (std::holds_alternative<HvConnected>(in)) hv_up = true;
    if (std::holds_alternative<HvLost>(in)) hv_up = false;
    if (cluster) {
      std::visit([&](auto&& x) { execute(cluster->handle(ClusterEvent{mono_ms(), std::move(x)})); }, std::move(in));
    } else {
      execute(engine.handle(Event{mono_ms(), std::move(in)}));
    }
  }
  void feed_cluster(ClusterInput in) { execute(cluster->handle(ClusterEvent{mono_ms(), std::move(in)})); }

  // ---- BusListener (io thread) ----
  void on_message(NodeId from, std::string bytes) override {
    auto m = proto::decode_cluster(bytes, opts.config.cluster_key.id, opts.config.cluster_key.bytes);
    if (!m) {
      // Not from a vguardd of this cluster (another key, another version, damage): ignore it, loudly.
      note_refusal("node " + std::to_string(from), "cluster bus", "-", m.error().message());
      return;
    }
    feed_cluster(BusMsgIn{from, std::move(*m)});
  }
  void on_view(const View& v) override { feed_cluster(BusViewIn{v}); }
  void on_quorum(bool q) override { feed_cluster(QuorumIn{q}); }
  void on_lost(const Error& why) override { feed_cluster(BusLostIn{why.message()}); }

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
        run_op(d->op, audit_failed, audit_error, [this, u = d->uuid] { return to_done(hv.destroy(u)); });
      } else if (const auto* s = std::get_if<DoStart>(&c)) {
        run_op(s->op, audit_failed, audit_error, [this, u = s->uuid] { return to_done(hv.start(u)); });
      } else if (const auto* pz = std::get_if<DoPause>(&c)) {
        run_op(pz->op, audit_failed, audit_error, [this, u = pz->uuid] { return to_done(hv.suspend(u)); });
      } else if (const auto* q = std::get_if<DoQuery>(&c)) {
        run_op(q->op, audit_failed, audit_error, [this, u = q->uuid] {
          auto st = hv.state(u);
          if (!st) return to_done(Result<void>(st.error()));
          OpDone done;
          done.ok = true;
          done.state = *st;
          return done;
        });
      } else if (const auto* m = std::get_if<SendMsg>(&c)) {
        if (audit_failed) continue;  // nothing leaves this host without its record
        if (opts.bus) {
          if (auto r = opts.bus->send(proto::encode_cluster(opts.config.cluster_key.id, opts.config.cluster_key.bytes, m->msg));
              !r)
            VG_LOG(log, Level::warning, "cluster", "cannot send: {}", r.error().message());
        }
      } else if (const auto* fh = std::get_if<QueryFenceHistory>(&c)) {
        if (!opts.history) continue;
        asio::post(pool, [this, host = fh->host, name = fh->name] {
          auto t = opts.history->last_fenced(host, name);
          asio::post(io, [this, host, t] {
            if (t) {
              feed_cluster(FenceHistoryIn{host, *t});
            } else {
              VG_LOG(log, Level::warning, "cluster", "pacemaker history: {}", t.error().message());
            }
          });
        });
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

  static errc code_of(const Error& e) {
    return e.code.category() == vguard_category() ? static_cast<errc>(e.code.value()) : errc::operation_failed;
  }
  static OpDone to_done(const Result<void>& r) {
    OpDone d;
    d.ok = static_cast<bool>(r);
    if (!r) {
      d.error = r.error().message();
      d.code = code_of(r.error());
    }
    return d;
  }

  // Runs a blocking hypervisor call on the pool and feeds its result back on the io thread. Nothing runs when
  // the decision that precedes it could not be logged.
  template <class F>
  void run_op(std::uint64_t op, bool audit_failed, const std::string& audit_error, F fn) {
    if (audit_failed) {
      OpDone done;
      done.op = op;
      done.error = "not run: forensic log write failed: " + audit_error;
      done.code = errc::io_error;
      asio::post(io, [this, done] { feed(done); });
      return;
    }
    ++ops_in_flight;
    asio::post(pool, [this, op, fn = std::move(fn)]() mutable {
      OpDone done = fn();
      done.op = op;
      asio::post(io, [this, done] {
        --ops_in_flight;
        feed(done);
      });
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
    const TimeMs asked = mono_ms();
    asio::post(pool, [this, asked] {
      auto c = hv.connect();
      Result<std::vector<DomainInfo>> listing = c ? hv.list_domains() : Result<std::vector<DomainInfo>>(c.error());
      asio::post(io, [this, asked, listing = std::move(listing)] {
        connecting = false;
        if (listing) {
          feed(HvConnected{*listing, asked});
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
      if (!ec && !hv_up) try_connect();
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
  // Each listener serves at most kMaxSessions connections at once; the control socket has its own budget, so a
  // flood on a network listener can never lock root's tools and the libvirt hook out.
  struct Listener {
    std::unique_ptr<Acceptor> acceptor;
    std::string name;
    bool local = false;
    int sessions = 0;
  };
  std::vector<std::unique_ptr<Listener>> listeners;
  std::unique_ptr<FenceVirtListeners> fencevirt;  // fence_xvm / fence_virt compatibility listeners

  // ---- FenceVirtHost: fence_xvm / fence_virt requests enter the engine exactly like native ones ----
  awaitable<std::optional<proto::Response>> ask(std::string requester, proto::KeyId key,
                                                proto::Request request) override {
    const std::uint64_t rid = next_request++;
    asio::steady_timer wake(io);
    wake.expires_at(asio::steady_timer::time_point::max());
    Waiter w{&wake, std::nullopt};
    waiters[rid] = &w;
    WaiterGuard guard{waiters, rid};
    feed(RequestIn{rid, std::move(requester), key, std::move(request)});
    if (!w.response) co_await wake.async_wait(asio::as_tuple(use_awaitable));
    co_return std::move(w.response);
  }
  void refused(const std::string& peer, const std::string& listener, const std::string& key,
               const std::string& reason) override {
    note_refusal(peer, listener, key, reason);
  }
  void record(std::string_view type, const boost::json::object& fields, bool sync) override {
    append_audit(type, fields, sync);
  }

  Result<void> listen_on(const asio::generic::stream_protocol::endpoint& ep, const std::string& what, bool local) {
    auto l = std::make_unique<Listener>();
    l->acceptor = std::make_unique<Acceptor>(io);
    l->name = what;
    l->local = local;
    Acceptor& acc = *l->acceptor;
    boost::system::error_code ec;
    acc.open(ep.protocol(), ec);
    if (!ec && !local) acc.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(64, ec);
    if (ec) return make_error(errc::io_error, "cannot listen on " + what + ": " + ec.message());
    VG_LOG(log, Level::notice, "listen", "listening on {}", what);
    asio::co_spawn(io, accept_loop(l.get()), asio::detached);
    listeners.push_back(std::move(l));
    return {};
  }

  // Binds the control socket race-free without touching the process umask: bind a temporary name inside
  // the target directory, chmod it 0600, then rename it into place.
  Result<void> listen_control() {
    const std::string& path = opts.config.control_socket;
    std::error_code fec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), fec);
    const std::string tmp = path + ".tmp." + std::to_string(::getpid());
    ::unlink(tmp.c_str());
    auto r = listen_on(asio::generic::stream_protocol::endpoint(asio::local::stream_protocol::endpoint(tmp)),
                       "unix:" + path, true);
    if (!r) return r;
    if (::chmod(tmp.c_str(), 0600) != 0 || ::rename(tmp.c_str(), path.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      ::unlink(tmp.c_str());
      return make_error(errc::io_error, "cannot install control socket " + path + ": " + why);
    }
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
    return listen_control();
  }

  awaitable<void> accept_loop(Listener* l) {
    asio::steady_timer backoff(io);
    for (;;) {
      auto [ec, sock] = co_await l->acceptor->async_accept(asio::as_tuple(use_awaitable));
      if (stopping || ec == asio::error::operation_aborted) co_return;
      if (ec) {
        // Out of file descriptors (or similar): back off instead of spinning on the error.
        VG_LOG(log, Level::warning, "listen", "{}: accept failed: {}; pausing 100 ms", l->name, ec.message());
        backoff.expires_after(std::chrono::milliseconds(100));
        co_await backoff.async_wait(asio::as_tuple(use_awaitable));
        continue;
      }
      if (l->sessions >= kMaxSessions) {
        boost::system::error_code ignore;
        sock.close(ignore);
        note_refusal("-", l->name, "-", "too many concurrent connections (" + std::to_string(kMaxSessions) + ")");
        continue;
      }
      ++l->sessions;
      asio::co_spawn(io, session(std::move(sock), l->local),
                     [this, l](std::exception_ptr e) {
                       --l->sessions;
                       // A session never throws by design; if one does, state may be inconsistent: fail fast.
                       if (e) {
                         try {
                           std::rethrow_exception(e);
                         } catch (const std::exception& ex) {
                           VG_LOG(log, Level::critical, "request", "session failed: {}", ex.what());
                         } catch (...) {
                         }
                         std::abort();
                       }
                     });
    }
  }

  // Answers a request we could not authenticate: signed with the empty key, so the client shows the reason
  // but can never mistake it for a result. msg is the error's context; the client adds the code's text.
  static std::string unsigned_refusal(errc code, const std::string& msg) {
    proto::Response r;
    r.status = proto::Status::failure;
    r.error = static_cast<std::uint16_t>(code);
    r.message = msg;
    return proto::encode_response(proto::kLocalKeyId, "", r);
  }

  // Refusals are recorded, but an unauthenticated peer must not be able to fill the disk (after which every
  // fence outcome would fail): at most kRefusalsPerSecond records a second, then one record counting the rest.
  std::int64_t refusal_window = 0;
  int refusals_in_window = 0;
  int refusals_suppressed = 0;
  void note_refusal(const std::string& peer, const std::string& listener, const std::string& key,
                    const std::string& reason) {
    const std::int64_t second = mono_ms() / 1000;
    if (second != refusal_window) {
      if (refusals_suppressed > 0) {
        append_audit("refused-suppressed", {{"count", refusals_suppressed}}, false);
        VG_LOG(log, Level::warning, "request", "{} more refusals not recorded individually", refusals_suppressed);
      }
      refusal_window = second;
      refusals_in_window = 0;
      refusals_suppressed = 0;
    }
    if (++refusals_in_window > kRefusalsPerSecond) {
      ++refusals_suppressed;
      return;
    }
    append_audit("refused", {{"requester", peer}, {"listener", listener}, {"key", key}, {"reason", reason}}, false);
    VG_LOG(log, Level::warning, "request", "refused request from {} on {}: {}", peer, listener, reason);
  }

  void append_audit(std::string_view type, const boost::json::object& f, bool sync) {
    if (auto r = audit->append(type, f, sync, unix_ms()); !r)
      VG_LOG(log, Level::critical, "audit", "forensic log write failed: {}", r.error().message());
  }

  // Reads one frame with a deadline. The deadline and the read race through awaitable operators, so no
  // handler outlives this coroutine's frame.
  awaitable<Result<std::string>> read_frame(std::shared_ptr<Socket> sock) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer deadline(io);
    deadline.expires_after(kReadDeadline);
    std::string frame(4, '\0');
    auto first = co_await (asio::async_read(*sock, asio::buffer(frame), asio::as_tuple(use_awaitable)) ||
                           deadline.async_wait(asio::as_tuple(use_awaitable)));
    if (first.index() == 1) co_return make_error(errc::bad_frame, "no complete request within 5 s");
    auto [ec, n] = std::get<0>(first);
    if (ec) {
      if (n == 0) co_return make_error(errc::io_error, "");  // connected and closed: nothing to answer
      co_return make_error(errc::bad_frame, "truncated frame: " + std::to_string(n) + " of 4 length bytes");
    }
    auto len = proto::frame_length(frame);
    if (!len) co_return make_error(errc::bad_frame, len.error().context);
    frame.resize(4 + *len);
    auto rest = co_await (asio::async_read(*sock, asio::buffer(frame.data() + 4, *len), asio::as_tuple(use_awaitable)) ||
                          deadline.async_wait(asio::as_tuple(use_awaitable)));
    if (rest.index() == 1) co_return make_error(errc::bad_frame, "no complete request within 5 s");
    auto [ec2, n2] = std::get<0>(rest);
    if (ec2)
      co_return make_error(errc::bad_frame,
                           "truncated frame: got " + std::to_string(n2) + " of " + std::to_string(*len) + " bytes");
    co_return frame;
  }

  // Writes an answer with a deadline, then closes.
  awaitable<void> write_answer(std::shared_ptr<Socket> sock, std::string data) {
    using namespace asio::experimental::awaitable_operators;
    asio::steady_timer deadline(io);
    deadline.expires_after(kWriteDeadline);
    auto r = co_await (asio::async_write(*sock, asio::buffer(data), asio::as_tuple(use_awaitable)) ||
                       deadline.async_wait(asio::as_tuple(use_awaitable)));
    if (r.index() == 1) {
      VG_LOG(log, Level::info, "request", "answer not taken within {} s; connection closed",
             std::chrono::duration_cast<std::chrono::seconds>(kWriteDeadline).count());
    } else if (auto [ec, n] = std::get<0>(r); ec) {
      VG_LOG(log, Level::info, "request", "could not send answer: {}", ec.message());
    }
    boost::system::error_code ignore;
    sock->shutdown(asio::socket_base::shutdown_both, ignore);
    sock->close(ignore);
  }

  // Removes a waiter however the session ends.
  struct WaiterGuard {
    std::map<std::uint64_t, Waiter*>& map;
    std::uint64_t id;
    ~WaiterGuard() { map.erase(id); }
  };

  awaitable<void> session(Socket raw_sock, bool local) {
    auto sock = std::make_shared<Socket>(std::move(raw_sock));
    const std::string peer = describe_peer(*sock, local);
    const std::string where = local ? "control socket" : "network";
    if (local && !peer_is_root(*sock)) {
      note_refusal(peer, where, "-", "control socket peer is not root");
      co_return;
    }
    auto frame = co_await read_frame(sock);
    if (!frame) {
      if (!frame.error().context.empty()) {
        note_refusal(peer, where, "-", frame.error().message());
        co_await write_answer(sock, unsigned_refusal(code_of(frame.error()), frame.error().context));
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
      const Error e = !id ? id.error()
                      : *id == proto::kLocalKeyId
                          ? make_error(errc::unknown_key, "the local key is accepted only on the control socket")
                          : make_error(errc::unknown_key, "key id " + key_label + " is not configured on this host");
      note_refusal(peer, where, key_label, e.message());
      co_await write_answer(sock, unsigned_refusal(code_of(e), e.context));
      co_return;
    }
    auto decoded = proto::decode_frame(*frame, key);
    if (!decoded || !decoded->request) {
      const Error e = decoded ? make_error(errc::bad_frame, "expected a request frame") : decoded.error();
      note_refusal(peer, where, key_label, e.message());
      co_await write_answer(sock, unsigned_refusal(code_of(e), e.context));
      co_return;
    }
    const proto::Request& req = *decoded->request;
    proto::Response resp;
    if (auto fresh = replay.check(*id, req.nonce, req.timestamp_ms, unix_ms(), mono_ms()); !fresh) {
      note_refusal(peer, where, key_label, fresh.error().message());
      resp.status = proto::Status::failure;
      resp.error = static_cast<std::uint16_t>(code_of(fresh.error()));
      resp.message = fresh.error().message();
    } else {
      const std::uint64_t rid = next_request++;
      asio::steady_timer wake(io);
      wake.expires_at(asio::steady_timer::time_point::max());
      Waiter w{&wake, std::nullopt};
      waiters[rid] = &w;
      WaiterGuard guard{waiters, rid};
      std::optional<proto::KeyId> kid;
      if (*id != proto::kLocalKeyId) kid = *id;
      feed(RequestIn{rid, peer, kid, req});
      if (!w.response) co_await wake.async_wait(asio::as_tuple(use_awaitable));
      if (!w.response) co_return;  // shutting down
      resp = std::move(*w.response);
    }
    resp.nonce = req.nonce;
    co_await write_answer(sock, proto::encode_response(*id, key, resp));
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
    if (auto r = audit->append("daemon", {{"event", "stop"}, {"pid", ::getpid()}, {"pending", cluster ? 0 : engine.pending()}}, true,
                               unix_ms());
        !r)
      VG_LOG(log, Level::critical, "audit", "forensic log write failed: {}", r.error().message());
    for (auto& l : listeners) {
      boost::system::error_code ignore;
      l->acceptor->close(ignore);
    }
    if (fencevirt) fencevirt->close();
    tick.cancel();
    reconnect.cancel();
    ::unlink(opts.config.control_socket.c_str());
    if (!opts.config.pid_file.empty()) ::unlink(opts.config.pid_file.c_str());
    finish_shutdown(std::chrono::steady_clock::now() + kStopGrace);
  }

  // A destroy or start already handed to libvirt finishes anyway: wait (bounded) for its result, so its
  // outcome is in the forensic log and its client gets the answer, then stop.
  void finish_shutdown(std::chrono::steady_clock::time_point until) {
    if (ops_in_flight > 0 && std::chrono::steady_clock::now() < until) {
      reconnect.expires_after(std::chrono::milliseconds(50));
      reconnect.async_wait([this, until](boost::system::error_code) { finish_shutdown(until); });
      return;
    }
    if (ops_in_flight > 0)
      VG_LOG(log, Level::error, "daemon", "stopping with {} hypervisor operations still running", ops_in_flight);
    append_audit("daemon", {{"event", "stopped"}, {"head_seq", audit->head().seq}, {"head", audit->head().hash}},
                 true);
    VG_LOG(log, Level::notice, "daemon", "stopped | audit_seq={} audit_head={}", audit->head().seq, audit->head().hash);
    for (auto& [id, w] : waiters) w->wake->cancel();
    io.stop();
  }
};

Daemon::Daemon(DaemonOptions opts, Hypervisor& hv, Logger& log)
    : impl_(std::make_unique<Impl>(std::move(opts), hv, log)) {}

Daemon::~Daemon() {
  if (impl_->opts.bus) impl_->opts.bus->set_listener(nullptr);
  impl_->owned_bus.reset();
  impl_->hv.set_listener(nullptr);  // no libvirt event may reach a destroyed io_context
  impl_->pool.join();
}

Result<void> Daemon::start() {
  auto& d = *impl_;
  auto audit = AuditFile::open(d.opts.config.log_file);
  if (!audit) return audit.error();
  d.audit = std::move(*audit);
  if (auto r = d.open_listeners(); !r) return r;
  d.fencevirt = std::make_unique<FenceVirtListeners>(d.io, d.pool, d.opts.config, d, d.log);
  if (auto r = d.fencevirt->start(); !r) return r;
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
  // The chain has no key: logging its head elsewhere (the journal) lets an admin detect a rewritten tail.
  VG_LOG(d.log, Level::notice, "audit", "forensic log {} | audit_seq={} audit_head={}", d.opts.config.log_file,
         d.audit->head().seq, d.audit->head().hash);
  if (d.opts.bus) {
    d.opts.bus->set_listener(&d);
    if (auto r = d.opts.bus->start(); !r) return r;
    ClusterIdentity id{d.opts.bus->local_node(), d.opts.hostname, d.opts.incarnation,
                       d.opts.config.pacemaker_history && d.opts.history != nullptr,
                       std::set<NodeId>(d.opts.config.nodes.begin(), d.opts.config.nodes.end()),
                       d.opts.config.guard};
    d.cluster = std::make_unique<ClusterEngine>(id, d.opts.config.policy());
    VG_LOG(d.log, Level::notice, "cluster", "cluster mode: node {} ({}), group {}", id.self, id.hostname,
           d.opts.config.cluster_group);
  }
  d.try_connect();
  d.arm_tick();
  return {};
}

void Daemon::run() { impl_->io.run(); }

boost::asio::io_context& Daemon::io_context() { return impl_->io; }

void Daemon::own_bus(std::unique_ptr<Bus> bus) {
  impl_->opts.bus = bus.get();
  impl_->owned_bus = std::move(bus);
}

void Daemon::stop() {
  asio::post(impl_->io, [this] { impl_->shutdown(); });
}

}  // namespace vguard::fenced
