#include "cluster_fmt.h"

#include "status.h"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace vguard::ctl {
namespace {

std::string or_dash(std::string s) { return s.empty() ? std::string("-") : s; }

// Aligned columns separated by two blanks; the last column is not padded.
std::string table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w;
  for (const auto& row : rows) {
    if (w.size() < row.size()) w.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) w[i] = std::max(w[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out.append(w[i] - row[i].size() + 2, ' ');
    }
    out.push_back('\n');
  }
  return out;
}

bool quorate(const proto::Response& r) { return (r.flags & proto::kResponseQuorate) != 0; }

}  // namespace

std::vector<std::string> domain_flag_names(std::uint8_t flags) {
  std::vector<std::string> out;
  if (flags & proto::kDomainOwnerLost) out.emplace_back("OWNER-LOST");
  if (flags & proto::kDomainDuplicate) out.emplace_back("DUPLICATE");
  if (flags & proto::kDomainHostFenced) out.emplace_back("HOST-FENCED");
  if (flags & proto::kDomainMigrating) out.emplace_back("MIGRATING");
  return out;
}

std::string_view host_status_name(std::uint8_t status) {
  switch (status) {
    case 0:
      return "member";
    case 1:
      return "lost";
    case 2:
      return "fenced";
    case 3:
      return "self";
    default:
      return "unknown";
  }
}

std::string format_cluster_status_table(const proto::Response& r) {
  std::vector<std::vector<std::string>> rows{{"NAME", "UUID", "STATE", "HOST", "EPOCH", "FLAGS"}};
  for (const auto& d : r.domains) {
    rows.push_back({printable(d.name), d.uuid.str(), std::string(proto::power_state_name(d.state)),
                    or_dash(printable(d.host)), std::to_string(d.epoch),
                    or_dash(fmt::format("{}", fmt::join(domain_flag_names(d.flags), ",")))});
  }
  return fmt::format("cluster: {} domain{}, {}\n", r.domains.size(), r.domains.size() == 1 ? "" : "s",
                     quorate(r) ? "quorate" : "NOT quorate") +
         table(rows);
}

std::string format_cluster_status_json(const proto::Response& r) {
  boost::json::array domains;
  for (const auto& d : r.domains) {
    boost::json::array flags;
    for (auto& f : domain_flag_names(d.flags)) flags.emplace_back(f);
    boost::json::object o;
    o.emplace("name", d.name);
    o.emplace("uuid", d.uuid.str());
    o.emplace("state", proto::power_state_name(d.state));
    o.emplace("host", d.host);
    o.emplace("epoch", d.epoch);
    o.emplace("flags", std::move(flags));
    domains.emplace_back(std::move(o));
  }
  boost::json::object top;
  top.emplace("quorate", quorate(r));
  top.emplace("domains", std::move(domains));
  return boost::json::serialize(top) + "\n";
}

std::string format_hosts_table(const proto::Response& r) {
  std::vector<std::vector<std::string>> rows{{"ID", "NAME", "STATUS", "LOSSES", "LIBVIRT", "CONFIRMED-BY"}};
  for (const auto& h : r.hosts) {
    rows.push_back({std::to_string(h.id), or_dash(printable(h.name)), std::string(host_status_name(h.status)),
                    std::to_string(h.losses), h.libvirt_up ? "up" : "down",
                    or_dash(printable(h.confirmed_by))});
  }
  return fmt::format("quorate: {}\n", quorate(r) ? "yes" : "no") + table(rows);
}

std::string format_hosts_json(const proto::Response& r) {
  boost::json::array hosts;
  for (const auto& h : r.hosts) {
    boost::json::object o;
    o.emplace("id", h.id);
    o.emplace("name", h.name);
    o.emplace("status", host_status_name(h.status));
    o.emplace("losses", h.losses);
    o.emplace("libvirt_up", h.libvirt_up);
    o.emplace("confirmed_by", h.confirmed_by);
    hosts.emplace_back(std::move(o));
  }
  boost::json::object top;
  top.emplace("quorate", quorate(r));
  top.emplace("hosts", std::move(hosts));
  return boost::json::serialize(top) + "\n";
}

}  // namespace vguard::ctl
