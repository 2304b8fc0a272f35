#pragma once
// vguardctl status / list: formatting of vguardd's domain list.
#include <string>
#include <string_view>
#include <vector>

#include "message.h"
#include "result.h"

namespace vguard::ctl {

inline constexpr std::string_view kDefaultSocket = "/run/vguard/vguardd.sock";

/// s with terminal control characters replaced by '?': names come from the hypervisor and from other hosts.
std::string printable(std::string_view s);

/// The domains of a list_status answer. Errors: errc::operation_failed (or the errc the daemon sent) with the
/// daemon's message when the answer's status is not success.
Result<std::vector<proto::DomainEntry>> domains_from_response(const proto::Response& r);

/// A table "NAME UUID STATE" with a header line and aligned columns; one line per domain, in the given order.
/// Non-printable characters of names are shown as '?'.
std::string format_status_table(const std::vector<proto::DomainEntry>& domains);

/// A JSON array [{"name":...,"uuid":...,"state":...}] and a newline.
std::string format_status_json(const std::vector<proto::DomainEntry>& domains);

}  // namespace vguard::ctl
