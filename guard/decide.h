#pragma once
// vguard-hook's pure decision: which libvirt hook invocations ask vguardd, and what happens when vguardd
// cannot be asked. No I/O here; main.cpp does the asking.
#include <optional>
#include <string>
#include <string_view>

#include "message.h"

namespace vguard::guard {

/// What to do for one hook invocation.
struct Plan {
  /// The request to send to vguardd, or nullopt: allow without asking.
  std::optional<proto::Action> ask;
  /// When vguardd cannot be reached or does not answer: refuse (fail closed) or allow.
  bool refuse_if_unreachable = true;
};

/// libvirt qemu hook argv: object (domain name), operation, sub-operation.
/// - "prepare begin": the domain is about to start here: ask (hook-prepare), fail closed.
/// - "release end": the domain stopped here: tell vguardd (hook-release), never refuse (it is gone anyway).
/// - "reconnect begin": never refuse: a failing reconnect hook makes libvirt kill a running guest.
/// - everything else: allow without asking.
Plan plan_for(std::string_view operation, std::string_view sub_operation);

/// Extracts <uuid> from domain XML; nullopt if absent or malformed.
std::optional<std::string> uuid_from_xml(std::string_view xml);

}  // namespace vguard::guard
