#include "options.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>

namespace vguard::agent {
namespace {

using namespace std::string_view_literals;

// The fence_xvm/fence_virt options (compat_only) take effect with protocol xvm/virt only; with the native
// protocol they are validated and ignored, and their descriptions say so, so that nobody believes, for
// example, that auth=sha1 weakens vguard's HMAC-SHA256.
constexpr std::array kTable{
    OptionSpec{OptionId::debug, 'd', "debug", ArgKind::none, "", "boolean", "",
               "Specify (stdin) or increment (command line) debug level"},
    OptionSpec{OptionId::ip_family, 'i', "ip_family", ArgKind::required, "<family>", "string", "auto",
               "IP Family ([auto], ipv4, ipv6) of the multicast group; protocol xvm only", false, false, "",
               true, true},
    OptionSpec{OptionId::multicast_address, 'a', "multicast_address", ArgKind::required, "<address>",
               "string", "", "Multicast address (default=225.0.0.12 / ff05::3:1); protocol xvm only", false,
               false, "", true, true},
    OptionSpec{OptionId::ipaddr, 'T', "ipaddr", ArgKind::required, "<address>", "string", "127.0.0.1",
               "IP address or host name of vguardd (default=127.0.0.1); with protocol xvm or virt, of "
               "fence_virtd's tcp listener (TCP mode)"},
    OptionSpec{OptionId::vsock, 'S', "vsock", ArgKind::optional_attached, "[<cid>]", "integer", "",
               "vm socket CID to connect to over vsock (-S alone means 2, the host)"},
    OptionSpec{OptionId::unix_socket, 'U', "unix_socket", ArgKind::required, "<path>", "string", "",
               "Unix socket of vguardd, used instead of TCP or vsock (the key file still signs); protocol "
               "vguard only"},
    OptionSpec{OptionId::protocol, 'm', "protocol", ArgKind::required, "<protocol>", "string", "vguard",
               "Protocol: [vguard] (vguardd), xvm or virt (fence_xvm's protocol, to fence_virtd; the default "
               "when run as fence_xvm or fence_virt)",
               false, false, "", true, false, "protocol"},
    OptionSpec{OptionId::channel_address, 'A', "channel_address", ArgKind::required, "<address>", "string",
               "10.0.2.179", "VM Channel IP address (default=10.0.2.179); protocol virt only", false, false,
               "", true, true},
    OptionSpec{OptionId::serial_device, 'D', "serial_device", ArgKind::required, "<device>", "string", "",
               "Serial device; protocol virt only", false, false, "", true, true},
    OptionSpec{OptionId::serial_params, 'P', "serial_params", ArgKind::required, "<param>", "string",
               "115200,8N1", "Serial Parameters (default=115200,8N1); protocol virt only", false, false, "",
               true, true},
    OptionSpec{OptionId::ipport, 'p', "ipport", ArgKind::required, "<port>", "integer", "1231",
               "TCP, vsock, multicast or VM channel port (default=1231; 1229 with protocol xvm or virt)"},
    OptionSpec{OptionId::retrans, 'r', "retrans", ArgKind::required, "<retrans>", "integer", "20",
               "Multicast retransmit time (in 1/10sec; default=20); protocol xvm only", false, false, "",
               true, true},
    OptionSpec{OptionId::auth, 'C', "auth", ArgKind::required, "<auth>", "string", "sha256",
               "Authentication (none, sha1, [sha256], sha512) of fence_virtd's challenge-response; protocol "
               "xvm or virt only (vguard always uses HMAC-SHA256)",
               false, false, "", true, true},
    OptionSpec{
        OptionId::hash, 'c', "hash", ArgKind::required, "<hash>", "string", "sha256",
        "Packet hash strength (none, sha1, [sha256], sha512); protocol xvm or virt only (vguard always "
        "uses HMAC-SHA256)",
        false, false, "", true, true},
    OptionSpec{OptionId::key_file, 'k', "key_file", ArgKind::required, "<file>", "string",
               "/etc/cluster/fence_vguard.key",
               "Shared key file (default=/etc/cluster/fence_vguard.key, or /etc/cluster/fence_xvm.key with "
               "protocol xvm or virt); it must be readable, there is no unauthenticated fallback"},
    OptionSpec{OptionId::plug, 'n', "plug", ArgKind::required, "<domain>", "string", "",
               "Virtual Machine (domain name) to fence", true, false, "port"},
    OptionSpec{OptionId::port, 'H', "port", ArgKind::required, "<domain>", "string", "",
               "Virtual Machine (domain name) to fence", true, true},
    OptionSpec{OptionId::use_uuid, 'u', "use_uuid", ArgKind::none, "", "string", "0",
               "Treat [domain] as UUID instead of domain name"},
    OptionSpec{OptionId::action, 'o', "action", ArgKind::required, "<operation>", "string", "reboot",
               "Fencing action (null, off, on, [reboot], status, list, list-status, monitor, validate-all, "
               "metadata)"},
    OptionSpec{OptionId::option, '\0', "option", ArgKind::required, "", "string", "reboot",
               "Fencing action (deprecated; use action)", false, true, "", false},
    OptionSpec{OptionId::timeout, 't', "timeout", ArgKind::required, "<timeout>", "integer", "30",
               "Fencing timeout (in seconds; default=30)"},
    OptionSpec{OptionId::delay, 'w', "delay", ArgKind::required, "<delay>", "integer", "0",
               "Fencing delay (in seconds; default=0)"},
    OptionSpec{OptionId::domain, '\0', "domain", ArgKind::required, "", "string", "",
               "Virtual Machine (domain name) to fence (deprecated; use plug)", false, true},
    OptionSpec{OptionId::help, '?', "", ArgKind::none, "", "boolean", "", "Help (alternate)", false, false,
               "", false},
    OptionSpec{OptionId::help, 'h', "", ArgKind::none, "", "boolean", "", "Help", false, false, "", false},
    OptionSpec{OptionId::version, 'V', "", ArgKind::none, "", "boolean", "", "Display version and exit",
               false, false, "", false},
    OptionSpec{OptionId::ignored, '\0', "agent", ArgKind::required, "", "string", "", "Not user serviceable",
               false, false, "", false},
    OptionSpec{OptionId::ignored, '\0', "self", ArgKind::required, "", "string", "", "Not user serviceable",
               false, false, "", false},
    OptionSpec{OptionId::ignored, '\0', "nodename", ArgKind::required, "", "string", "",
               "Not user serviceable", false, false, "", false},
};

char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

void error(ParseResult& r, std::string text) {
  r.diagnostics.push_back(std::move(text));
  ++r.errors;
}

// strtol(value, &end, 0) followed by fence_xvm's "*end != '\0'" check: base prefixes (0x.., leading 0 =
// octal), leading blanks and a sign are accepted, and "" parses as 0. Unlike fence_xvm, a value that
// overflows is rejected instead of being truncated to int.
std::optional<long long> c_strtol(std::string_view value) {
  const std::string s(value);
  if (s.find('\0') != std::string::npos) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 0);
  if (errno == ERANGE || end == nullptr || *end != '\0') return std::nullopt;
  return v;
}

// atoi(): leading number or 0, never an error (fence_xvm uses it for debug and use_uuid).
int c_atoi(std::string_view value) {
  const std::string s(value);
  errno = 0;
  const long long v = std::strtoll(s.c_str(), nullptr, 10);
  if (errno == ERANGE || v > INT_MAX || v < INT_MIN) return v > 0 ? INT_MAX : INT_MIN;
  return static_cast<int>(v);
}

bool one_of_hashes(std::string_view v) {
  return iequals(v, "none") || iequals(v, "sha1") || iequals(v, "sha256") || iequals(v, "sha512");
}

void note_compat(ParseResult& r, std::string_view name) { r.options.compat_given.emplace_back(name); }

}  // namespace

std::span<const OptionSpec> option_table() { return kTable; }

const OptionSpec* find_option(std::string_view stdin_name) {
  for (const auto& s : kTable)
    if (!s.stdin_name.empty() && iequals(s.stdin_name, stdin_name)) return &s;
  return nullptr;
}

const OptionSpec* find_option(char letter) {
  if (letter == '\0') return nullptr;
  for (const auto& s : kTable)
    if (s.letter == letter) return &s;
  return nullptr;
}

std::optional<Op> op_from_name(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, Op>, 10> kOps{{
      {"null", Op::null},
      {"on", Op::on},
      {"off", Op::off},
      {"reboot", Op::reboot},
      {"status", Op::status},
      {"monitor", Op::monitor},
      {"list", Op::list},
      {"list-status", Op::list_status},
      {"metadata", Op::metadata},
      {"validate-all", Op::validate_all},
  }};
  for (const auto& [n, op] : kOps)
    if (iequals(n, name)) return op;
  return std::nullopt;
}

std::string_view op_name(Op op) {
  switch (op) {
    case Op::null:
      return "null";
    case Op::on:
      return "on";
    case Op::off:
      return "off";
    case Op::reboot:
      return "reboot";
    case Op::status:
      return "status";
    case Op::monitor:
      return "monitor";
    case Op::list:
      return "list";
    case Op::list_status:
      return "list-status";
    case Op::metadata:
      return "metadata";
    case Op::validate_all:
      return "validate-all";
  }
  return "?";
}

std::optional<Protocol> protocol_from_name(std::string_view name) {
  if (iequals(name, "vguard")) return Protocol::vguard;
  if (iequals(name, "xvm")) return Protocol::xvm;
  if (iequals(name, "virt")) return Protocol::virt;
  return std::nullopt;
}

std::string_view protocol_name(Protocol p) {
  switch (p) {
    case Protocol::vguard:
      return "vguard";
    case Protocol::xvm:
      return "xvm";
    case Protocol::virt:
      return "virt";
  }
  return "?";
}

Protocol protocol_for_program(std::string_view argv0) {
  const std::size_t slash = argv0.rfind('/');
  const std::string_view base = slash == std::string_view::npos ? argv0 : argv0.substr(slash + 1);
  if (base == "fence_xvm") return Protocol::xvm;
  if (base == "fence_virt") return Protocol::virt;
  return Protocol::vguard;
}

std::string_view transport_name(Transport t) {
  switch (t) {
    case Transport::tcp:
      return "tcp";
    case Transport::vsock:
      return "vsock";
    case Transport::unix_socket:
      return "unix";
    case Transport::multicast:
      return "multicast";
    case Transport::vmchannel:
      return "vmchannel";
    case Transport::serial:
      return "serial";
  }
  return "?";
}

Transport Options::transport() const {
  if (protocol == Protocol::vguard) {
    if (unix_socket) return Transport::unix_socket;
    if (vsock_cid) return Transport::vsock;
    return Transport::tcp;
  }
  // fence_virt's order: a vsock CID wins over -T, -T wins over the program's default mode.
  if (vsock_cid) return Transport::vsock;
  if (ipaddr_set) return Transport::tcp;
  if (protocol == Protocol::xvm) return Transport::multicast;
  return serial_device ? Transport::serial : Transport::vmchannel;
}

std::optional<MulticastGroup> multicast_group(const Options& o, std::string* why) {
  const auto fail = [why](std::string reason) -> std::optional<MulticastGroup> {
    if (why != nullptr) *why = std::move(reason);
    return std::nullopt;
  };
  const bool want4 = iequals(o.ip_family, "ipv4");
  const bool want6 = iequals(o.ip_family, "ipv6");
  if (!o.multicast_address) return MulticastGroup{want6, std::string(want6 ? kXvmGroup6 : kXvmGroup4)};
  const std::string& a = *o.multicast_address;
  in_addr a4{};
  in6_addr a6{};
  const bool is4 = ::inet_pton(AF_INET, a.c_str(), &a4) == 1;
  const bool is6 = !is4 && ::inet_pton(AF_INET6, a.c_str(), &a6) == 1;
  if (want4 && !is4) return fail(fmt::format("Invalid IPv4 multicast address: '{}'", a));
  if (want6 && !is6) return fail(fmt::format("Invalid IPv6 multicast address: '{}'", a));
  if (!is4 && !is6) return fail(fmt::format("Invalid multicast address: '{}'", a));
  if (is4 && (ntohl(a4.s_addr) >> 28) != 0xe)
    return fail(fmt::format("Not an IPv4 multicast address (224.0.0.0/4): '{}'", a));
  if (is6 && a6.s6_addr[0] != 0xff)
    return fail(fmt::format("Not an IPv6 multicast address (ff00::/8): '{}'", a));
  return MulticastGroup{is6, a};
}

std::optional<SerialParams> parse_serial_params(std::string_view text, std::string* why) {
  const auto fail = [why, text]() -> std::optional<SerialParams> {
    if (why != nullptr) *why = fmt::format("Invalid serial parameters: '{}'", text);
    return std::nullopt;
  };
  SerialParams p;
  if (text.empty()) return p;
  const std::size_t comma = text.find(',');
  const std::string_view speed = text.substr(0, comma);
  static constexpr std::array<unsigned, 6> kSpeeds{2400, 9600, 19200, 38400, 57600, 115200};
  bool found = false;
  for (const unsigned v : kSpeeds)
    if (speed == std::to_string(v)) {
      p.speed = v;
      found = true;
    }
  if (!found) return fail();
  if (comma == std::string_view::npos) return p;
  const std::string_view frame = text.substr(comma + 1);
  if (frame.size() != 3 || frame[0] < '5' || frame[0] > '8') return fail();
  p.bits = frame[0] - '0';
  const char parity = static_cast<char>(frame[1] & ~0x20);
  if (parity != 'N' && parity != 'E' && parity != 'O') return fail();
  p.parity = parity;
  if (frame[2] != '1' && frame[2] != '2') return fail();
  p.stop = frame[2] - '0';
  return p;
}

void apply_option(const OptionSpec& spec, std::optional<std::string_view> value, ParseResult& r) {
  Options& o = r.options;
  // As in fence_xvm, a missing value (stdin "key" without '=') leaves the option alone, except for the
  // options below that give it a meaning (debug, use_uuid, vsock, the target's "more than once" check).
  switch (spec.id) {
    case OptionId::debug:
      if (!value) {
        ++o.debug;
      } else {
        o.debug = c_atoi(*value);
        if (o.debug < 0) o.debug = 1;
      }
      return;
    case OptionId::use_uuid:
      // Only ever sets the flag ("use_uuid=0" after -u does not clear it), like fence_xvm.
      if (!value || c_atoi(*value) != 0) o.use_uuid = true;
      return;
    case OptionId::vsock: {
      if (!value) {
        o.vsock_cid = 2;
        return;
      }
      // strtoul(.., 0) as fence_virt; strtoull would also wrap "-5", so reject a sign explicitly.
      const std::string s(*value);
      errno = 0;
      char* end = nullptr;
      const unsigned long long v = std::strtoull(s.c_str(), &end, 0);
      const bool negative = s.find('-') != std::string::npos;
      if (negative || errno == ERANGE || end == nullptr || *end != '\0' ||
          s.find('\0') != std::string::npos || v < 2 || v >= 0xffffffffULL) {
        error(r, fmt::format("Invalid CID: '{}'", *value));
      } else {
        o.vsock_cid = static_cast<std::uint32_t>(v);
      }
      return;
    }
    case OptionId::plug:
    case OptionId::port:
    case OptionId::domain:
      // The "more than once" check comes before the value check, as in fence_xvm: "plug" without a value
      // after a target is still an error, and an invalid first value still occupies the target.
      if (o.target) {
        error(r, "Domain/UUID may not be specified more than once");
        return;
      }
      if (!value) return;
      o.target = std::string(*value);
      if (value->empty()) {
        error(r, "Invalid domain name");
      } else if (value->size() >= kMaxTargetLength) {
        error(r, fmt::format("Invalid domain name: '{}' (File name too long)", *value));
      }
      return;
    case OptionId::help:
      o.help = true;
      return;
    case OptionId::version:
      o.version = true;
      return;
    case OptionId::ignored:
      return;
    default:
      break;
  }

  if (!value) return;
  const std::string_view v = *value;
  switch (spec.id) {
    case OptionId::action:
    case OptionId::option:
      if (auto op = op_from_name(v)) {
        o.op = *op;
      } else {
        error(r, fmt::format("Unsupported operation: {}", v));
      }
      return;
    case OptionId::key_file:
      // Existence and contents are checked by check_key (agent.h) for every operation that needs the key,
      // default path included: fence_xvm's silent fallback to no authentication is not reproduced.
      o.key_file = std::string(v);
      o.key_file_set = true;
      return;
    case OptionId::ipaddr:
      o.ipaddr = std::string(v);
      o.ipaddr_set = true;
      if (v.empty()) error(r, "Invalid address: ''");
      return;
    case OptionId::protocol:
      if (auto p = protocol_from_name(v)) {
        o.protocol = *p;
      } else {
        error(r, fmt::format("Unsupported protocol: '{}' (vguard, xvm or virt)", v));
      }
      return;
    case OptionId::unix_socket:
      o.unix_socket = std::string(v);
      if (v.empty()) error(r, "Invalid Unix socket path: ''");
      return;
    case OptionId::ipport: {
      const auto n = c_strtol(v);
      if (!n || *n <= 0 || *n >= 65536) {
        error(r, fmt::format("Invalid port: '{}'", v));
      } else {
        o.port = static_cast<std::uint16_t>(*n);
        o.port_set = true;
      }
      return;
    }
    case OptionId::timeout: {
      const auto n = c_strtol(v);
      if (!n || *n <= 0 || *n > INT_MAX / 1000) {
        error(r, fmt::format("Invalid timeout: '{}'", v));
      } else {
        o.timeout_s = static_cast<int>(*n);
      }
      return;
    }
    case OptionId::delay: {
      const auto n = c_strtol(v);
      if (!n || *n < 0 || *n > INT_MAX) {
        error(r, fmt::format("Invalid delay: '{}'", v));
      } else {
        o.delay_s = static_cast<int>(*n);
      }
      return;
    }
    case OptionId::retrans: {
      note_compat(r, spec.stdin_name);
      const auto n = c_strtol(v);
      if (!n || *n <= 0 || *n > INT_MAX) {
        error(r, fmt::format("Invalid retransmit time: '{}'", v));
      } else {
        o.retrans = static_cast<int>(*n);
      }
      return;
    }
    case OptionId::ip_family:
      note_compat(r, spec.stdin_name);
      if (iequals(v, "ipv4") || iequals(v, "ipv6") || iequals(v, "auto")) {
        o.ip_family = std::string(v);
      } else {
        error(r, fmt::format("Unsupported family: '{}'", v));
      }
      return;
    case OptionId::multicast_address:
      note_compat(r, spec.stdin_name);
      o.multicast_address = std::string(v);
      return;
    case OptionId::hash:
      note_compat(r, spec.stdin_name);
      if (one_of_hashes(v)) {
        o.hash = std::string(v);
      } else {
        error(r, fmt::format("Unsupported hash: {}", v));
      }
      return;
    case OptionId::auth:
      note_compat(r, spec.stdin_name);
      if (one_of_hashes(v)) {
        o.auth = std::string(v);
      } else {
        error(r, fmt::format("Unsupported auth type: {}", v));
      }
      return;
    case OptionId::serial_device:
      note_compat(r, spec.stdin_name);
      o.serial_device = std::string(v);
      return;
    case OptionId::serial_params:
      note_compat(r, spec.stdin_name);
      o.serial_params = std::string(v);
      return;
    case OptionId::channel_address:
      note_compat(r, spec.stdin_name);
      o.channel_address = std::string(v);
      return;
    default:
      return;
  }
}

namespace {

// After all options: the protocol's defaults, then the checks that depend on several options.
// - protocol xvm/virt: fence_xvm's key file and port unless given;
// - unix_socket is vguardd's only;
// - the multicast group of protocol xvm must be a multicast address of its family (fence_xvm guesses the
//   family from '.' and ':' and fails later, at send time);
// - otherwise fence_xvm's args_finalize check: with ip_family auto, an explicit multicast address must
// contain
//   '.' or ':'.
void finalize(ParseResult& r) {
  Options& o = r.options;
  if (o.protocol != Protocol::vguard) {
    if (!o.key_file_set) o.key_file = std::string(kXvmKeyFile);
    if (!o.port_set) o.port = kXvmPort;
    if (o.unix_socket) error(r, "unix_socket is only available with protocol vguard");
  }
  if (o.protocol != Protocol::vguard && o.transport() == Transport::serial) {
    std::string why;
    if (!parse_serial_params(o.serial_params, &why)) error(r, why);
  }
  if (o.protocol == Protocol::xvm && o.transport() == Transport::multicast) {
    std::string why;
    if (!multicast_group(o, &why)) error(r, why);
    return;
  }
  if (o.multicast_address && iequals(o.ip_family, "auto") &&
      o.multicast_address->find_first_of(".:") == std::string::npos) {
    error(r, "Could not determine address family");
  }
}

// Blanks and control characters made visible for a message.
std::string visible(std::string_view text) {
  std::string out;
  for (const char c : text) {
    switch (c) {
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\0':
        out += "\\0";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

ParseResult parse_stdin(std::string_view text, Protocol initial) {
  ParseResult r;
  r.from_stdin = true;
  r.options.protocol = initial;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    const std::size_t end = nl == std::string_view::npos ? text.size() : nl;
    std::string_view line = text.substr(pos, end - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;

    if (line.size() > kMaxStdinLine) {
      // fence_xvm would read the rest as a separate line, which could turn the tail of a long value into an
      // option of its own; drop it instead.
      r.diagnostics.push_back(
          fmt::format("Parse error: Ignoring the part of a line after character {}", kMaxStdinLine));
      line = line.substr(0, kMaxStdinLine);
    }
    if (!line.empty() && line.front() == '#') continue;  // only in column 0, as in fence_xvm
    const std::size_t first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos) continue;
    line.remove_prefix(first);
    const std::size_t last = line.find_last_not_of(" \t\r");
    if (last == std::string_view::npos) continue;  // a line of blanks then CR
    line = line.substr(0, last + 1);
    // fence_xvm's cleanup() ends the line at the first blank, CR or NUL, so that "plug=my vm" fences "my": a
    // different domain. Refuse instead (an unknown name is still only ignored).
    if (const std::size_t bad = line.find_first_of(" \t\r\0"sv); bad != std::string_view::npos) {
      const std::size_t eq = line.find('=');
      const std::string_view name = line.substr(0, std::min(bad, eq));
      if (find_option(name) == nullptr) {
        r.diagnostics.push_back(fmt::format("Parse error: Ignoring unknown option '{}'", name));
      } else {
        const std::string_view value = eq < bad ? line.substr(eq + 1) : line;
        error(r, fmt::format("Invalid value for '{}': '{}' contains a blank or control character", name,
                             visible(value)));
      }
      continue;
    }

    std::string_view name = line;
    std::optional<std::string_view> value;
    if (const std::size_t eq = line.find('='); eq != std::string_view::npos) {
      name = line.substr(0, eq);
      value = line.substr(eq + 1);
    }
    const OptionSpec* spec = find_option(name);
    if (spec == nullptr) {
      r.diagnostics.push_back(fmt::format("Parse error: Ignoring unknown option '{}'", name));
      continue;
    }
    apply_option(*spec, value, r);
  }
  finalize(r);
  return r;
}

ParseResult parse_argv(std::span<const std::string> args, Protocol initial) {
  ParseResult r;
  r.options.protocol = initial;
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      error(r, fmt::format("Unexpected argument '{}'", a));
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a.starts_with("--")) {
      // Long form of the options that have one (--protocol): "--name value" or "--name=value".
      const std::string_view body = std::string_view(a).substr(2);
      const std::size_t eq = body.find('=');
      const std::string_view name = body.substr(0, eq);
      const OptionSpec* spec = nullptr;
      for (const auto& s : kTable)
        if (!s.long_name.empty() && s.long_name == name) spec = &s;
      if (spec == nullptr) {
        error(r, fmt::format("{}: unrecognized option '--{}'", kProgramName, name));
      } else if (eq != std::string_view::npos) {
        apply_option(*spec, body.substr(eq + 1), r);
      } else if (i + 1 < args.size()) {
        apply_option(*spec, args[++i], r);
      } else {
        error(r, fmt::format("{}: option '--{}' requires an argument", kProgramName, name));
      }
      continue;
    }
    for (std::size_t j = 1; j < a.size(); ++j) {
      const char c = a[j];
      const OptionSpec* spec = find_option(c);
      if (spec == nullptr || spec->letter == '\0') {
        error(r, fmt::format("{}: invalid option -- '{}'", kProgramName, c));
        continue;
      }
      if (spec->arg == ArgKind::none) {
        apply_option(*spec, std::nullopt, r);
        continue;
      }
      if (j + 1 < a.size()) {
        apply_option(*spec, std::string_view(a).substr(j + 1), r);
      } else if (spec->arg == ArgKind::optional_attached) {
        apply_option(*spec, std::nullopt, r);
      } else if (i + 1 < args.size()) {
        apply_option(*spec, args[++i], r);
      } else {
        error(r, fmt::format("{}: option requires an argument -- '{}'", kProgramName, c));
      }
      break;
    }
  }
  finalize(r);
  return r;
}

namespace {

// fence_xvm's output_help_text: "  %-20s  %-55s", descriptions wrapped at the last space before column 55.
void help_row(std::string& out, std::string_view arg, std::string_view desc) {
  constexpr std::size_t kArgWidth = 20;
  constexpr std::size_t kHelpWidth = 55;
  bool first = true;
  do {
    std::string_view piece = desc;
    std::string_view rest;
    if (desc.size() > kHelpWidth) {
      const std::size_t sp = desc.rfind(' ', kHelpWidth);
      if (sp != std::string_view::npos && sp > 0) {
        piece = desc.substr(0, sp);
        rest = desc.substr(sp + 1);
      }
    }
    out += fmt::format("  {:<{}}  {}\n", first ? arg : std::string_view(" "), kArgWidth, piece);
    first = false;
    desc = rest;
  } while (!desc.empty());
}

}  // namespace

std::string usage_text(bool stdin_names) {
  std::string out;
  if (!stdin_names) out += fmt::format("usage: {} [args]\n", kProgramName);
  for (const auto& s : kTable) {
    if (s.deprecated || s.id == OptionId::ignored) continue;
    if (stdin_names) {
      if (s.stdin_name.empty()) continue;
      help_row(out, s.stdin_name, s.description);
    } else {
      if (s.letter == '\0') continue;
      std::string arg = fmt::format("-{}", s.letter);
      if (s.arg == ArgKind::required) arg += fmt::format(" {}", s.arg_name);
      if (s.arg == ArgKind::optional_attached) arg += s.arg_name;
      help_row(out, arg, s.description);
      if (!s.long_name.empty()) help_row(out, fmt::format("--{} {}", s.long_name, s.arg_name), "(the same)");
    }
  }
  out += "\n";
  return out;
}

std::string help_text() {
  std::string out = usage_text(false);
  out +=
      "With no command line argument, arguments are read from standard input.\n"
      "Arguments read from standard input take the form of:\n\n"
      "    arg1=value1\n"
      "    arg2=value2\n\n";
  out += usage_text(true);
  return out;
}

std::string version_text() {
#ifndef VG_VERSION
#define VG_VERSION "0.1.0"
#endif
  return fmt::format("{} {}\n", kProgramName, VG_VERSION);
}

std::string describe_options(const Options& o) {
  std::string out = "-- fence_vguard options --\n";
  out += fmt::format("  protocol = {}\n", protocol_name(o.protocol));
  out += fmt::format("  action = {}\n", op_name(o.op));
  out += fmt::format("  target = {}\n", o.target ? *o.target : std::string("(none)"));
  out += fmt::format("  use_uuid = {}\n", o.use_uuid ? 1 : 0);
  out += fmt::format("  key_file = {}\n", o.key_file);
  switch (o.transport()) {
    case Transport::unix_socket:
      out += fmt::format("  endpoint = unix:{}\n", o.unix_socket.value_or(""));
      break;
    case Transport::vsock:
      out += fmt::format("  endpoint = vsock:{}:{}\n", o.vsock_cid.value_or(0), o.port);
      break;
    case Transport::tcp:
      out += fmt::format("  endpoint = tcp:{}:{}\n", o.ipaddr, o.port);
      break;
    case Transport::multicast: {
      const auto g = multicast_group(o);
      const std::string a = g ? (g->ipv6 ? "[" + g->address + "]" : g->address) : std::string("?");
      out +=
          fmt::format("  endpoint = multicast:{}:{} (retrans {} tenths of a second)\n", a, o.port, o.retrans);
      break;
    }
    case Transport::vmchannel:
      out += fmt::format("  endpoint = vmchannel:{}:{}\n", o.channel_address, o.port);
      break;
    case Transport::serial:
      out += fmt::format("  endpoint = serial:{} ({})\n", o.serial_device.value_or(""), o.serial_params);
      break;
  }
  if (o.protocol != Protocol::vguard) out += fmt::format("  hash = {}\n  auth = {}\n", o.hash, o.auth);
  out += fmt::format("  timeout = {}\n  delay = {}\n  debug = {}\n", o.timeout_s, o.delay_s, o.debug);
  if (o.protocol == Protocol::vguard)
    for (const auto& name : o.compat_given)
      out += fmt::format("  note: {} is a fence_xvm option; it has no effect with protocol vguard\n", name);
  out += "-- end options --\n";
  return out;
}

}  // namespace vguard::agent
