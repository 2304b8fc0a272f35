#include "fencevirt_sockets.h"

#include <arpa/inet.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <pugixml.hpp>

namespace vguard::fenced {
namespace {

Error sys_error(const std::string& what, int err) {
  return make_error(errc::io_error, what + ": " + std::strerror(err));
}

template <auto F>
struct CDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    if (p) F(p);
  }
};
using ConnectPtr = std::unique_ptr<virConnect, CDeleter<virConnectClose>>;
using DomainPtr = std::unique_ptr<virDomain, CDeleter<virDomainFree>>;
using CString = std::unique_ptr<char, CDeleter<::free>>;

std::string last_libvirt_error() {
  const char* m = virGetLastErrorMessage();
  return m ? m : "unknown libvirt error";
}

}  // namespace

Result<MulticastSocket> open_multicast_socket(const std::string& group, unsigned port,
                                              const std::string& ifname) {
  unsigned ifindex = 0;
  if (!ifname.empty()) {
    ifindex = ::if_nametoindex(ifname.c_str());
    if (ifindex == 0) return make_error(errc::bad_config, "no network interface '" + ifname + "'");
  }
  in_addr a4{};
  in6_addr a6{};
  MulticastSocket s;
  if (::inet_pton(AF_INET, group.c_str(), &a4) == 1) {
    if (!IN_MULTICAST(ntohl(a4.s_addr)))
      return make_error(errc::bad_config, "'" + group + "' is not an IPv4 multicast group (224.0.0.0/4)");
  } else if (::inet_pton(AF_INET6, group.c_str(), &a6) == 1) {
    if (!IN6_IS_ADDR_MULTICAST(&a6))
      return make_error(errc::bad_config, "'" + group + "' is not an IPv6 multicast group (ff00::/8)");
    s.is_v6 = true;
  } else {
    return make_error(errc::bad_config, "'" + group + "' is not a numeric IP address");
  }
  const int fd = ::socket(s.is_v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return sys_error("socket", errno);
  auto fail = [fd](Error e) {
    ::close(fd);
    return e;
  };
  const int zero = 0, one = 1;
  if (s.is_v6) {
    if (::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
      return fail(sys_error("IPV6_V6ONLY", errno));
    // IPv6 delivers a group's datagrams to a member socket whatever interface they came in on (IPv4 checks
    // the membership's interface): without this, one datagram heard on two interfaces would arrive twice.
    if (!ifname.empty() && ::setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname.c_str(),
                                        static_cast<socklen_t>(ifname.size())) != 0)
      return fail(sys_error("cannot bind to device " + ifname, errno));
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(static_cast<std::uint16_t>(port));
    sa.sin6_addr = a6;
    sa.sin6_scope_id = ifindex;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      return fail(sys_error("cannot bind [" + group + "]:" + std::to_string(port), errno));
    ipv6_mreq mr{};
    mr.ipv6mr_multiaddr = a6;
    mr.ipv6mr_interface = ifindex;
    if (::setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof mr) != 0)
      return fail(sys_error("cannot join " + group, errno));
#ifdef IPV6_MULTICAST_ALL
    (void)::setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, &zero, sizeof zero);  // kernels >= 4.20
#endif
  } else {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<std::uint16_t>(port));
    // Bound to the group, not INADDR_ANY: unicast datagrams to this port never reach the listener.
    sa.sin_addr = a4;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0)
      return fail(sys_error("cannot bind " + group + ":" + std::to_string(port), errno));
    ip_mreqn mr{};
    mr.imr_multiaddr = a4;
    mr.imr_address.s_addr = htonl(INADDR_ANY);
    mr.imr_ifindex = static_cast<int>(ifindex);
    if (::setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) != 0)
      return fail(sys_error("cannot join " + group + (ifname.empty() ? "" : " on " + ifname), errno));
    if (::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof zero) != 0)
      return fail(sys_error("IP_MULTICAST_ALL", errno));
  }
  s.fd = fd;
  return s;
}

Result<std::vector<GuestSocket>> discover_guest_sockets(const std::string& uri, const std::string& dir,
                                                        bool vmchannel) {
  ConnectPtr conn(virConnectOpen(uri.c_str()));
  if (!conn)
    return make_error(errc::hypervisor_unreachable, "cannot connect to " + uri + ": " + last_libvirt_error());
  virDomainPtr* doms = nullptr;
  const int n = virConnectListAllDomains(conn.get(), &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
  if (n < 0) return make_error(errc::hypervisor_unreachable, "cannot list domains: " + last_libvirt_error());
  std::vector<DomainPtr> owned;
  for (int i = 0; i < n; ++i) owned.emplace_back(doms[i]);
  ::free(doms);
  const std::filesystem::path want_dir = (std::filesystem::path(dir) / "x").lexically_normal().parent_path();
  std::vector<GuestSocket> out;
  for (auto& d : owned) {
    CString xml(virDomainGetXMLDesc(d.get(), 0));
    if (!xml) continue;  // gone meanwhile
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (virDomainGetUUIDString(d.get(), uuid) != 0) continue;
    const char* name = virDomainGetName(d.get());
    pugi::xml_document doc;
    if (!doc.load_string(xml.get())) continue;
    const char* element = vmchannel ? "channel" : "serial";
    for (auto dev : doc.child("domain").child("devices").children(element)) {
      if (std::string_view(dev.attribute("type").as_string()) != "unix") continue;
      auto src = dev.child("source");
      if (std::string_view(src.attribute("mode").as_string()) != "bind") continue;
      const std::filesystem::path p =
          std::filesystem::path(src.attribute("path").as_string()).lexically_normal();
      // Directly inside the configured directory, as fence_virtd requires: a guest's XML cannot point vguardd
      // at an arbitrary socket elsewhere.
      if (p.is_absolute() && p.parent_path() == want_dir && p.has_filename())
        out.push_back({uuid, name ? name : "", p.string()});
    }
  }
  return out;
}

}  // namespace vguard::fenced
