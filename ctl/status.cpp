#include "status.h"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace vguard::ctl {

std::string printable(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

Result<std::vector<proto::DomainEntry>> domains_from_response(const proto::Response& r) {
  if (r.status == proto::Status::success) return r.domains;
  const errc code = r.error != 0 ? static_cast<errc>(r.error) : errc::operation_failed;
  return make_error(code, r.message.empty() ? "vguardd refused the request" : "vguardd: " + r.message);
}

std::string format_status_table(const std::vector<proto::DomainEntry>& domains) {
  std::vector<std::string> names;
  std::size_t w = 4;  // "NAME"
  for (const auto& d : domains) {
    names.push_back(printable(d.name));
    w = std::max(w, names.back().size());
  }
  auto row = [w](std::string_view name, std::string_view uuid, std::string_view state) {
    std::string line(name);
    line.append(w - name.size() + 2, ' ');
    line.append(uuid);
    line.append(uuid.size() < 36 ? 36 - uuid.size() + 2 : 2, ' ');
    line.append(state);
    line.push_back('\n');
    return line;
  };
  std::string out = row("NAME", "UUID", "STATE");
  for (std::size_t i = 0; i < domains.size(); ++i)
    out += row(names[i], domains[i].uuid.str(), proto::power_state_name(domains[i].state));
  return out;
}

std::string format_status_json(const std::vector<proto::DomainEntry>& domains) {
  boost::json::array a;
  for (const auto& d : domains) {
    boost::json::object o;
    o.emplace("name", d.name);
    o.emplace("uuid", d.uuid.str());
    o.emplace("state", proto::power_state_name(d.state));
    a.emplace_back(std::move(o));
  }
  return boost::json::serialize(a) + "\n";
}

}  // namespace vguard::ctl
