#pragma once
// The corosync adapter of the Bus port: CPG (libcpg) for ordered messages and membership, libquorum for quorum
// (STYLE.md §2, §4, §5; safety-design.md §2 for what CPG does and does not guarantee).
#include <cstddef>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/system/error_category.hpp>

#include "bus.h"
#include "log.h"

namespace vguard::fenced {

/// The category of corosync's cs_error_t values (messages from cs_strerror). Name: "corosync".
const boost::system::error_category& cs_category() noexcept;

/// Bus over one corosync CPG group plus libquorum, driven by an Asio io_context.
///
/// - Everything (methods, listener callbacks, timers) runs on the thread that runs `io`; no locking.
/// - The libcpg and libquorum fds are watched with posix::stream_descriptor::async_wait and drained with
///   CS_DISPATCH_ALL; the fds stay owned by corosync's libraries (released, never closed, by this class).
/// - send() only queues (FIFO, at most kMaxQueued messages); a posted flush step multicasts them in order with
///   CPG_TYPE_AGREED. Flow control (CS_ERR_TRY_AGAIN) backs off on a steady_timer, 2 ms doubling to 100 ms; the io
///   thread never sleeps. Messages are never multicast from inside a libcpg callback.
/// - Views are node-level: several processes of one node in the group count once. A node is in `joined` only
///   when its first process joined, in `left` only when its last process left (reason from CPG_REASON_*).
/// - Loss (a dispatch error, a failed (re)initialize or join): the listener gets on_lost() once and
///   on_quorum(false); the queue is DROPPED (the next view starts a fresh state exchange, so stale messages
///   must not reach it); the bus retries every second until corosync is back, re-joins, and the listener gets a
///   fresh on_view() from the new confchg. send() returns errc::not_running while the bus is down.
/// - on_quorum() reports changes only (the first known state always).
/// - The listener must not destroy the CpgBus from inside a callback.
class CpgBus final : public Bus {
 public:
  /// Most messages send() queues before it refuses with errc::busy.
  static constexpr std::size_t kMaxQueued = 10000;

  /// Does not connect; `group` is the CPG group name (vguardd: "vguard"; never fence_virtd's "fence-agents").
  /// `log` must outlive the bus.
  CpgBus(boost::asio::io_context& io, std::string group, Logger& log);
  /// Leaves the group and finalizes both handles. Pending handlers become no-ops (the io_context may still hold
  /// them). Call on the io thread, or after the io_context stopped.
  ~CpgBus() override;

  /// Must be called before start(); the listener must outlive the bus.
  void set_listener(BusListener* l) override;
  /// Connects and joins. When corosync is away, the failure is reported through on_lost() (posted) and the bus
  /// keeps retrying; the result is an error only for misuse: no listener, already started (errc::bad_config),
  /// or a group name longer than 127 bytes (errc::bad_config).
  Result<void> start() override;
  /// Queues `bytes` for agreed delivery. errc::not_running while disconnected, errc::busy when kMaxQueued
  /// messages are waiting.
  Result<void> send(std::string bytes) override;
  /// The node id from cpg_local_get (0 until the first successful connect).
  [[nodiscard]] NodeId local_node() const override;

  /// Whether a CPG connection is currently established (joined or joining).
  [[nodiscard]] bool connected() const;
  /// Messages waiting in the outbound queue.
  [[nodiscard]] std::size_t queued() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared so pending handlers can hold a weak_ptr and outlive the bus safely
};

}  // namespace vguard::fenced
