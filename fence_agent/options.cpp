#include "options.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdlib>

namespace vguard::agent {
namespace {

using namespace std::string_view_literals;

// Descriptions say "ignored" for the fence_xvm/fence_virt options that the native protocol has no use for, so
// that nobody believes, for example, that auth=sha1 weakens vguard's HMAC-SHA256.
constexpr std::array kTable{
    OptionSpec{OptionId::debug, 'd', "debug", ArgKind::none, "", "boolean", "",
               "Specify (stdin) or increment (command line) debug level"},
    OptionSpec{OptionId::ip_family, 'i', "ip_family", ArgKind::required, "<family>", "string", "auto",
               "IP Family ([auto], ipv4, ipv6); fence_xvm compatibility, ignored", false, false, "", true,
               true},
    OptionSpec{OptionId::multicast_address, 'a', "multicast_address", ArgKind::required, "<address>",
               "string", "", "Multicast address; fence_xvm compatibility, ignored", false, false, "", true,
               true},
    OptionSpec{OptionId::ipaddr, 'T', "ipaddr", ArgKind::required, "<address>", "string", "127.0.0.1",
               "IP address or host name of vguardd (default=127.0.0.1)"},
    OptionSpec{OptionId::vsock, 'S', "vsock", ArgKind::optional_attached, "[<cid>]", "integer", "",
               "vm socket CID of vguardd; connect over vsock (-S alone means 2, the host)"},
    OptionSpec{OptionId::unix_socket, 'U', "unix_socket", ArgKind::required, "<path>", "string", "",
               "Unix socket of vguardd, used instead of TCP or vsock (the key file still signs)"},
    OptionSpec{OptionId::channel_address, 'A', "channel_address", ArgKind::required, "<address>", "string",
               "10.0.2.179", "VM Channel IP address; fence_virt compatibility, ignored", false, false, "",
               true, true},
    OptionSpec{OptionId::serial_device, 'D', "serial_device", ArgKind::required, "<device>", "string", "",
               "Serial device; fence_virt compatibility, ignored", false, false, "", true, true},
    OptionSpec{OptionId::serial_params, 'P', "serial_params", ArgKind::required, "<param>", "string",
               "115200,8N1", "Serial Parameters; fence_virt compatibility, ignored", false, false, "", true,
               true},
    OptionSpec{OptionId::ipport, 'p', "ipport", ArgKind::required, "<port>", "integer", "1231",
               "TCP or vsock port of vguardd (default=1231)"},
    OptionSpec{OptionId::retrans, 'r', "retrans", ArgKind::required, "<retrans>", "integer", "20",
               "Multicast retransmit time (in 1/10sec); fence_xvm compatibility, ignored", false, false, "",
               true, true},
    OptionSpec{
        OptionId::auth, 'C', "auth", ArgKind::required, "<auth>", "string", "sha256",
        "Authentication (none, sha1, [sha256], sha512); fence_xvm compatibility, ignored: vguard always "
        "uses HMAC-SHA256",
        false, false, "", true, true},
    OptionSpec{
        OptionId::hash, 'c', "hash", ArgKind::required, "<hash>", "string", "sha256",
        "Packet hash strength (none, sha1, [sha256], sha512); fence_xvm compatibility, ignored: vguard "
        "always uses HMAC-SHA256",
        false, false, "", true, true},
    OptionSpec{OptionId::key_file, 'k', "key_file", ArgKind::required, "<file>", "string",
               "/etc/cluster/fence_vguard.key",
               "Shared key file (default=/etc/cluster/fence_vguard.key); it must be readable, there is no "
               "unauthenticated fallback"},
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

Transport Options::transport() const {
  if (unix_socket) return Transport::unix_socket;
  if (vsock_cid) return Transport::vsock;
  return Transport::tcp;
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
      return;
    case OptionId::ipaddr:
      o.ipaddr = std::string(v);
      if (v.empty()) error(r, "Invalid address: ''");
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

// fence_xvm's args_finalize: with ip_family auto, the family of an explicit multicast address is guessed from
// its text ('.' means IPv4, else ':' means IPv6); neither is an error.
void finalize(ParseResult& r) {
  const Options& o = r.options;
  if (o.multicast_address && iequals(o.ip_family, "auto") &&
      o.multicast_address->find_first_of(".:") == std::string::npos) {
    error(r, "Could not determine address family");
  }
}

}  // namespace

ParseResult parse_stdin(std::string_view text) {
  ParseResult r;
  r.from_stdin = true;
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
    // fence_xvm's cleanup(): the line ends at the first blank, CR or LF, so "plug=my vm" means "my".
    const std::size_t cut = line.find_first_of(" \t\r\n\0"sv);
    if (cut != std::string_view::npos) line = line.substr(0, cut);
    if (line.empty()) continue;  // a line of blanks then CR

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

ParseResult parse_argv(std::span<const std::string> args) {
  ParseResult r;
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
  out += fmt::format("  action = {}\n", op_name(o.op));
  out += fmt::format("  target = {}\n", o.target ? *o.target : std::string("(none)"));
  out += fmt::format("  use_uuid = {}\n", o.use_uuid ? 1 : 0);
  out += fmt::format("  key_file = {}\n", o.key_file);
  switch (o.transport()) {
    case Transport::unix_socket:
      out += fmt::format("  endpoint = unix:{}\n", *o.unix_socket);
      break;
    case Transport::vsock:
      out += fmt::format("  endpoint = vsock:{}:{}\n", *o.vsock_cid, o.port);
      break;
    case Transport::tcp:
      out += fmt::format("  endpoint = tcp:{}:{}\n", o.ipaddr, o.port);
      break;
  }
  out += fmt::format("  timeout = {}\n  delay = {}\n  debug = {}\n", o.timeout_s, o.delay_s, o.debug);
  for (const auto& name : o.compat_given)
    out += fmt::format("  note: {} is accepted for fence_xvm compatibility and has no effect\n", name);
  out += "-- end options --\n";
  return out;
}

}  // namespace vguard::agent
