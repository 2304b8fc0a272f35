#include "pacemaker_history.h"

#include <cstdint>
#include <ctime>

// <crm/stonith-ng.h> is C-only (it names parameters "namespace"); this is the one libstonithd entry point
// vguard uses, declared as that header declares it.
extern "C" time_t stonith_api_time(uint32_t nodeid, const char* uname, bool in_progress);

namespace vguard::fenced {

Result<std::int64_t> PacemakerHistory::last_fenced(NodeId node, const std::string& name) {
  // stonith_api_time connects to the local pacemaker-fenced; it answers 0 when the node was never fenced and
  // a negative value when the fencer cannot be reached.
  const time_t t = stonith_api_time(node, name.empty() ? nullptr : name.c_str(), false);
  if (t < 0) return make_error(errc::not_running, "cannot query pacemaker-fenced's history");
  return static_cast<std::int64_t>(t);
}

}  // namespace vguard::fenced
