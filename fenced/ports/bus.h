#pragma once
// The group-communication port: totally ordered messages and membership (corosync CPG in production,
// FakeBusHub in tests). Callbacks run on the owner's io thread.
#include <cstdint>
#include <string>
#include <vector>

#include "result.h"

namespace vguard::fenced {

using NodeId = std::uint32_t;

/// Why a member left a view (corosync's CPG_REASON_* numbering).
enum class LeaveReason : std::uint8_t { join = 1, leave = 2, nodedown = 3, nodeup = 4, procdown = 5 };

/// "join", "leave", "nodedown", "nodeup", "procdown" (for logs and test output).
inline const char* leave_reason_name(LeaveReason r) {
  switch (r) {
    case LeaveReason::join: return "join";
    case LeaveReason::leave: return "leave";
    case LeaveReason::nodedown: return "nodedown";
    case LeaveReason::nodeup: return "nodeup";
    case LeaveReason::procdown: return "procdown";
  }
  return "?";
}

/// One membership view as delivered by a confchg.
struct View {
  std::vector<NodeId> members;  ///< sorted, distinct node ids
  std::vector<NodeId> joined;
  std::vector<std::pair<NodeId, LeaveReason>> left;
};

class BusListener {
 public:
  virtual ~BusListener() = default;
  /// A message in the agreed total order (the sender's own included).
  virtual void on_message(NodeId from, std::string bytes) = 0;
  /// A membership change; messages after it were delivered in the new view.
  virtual void on_view(const View& v) = 0;
  /// Quorum as libquorum reports it (not ordered with messages: use only to be more conservative).
  virtual void on_quorum(bool quorate) = 0;
  /// The bus is gone (corosync died, dispatch error): this host is in no view until on_view again.
  virtual void on_lost(const Error& why) = 0;
};

/// Totally ordered group messaging. Not thread-safe: call from the io thread only.
class Bus {
 public:
  Bus() = default;
  Bus(const Bus&) = delete;
  Bus& operator=(const Bus&) = delete;
  virtual ~Bus() = default;
  virtual void set_listener(BusListener* l) = 0;
  /// Joins the group (and keeps retrying/reconnecting in the background when corosync is away).
  virtual Result<void> start() = 0;
  /// Queues a message for agreed delivery. Never blocks; a message queued while the bus is down is dropped
  /// (the next view triggers a fresh state exchange). errc::not_running when the bus is down.
  virtual Result<void> send(std::string bytes) = 0;
  /// This host's node id (valid after start()).
  [[nodiscard]] virtual NodeId local_node() const = 0;
};

}  // namespace vguard::fenced
