#pragma once
// vguard-hook's pure decisions: which libvirt hook invocations ask vguardd, what happens when vguardd cannot
// be asked, and what the hook prints and returns for each answer. No I/O here; main.cpp reads the config file
// and stdin and does the asking.
#include <optional>
#include <string>
#include <string_view>

#include "message.h"
#include "result.h"

namespace vguard::guard {

inline constexpr std::string_view kDefaultConfig = "/etc/vguard/vguard.conf";
inline constexpr std::string_view kDefaultSocket = "/run/vguard/vguardd.sock";

/// The part of vguard.conf the hook reads: [daemon] control_socket, [hook] unreachable_*, timeout. vguardd
/// validates the same keys (fenced/runtime/config.cpp) and refuses to start on a bad value.
struct HookSettings {
  std::string control_socket = std::string(kDefaultSocket);
  bool refuse_prepare = true;     ///< [hook] unreachable_prepare = refuse
  bool refuse_migrate = true;     ///< [hook] unreachable_migrate = refuse
  bool refuse_reconnect = false;  ///< [hook] unreachable_reconnect = allow: a failing reconnect kills the guest
  unsigned timeout_s = 10;        ///< [hook] timeout: the whole call to vguardd, 1..300 seconds
};

/// Parses vguard.conf text (path only names it in errors). Keys the hook does not use are ignored.
/// Errors: errc::bad_config "PATH:LINE: what" for a bad value, a key set twice, or a syntax error.
Result<HookSettings> parse_settings(std::string_view text, const std::string& path);

/// What to do for one hook invocation.
struct Plan {
  /// The request to send to vguardd, or nullopt: allow at once, without asking or reading stdin.
  std::optional<proto::Action> ask;
  /// When vguardd cannot be asked (or the XML has no UUID): refuse (fail closed) or allow.
  bool refuse_if_unreachable = false;
  /// Whether vguardd's "no" refuses the operation (false for "release end": the domain is gone anyway).
  bool obey_answer = false;
  /// What a refusal refuses, completed by the domain name: "to start ", "incoming migration of ".
  std::string_view refused = "to start ";
};

/// libvirt qemu hook argv: operation and sub-operation.
/// - "prepare begin": the domain is about to start here (also on a migration's target and after a restore):
///   ask hook-prepare; unreachable: [hook] unreachable_prepare.
/// - "migrate begin": an incoming migration, on its target host (libvirt runs no hook on the source): ask
///   hook-migrate; unreachable: unreachable_migrate.
/// - "restore begin": allow without asking; the "prepare begin" libvirt runs right after it asks (asking
///   here too would claim the domain twice).
/// - "reconnect begin": libvirtd restarted and found the domain running: ask hook-reconnect (vguardd says no
///   only with reconnect_policy = refuse); unreachable: unreachable_reconnect (default allow, since libvirt
///   kills the running guest when this hook fails).
/// - "release end": the domain stopped here: tell vguardd (hook-release), never refuse.
/// - everything else: allow without asking.
Plan plan_for(std::string_view operation, std::string_view sub_operation, const HookSettings& settings = {});

/// Extracts <uuid> from domain XML; nullopt if absent or malformed.
std::optional<std::string> uuid_from_xml(std::string_view xml);

/// The hook's result: exit status and the one stderr line (without newline; empty when there is none).
struct Outcome {
  int exit_code = 0;
  std::string message;
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

/// When vguardd could not be asked (reason: why, e.g. the client's error): the plan's unreachable policy.
Outcome unreachable(const Plan& plan, std::string_view domain, std::string_view reason);
/// The XML on stdin had no usable UUID, so nothing can be asked: the plan's unreachable policy.
Outcome no_uuid(const Plan& plan, std::string_view domain);
/// vguardd's answer (or the error of the call) to plan.ask.
Outcome decide(const Plan& plan, std::string_view domain, const Result<proto::Response>& answer);

}  // namespace vguard::guard
