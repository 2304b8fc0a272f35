#include "cpg_bus.h"

#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/quorum.h>
#include <sys/uio.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace vguard::fenced {
namespace asio = boost::asio;

namespace {

class CsCategory final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "corosync"; }
  std::string message(int ev) const override { return cs_strerror(static_cast<cs_error_t>(ev)); }
};

}  // namespace

const boost::system::error_category& cs_category() noexcept {
  static const CsCategory c;
  return c;
}

namespace {

constexpr std::string_view kSubsys = "cpg";
constexpr auto kBackoffMin = std::chrono::milliseconds(2);
constexpr auto kBackoffMax = std::chrono::milliseconds(100);
constexpr auto kReconnectEvery = std::chrono::milliseconds(1000);
constexpr auto kJoinRetry = std::chrono::milliseconds(100);
// Messages multicast per flush step before yielding to other handlers (dispatch must keep up with sends).
constexpr std::size_t kFlushBatch = 256;

Error cs_error(cs_error_t e, std::string context) {
  return Error{boost::system::error_code(static_cast<int>(e), cs_category()), std::move(context)};
}

bool is_cs(const Error& e, cs_error_t v) { return e.code.category() == cs_category() && e.code.value() == v; }

// Move-only owner of a cpg_handle_t: cpg_finalize in the destructor.
class CpgHandle {
 public:
  CpgHandle() = default;
  CpgHandle(const CpgHandle&) = delete;
  CpgHandle& operator=(const CpgHandle&) = delete;
  CpgHandle(CpgHandle&& o) noexcept : h_(o.h_), valid_(std::exchange(o.valid_, false)) {}
  CpgHandle& operator=(CpgHandle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = o.h_;
      valid_ = std::exchange(o.valid_, false);
    }
    return *this;
  }
  ~CpgHandle() { reset(); }

  // libcpg copies `model`; `context` is returned by cpg_context_get in the callbacks.
  static Result<CpgHandle> initialize(cpg_model_v1_data_t& model, void* context) {
    cpg_handle_t h = 0;
    const cs_error_t e =
        cpg_model_initialize(&h, CPG_MODEL_V1, reinterpret_cast<cpg_model_data_t*>(&model), context);
    if (e != CS_OK) return cs_error(e, "cpg_model_initialize");
    CpgHandle out;
    out.h_ = h;
    out.valid_ = true;
    return out;
  }
  [[nodiscard]] cpg_handle_t get() const noexcept { return h_; }
  void reset() noexcept {
    if (valid_) cpg_finalize(h_);
    valid_ = false;
  }

 private:
  cpg_handle_t h_ = 0;
  bool valid_ = false;
};

// Move-only owner of a quorum_handle_t: quorum_finalize in the destructor.
class QuorumHandle {
 public:
  QuorumHandle() = default;
  QuorumHandle(const QuorumHandle&) = delete;
  QuorumHandle& operator=(const QuorumHandle&) = delete;
  QuorumHandle(QuorumHandle&& o) noexcept : h_(o.h_), valid_(std::exchange(o.valid_, false)) {}
  QuorumHandle& operator=(QuorumHandle&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = o.h_;
      valid_ = std::exchange(o.valid_, false);
    }
    return *this;
  }
  ~QuorumHandle() { reset(); }

  static Result<QuorumHandle> initialize(quorum_notification_fn_t notify, void* context) {
    quorum_callbacks_t cbs{};
    cbs.quorum_notify_fn = notify;
    quorum_handle_t h = 0;
    uint32_t quorum_type = 0;
    cs_error_t e = quorum_initialize(&h, &cbs, &quorum_type);
    if (e != CS_OK) return cs_error(e, "quorum_initialize");
    QuorumHandle out;
    out.h_ = h;
    out.valid_ = true;
    e = quorum_context_set(h, context);
    if (e != CS_OK) return cs_error(e, "quorum_context_set");
    return out;
  }
  [[nodiscard]] quorum_handle_t get() const noexcept { return h_; }
  void reset() noexcept {
    if (valid_) quorum_finalize(h_);
    valid_ = false;
  }

 private:
  quorum_handle_t h_ = 0;
  bool valid_ = false;
};

// A stream_descriptor over an fd owned by a corosync library: released (never closed) on destruction, which
// also cancels the pending wait.
class BorrowedFd {
 public:
  explicit BorrowedFd(asio::io_context& io) : sd_(io) {}
  BorrowedFd(const BorrowedFd&) = delete;
  BorrowedFd& operator=(const BorrowedFd&) = delete;
  ~BorrowedFd() {
    if (sd_.is_open()) (void)sd_.release();
  }
  Result<void> assign(int fd, const char* what) {
    boost::system::error_code ec;
    sd_.assign(fd, ec);
    if (ec) return Error{ec, std::string("watching the ") + what + " fd"};
    return {};
  }
  asio::posix::stream_descriptor& get() noexcept { return sd_; }

 private:
  asio::posix::stream_descriptor sd_;
};

// One live connection to corosync. Member order matters: the descriptors are declared after the handles, so
// they are released before cpg_finalize/quorum_finalize close the fds.
struct Connection {
  explicit Connection(asio::io_context& io) : cpg_fd(io), quorum_fd(io) {}
  CpgHandle cpg;
  QuorumHandle quorum;
  BorrowedFd cpg_fd;
  BorrowedFd quorum_fd;
  cpg_name group{};
  std::uint64_t generation = 0;
};

std::optional<LeaveReason> to_reason(uint32_t r) {
  switch (r) {
    case CPG_REASON_JOIN: return LeaveReason::join;
    case CPG_REASON_LEAVE: return LeaveReason::leave;
    case CPG_REASON_NODEDOWN: return LeaveReason::nodedown;
    case CPG_REASON_NODEUP: return LeaveReason::nodeup;
    case CPG_REASON_PROCDOWN: return LeaveReason::procdown;
    default: return std::nullopt;
  }
}


// Node-level view from CPG's process-level lists: a node is a member while any of its processes is; it joined
// when all of its member entries are new; it left when none of its processes remains.
View build_view(const cpg_address* members, size_t n_members, const cpg_address* left, size_t n_left,
                const cpg_address* joined, size_t n_joined) {
  View v;
  v.members.reserve(n_members);
  for (size_t i = 0; i < n_members; ++i) v.members.push_back(members[i].nodeid);
  std::sort(v.members.begin(), v.members.end());
  v.members.erase(std::unique(v.members.begin(), v.members.end()), v.members.end());

  for (size_t i = 0; i < n_joined; ++i) {
    const NodeId n = joined[i].nodeid;
    if (std::find(v.joined.begin(), v.joined.end(), n) != v.joined.end()) continue;
    const auto in_members = std::count_if(members, members + n_members, [n](const cpg_address& a) { return a.nodeid == n; });
    const auto in_joined = std::count_if(joined, joined + n_joined, [n](const cpg_address& a) { return a.nodeid == n; });
    if (in_members == in_joined) v.joined.push_back(n);
  }
  std::sort(v.joined.begin(), v.joined.end());

  for (size_t i = 0; i < n_left; ++i) {
    const NodeId n = left[i].nodeid;
    if (std::binary_search(v.members.begin(), v.members.end(), n)) continue;
    if (std::any_of(v.left.begin(), v.left.end(), [n](const auto& p) { return p.first == n; })) continue;
    // An unknown reason is reported as procdown: the process is gone, cause unknown.
    v.left.emplace_back(n, to_reason(left[i].reason).value_or(LeaveReason::procdown));
  }
  std::sort(v.left.begin(), v.left.end());
  return v;
}

std::string join_ids(const std::vector<NodeId>& ids) {
  std::string s;
  for (const NodeId n : ids) {
    if (!s.empty()) s += ',';
    s += std::to_string(n);
  }
  return s;
}

}  // namespace

struct CpgBus::Impl : std::enable_shared_from_this<CpgBus::Impl> {
  Impl(asio::io_context& io_ctx, std::string group_name, Logger& logger)
      : io(io_ctx), group(std::move(group_name)), log(logger), backoff_timer(io_ctx), reconnect_timer(io_ctx) {}

  asio::io_context& io;
  const std::string group;
  Logger& log;
  BusListener* listener = nullptr;
  bool started = false;
  bool stopping = false;
  NodeId local = 0;

  std::unique_ptr<Connection> conn;  // null while corosync is away
  std::uint64_t generation = 0;      // identifies `conn`; stale handlers compare and return
  bool lost_reported = false;        // on_lost already given for the current outage
  std::optional<bool> quorate;       // last state reported to the listener

  std::deque<std::string> queue;
  bool flush_scheduled = false;  // a posted flush or a backoff wait is outstanding
  std::chrono::milliseconds backoff = kBackoffMin;
  asio::steady_timer backoff_timer;
  asio::steady_timer reconnect_timer;

  // ---- connection lifecycle ----

  Result<void> connect() {
    auto c = std::make_unique<Connection>(io);
    c->group.length = static_cast<uint32_t>(group.size());
    std::memcpy(c->group.value, group.data(), group.size());

    cpg_model_v1_data_t model{};
    model.model = CPG_MODEL_V1;
    model.cpg_deliver_fn = &Impl::deliver_cb;
    model.cpg_confchg_fn = &Impl::confchg_cb;
    model.cpg_totem_confchg_fn = &Impl::totem_cb;
    model.flags = CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF;
    auto cpg = CpgHandle::initialize(model, this);
    if (!cpg) return cpg.error();
    c->cpg = std::move(*cpg);

    unsigned int nodeid = 0;
    if (const cs_error_t e = cpg_local_get(c->cpg.get(), &nodeid); e != CS_OK) return cs_error(e, "cpg_local_get");
    if (const cs_error_t e = cpg_join(c->cpg.get(), &c->group); e != CS_OK)
      return cs_error(e, "cpg_join " + group);

    auto q = QuorumHandle::initialize(&Impl::quorum_cb, this);
    if (!q) return q.error();
    c->quorum = std::move(*q);
    int is_quorate = 0;
    if (const cs_error_t e = quorum_getquorate(c->quorum.get(), &is_quorate); e != CS_OK)
      return cs_error(e, "quorum_getquorate");
    if (const cs_error_t e = quorum_trackstart(c->quorum.get(), CS_TRACK_CHANGES | CS_TRACK_CURRENT); e != CS_OK)
      return cs_error(e, "quorum_trackstart");

    int fd = -1;
    if (const cs_error_t e = cpg_fd_get(c->cpg.get(), &fd); e != CS_OK) return cs_error(e, "cpg_fd_get");
    if (auto r = c->cpg_fd.assign(fd, "CPG"); !r) return r;
    if (const cs_error_t e = quorum_fd_get(c->quorum.get(), &fd); e != CS_OK) return cs_error(e, "quorum_fd_get");
    if (auto r = c->quorum_fd.assign(fd, "quorum"); !r) return r;

    c->generation = ++generation;
    conn = std::move(c);
    local = nodeid;
    lost_reported = false;
    backoff = kBackoffMin;
    VG_LOG(log, Level::notice, kSubsys, "joining CPG group {} as node {} | quorate={}", group, local, is_quorate);
    arm_cpg();
    arm_quorum();
    // Reported from a fresh handler, never from inside start().
    asio::post(io, [w = weak_from_this(), gen = generation, is_quorate] {
      if (auto self = w.lock(); self && self->conn && self->conn->generation == gen) self->set_quorate(is_quorate != 0);
    });
    return {};
  }

  // Called outside every libcpg/libquorum callback (the handles are finalized here).
  void lose(const Error& why) {
    conn.reset();
    if (!queue.empty())
      VG_LOG(log, Level::warning, kSubsys, "dropping {} queued message(s) | reason=bus lost", queue.size());
    queue.clear();
    backoff_timer.cancel();
    backoff = kBackoffMin;
    if (!lost_reported) {
      lost_reported = true;
      VG_LOG(log, Level::error, kSubsys, "CPG bus lost: {} | group={}", why.message(), group);
      if (listener) listener->on_lost(why);
      set_quorate(false);
    } else {
      VG_LOG(log, Level::debug, kSubsys, "reconnect failed: {}", why.message());
    }
    schedule_reconnect(is_cs(why, CS_ERR_TRY_AGAIN) ? kJoinRetry : kReconnectEvery);
  }

  void schedule_reconnect(std::chrono::milliseconds after) {
    if (stopping) return;
    reconnect_timer.expires_after(after);
    reconnect_timer.async_wait([w = weak_from_this()](const boost::system::error_code& ec) {
      auto self = w.lock();
      if (!self || ec == asio::error::operation_aborted || self->stopping || self->conn) return;
      if (auto r = self->connect(); !r) self->lose(r.error());
    });
  }

  void set_quorate(bool q) {
    if (quorate == q) return;
    quorate = q;
    VG_LOG(log, Level::notice, kSubsys, "quorum {} | group={}", q ? "gained" : "lost", group);
    if (listener) listener->on_quorum(q);
  }

  // ---- fd watching ----

  void arm_cpg() {
    conn->cpg_fd.get().async_wait(asio::posix::stream_descriptor::wait_read,
                                  [w = weak_from_this(), gen = conn->generation](const boost::system::error_code& ec) {
                                    if (auto self = w.lock()) self->on_readable(gen, ec, true);
                                  });
  }
  void arm_quorum() {
    conn->quorum_fd.get().async_wait(asio::posix::stream_descriptor::wait_read,
                                     [w = weak_from_this(), gen = conn->generation](const boost::system::error_code& ec) {
                                       if (auto self = w.lock()) self->on_readable(gen, ec, false);
                                     });
  }

  void on_readable(std::uint64_t gen, const boost::system::error_code& ec, bool is_cpg) {
    // A completion queued before its connection was torn down must not touch the next one.
    if (!conn || conn->generation != gen || ec == asio::error::operation_aborted) return;
    if (ec) {
      lose(Error{ec, is_cpg ? "waiting on the CPG fd" : "waiting on the quorum fd"});
      return;
    }
    // CS_DISPATCH_ALL drains until the IPC would block, and the wait is re-armed before control returns to the
    // reactor, so an edge-triggered wakeup cannot be missed.
    const cs_error_t e = is_cpg ? cpg_dispatch(conn->cpg.get(), CS_DISPATCH_ALL)
                                : quorum_dispatch(conn->quorum.get(), CS_DISPATCH_ALL);
    if (e != CS_OK) {
      lose(cs_error(e, is_cpg ? "cpg_dispatch" : "quorum_dispatch"));
      return;
    }
    if (!conn || conn->generation != gen) return;  // defensive: callbacks never tear the connection down
    if (is_cpg)
      arm_cpg();
    else
      arm_quorum();
  }

  // ---- outbound queue ----

  void schedule_flush() {
    if (flush_scheduled) return;
    flush_scheduled = true;
    asio::post(io, [w = weak_from_this()] {
      if (auto self = w.lock()) self->on_flush();
    });
  }

  // Runs from a posted handler or the backoff timer, never from inside a libcpg callback: multicasting from a
  // deliver/confchg callback would re-enter the library during dispatch.
  void on_flush() {
    flush_scheduled = false;
    if (!conn) return;
    std::size_t sent = 0;
    while (!queue.empty()) {
      if (sent == kFlushBatch) {
        schedule_flush();
        return;
      }
      std::string& m = queue.front();
      iovec iov{m.data(), m.size()};
      const cs_error_t e = cpg_mcast_joined(conn->cpg.get(), CPG_TYPE_AGREED, &iov, 1);
      if (e == CS_ERR_TRY_AGAIN) {
        // Flow control: corosync's queue is full. Retry on a timer; the head stays first (FIFO).
        VG_LOG(log, Level::debug, kSubsys, "flow control: {} queued, retry in {} ms", queue.size(), backoff.count());
        flush_scheduled = true;
        backoff_timer.expires_after(backoff);
        backoff = std::min(backoff * 2, std::chrono::duration_cast<std::chrono::milliseconds>(kBackoffMax));
        backoff_timer.async_wait([w = weak_from_this()](const boost::system::error_code&) {
          if (auto self = w.lock()) self->on_flush();
        });
        return;
      }
      if (e == CS_ERR_LIBRARY || e == CS_ERR_BAD_HANDLE) {
        lose(cs_error(e, "cpg_mcast_joined"));
        return;
      }
      if (e != CS_OK) {
        // Not retryable (e.g. CS_ERR_TOO_BIG): drop this one message, keep the order of the rest.
        VG_LOG(log, Level::error, kSubsys, "dropping a message of {} bytes: {}", m.size(),
               cs_error(e, "cpg_mcast_joined").message());
      }
      queue.pop_front();
      backoff = kBackoffMin;
      ++sent;
    }
  }

  // ---- libcpg / libquorum trampolines (run inside cpg_dispatch/quorum_dispatch, on the io thread) ----

  static Impl* from_cpg(cpg_handle_t h) noexcept {
    void* ctx = nullptr;
    if (cpg_context_get(h, &ctx) != CS_OK) return nullptr;
    return static_cast<Impl*>(ctx);
  }

  static void deliver_cb(cpg_handle_t h, const cpg_name*, uint32_t nodeid, uint32_t, void* msg,
                         size_t len) noexcept {
    Impl* self = from_cpg(h);
    if (!self || !self->listener) return;
    try {
      self->listener->on_message(nodeid, std::string(static_cast<const char*>(msg), len));
    } catch (const std::exception&) {
      VG_ASSERT(false, "BusListener::on_message threw");
    }
  }

  static void confchg_cb(cpg_handle_t h, const cpg_name*, const cpg_address* members, size_t n_members,
                         const cpg_address* left, size_t n_left, const cpg_address* joined,
                         size_t n_joined) noexcept {
    Impl* self = from_cpg(h);
    if (!self) return;
    try {
      const View v = build_view(members, n_members, left, n_left, joined, n_joined);
      std::string lefts;
      for (const auto& [n, r] : v.left) lefts += fmt::format("{}{}({})", lefts.empty() ? "" : ",", n, leave_reason_name(r));
      VG_LOG(self->log, Level::notice, kSubsys, "view of group {}: members {} | joined={} left={}", self->group,
             join_ids(v.members), join_ids(v.joined), lefts);
      if (self->listener) self->listener->on_view(v);
    } catch (const std::exception&) {
      VG_ASSERT(false, "building or delivering a CPG view threw");
    }
  }

  static void totem_cb(cpg_handle_t h, cpg_ring_id ring, uint32_t n, const uint32_t* ids) noexcept {
    Impl* self = from_cpg(h);
    if (!self) return;
    try {
      std::vector<NodeId> v(ids, ids + n);
      VG_LOG(self->log, Level::info, kSubsys, "totem ring {}.{} | nodes={}", ring.nodeid, ring.seq, join_ids(v));
    } catch (const std::exception&) {
      // Logging only; nothing to undo.
    }
  }

  static void quorum_cb(quorum_handle_t h, uint32_t q, uint64_t, uint32_t, uint32_t*) noexcept {
    const void* ctx = nullptr;
    if (quorum_context_get(h, &ctx) != CS_OK || !ctx) return;
    try {
      // The context is the Impl registered in connect(); libquorum only stores it as const.
      const_cast<Impl*>(static_cast<const Impl*>(ctx))->set_quorate(q != 0);
    } catch (const std::exception&) {
      VG_ASSERT(false, "BusListener::on_quorum threw");
    }
  }

  void shutdown() noexcept {
    stopping = true;
    reconnect_timer.cancel();
    backoff_timer.cancel();
    queue.clear();
    if (conn) {
      // An orderly leave gives the others CPG_REASON_LEAVE instead of PROCDOWN. One attempt: no retry loop in
      // a destructor; finalize ends the membership anyway.
      (void)cpg_leave(conn->cpg.get(), &conn->group);
      conn.reset();
    }
  }
};

CpgBus::CpgBus(asio::io_context& io, std::string group, Logger& log)
    : impl_(std::make_shared<Impl>(io, std::move(group), log)) {}

CpgBus::~CpgBus() { impl_->shutdown(); }

void CpgBus::set_listener(BusListener* l) { impl_->listener = l; }

Result<void> CpgBus::start() {
  Impl& m = *impl_;
  if (!m.listener) return make_error(errc::bad_config, "CpgBus::start without a listener");
  if (m.started) return make_error(errc::bad_config, "CpgBus::start called twice");
  if (m.group.empty() || m.group.size() >= CPG_MAX_NAME_LENGTH)
    return make_error(errc::bad_config, "CPG group name must be 1.." + std::to_string(CPG_MAX_NAME_LENGTH - 1) + " bytes");
  m.started = true;
  if (auto r = m.connect(); !r) {
    // Reported from a handler (not from inside start()), then retried in the background.
    asio::post(m.io, [w = std::weak_ptr<Impl>(impl_), err = r.error()] {
      if (auto self = w.lock(); self && !self->stopping && !self->conn) self->lose(err);
    });
  }
  return {};
}

Result<void> CpgBus::send(std::string bytes) {
  Impl& m = *impl_;
  if (!m.conn) return make_error(errc::not_running, "CPG bus is down");
  if (m.queue.size() >= kMaxQueued) return make_error(errc::busy, "CPG outbound queue full");
  m.queue.push_back(std::move(bytes));
  m.schedule_flush();
  return {};
}

NodeId CpgBus::local_node() const { return impl_->local; }

bool CpgBus::connected() const { return impl_->conn != nullptr; }

std::size_t CpgBus::queued() const { return impl_->queue.size(); }

}  // namespace vguard::fenced
