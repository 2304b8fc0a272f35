#pragma once
// vguardctl in cluster mode: formatting of vguardd's cluster-wide domain list (status) and of its host list
// (hosts). Pure: no I/O.
#include <string>
#include <string_view>
#include <vector>

#include "message.h"

namespace vguard::ctl {

/// Names of the set DomainEntry flags, in this order: "OWNER-LOST", "DUPLICATE", "HOST-FENCED".
std::vector<std::string> domain_flag_names(std::uint8_t flags);

/// "member", "lost", "fenced", "self" for HostEntry::status 0..3; "unknown" otherwise.
std::string_view host_status_name(std::uint8_t status);

/// A line "cluster: N domains, quorate" (or "NOT quorate"), then a table "NAME UUID STATE HOST EPOCH FLAGS"
/// with aligned columns; FLAGS is the comma-joined flag names, "-" when none; an empty HOST shows "-".
std::string format_cluster_status_table(const proto::Response& r);

/// {"quorate":bool,"domains":[{"name","uuid","state","host","epoch","flags":[...]}]} and a newline.
std::string format_cluster_status_json(const proto::Response& r);

/// A line "quorate: yes" (or "no"), then a table "ID NAME STATUS LOSSES LIBVIRT CONFIRMED-BY";
/// LIBVIRT is "up" or "down", an empty CONFIRMED-BY shows "-".
std::string format_hosts_table(const proto::Response& r);

/// {"quorate":bool,"hosts":[{"id","name","status","losses","libvirt_up","confirmed_by"}]} and a newline.
std::string format_hosts_json(const proto::Response& r);

}  // namespace vguard::ctl
