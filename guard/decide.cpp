#include "decide.h"

#include <boost/program_options.hpp>
#include <pugixml.hpp>

#include <map>
#include <utility>
#include <sstream>

#include "uuid.h"

namespace vguard::guard {
namespace {

namespace po = boost::program_options;

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r");
  const auto e = s.find_last_not_of(" \t\r");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

// The line of the occurrence-th "key = ..." of section.key (1-based; 0 if not found), so errors name a line
// the way vguardd's do. ProgramOptions parses; this only locates what it reported.
int line_of(std::string_view text, const std::string& name, std::size_t occurrence) {
  std::istringstream in{std::string(text)};
  std::string line, section;
  int n = 0;
  std::size_t seen = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (t.front() == '[' && t.back() == ']') {
      section = trim(std::string_view(t).substr(1, t.size() - 2));
      continue;
    }
    const auto eq = t.find('=');
    const std::string key = trim(std::string_view(t).substr(0, eq));
    if ((section.empty() ? key : section + "." + key) == name && seen++ == occurrence) return n;
  }
  return 0;
}

// The first line that is neither blank, a comment, a section header nor "key = value".
int bad_syntax_line(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    const std::string t = trim(line);
    if (t.empty() || t[0] == '#' || (t.front() == '[' && t.back() == ']')) continue;
    if (t.find('=') == std::string::npos) return n;
  }
  return 0;
}

Error config_error(const std::string& path, int line, const std::string& what) {
  return make_error(errc::bad_config, line > 0 ? path + ":" + std::to_string(line) + ": " + what : path + ": " + what);
}

std::string with_domain(std::string_view refused, std::string_view domain) {
  return std::string(refused) + std::string(domain);
}

// libvirt shows the hook's stderr as one line: no text from vguardd or a domain name may break it.
Outcome refusal(std::string text) {
  for (char& c : text)
    if (c == '\n' || c == '\r') c = ' ';
  return {1, std::move(text)};
}

}  // namespace

Result<HookSettings> parse_settings(std::string_view text, const std::string& path) {
  po::options_description desc;
  desc.add_options()                                              //
      ("daemon.control_socket", po::value<std::string>())         //
      ("hook.unreachable_prepare", po::value<std::string>())      //
      ("hook.unreachable_migrate", po::value<std::string>())      //
      ("hook.unreachable_reconnect", po::value<std::string>())    //
      ("hook.timeout", po::value<std::string>());
  po::parsed_options parsed(&desc);
  try {
    std::istringstream in{std::string(text)};
    parsed = po::parse_config_file(in, desc, /*allow_unregistered=*/true);
  } catch (const po::error& e) {
    const int line = bad_syntax_line(text);
    if (line > 0) return config_error(path, line, "expected 'key = value' or '[section]'");
    return config_error(path, 0, e.what());
  }
  HookSettings s;
  std::map<std::string, std::size_t> seen;
  for (const auto& opt : parsed.options) {
    if (opt.unregistered) continue;  // vguardd's keys; vguardd checks them
    const std::string& name = opt.string_key;
    const std::size_t occurrence = seen[name]++;
    const int line = line_of(text, name, occurrence);
    if (occurrence > 0) return config_error(path, line, "'" + name + "' is set more than once");
    const std::string value = opt.value.empty() ? std::string() : trim(opt.value.front());
    const std::string key = name.substr(name.find('.') + 1);
    if (name == "daemon.control_socket") {
      if (value.empty() || value[0] != '/') return config_error(path, line, "control_socket must be an absolute path");
      s.control_socket = value;
    } else if (name == "hook.timeout") {
      std::size_t pos = 0;
      unsigned long t = 0;
      try {
        t = std::stoul(value, &pos, 10);
      } catch (const std::exception&) {
        pos = 0;
      }
      if (value.empty() || pos != value.size() || value[0] == '-' || t < 1 || t > 300)
        return config_error(path, line, "bad value '" + value + "' for timeout: expected an integer from 1 to 300");
      s.timeout_s = static_cast<unsigned>(t);
    } else {
      if (value != "refuse" && value != "allow")
        return config_error(path, line, "bad value '" + value + "' for " + key + ": expected refuse or allow");
      const bool refuse = value == "refuse";
      if (key == "unreachable_prepare") s.refuse_prepare = refuse;
      if (key == "unreachable_migrate") s.refuse_migrate = refuse;
      if (key == "unreachable_reconnect") s.refuse_reconnect = refuse;
    }
  }
  return s;
}

Plan plan_for(std::string_view op, std::string_view sub, const HookSettings& s) {
  using proto::Action;
  if (op == "prepare" && sub == "begin") return {Action::hook_prepare, s.refuse_prepare, true, "to start "};
  if (op == "migrate" && sub == "begin")
    return {Action::hook_migrate, s.refuse_migrate, true, "incoming migration of "};
  if (op == "reconnect" && sub == "begin")
    return {Action::hook_reconnect, s.refuse_reconnect, true, "to reconnect to "};
  if (op == "release" && sub == "end") return {Action::hook_release, false, false, "to release "};
  return {};
}

std::optional<std::string> uuid_from_xml(std::string_view xml) {
  pugi::xml_document doc;
  if (!doc.load_buffer(xml.data(), xml.size())) return std::nullopt;
  const auto node = doc.child("domain").child("uuid");
  if (!node) return std::nullopt;
  auto u = Uuid::parse(node.text().as_string());
  if (!u) return std::nullopt;
  return u->str();
}

Outcome unreachable(const Plan& plan, std::string_view domain, std::string_view reason) {
  if (!plan.refuse_if_unreachable) return {};
  return refusal("vguard: cannot ask vguardd (" + std::string(reason) + "); refusing " +
                 with_domain(plan.refused, domain) + " (fail-closed)");
}

Outcome no_uuid(const Plan& plan, std::string_view domain) {
  if (!plan.refuse_if_unreachable) return {};
  return refusal("vguard: cannot read the UUID of domain " + std::string(domain) + " from its XML; refusing " +
                 with_domain(plan.refused, domain));
}

Outcome decide(const Plan& plan, std::string_view domain, const Result<proto::Response>& answer) {
  if (!answer) return unreachable(plan, domain, answer.error().message());
  const proto::Response& r = *answer;
  // A vguardd that does not know this request (one older than the hook) could not decide it: no answer.
  if (r.error == static_cast<std::uint16_t>(errc::unknown_action))
    return unreachable(plan, domain, "it does not support this request: " + r.message);
  if (r.status == proto::Status::success || !plan.obey_answer) return {};
  return refusal("vguard: refusing " + with_domain(plan.refused, domain) + ": " +
                 (r.message.empty() ? std::string("vguardd said no") : r.message));
}

}  // namespace vguard::guard
