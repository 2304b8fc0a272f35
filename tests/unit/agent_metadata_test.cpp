// fence_vguard -o metadata: well-formed, every option present with the fence-agents attributes, and equal to
// the reviewed golden file (regenerate with VG_REGENERATE=1). Schema validation is agent_metadata_rng.sh.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <pugixml.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "metadata.h"
#include "options.h"

namespace vguard::agent {
namespace {

const std::string kGolden = std::string(VG_TEST_DATA) + "/fence_agent/metadata.xml";

pugi::xml_node parameter(const pugi::xml_document& doc, std::string_view name) {
  for (auto p : doc.child("resource-agent").child("parameters").children("parameter"))
    if (name == p.attribute("name").value()) return p;
  return {};
}

class AgentMetadata : public ::testing::Test {
 protected:
  void SetUp() override {
    xml_ = metadata_xml();
    const auto res = doc_.load_string(xml_.c_str());
    ASSERT_TRUE(res) << res.description() << " at offset " << res.offset;
  }
  std::string xml_;
  pugi::xml_document doc_;
};

TEST_F(AgentMetadata, RootAndLayout) {
  EXPECT_TRUE(xml_.starts_with("<?xml version=\"1.0\" ?>\n<resource-agent "));
  EXPECT_TRUE(xml_.ends_with("</resource-agent>\n"));
  EXPECT_FALSE(xml_.ends_with("\n\n"));
  const auto ra = doc_.child("resource-agent");
  EXPECT_STREQ(ra.attribute("name").value(), "fence_vguard");
  EXPECT_STREQ(ra.attribute("shortdesc").value(), "Fence agent for libvirt domains guarded by vguard");
  EXPECT_NE(std::string(ra.child_value("longdesc")).find("fence_vguard"), std::string::npos);
  EXPECT_STRNE(ra.child_value("vendor-url"), "");
  // The schema's element order: longdesc, vendor-url, parameters, actions.
  std::vector<std::string> order;
  for (auto c : ra.children()) order.emplace_back(c.name());
  EXPECT_EQ(order, (std::vector<std::string>{"longdesc", "vendor-url", "parameters", "actions"}));
}

TEST_F(AgentMetadata, EveryOptionIsAParameter) {
  std::set<std::string> expected;
  for (const auto& s : option_table()) {
    if (!s.in_metadata) continue;
    expected.emplace(s.stdin_name);
    const auto p = parameter(doc_, s.stdin_name);
    ASSERT_TRUE(p) << s.stdin_name;
    EXPECT_STREQ(p.attribute("unique").value(), "0");
    EXPECT_STREQ(p.attribute("required").value(), s.required ? "1" : "0") << s.stdin_name;
    std::string mixed = s.letter ? std::string("-") + s.letter : std::string();
    if (!s.long_name.empty())
      mixed += ", --" + std::string(s.long_name) + "=[" + std::string(s.stdin_name) + "]";
    ASSERT_TRUE(p.child("getopt").attribute("mixed")) << s.stdin_name;
    EXPECT_EQ(p.child("getopt").attribute("mixed").value(), mixed) << s.stdin_name;
    EXPECT_EQ(p.child("content").attribute("type").value(), s.content_type) << s.stdin_name;
    EXPECT_EQ(p.child("content").attribute("default").value(), s.default_value) << s.stdin_name;
    EXPECT_EQ(static_cast<bool>(p.child("content").attribute("default")), !s.default_value.empty());
    EXPECT_STREQ(p.child("shortdesc").attribute("lang").value(), "en");
    EXPECT_EQ(p.child_value("shortdesc"), s.description) << s.stdin_name;
    EXPECT_FALSE(s.description.empty());
  }
  std::set<std::string> found;
  for (auto p : doc_.child("resource-agent").child("parameters").children("parameter"))
    EXPECT_TRUE(found.emplace(p.attribute("name").value()).second)
        << "duplicate " << p.attribute("name").value();
  EXPECT_EQ(found, expected);
  for (const char* name : {"debug",
                           "ip_family",
                           "multicast_address",
                           "ipaddr",
                           "vsock",
                           "unix_socket",
                           "protocol",
                           "channel_address",
                           "serial_device",
                           "serial_params",
                           "ipport",
                           "retrans",
                           "auth",
                           "hash",
                           "key_file",
                           "plug",
                           "port",
                           "use_uuid",
                           "action",
                           "timeout",
                           "delay",
                           "domain"})
    EXPECT_TRUE(found.count(name)) << name;
  for (const char* name : {"agent", "nodename", "self", "option"}) EXPECT_FALSE(found.count(name)) << name;
}

TEST_F(AgentMetadata, TargetParametersLikeFenceXvm) {
  const auto plug = parameter(doc_, "plug");
  EXPECT_STREQ(plug.attribute("required").value(), "1");
  EXPECT_STREQ(plug.attribute("obsoletes").value(), "port");
  EXPECT_FALSE(plug.attribute("deprecated"));
  const auto port = parameter(doc_, "port");
  EXPECT_STREQ(port.attribute("deprecated").value(), "1");
  EXPECT_STREQ(port.child("getopt").attribute("mixed").value(), "-H");
  const auto domain = parameter(doc_, "domain");
  EXPECT_STREQ(domain.attribute("deprecated").value(), "1");
  EXPECT_STREQ(domain.attribute("required").value(), "0");
  EXPECT_STREQ(domain.child("getopt").attribute("mixed").value(), "");
  // fence_xvm puts the stdin-only "domain" last.
  EXPECT_STREQ(doc_.child("resource-agent").child("parameters").last_child().attribute("name").value(),
               "domain");
  EXPECT_STREQ(parameter(doc_, "key_file").child("content").attribute("default").value(),
               "/etc/cluster/fence_vguard.key");
  EXPECT_STREQ(parameter(doc_, "ipport").child("content").attribute("default").value(), "1231");
  EXPECT_STREQ(parameter(doc_, "action").child("content").attribute("default").value(), "reboot");
  // No advertised default that the code does not apply (fence_virt's vsock "2").
  EXPECT_FALSE(parameter(doc_, "vsock").child("content").attribute("default"));
}

TEST_F(AgentMetadata, ProtocolParameter) {
  const auto p = parameter(doc_, "protocol");
  ASSERT_TRUE(p);
  EXPECT_STREQ(p.attribute("required").value(), "0");
  EXPECT_STREQ(p.child("getopt").attribute("mixed").value(), "-m, --protocol=[protocol]");
  EXPECT_STREQ(p.child("content").attribute("default").value(), "vguard");
  const std::string desc = p.child_value("shortdesc");
  EXPECT_NE(desc.find("xvm"), std::string::npos);
  EXPECT_NE(desc.find("virt"), std::string::npos);
  // Every fence_xvm / fence_virt parameter is there, with fence_xvm's getopt letter.
  const std::pair<const char*, const char*> xvm[] = {
      {"debug", "-d"},         {"ip_family", "-i"},     {"multicast_address", "-a"},
      {"ipaddr", "-T"},        {"vsock", "-S"},         {"channel_address", "-A"},
      {"serial_device", "-D"}, {"serial_params", "-P"}, {"ipport", "-p"},
      {"retrans", "-r"},       {"auth", "-C"},          {"hash", "-c"},
      {"key_file", "-k"},      {"plug", "-n"},          {"port", "-H"},
      {"use_uuid", "-u"},      {"action", "-o"},        {"timeout", "-t"},
      {"delay", "-w"},         {"domain", ""}};
  for (const auto& [name, letter] : xvm) {
    const auto q = parameter(doc_, name);
    ASSERT_TRUE(q) << name;
    EXPECT_STREQ(q.child("getopt").attribute("mixed").value(), letter) << name;
  }
}

TEST_F(AgentMetadata, Actions) {
  std::vector<std::string> actions;
  for (auto a : doc_.child("resource-agent").child("actions").children("action")) {
    actions.emplace_back(a.attribute("name").value());
    EXPECT_FALSE(a.attribute("on_target"));
    EXPECT_FALSE(a.attribute("automatic"));
  }
  EXPECT_EQ(actions, (std::vector<std::string>{"null", "on", "off", "reboot", "metadata", "status", "monitor",
                                               "list", "list-status", "validate-all"}));
  // Every advertised action is one the agent accepts.
  for (const auto& a : actions) EXPECT_TRUE(op_from_name(a).has_value()) << a;
}

TEST_F(AgentMetadata, MatchesGoldenFile) {
  if (std::getenv("VG_REGENERATE") != nullptr) {
    std::ofstream(kGolden, std::ios::binary) << xml_;
    GTEST_SKIP() << "regenerated " << kGolden;
  }
  std::ifstream in(kGolden, std::ios::binary);
  ASSERT_TRUE(in) << "missing " << kGolden << " (run with VG_REGENERATE=1)";
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(xml_, ss.str());
}

TEST(AgentMetadataEscape, EscapesMarkupCharacters) {
  EXPECT_EQ(xml_escape("plain"), "plain");
  EXPECT_EQ(xml_escape(""), "");
  EXPECT_EQ(xml_escape("<a & 'b' \"c\">"), "&lt;a &amp; &apos;b&apos; &quot;c&quot;&gt;");
  EXPECT_EQ(xml_escape("&amp;"), "&amp;amp;");
  // Round trip through a parser, in an attribute and in text.
  const std::string nasty = "x<y>&\"'z";
  const std::string doc = "<r a=\"" + xml_escape(nasty) + "\">" + xml_escape(nasty) + "</r>";
  pugi::xml_document d;
  ASSERT_TRUE(d.load_string(doc.c_str()));
  EXPECT_EQ(d.child("r").attribute("a").value(), nasty);
  EXPECT_EQ(d.child("r").child_value(), nasty);
}

}  // namespace
}  // namespace vguard::agent
