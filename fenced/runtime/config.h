#pragma once
// vguardd's configuration file (INI, parsed with Boost.ProgramOptions). Every key is documented in
// vguard.conf(5). An unknown key or a bad value is an error naming the file and line.
#include <string>
#include <vector>

#include "cluster_engine.h"
#include "engine.h"
#include "fencevirt_config.h"
#include "key.h"
#include "result.h"

namespace vguard::fenced {

struct KeyConfig {
  std::string name;                ///< section [key.NAME]
  std::string file;                ///< key file path
  std::vector<std::string> allow;  ///< globs over domain names and UUIDs
  proto::Key key;                  ///< loaded key bytes and id
  int line = 0;                    ///< line of the section header
};

struct DaemonConfig {
  std::string path;                ///< the file it was read from
  std::string libvirt_uri = "qemu:///system";
  std::vector<std::string> listen;  ///< "ADDR:PORT", "[V6]:PORT" or "vsock:PORT"
  std::string control_socket = "/run/vguard/vguardd.sock";
  std::string log_file = "/var/lib/vguard/forensic.log";
  std::string pid_file;
  std::string log_level = "info";
  unsigned replay_window = 30;      ///< seconds
  unsigned request_timeout = 30;    ///< seconds: default budget of a request
  unsigned reconnect_interval = 2;  ///< seconds between libvirt reconnect attempts
  std::vector<KeyConfig> keys;

  // [cluster]
  bool cluster = false;                  ///< cluster mode (corosync CPG); standalone otherwise
  std::string cluster_group = "vguard";  ///< CPG group name (never fence_virtd's "fence-agents")
  std::string cluster_key_file;          ///< key shared by every host's vguardd (required in cluster mode)
  proto::Key cluster_key;
  std::string hostname;                  ///< this host's name in the cluster (default: the system host name)
  bool pacemaker_history = false;        ///< confirm lost hosts from Pacemaker's fencing history
  std::vector<std::uint32_t> nodes;      ///< the cluster's hosts as corosync node ids ([cluster] nodes)

  // [guard]: duplicate_policy = alert|pause|destroy, reconnect_policy = alert|refuse
  GuardPolicy guard;
  // [hook] (read by vguard-hook; validated here so a typo stops vguardd instead of silently changing what
  // the hook does): what the hook does when vguardd cannot be asked, per operation: true = refuse (fail
  // closed). A restore is guarded by the "prepare begin" that libvirt runs right after it, so it has no key.
  bool hook_refuse_prepare = true;
  bool hook_refuse_migrate = true;
  bool hook_refuse_reconnect = false;
  unsigned hook_timeout = 10;  ///< seconds the hook waits for vguardd (1..300)

  // [fence_xvm], [fence_virt_tcp], [fence_virt_vsock], [fence_virt_serial], [fence_virt]: the fence_xvm /
  // fence_virt compatibility listeners (fencevirt_config.h).
  FenceVirtConfig fence_virt;

  /// The engine's view of it.
  [[nodiscard]] Policy policy() const;
};

/// Reads and validates the file, loading every key file. errc::bad_config with "FILE:LINE: what".
Result<DaemonConfig> load_config(const std::string& path);

/// A parsed "listen" value.
struct ListenAddress {
  enum class Kind { tcp, vsock } kind = Kind::tcp;
  std::string host;
  unsigned port = 0;
};
/// Parses "127.0.0.1:1231", "[::1]:1231", "0.0.0.0:1231", "vsock:1231". errc::bad_config.
Result<ListenAddress> parse_listen(const std::string& text);

}  // namespace vguard::fenced
