#pragma once
// Pacemaker's fencing history, as a source of "this host was power-fenced" (safety-design.md §5
// CONFIRM_FENCED). Blocking: the runtime calls it on its pool.
#include <cstdint>
#include <string>

#include "bus.h"
#include "result.h"

namespace vguard::fenced {

class FenceHistory {
 public:
  FenceHistory() = default;
  FenceHistory(const FenceHistory&) = delete;
  FenceHistory& operator=(const FenceHistory&) = delete;
  virtual ~FenceHistory() = default;
  /// Unix time (s) of the last successful fencing of the node (by corosync node id and name), 0 when none.
  /// errc::not_running when the local fencer cannot be asked.
  virtual Result<std::int64_t> last_fenced(NodeId node, const std::string& name) = 0;
};

}  // namespace vguard::fenced
