#pragma once
// Socket set-up for vguardd's fence_xvm / fence_virt listeners that Asio does not offer directly: multicast
// membership with an interface index (ip_mreqn), and libvirt discovery of the guests' serial / vmchannel
// Unix sockets. The sockets are handed to Asio by file descriptor; no C handle crosses this header.
#include <string>
#include <vector>

#include "result.h"

namespace vguard::fenced {

/// Opens a UDP socket bound to group:port and joined to the group (IPv4: IP_ADD_MEMBERSHIP with ip_mreqn;
/// IPv6: IPV6_ADD_MEMBERSHIP, and SO_BINDTODEVICE when `ifname` is set), on interface `ifname` (empty: the
/// kernel's choice, "any"). It receives only datagrams sent to the group (IP_MULTICAST_ALL off). Returns the
/// descriptor (the caller owns it); is_v6 tells which family. Errors: errc::bad_config (not a multicast
/// group, unknown interface), errc::io_error (a system call failed).
struct MulticastSocket {
  int fd = -1;
  bool is_v6 = false;
};
Result<MulticastSocket> open_multicast_socket(const std::string& group, unsigned port,
                                              const std::string& ifname);

/// One guest's serial or vmchannel Unix socket in bind mode (QEMU listens; vguardd connects).
struct GuestSocket {
  std::string uuid;  ///< the domain's UUID: the requester identity
  std::string name;
  std::string path;
};
/// Lists the active domains at libvirt `uri` with a <serial> (vmchannel = false) or <channel> (true) device
/// of type unix whose <source mode='bind' path=.../> lies directly inside `dir` (like fence_virtd). Blocking:
/// call it off the io thread. Errors: errc::hypervisor_unreachable.
Result<std::vector<GuestSocket>> discover_guest_sockets(const std::string& uri, const std::string& dir,
                                                        bool vmchannel);

}  // namespace vguard::fenced
