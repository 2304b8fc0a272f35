#include "metadata.h"

#include <fmt/format.h>

#include "options.h"

namespace vguard::agent {

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

void parameter(std::string& out, const OptionSpec& s) {
  out += fmt::format("\t<parameter name=\"{}\" unique=\"0\" required=\"{}\"", xml_escape(s.stdin_name),
                     s.required ? 1 : 0);
  if (!s.obsoletes.empty()) out += fmt::format(" obsoletes=\"{}\"", xml_escape(s.obsoletes));
  if (s.deprecated) out += " deprecated=\"1\"";
  out += ">\n";
  // Stdin-only parameters (the deprecated "domain") get mixed="", as fence_xvm prints them.
  std::string mixed;
  if (s.letter != '\0') mixed = fmt::format("-{}", s.letter);
  // fence-agents' Python library writes long forms as "-o, --action=[action]".
  if (!s.long_name.empty()) mixed += fmt::format(", --{}=[{}]", s.long_name, s.stdin_name);
  out += fmt::format("\t\t<getopt mixed=\"{}\" />\n", xml_escape(mixed));
  if (s.default_value.empty()) {
    out += fmt::format("\t\t<content type=\"{}\" />\n", xml_escape(s.content_type));
  } else {
    out += fmt::format("\t\t<content type=\"{}\" default=\"{}\" />\n", xml_escape(s.content_type),
                       xml_escape(s.default_value));
  }
  out += fmt::format("\t\t<shortdesc lang=\"en\">{}</shortdesc>\n", xml_escape(s.description));
  out += "\t</parameter>\n";
}

}  // namespace

std::string metadata_xml() {
  std::string out = "<?xml version=\"1.0\" ?>\n";
  out += fmt::format("<resource-agent name=\"{}\" shortdesc=\"{}\">\n", xml_escape(kProgramName),
                     xml_escape("Fence agent for libvirt domains guarded by vguard"));
  out += fmt::format(
      "<longdesc>{}</longdesc>\n",
      xml_escape(
          "fence_vguard is an I/O Fencing agent for libvirt virtual machines. It asks the vguard daemon "
          "(vguardd) on the host, over TCP, vsock or a Unix socket, to power a domain off, on or to "
          "reboot it, or to report its state. In this native protocol every request is signed with "
          "HMAC-SHA256 using the shared key file; there is no unauthenticated mode. Options and exit codes "
          "follow fence_xvm, so "
          "existing fence_xvm configurations keep working. With protocol=xvm (or protocol=virt) it speaks "
          "fence_xvm's protocol to an unmodified fence_virtd instead (multicast, TCP or vsock; serial or "
          "VM channel without authentication, as fence_virt), using the fence_xvm options and key file, so "
          "one agent serves clusters that are "
          "being migrated from fence_virtd to vguard."));
  out += "<vendor-url>https://libvirt.org</vendor-url>\n";
  out += "<parameters>\n";
  // fence_xvm prints the stdin-only "domain" after every getopt parameter.
  for (const auto& s : option_table())
    if (s.in_metadata && s.letter != '\0') parameter(out, s);
  for (const auto& s : option_table())
    if (s.in_metadata && s.letter == '\0') parameter(out, s);
  out += "</parameters>\n";
  out += "<actions>\n";
  for (const char* a : {"null", "on", "off", "reboot", "metadata", "status", "monitor", "list", "list-status",
                        "validate-all"})
    out += fmt::format("\t<action name=\"{}\" />\n", a);
  out += "</actions>\n";
  out += "</resource-agent>\n";
  return out;
}

}  // namespace vguard::agent
