#pragma once
// fence_vguard -o metadata: the fence-agents XML (validated by /usr/share/cluster/relaxng/metadata.rng).
#include <string>
#include <string_view>

namespace vguard::agent {

/// Escapes text for XML character data and attribute values (&, <, >, ", ').
std::string xml_escape(std::string_view text);

/// The metadata document: fence_xvm's layout (tabs, one newline at the end), parameters from option_table()
/// in table order with the deprecated stdin-only "domain" last, and the fixed list of actions.
std::string metadata_xml();

}  // namespace vguard::agent
