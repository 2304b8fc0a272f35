#pragma once
#include "fence_history.h"

namespace vguard::fenced {

/// FenceHistory over Pacemaker's fencer API (stonith_api_time, as dlm_controld uses it).
class PacemakerHistory final : public FenceHistory {
 public:
  Result<std::int64_t> last_fenced(NodeId node, const std::string& name) override;
};

}  // namespace vguard::fenced
