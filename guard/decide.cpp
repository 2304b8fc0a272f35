#include "decide.h"

#include <pugixml.hpp>

#include "uuid.h"

namespace vguard::guard {

Plan plan_for(std::string_view op, std::string_view sub) {
  if (op == "prepare" && sub == "begin") return {proto::Action::hook_prepare, true};
  if (op == "release" && sub == "end") return {proto::Action::hook_release, false};
  return {std::nullopt, false};
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

}  // namespace vguard::guard
