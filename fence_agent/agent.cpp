#include "agent.h"

#include <fmt/format.h>

#include "metadata.h"

namespace vguard::agent {

static_assert(kDefaultAgentPort == proto::kDefaultPort, "fence_vguard's default port must be vguardd's");

std::optional<Outcome> preflight(const ParseResult& r) {
  const Options& o = r.options;
  if (o.help) return Outcome{kExitSuccess, help_text(), {}};
  if (o.version) return Outcome{kExitSuccess, version_text(), {}};

  std::string err;
  bool failed = !r.ok();
  if (!o.target && o.op != Op::monitor && o.op != Op::list && o.op != Op::list_status &&
      o.op != Op::metadata) {
    err += "No domain specified!\n";
    failed = true;
  }
  if (failed) {
    // fence_xvm prints the usage matching the input mode (option letters, or stdin names).
    return Outcome{kExitFailure, o.op == Op::validate_all ? std::string() : usage_text(r.from_stdin),
                   std::move(err)};
  }
  if (o.op == Op::metadata) return Outcome{kExitSuccess, metadata_xml(), {}};
  if (o.op == Op::null) {
    return Outcome{kExitFailure,
                   {},
                   o.protocol == Protocol::vguard
                       ? "NULL operation: nothing is sent to vguardd\nOperation failed\n"
                       : "NULL operation: nothing is sent to fence_virtd\nOperation failed\n"};
  }
  return std::nullopt;
}

Outcome key_failure(const Options& o, const Error& e) {
  const std::string reason = e.context.empty() ? e.message() : e.context;
  return Outcome{kExitFailure, {}, fmt::format("Invalid key file: '{}' ({})\n", o.key_file, reason)};
}

bool needs_delay(Op op) { return op == Op::on || op == Op::off || op == Op::reboot; }

std::optional<proto::Action> to_action(Op op) {
  switch (op) {
    case Op::on:
      return proto::Action::on;
    case Op::off:
      return proto::Action::off;
    case Op::reboot:
      return proto::Action::reboot;
    case Op::status:
      return proto::Action::status;
    case Op::monitor:
      return proto::Action::monitor;
    case Op::list:
      return proto::Action::list;
    case Op::list_status:
      return proto::Action::list_status;
    case Op::null:
    case Op::metadata:
    case Op::validate_all:
      return std::nullopt;
  }
  return std::nullopt;
}

namespace {
bool takes_target(Op op) { return op == Op::on || op == Op::off || op == Op::reboot || op == Op::status; }
}  // namespace

std::string request_target(const Options& o) {
  if (!takes_target(o.op) || !o.target) return {};
  return *o.target;
}

std::uint8_t request_flags(const Options& o) {
  return (o.use_uuid && !request_target(o).empty()) ? proto::kFlagTargetIsUuid : std::uint8_t{0};
}

std::string endpoint_text(const Options& o) {
  switch (o.transport()) {
    case Transport::unix_socket:
      return fmt::format("unix:{}", o.unix_socket.value_or(""));
    case Transport::vsock:
      return fmt::format("vsock:{}:{}", o.vsock_cid.value_or(0), o.port);
    case Transport::multicast: {
      const auto g = multicast_group(o);
      const std::string a = g ? g->address : std::string("?");
      if (a.find(':') != std::string::npos) return fmt::format("multicast:[{}]:{}", a, o.port);
      return fmt::format("multicast:{}:{}", a, o.port);
    }
    case Transport::vmchannel:
      if (o.channel_address.find(':') != std::string::npos)
        return fmt::format("vmchannel:[{}]:{}", o.channel_address, o.port);
      return fmt::format("vmchannel:{}:{}", o.channel_address, o.port);
    case Transport::serial:
      return fmt::format("serial:{}", o.serial_device.value_or(""));
    case Transport::tcp:
      break;
  }
  // Bracket IPv6 literals so the port stays readable.
  if (o.ipaddr.find(':') != std::string::npos) return fmt::format("tcp:[{}]:{}", o.ipaddr, o.port);
  return fmt::format("tcp:{}:{}", o.ipaddr, o.port);
}

std::string_view list_state(proto::PowerState s) {
  switch (s) {
    case proto::PowerState::running:
    case proto::PowerState::paused:
      return "on";
    case proto::PowerState::shutoff:
      return "off";
    case proto::PowerState::unknown:
    case proto::PowerState::other:
      break;
  }
  return "unknown";
}

std::string list_line(const proto::DomainEntry& d) {
  return fmt::format("{:<32} {} {}\n", d.name, d.uuid.str(), list_state(d.state));
}

namespace {

// The daemon's message line, if it sent one (the reason behind "Operation failed").
std::string reason_line(std::string_view message) {
  if (message.empty()) return {};
  return fmt::format("{}\n", message);
}

// "vguardd at <endpoint>: " unless the client's message already names the endpoint.
std::string where(const Options& o, std::string_view message) {
  std::string_view name;
  switch (o.transport()) {
    case Transport::unix_socket:
      name = *o.unix_socket;
      break;
    case Transport::tcp:
      name = o.ipaddr;
      break;
    default:
      break;
  }
  if (!name.empty() && message.find(name) != std::string_view::npos) return "vguardd: ";
  return fmt::format("vguardd at {}: ", endpoint_text(o));
}

Outcome from_error(const Options& o, const Error& e) {
  const std::string msg = e.message();
  const std::string ep = where(o, msg);
  if (e.code == make_error_code(errc::permission_denied))
    return Outcome{kExitDenied, {}, fmt::format("{}{}\nPermission denied\n", ep, msg)};
  if (e.code == make_error_code(errc::timed_out)) {
    return Outcome{kExitFailure,
                   {},
                   fmt::format("Timed out after {} s waiting for vguardd at {} ({})\nOperation failed\n",
                               o.timeout_s, endpoint_text(o), msg)};
  }
  return Outcome{kExitFailure, {}, fmt::format("{}{}\nOperation failed\n", ep, msg)};
}

}  // namespace

Outcome interpret(const Options& o, const Result<proto::Response>& answer) {
  if (!answer) return from_error(o, answer.error());
  const proto::Response& r = *answer;
  switch (r.status) {
    case proto::Status::success: {
      Outcome out;
      if (o.op == Op::status) out.out = "Status: ON\n";
      if (o.op == Op::list || o.op == Op::list_status)
        for (const auto& d : r.domains) out.out += list_line(d);
      if (o.debug > 0 && !r.message.empty()) out.err = fmt::format("vguardd: {}\n", r.message);
      return out;
    }
    case proto::Status::off:
      if (o.op == Op::status) return Outcome{kExitOff, "Status: OFF\n", {}};
      // Exit 2 is reserved for a status answer: for off/reboot it would be read as a failure anyway, and for
      // anything else it is not a meaning vguardd defines.
      return Outcome{kExitFailure,
                     {},
                     fmt::format("{}vguardd answered 'off' to {}\nOperation failed\n", reason_line(r.message),
                                 op_name(o.op))};
    case proto::Status::failure:
      return Outcome{kExitFailure, {}, reason_line(r.message) + "Operation failed\n"};
    case proto::Status::denied:
      return Outcome{kExitDenied, {}, reason_line(r.message) + "Permission denied\n"};
  }
  return Outcome{
      kExitFailure, {}, fmt::format("Unknown response ({})\nOperation failed\n", static_cast<int>(r.status))};
}

// ---- protocol xvm / virt ----

bool xvm_needs_key(const Options& o) {
  switch (o.transport()) {
    case Transport::serial:
    case Transport::vmchannel:
      return false;
    default:
      break;
  }
  const auto none = [](std::string_view v) {
    if (v.size() != 4) return false;
    for (std::size_t i = 0; i < 4; ++i)
      if ((v[i] | 0x20) != "none"[i]) return false;
    return true;
  };
  return !(none(o.hash) && none(o.auth));
}

std::string_view xvm_list_state(std::uint8_t state) {
  switch (state) {
    case 1:  // running
    case 2:  // blocked
    case 3:  // paused
    case 4:  // being shut down
    case 7:  // pmsuspended
      return "on";
    case 5:  // shut off
      return "off";
    default:  // 0 nostate, 6 crashed, unknown values
      return "unknown";
  }
}

std::string xvm_list_line(const XvmHost& h) {
  return fmt::format("{:<32} {} {}\n", h.domain, h.uuid, xvm_list_state(h.state));
}

Outcome interpret_xvm(const Options& o, const Result<XvmAnswer>& answer) {
  if (!answer) {
    const Error& e = answer.error();
    const std::string msg = e.context.empty() ? e.message() : e.context;
    if (e.code == make_error_code(errc::timed_out) && o.transport() == Transport::multicast &&
        e.context.starts_with("no callback")) {
      return Outcome{
          kExitFailure, {}, fmt::format("Timed out waiting for response: {}\nOperation failed\n", msg)};
    }
    if (e.code == make_error_code(errc::timed_out))
      return Outcome{kExitFailure,
                     {},
                     fmt::format("fence_virtd at {}: timed out after {} s {}\nOperation failed\n",
                                 endpoint_text(o), o.timeout_s, msg)};
    return Outcome{
        kExitFailure, {}, fmt::format("fence_virtd at {}: {}\nOperation failed\n", endpoint_text(o), msg)};
  }
  const XvmAnswer& a = *answer;
  const bool list = o.op == Op::list || o.op == Op::list_status;
  switch (a.response) {
    case 0: {
      Outcome out;
      if (o.op == Op::status) out.out = "Status: ON\n";
      return out;
    }
    case 1:
      return Outcome{kExitFailure, {}, "Operation failed\n"};
    case 2:
      if (o.op == Op::status) return Outcome{kExitOff, "Status: OFF\n", {}};
      return Outcome{kExitFailure,
                     {},
                     fmt::format("fence_virtd answered 'off' to {}\nOperation failed\n", op_name(o.op))};
    case 3:
      return Outcome{kExitDenied, {}, "Permission denied\n"};
    case 253:
      if (list) {
        Outcome out;
        for (const auto& h : a.hosts) out.out += xvm_list_line(h);
        return out;
      }
      break;
    default:
      break;
  }
  return Outcome{kExitFailure, {}, fmt::format("Unknown response ({})\nOperation failed\n", a.response)};
}

}  // namespace vguard::agent
