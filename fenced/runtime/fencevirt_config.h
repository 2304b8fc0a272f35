#pragma once
// Configuration of vguardd's fence_xvm / fence_virt compatibility listeners (vguard.conf(5)):
//   [fence_xvm]          multicast listener (fence_xvm)
//   [fence_virt_tcp]     TCP listener (fence_virt -T)
//   [fence_virt_vsock]   vsock listener (fence_virt -S)
//   [fence_virt_serial]  serial / vmchannel listener (fence_virt's default mode)
//   [fence_virt]         settings shared by them (the replay memory)
// Parsed by load_config() (config.cpp) through the functions below; errors are "FILE:LINE: what".
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine.h"
#include "fence_virt.h"
#include "key.h"
#include "result.h"

namespace vguard::fenced {

/// What the signed listeners (multicast, TCP, vsock) share.
struct FenceVirtSigned {
  bool enabled = false;
  fencevirt::Hash hash = fencevirt::Hash::sha256;  ///< minimum packet hash accepted
  fencevirt::Hash auth = fencevirt::Hash::sha256;  ///< challenge-response algorithm (not on the wire)
  std::vector<std::string> keys;                   ///< [key.NAME] sections whose key may sign
  bool allow_all_domains = false;                  ///< compatibility switch: skip the keys' allow globs
  int line = 0;                                    ///< line of the section header
};

struct FenceXvmConfig : FenceVirtSigned {
  std::string multicast_address = "225.0.0.12";
  unsigned port = 1229;
  std::string interface;  ///< empty: any
};
struct FenceVirtTcpConfig : FenceVirtSigned {
  std::vector<std::string> listen;  ///< "ADDR:PORT" / "[V6]:PORT"; default 127.0.0.1:1229
};
struct FenceVirtVsockConfig : FenceVirtSigned {
  unsigned port = 1229;
};
struct FenceVirtSerialConfig {
  bool enabled = false;
  std::string path;         ///< directory that directly holds the guests' sockets
  bool vmchannel = false;   ///< mode = vmchannel (<channel>) or serial (<serial>, the default)
  std::string libvirt_uri;  ///< empty: [daemon] libvirt_uri
  unsigned rescan = 5;      ///< seconds between libvirt scans for new sockets
  /// Groups of globs over domain names and UUIDs: a requesting guest that matches a glob of a group may act
  /// on the domains that match that group's globs (the first group that matches the requester decides).
  std::vector<std::vector<std::string>> groups;
  bool allow_all_domains = false;
  int line = 0;
};

struct FenceVirtConfig {
  FenceXvmConfig xvm;
  FenceVirtTcpConfig tcp;
  FenceVirtVsockConfig vsock;
  FenceVirtSerialConfig serial;
  std::string replay_file;             ///< default: fence_virt.replay next to the forensic log
  std::size_t replay_entries = 65536;  ///< newest executed digests remembered
  [[nodiscard]] bool any_enabled() const {
    return xvm.enabled || tcp.enabled || vsock.enabled || serial.enabled;
  }
};

/// True for an option ("section.key") of one of the sections above.
bool is_fencevirt_option(std::string_view name);
/// Applies one option. errc::bad_config "FILE:LINE: what".
Result<void> parse_fencevirt_option(FenceVirtConfig& c, const std::string& path, int line,
                                    const std::string& name, const std::string& value);
/// After every option and key file is read: defaults (replay_file next to log_file, TCP listen address),
/// every enabled signed listener has keys, and every key it names exists in `key_names`.
/// section_line("fence_xvm") gives the line of a section header (0 when absent), for error messages.
Result<void> finish_fencevirt_config(FenceVirtConfig& c, const std::string& path, const std::string& log_file,
                                     const std::vector<std::string>& key_names,
                                     const std::function<int(const std::string&)>& section_line);

/// The Policy identity of a listener with allow_all_domains = yes ("fence_xvm", "fence_virt_tcp", ...). It is
/// never a real key's id (no key file hashes to it by construction of the input), and no native client can
/// present it: vguardd's native listeners only know the [key.NAME] keys.
proto::KeyId fencevirt_allow_all_id(std::string_view listener);
/// The Policy identity of the serial listener's group `index` (0-based, file order).
proto::KeyId fencevirt_serial_group_id(std::size_t index);
/// Adds the rules of the identities above to the engine's policy.
void add_fencevirt_rules(const FenceVirtConfig& c, Policy& p);

}  // namespace vguard::fenced
