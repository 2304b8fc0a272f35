#include "fencevirt_config.h"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "config.h"
#include "crypto.h"

namespace vguard::fenced {
namespace {

constexpr std::string_view kSections[] = {"fence_xvm.", "fence_virt_tcp.", "fence_virt_vsock.",
                                          "fence_virt_serial.", "fence_virt."};

Error cfg_error(const std::string& path, int line, const std::string& what) {
  return make_error(errc::bad_config,
                    line > 0 ? path + ":" + std::to_string(line) + ": " + what : path + ": " + what);
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r");
  const auto e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::vector<std::string> split_list(const std::string& v) {
  std::vector<std::string> out;
  std::string item;
  std::istringstream in(v);
  while (std::getline(in, item, ',')) {
    item = trim(item);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Result<bool> parse_bool(const std::string& path, int line, const std::string& key, const std::string& v) {
  if (v == "yes" || v == "true" || v == "1") return true;
  if (v == "no" || v == "false" || v == "0") return false;
  return cfg_error(path, line, "bad value '" + v + "' for " + key + ": expected yes or no");
}

Result<unsigned long long> parse_uint(const std::string& path, int line, const std::string& key,
                                      const std::string& v, unsigned long long lo, unsigned long long hi) {
  std::size_t pos = 0;
  unsigned long long x = 0;
  try {
    x = std::stoull(v, &pos, 10);
  } catch (const std::exception&) {
    pos = 0;
  }
  if (v.empty() || pos != v.size() || v[0] == '-' || x < lo || x > hi)
    return cfg_error(path, line,
                     "bad value '" + v + "' for " + key + ": expected an integer from " + std::to_string(lo) +
                         " to " + std::to_string(hi));
  return x;
}

Result<fencevirt::Hash> parse_hash(const std::string& path, int line, const std::string& key,
                                   const std::string& v) {
  auto h = fencevirt::hash_from_name(v);
  if (h && *h == fencevirt::Hash::none)
    return cfg_error(
        path, line,
        key +
            " = none is not supported: vguardd never serves fence_xvm/fence_virt requests without "
            "authentication (use sha1, sha256 or sha512)");
  if (!h)
    return cfg_error(path, line, "bad value '" + v + "' for " + key + ": expected sha1, sha256 or sha512");
  return *h;
}

// Keys every signed listener section has. Returns false when `field` is not one of them.
Result<bool> parse_signed(FenceVirtSigned& s, const std::string& path, int line, const std::string& section,
                          const std::string& field, const std::string& v) {
  const std::string key = section + "." + field;
  if (field == "enabled") {
    auto b = parse_bool(path, line, key, v);
    if (!b) return b.error();
    s.enabled = *b;
  } else if (field == "hash") {
    auto h = parse_hash(path, line, key, v);
    if (!h) return h.error();
    s.hash = *h;
  } else if (field == "auth") {
    auto h = parse_hash(path, line, key, v);
    if (!h) return h.error();
    s.auth = *h;
  } else if (field == "keys") {
    for (auto& k : split_list(v)) {
      if (std::find(s.keys.begin(), s.keys.end(), k) != s.keys.end())
        return cfg_error(path, line, "key '" + k + "' is named twice in " + key);
      s.keys.push_back(k);
    }
    if (s.keys.empty()) return cfg_error(path, line, key + " needs at least one [key.NAME] section name");
  } else if (field == "allow_all_domains") {
    auto b = parse_bool(path, line, key, v);
    if (!b) return b.error();
    s.allow_all_domains = *b;
  } else {
    return false;
  }
  return true;
}

proto::KeyId id_of(std::string_view label) {
  // A hash domain of its own ("vguard-key-id-v1" prefixes real key ids), so no key file can produce it.
  const auto d = proto::sha256("vguard-fencevirt-identity-v1\n" + std::string(label));
  proto::KeyId id{};
  std::copy_n(d.begin(), id.size(), id.begin());
  return id;
}

}  // namespace

bool is_fencevirt_option(std::string_view name) {
  return std::any_of(std::begin(kSections), std::end(kSections),
                     [&](std::string_view s) { return name.substr(0, s.size()) == s; });
}

Result<void> parse_fencevirt_option(FenceVirtConfig& c, const std::string& path, int line,
                                    const std::string& name, const std::string& value) {
  const auto dot = name.find('.');
  const std::string section = name.substr(0, dot);
  const std::string field = name.substr(dot + 1);
  const std::string v = trim(value);
  auto unknown = [&](const char* known) {
    return cfg_error(path, line,
                     "unknown key '" + field + "' in section [" + section + "] (known: " + known + ")");
  };
  if (section == "fence_xvm") {
    auto s = parse_signed(c.xvm, path, line, section, field, v);
    if (!s) return s.error();
    if (*s) return {};
    if (field == "multicast_address") {
      boost::system::error_code ec;
      auto a = boost::asio::ip::make_address(v, ec);
      if (ec || !a.is_multicast())
        return cfg_error(path, line,
                         "bad multicast_address '" + v +
                             "': expected an IPv4 (224.0.0.0/4) or IPv6 (ff00::/8) multicast group");
      c.xvm.multicast_address = v;
    } else if (field == "port") {
      auto p = parse_uint(path, line, name, v, 1, 65535);
      if (!p) return p.error();
      c.xvm.port = static_cast<unsigned>(*p);
    } else if (field == "interface") {
      if (v.empty() || v.size() >= 16 || v.find('/') != std::string::npos)
        return cfg_error(path, line, "bad interface name '" + v + "'");
      c.xvm.interface = v;
    } else {
      return unknown("enabled, multicast_address, port, interface, hash, auth, keys, allow_all_domains");
    }
    return {};
  }
  if (section == "fence_virt_tcp") {
    auto s = parse_signed(c.tcp, path, line, section, field, v);
    if (!s) return s.error();
    if (*s) return {};
    if (field == "listen") {
      auto l = parse_listen(v);
      if (!l || l->kind != ListenAddress::Kind::tcp)
        return cfg_error(path, line, l ? "fence_virt_tcp.listen takes ADDRESS:PORT" : l.error().context);
      if (std::find(c.tcp.listen.begin(), c.tcp.listen.end(), v) != c.tcp.listen.end())
        return cfg_error(path, line, "listen address '" + v + "' is given twice");
      c.tcp.listen.push_back(v);
    } else {
      return unknown("enabled, listen, hash, auth, keys, allow_all_domains");
    }
    return {};
  }
  if (section == "fence_virt_vsock") {
    auto s = parse_signed(c.vsock, path, line, section, field, v);
    if (!s) return s.error();
    if (*s) return {};
    if (field == "port") {
      auto p = parse_uint(path, line, name, v, 1, 0xfffffffeULL);
      if (!p) return p.error();
      c.vsock.port = static_cast<unsigned>(*p);
    } else {
      return unknown("enabled, port, hash, auth, keys, allow_all_domains");
    }
    return {};
  }
  if (section == "fence_virt_serial") {
    if (field == "enabled" || field == "allow_all_domains") {
      auto b = parse_bool(path, line, name, v);
      if (!b) return b.error();
      (field == "enabled" ? c.serial.enabled : c.serial.allow_all_domains) = *b;
    } else if (field == "path") {
      if (v.empty() || v[0] != '/')
        return cfg_error(path, line, "fence_virt_serial.path must be an absolute directory");
      c.serial.path = v;
    } else if (field == "mode") {
      if (v != "serial" && v != "vmchannel")
        return cfg_error(path, line, "bad value '" + v + "' for mode: expected serial or vmchannel");
      c.serial.vmchannel = v == "vmchannel";
    } else if (field == "libvirt_uri") {
      if (v.empty()) return cfg_error(path, line, "libvirt_uri must not be empty");
      c.serial.libvirt_uri = v;
    } else if (field == "rescan_interval") {
      auto p = parse_uint(path, line, name, v, 1, 600);
      if (!p) return p.error();
      c.serial.rescan = static_cast<unsigned>(*p);
    } else if (field == "group") {
      auto g = split_list(v);
      if (g.empty()) return cfg_error(path, line, "empty group: list domain names, UUIDs or globs");
      c.serial.groups.push_back(std::move(g));
    } else {
      return unknown("enabled, path, mode, libvirt_uri, rescan_interval, group, allow_all_domains");
    }
    return {};
  }
  // [fence_virt]
  if (field == "replay_file") {
    if (v.empty() || v[0] != '/') return cfg_error(path, line, "replay_file must be an absolute path");
    c.replay_file = v;
  } else if (field == "replay_entries") {
    auto p = parse_uint(path, line, name, v, 1024, 1u << 22);
    if (!p) return p.error();
    c.replay_entries = static_cast<std::size_t>(*p);
  } else {
    return unknown("replay_file, replay_entries");
  }
  return {};
}

Result<void> finish_fencevirt_config(FenceVirtConfig& c, const std::string& path, const std::string& log_file,
                                     const std::vector<std::string>& key_names,
                                     const std::function<int(const std::string&)>& section_line) {
  c.xvm.line = section_line("fence_xvm");
  c.tcp.line = section_line("fence_virt_tcp");
  c.vsock.line = section_line("fence_virt_vsock");
  c.serial.line = section_line("fence_virt_serial");
  if (c.replay_file.empty())
    c.replay_file = (std::filesystem::path(log_file).parent_path() / "fence_virt.replay").string();
  if (c.tcp.listen.empty()) c.tcp.listen.push_back("127.0.0.1:1229");
  const std::pair<const char*, FenceVirtSigned*> signed_sections[] = {
      {"fence_xvm", &c.xvm}, {"fence_virt_tcp", &c.tcp}, {"fence_virt_vsock", &c.vsock}};
  for (const auto& [section, s] : signed_sections) {
    if (!s->enabled) continue;
    if (s->keys.empty())
      return cfg_error(
          path, s->line,
          std::string("[") + section + "] is enabled but names no keys (keys = NAME, a [key.NAME] section)");
    for (const auto& k : s->keys)
      if (std::find(key_names.begin(), key_names.end(), k) == key_names.end())
        return cfg_error(
            path, s->line,
            std::string("[") + section + "] names key '" + k + "', but there is no [key." + k + "] section");
  }
  if (c.serial.enabled) {
    if (c.serial.path.empty())
      return cfg_error(path, c.serial.line, "[fence_virt_serial] is enabled but has no path");
    if (c.serial.groups.empty() && !c.serial.allow_all_domains)
      return cfg_error(
          path, c.serial.line,
          "[fence_virt_serial] is enabled but has no group (guests may fence nothing); add group = lines");
  }
  return {};
}

proto::KeyId fencevirt_allow_all_id(std::string_view listener) {
  return id_of("allow-all:" + std::string(listener));
}
proto::KeyId fencevirt_serial_group_id(std::size_t index) {
  return id_of("serial-group:" + std::to_string(index));
}

void add_fencevirt_rules(const FenceVirtConfig& c, Policy& p) {
  const std::pair<const char*, const FenceVirtSigned*> signed_sections[] = {
      {"fence_xvm", &c.xvm}, {"fence_virt_tcp", &c.tcp}, {"fence_virt_vsock", &c.vsock}};
  for (const auto& [section, s] : signed_sections)
    if (s->enabled && s->allow_all_domains)
      p.keys[fencevirt_allow_all_id(section)] =
          Policy::KeyRule{std::string(section) + ":allow_all_domains", {"*"}};
  if (c.serial.enabled) {
    if (c.serial.allow_all_domains)
      p.keys[fencevirt_allow_all_id("fence_virt_serial")] =
          Policy::KeyRule{"fence_virt_serial:allow_all_domains", {"*"}};
    for (std::size_t i = 0; i < c.serial.groups.size(); ++i)
      p.keys[fencevirt_serial_group_id(i)] =
          Policy::KeyRule{"fence_virt_serial:group" + std::to_string(i + 1), c.serial.groups[i]};
  }
}

}  // namespace vguard::fenced
