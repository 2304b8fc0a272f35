// fence_vguard option parsing (stdin and argv), preflight decisions and the answer -> exit code mapping.
// Parsing tests are tables: input, then a compact summary of the non-default options, then the stderr lines.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent.h"
#include "options.h"

namespace vguard::agent {
namespace {

using namespace std::string_literals;

// Non-default fields only, so that a table row shows what the input changed.
std::string summary(const ParseResult& r) {
  const Options& o = r.options;
  const Options d;
  std::vector<std::string> f;
  if (o.protocol != d.protocol) f.push_back("protocol=" + std::string(protocol_name(o.protocol)));
  if (o.op != d.op) f.push_back("op=" + std::string(op_name(o.op)));
  if (o.target) f.push_back("target=" + *o.target);
  if (o.use_uuid) f.emplace_back("uuid");
  if (o.key_file != d.key_file) f.push_back("key=" + o.key_file);
  if (o.ipaddr != d.ipaddr) f.push_back("ipaddr=" + o.ipaddr);
  if (o.port != d.port) f.push_back("port=" + std::to_string(o.port));
  if (o.vsock_cid) f.push_back("vsock=" + std::to_string(*o.vsock_cid));
  if (o.unix_socket) f.push_back("unix=" + *o.unix_socket);
  if (o.timeout_s != d.timeout_s) f.push_back("timeout=" + std::to_string(o.timeout_s));
  if (o.delay_s != d.delay_s) f.push_back("delay=" + std::to_string(o.delay_s));
  if (o.debug != d.debug) f.push_back("debug=" + std::to_string(o.debug));
  if (o.help) f.emplace_back("help");
  if (o.version) f.emplace_back("version");
  if (o.ip_family != d.ip_family) f.push_back("ip_family=" + o.ip_family);
  if (o.multicast_address) f.push_back("mcast=" + *o.multicast_address);
  if (o.retrans != d.retrans) f.push_back("retrans=" + std::to_string(o.retrans));
  if (o.auth != d.auth) f.push_back("auth=" + o.auth);
  if (o.hash != d.hash) f.push_back("hash=" + o.hash);
  if (o.serial_device) f.push_back("serial_device=" + *o.serial_device);
  if (o.serial_params != d.serial_params) f.push_back("serial_params=" + o.serial_params);
  if (o.channel_address != d.channel_address) f.push_back("channel=" + o.channel_address);
  if (r.errors != 0) f.push_back("errors=" + std::to_string(r.errors));
  std::string s;
  for (const auto& x : f) s += (s.empty() ? "" : " ") + x;
  return s;
}

struct StdinCase {
  const char* name;
  std::string input;
  std::string expect;
  std::vector<std::string> diagnostics;
};

const std::string kLong249(249, 'x');

const std::vector<StdinCase> kStdinCases = {
    {"PacemakerStyle",
     "action=off\nplug=vm1\nnodename=node1\nagent=fence_vguard\nself=x\n",
     "op=off target=vm1",
     {}},
    {"Empty", "", "", {}},
    {"NoTrailingNewline", "plug=vm1", "target=vm1", {}},
    {"CommentsAndBlankLines", "#plug=evil\n\n   \n\t\naction=status\nplug=vm1\n", "op=status target=vm1", {}},
    {"HashOnlyInColumnZero", "  #plug=x\n", "", {"Parse error: Ignoring unknown option '#plug'"}},
    {"LeadingBlanksStripped", "  \t plug=vm1\n", "target=vm1", {}},
    // fence_xvm cuts the line at the first blank, so that "plug=my vm" fences "my": a different domain.
    // fence_vguard refuses the line instead (an error), for every known name.
    {"BlankInValueRefused",
     "plug=my vm\n",
     "errors=1",
     {"Invalid value for 'plug': 'my vm' contains a blank or control character"}},
    {"TabInValueRefused",
     "plug=vm1\tvm2\n",
     "errors=1",
     {"Invalid value for 'plug': 'vm1\\tvm2' contains a blank or control character"}},
    {"CarriageReturnInValueRefused",
     "action=off\rplug=vm1\n",
     "errors=1",
     {"Invalid value for 'action': 'off\\rplug=vm1' contains a blank or control character"}},
    {"NulInValueRefused",
     "plug=vm1\0evil\n"s,
     "errors=1",
     {"Invalid value for 'plug': 'vm1\\0evil' contains a blank or control character"}},
    {"BlankBeforeEqualsRefused",
     "plug =vm1\n",
     "errors=1",
     {"Invalid value for 'plug': 'plug =vm1' contains a blank or control character"}},
    {"BlankInUnknownNameOnlyWarns",
     "pcmk_host_map=a:b; c:d\nplug=vm1\n",
     "target=vm1",
     {"Parse error: Ignoring unknown option 'pcmk_host_map'"}},
    {"CarriageReturnLineEnds", "action=off\r\nplug=vm1\r\n", "op=off target=vm1", {}},
    {"TrailingBlanksStripped", "plug=vm1  \t \r\naction=off \n", "op=off target=vm1", {}},
    {"KeysCaseInsensitive", "ACTION=OFF\nPlUg=vm1\n", "op=off target=vm1", {}},
    {"SplitAtFirstEquals", "plug=a=b\n", "target=a=b", {}},
    {"UnknownKeyWarnsOnly",
     "bogus=1\nplug=vm1\n",
     "target=vm1",
     {"Parse error: Ignoring unknown option 'bogus'"}},
    {"UnknownKeyKeepsSpelling", "BoGuS\n", "", {"Parse error: Ignoring unknown option 'BoGuS'"}},
    {"EmptyKey", "=vm1\n", "", {"Parse error: Ignoring unknown option ''"}},
    {"CommandLineOnlyNamesUnknown",
     "help\nversion\n",
     "",
     {"Parse error: Ignoring unknown option 'help'", "Parse error: Ignoring unknown option 'version'"}},
    {"PlugThenPort",
     "plug=a\nport=b\n",
     "target=a errors=1",
     {"Domain/UUID may not be specified more than once"}},
    {"PlugThenBarePlug",
     "plug=a\nplug\n",
     "target=a errors=1",
     {"Domain/UUID may not be specified more than once"}},
    {"DomainDeprecated", "domain=vm1\n", "target=vm1", {}},
    {"PortDeprecated", "port=vm1\n", "target=vm1", {}},
    {"OptionDeprecated", "option=status\n", "op=status", {}},
    {"BarePlugIgnored", "plug\n", "", {}},
    {"EmptyPlug", "plug=\n", "target= errors=1", {"Invalid domain name"}},
    {"Plug63", "plug=" + std::string(63, 'v') + "\n", "target=" + std::string(63, 'v'), {}},
    {"Plug64",
     "plug=" + std::string(64, 'v') + "\n",
     "target=" + std::string(64, 'v') + " errors=1",
     {"Invalid domain name: '" + std::string(64, 'v') + "' (File name too long)"}},
    {"DebugBare", "debug\n", "debug=1", {}},
    {"DebugTwice", "debug\ndebug\n", "debug=2", {}},
    {"DebugValue", "debug=3\n", "debug=3", {}},
    {"DebugNegative", "debug=-2\n", "debug=1", {}},
    {"DebugAtoi", "debug=yes\n", "", {}},
    {"UseUuidOne", "use_uuid=1\n", "uuid", {}},
    {"UseUuidZero", "use_uuid=0\n", "", {}},
    {"UseUuidBare", "use_uuid\n", "uuid", {}},
    {"VsockBare", "vsock\n", "vsock=2", {}},
    {"VsockValue", "vsock=3\n", "vsock=3", {}},
    {"VsockHex", "vsock=0x10\n", "vsock=16", {}},
    {"VsockTooSmall", "vsock=1\n", "errors=1", {"Invalid CID: '1'"}},
    {"VsockEmpty", "vsock=\n", "errors=1", {"Invalid CID: ''"}},
    {"VsockNegative", "vsock=-5\n", "errors=1", {"Invalid CID: '-5'"}},
    {"PortHexLikeStrtol", "ipport=0x10\n", "port=16", {}},
    {"PortOctalLikeStrtol", "ipport=010\n", "port=8", {}},
    {"PortMax", "ipport=65535\n", "port=65535", {}},
    {"PortTooBig", "ipport=65536\n", "errors=1", {"Invalid port: '65536'"}},
    {"PortZero", "ipport=0\n", "errors=1", {"Invalid port: '0'"}},
    {"PortTrailingGarbage", "ipport=12a\n", "errors=1", {"Invalid port: '12a'"}},
    {"TimeoutValue", "timeout=5\n", "timeout=5", {}},
    {"TimeoutZero", "timeout=0\n", "errors=1", {"Invalid timeout: '0'"}},
    {"TimeoutNegative", "timeout=-1\n", "errors=1", {"Invalid timeout: '-1'"}},
    {"TimeoutEmpty", "timeout=\n", "errors=1", {"Invalid timeout: ''"}},
    {"TimeoutOverflow",
     "timeout=99999999999999999999\n",
     "errors=1",
     {"Invalid timeout: '99999999999999999999'"}},
    {"DelayValue", "delay=7\n", "delay=7", {}},
    {"DelayEmptyIsZero", "delay=\n", "", {}},
    {"DelayNegative", "delay=-1\n", "errors=1", {"Invalid delay: '-1'"}},
    {"KeyFile", "key_file=/k\n", "key=/k", {}},
    {"IpAddr", "ipaddr=10.0.0.1\n", "ipaddr=10.0.0.1", {}},
    {"UnixSocket", "unix_socket=/run/vguard.sock\n", "unix=/run/vguard.sock", {}},
    {"ActionCaseInsensitive", "action=List-Status\n", "op=list-status", {}},
    {"ActionUnknown", "action=destroy\n", "errors=1", {"Unsupported operation: destroy"}},
    {"CompatValuesAccepted",
     "auth=sha1\nhash=SHA512\nip_family=ipv6\nretrans=5\nmulticast_address=ff05::3:1\nserial_device=/dev/"
     "ttyS1\n"
     "serial_params=9600\nchannel_address=10.0.2.1\n",
     "ip_family=ipv6 mcast=ff05::3:1 retrans=5 auth=sha1 hash=SHA512 serial_device=/dev/ttyS1 "
     "serial_params=9600 "
     "channel=10.0.2.1",
     {}},
    {"AuthInvalid", "auth=md5\n", "errors=1", {"Unsupported auth type: md5"}},
    {"HashInvalid", "hash=x\n", "errors=1", {"Unsupported hash: x"}},
    {"FamilyInvalid", "ip_family=ipx\n", "errors=1", {"Unsupported family: 'ipx'"}},
    {"RetransZero", "retrans=0\n", "errors=1", {"Invalid retransmit time: '0'"}},
    {"McastNoFamily",
     "multicast_address=foo\n",
     "mcast=foo errors=1",
     {"Could not determine address family"}},
    {"McastExplicitFamily", "multicast_address=foo\nip_family=ipv4\n", "ip_family=ipv4 mcast=foo", {}},
    // ---- protocol xvm / virt ----
    {"ProtocolXvm",
     "protocol=xvm\nplug=vm1\n",
     "protocol=xvm target=vm1 key=/etc/cluster/fence_xvm.key port=1229",
     {}},
    {"ProtocolCaseInsensitive",
     "PROTOCOL=Virt\n",
     "protocol=virt key=/etc/cluster/fence_xvm.key port=1229",
     {}},
    {"ProtocolVguardExplicit", "protocol=vguard\n", "", {}},
    {"ProtocolUnknown",
     "protocol=fence_xvm\n",
     "errors=1",
     {"Unsupported protocol: 'fence_xvm' (vguard, xvm or virt)"}},
    {"ProtocolAfterKeyAndPortKeepsThem",
     "key_file=/k\nipport=5\nprotocol=xvm\n",
     "protocol=xvm key=/k port=5",
     {}},
    {"ProtocolXvmRefusesUnixSocket",
     "protocol=xvm\nunix_socket=/s\n",
     "protocol=xvm key=/etc/cluster/fence_xvm.key port=1229 unix=/s errors=1",
     {"unix_socket is only available with protocol vguard"}},
    {"XvmEveryStdinName",
     "protocol=xvm\ndebug\nip_family=ipv4\nmulticast_address=239.1.2.3\nipaddr=10.0.0.9\nvsock=7\n"
     "channel_address=10.0.2.2\nserial_device=/dev/ttyS2\nserial_params=9600,7E2\nipport=1300\nretrans=5\n"
     "auth=sha512\nhash=sha1\nkey_file=/k\nplug=vm1\nuse_uuid=1\naction=off\ntimeout=9\ndelay=3\nagent=x\n"
     "self=y\nnodename=z\n",
     "protocol=xvm op=off target=vm1 uuid key=/k ipaddr=10.0.0.9 port=1300 vsock=7 timeout=9 delay=3 debug=1 "
     "ip_family=ipv4 mcast=239.1.2.3 retrans=5 auth=sha512 hash=sha1 serial_device=/dev/ttyS2 "
     "serial_params=9600,7E2 channel=10.0.2.2",
     {}},
    {"XvmDeprecatedNames",
     "protocol=xvm\noption=status\ndomain=vm1\n",
     "protocol=xvm op=status target=vm1 key=/etc/cluster/fence_xvm.key port=1229",
     {}},
    {"XvmMulticastNotMulticast",
     "protocol=xvm\nmulticast_address=10.0.0.1\n",
     "protocol=xvm key=/etc/cluster/fence_xvm.key port=1229 mcast=10.0.0.1 errors=1",
     {"Not an IPv4 multicast address (224.0.0.0/4): '10.0.0.1'"}},
    {"XvmMulticastFamilyMismatch",
     "protocol=xvm\nmulticast_address=ff05::3:1\nip_family=ipv4\n",
     "protocol=xvm key=/etc/cluster/fence_xvm.key port=1229 ip_family=ipv4 mcast=ff05::3:1 errors=1",
     {"Invalid IPv4 multicast address: 'ff05::3:1'"}},
    {"XvmMulticastV6Auto",
     "protocol=xvm\nmulticast_address=ff05::3:1\n",
     "protocol=xvm key=/etc/cluster/fence_xvm.key port=1229 mcast=ff05::3:1",
     {}},
    {"XvmMulticastOnlyCheckedWhenUsed",
     "protocol=xvm\nmulticast_address=10.0.0.1\nipaddr=10.0.0.2\n",
     "protocol=xvm key=/etc/cluster/fence_xvm.key ipaddr=10.0.0.2 port=1229 mcast=10.0.0.1",
     {}},
    {"VirtSerialParamsChecked",
     "protocol=virt\nserial_device=/dev/ttyS1\nserial_params=115200,9N1\n",
     "protocol=virt key=/etc/cluster/fence_xvm.key port=1229 serial_device=/dev/ttyS1 "
     "serial_params=115200,9N1 "
     "errors=1",
     {"Invalid serial parameters: '115200,9N1'"}},
    {"VguardIgnoresSerialParams",
     "serial_device=/dev/ttyS1\nserial_params=115200,9N1\n",
     "serial_device=/dev/ttyS1 serial_params=115200,9N1",
     {}},
    {"Line255IsWhole", "agent=" + kLong249 + "\nplug=vm1\n", "target=vm1", {}},
    // fence_xvm would parse the tail as a line of its own and fence "evil"; fence_vguard drops it.
    {"OverlongTailDropped",
     "agent=" + kLong249 + "plug=evil\n",
     "",
     {"Parse error: Ignoring the part of a line after character 255"}},
    {"OverlongValueCut",
     "plug=" + std::string(300, 'v') + "\n",
     "target=" + std::string(250, 'v') + " errors=1",
     {"Parse error: Ignoring the part of a line after character 255",
      "Invalid domain name: '" + std::string(250, 'v') + "' (File name too long)"}},
    {"ErrorsAndWarningsInOrder",
     "bogus\ntimeout=x\nother\n",
     "errors=1",
     {"Parse error: Ignoring unknown option 'bogus'", "Invalid timeout: 'x'",
      "Parse error: Ignoring unknown option 'other'"}},
};

void PrintTo(const StdinCase& c, std::ostream* os) { *os << c.name; }

class StdinTable : public ::testing::TestWithParam<StdinCase> {};

TEST_P(StdinTable, Parses) {
  const auto& c = GetParam();
  const ParseResult r = parse_stdin(c.input);
  EXPECT_TRUE(r.from_stdin);
  EXPECT_EQ(summary(r), c.expect);
  EXPECT_EQ(r.diagnostics, c.diagnostics);
}

INSTANTIATE_TEST_SUITE_P(AgentOptions, StdinTable, ::testing::ValuesIn(kStdinCases),
                         [](const auto& p) { return std::string(p.param.name); });

struct ArgvCase {
  const char* name;
  std::vector<std::string> args;
  std::string expect;
  std::vector<std::string> diagnostics;
};

const std::vector<ArgvCase> kArgvCases = {
    {"None", {}, "", {}},
    {"Separate", {"-o", "off", "-n", "vm1"}, "op=off target=vm1", {}},
    {"Attached", {"-ooff", "-nvm1"}, "op=off target=vm1", {}},
    {"Bundled", {"-dd", "-u", "-n", "x"}, "target=x uuid debug=2", {}},
    {"BundledWithArgument", {"-dunvm1"}, "target=vm1 uuid debug=1", {}},
    {"BundledArgumentNext", {"-dn", "vm1"}, "target=vm1 debug=1", {}},
    {"ValueLooksLikeOption", {"-n", "-o"}, "target=-o", {}},
    {"HelpLetters", {"-h"}, "help", {}},
    {"HelpQuestion", {"-?"}, "help", {}},
    {"Version", {"-V"}, "version", {}},
    {"PortLetterIsDeprecatedTarget", {"-H", "vm1"}, "target=vm1", {}},
    {"PlugAndPort",
     {"-n", "a", "-H", "b"},
     "target=a errors=1",
     {"Domain/UUID may not be specified more than once"}},
    {"VsockBare", {"-S", "-n", "x"}, "target=x vsock=2", {}},
    {"VsockAttached", {"-S3"}, "vsock=3", {}},
    {"VsockBundledBare", {"-dS"}, "vsock=2 debug=1", {}},
    {"VsockSeparateIsOperand", {"-S", "3"}, "vsock=2 errors=1", {"Unexpected argument '3'"}},
    {"VsockInvalid", {"-S1"}, "errors=1", {"Invalid CID: '1'"}},
    {"MissingArgument",
     {"-o", "status", "-n"},
     "op=status errors=1",
     {"fence_vguard: option requires an argument -- 'n'"}},
    {"UnknownOption", {"-Z", "-n", "x"}, "target=x errors=1", {"fence_vguard: invalid option -- 'Z'"}},
    {"MetaLetterNotAccepted",
     {"-M", "x"},
     "errors=2",
     {"fence_vguard: invalid option -- 'M'", "Unexpected argument 'x'"}},
    {"Operand", {"-o", "off", "vm1"}, "op=off errors=1", {"Unexpected argument 'vm1'"}},
    {"Dash", {"-"}, "errors=1", {"Unexpected argument '-'"}},
    {"DoubleDashEndsOptions", {"-d", "--", "-n"}, "debug=1 errors=1", {"Unexpected argument '-n'"}},
    {"TimeoutInvalid", {"-t", "abc"}, "errors=1", {"Invalid timeout: 'abc'"}},
    {"DelayZero", {"-w", "0"}, "", {}},
    {"UnixSocket", {"-U", "/s", "-k", "/k"}, "key=/k unix=/s", {}},
    {"ProtocolLetter", {"-m", "xvm"}, "protocol=xvm key=/etc/cluster/fence_xvm.key port=1229", {}},
    {"ProtocolAttached", {"-mvirt"}, "protocol=virt key=/etc/cluster/fence_xvm.key port=1229", {}},
    {"ProtocolLong", {"--protocol", "xvm"}, "protocol=xvm key=/etc/cluster/fence_xvm.key port=1229", {}},
    {"ProtocolLongEquals", {"--protocol=xvm", "-k", "/k"}, "protocol=xvm key=/k port=1229", {}},
    {"ProtocolLongMissing",
     {"--protocol"},
     "errors=1",
     {"fence_vguard: option '--protocol' requires an argument"}},
    {"LongUnknown", {"--plug=vm1"}, "errors=1", {"fence_vguard: unrecognized option '--plug'"}},
    {"ProtocolInvalid", {"-m", "udp"}, "errors=1", {"Unsupported protocol: 'udp' (vguard, xvm or virt)"}},
    {"XvmTcpMode",
     {"-m", "xvm", "-T", "192.0.2.1", "-o", "status", "-n", "vm1"},
     "protocol=xvm op=status target=vm1 key=/etc/cluster/fence_xvm.key ipaddr=192.0.2.1 port=1229",
     {}},
    {"XvmEveryLetter",
     {"-m", "xvm",    "-d", "-i",        "ipv6", "-a",   "ff02::1:2", "-T", "::1", "-S5",  "-A", "10.0.2.5",
      "-D", "/dev/x", "-P", "57600,8O2", "-p",   "1300", "-r",        "3",  "-C",  "sha1", "-c", "sha512",
      "-k", "/k",     "-n", "vm1",       "-u",   "-o",   "reboot",    "-t", "7",   "-w",   "1"},
     "protocol=xvm target=vm1 uuid key=/k ipaddr=::1 port=1300 vsock=5 timeout=7 delay=1 debug=1 "
     "ip_family=ipv6 "
     "mcast=ff02::1:2 retrans=3 auth=sha1 hash=sha512 serial_device=/dev/x serial_params=57600,8O2 "
     "channel=10.0.2.5",
     {}},
    {"XvmPortLetter",
     {"-m", "xvm", "-H", "vm1"},
     "protocol=xvm target=vm1 key=/etc/cluster/fence_xvm.key port=1229",
     {}},
    {"AllOptions",
     {"-i", "ipv4",   "-a", "225.0.0.1", "-T", "10.0.0.1", "-p", "1300", "-r", "10",
      "-C", "sha512", "-c", "sha1",      "-k", "/k",       "-n", "vm",   "-o", "status",
      "-t", "5",      "-w", "2",         "-D", "/dev/x",   "-P", "9600", "-A", "1.2.3.4"},
     "op=status target=vm key=/k ipaddr=10.0.0.1 port=1300 timeout=5 delay=2 ip_family=ipv4 mcast=225.0.0.1 "
     "retrans=10 auth=sha512 hash=sha1 serial_device=/dev/x serial_params=9600 channel=1.2.3.4",
     {}},
    {"CompatInvalid",
     {"-C", "md5", "-c", "sha3", "-i", "ip7", "-r", "0"},
     "errors=4",
     {"Unsupported auth type: md5", "Unsupported hash: sha3", "Unsupported family: 'ip7'",
      "Invalid retransmit time: '0'"}},
};

void PrintTo(const ArgvCase& c, std::ostream* os) { *os << c.name; }

class ArgvTable : public ::testing::TestWithParam<ArgvCase> {};

TEST_P(ArgvTable, Parses) {
  const auto& c = GetParam();
  const ParseResult r = parse_argv(c.args);
  EXPECT_FALSE(r.from_stdin);
  EXPECT_EQ(summary(r), c.expect);
  EXPECT_EQ(r.diagnostics, c.diagnostics);
}

INSTANTIATE_TEST_SUITE_P(AgentOptions, ArgvTable, ::testing::ValuesIn(kArgvCases),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(AgentOptions, InitialProtocolFromTheProgramName) {
  EXPECT_EQ(protocol_for_program("fence_xvm"), Protocol::xvm);
  EXPECT_EQ(protocol_for_program("/usr/sbin/fence_xvm"), Protocol::xvm);
  EXPECT_EQ(protocol_for_program("./fence_virt"), Protocol::virt);
  EXPECT_EQ(protocol_for_program("fence_vguard"), Protocol::vguard);
  EXPECT_EQ(protocol_for_program("/usr/sbin/fence_xvm.sh"), Protocol::vguard);
  EXPECT_EQ(protocol_for_program("fence_xvm/x"), Protocol::vguard);
  EXPECT_EQ(protocol_for_program(""), Protocol::vguard);

  // As fence_xvm: xvm defaults; protocol= on stdin or -m still wins.
  ParseResult r = parse_stdin("plug=vm1\n", Protocol::xvm);
  EXPECT_EQ(r.options.protocol, Protocol::xvm);
  EXPECT_EQ(r.options.key_file, "/etc/cluster/fence_xvm.key");
  EXPECT_EQ(r.options.port, 1229);
  EXPECT_EQ(r.options.transport(), Transport::multicast);
  r = parse_stdin("protocol=vguard\nplug=vm1\n", Protocol::xvm);
  EXPECT_EQ(r.options.protocol, Protocol::vguard);
  EXPECT_EQ(r.options.key_file, "/etc/cluster/fence_vguard.key");
  EXPECT_EQ(r.options.port, 1231);
  const std::vector<std::string> args{"-m", "vguard"};
  EXPECT_EQ(parse_argv(args, Protocol::virt).options.protocol, Protocol::vguard);
  EXPECT_EQ(parse_argv(std::vector<std::string>{}, Protocol::virt).options.transport(), Transport::vmchannel);
}

TEST(AgentOptions, ProtocolNamesRoundTrip) {
  for (Protocol p : {Protocol::vguard, Protocol::xvm, Protocol::virt})
    EXPECT_EQ(protocol_from_name(protocol_name(p)), p);
  EXPECT_EQ(protocol_from_name("XVM"), Protocol::xvm);
  EXPECT_EQ(protocol_from_name(""), std::nullopt);
  EXPECT_EQ(protocol_from_name("fence_xvm"), std::nullopt);
}

TEST(AgentOptions, TransportsOfTheXvmProtocols) {
  Options o;
  o.protocol = Protocol::xvm;
  EXPECT_EQ(o.transport(), Transport::multicast);
  o.serial_device = "/dev/ttyS1";  // not fence_xvm's
  EXPECT_EQ(o.transport(), Transport::multicast);
  o.ipaddr_set = true;
  EXPECT_EQ(o.transport(), Transport::tcp);
  o.vsock_cid = 2;  // fence_virt: a CID wins over -T
  EXPECT_EQ(o.transport(), Transport::vsock);
  o.unix_socket = "/s";  // refused by the parser; never chosen
  EXPECT_EQ(o.transport(), Transport::vsock);

  Options v;
  v.protocol = Protocol::virt;
  EXPECT_EQ(v.transport(), Transport::vmchannel);
  v.serial_device = "/dev/ttyS1";
  EXPECT_EQ(v.transport(), Transport::serial);
  v.ipaddr_set = true;
  EXPECT_EQ(v.transport(), Transport::tcp);

  // An ipaddr only selects TCP mode with the xvm protocols; vguard always uses TCP by default.
  Options g;
  EXPECT_EQ(g.transport(), Transport::tcp);
  g.serial_device = "/dev/ttyS1";
  EXPECT_EQ(g.transport(), Transport::tcp);

  for (Transport t : {Transport::tcp, Transport::vsock, Transport::unix_socket, Transport::multicast,
                      Transport::vmchannel, Transport::serial})
    EXPECT_NE(transport_name(t), "?");
}

TEST(AgentOptions, MulticastGroups) {
  Options o;
  std::string why;
  auto g = multicast_group(o, &why);
  ASSERT_TRUE(g);
  EXPECT_FALSE(g->ipv6);
  EXPECT_EQ(g->address, "225.0.0.12");
  o.ip_family = "ipv6";
  g = multicast_group(o);
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->ipv6);
  EXPECT_EQ(g->address, "ff05::3:1");
  o.ip_family = "auto";
  o.multicast_address = "239.255.0.1";
  g = multicast_group(o);
  ASSERT_TRUE(g);
  EXPECT_FALSE(g->ipv6);
  o.multicast_address = "ff02::1:2";
  g = multicast_group(o);
  ASSERT_TRUE(g);
  EXPECT_TRUE(g->ipv6);
  // fence_xvm's text guess would call this IPv4 (it has a '.'); it is an IPv6 address, and not multicast.
  o.multicast_address = "::ffff:225.0.0.12";
  EXPECT_FALSE(multicast_group(o, &why));
  EXPECT_EQ(why, "Not an IPv6 multicast address (ff00::/8): '::ffff:225.0.0.12'");
  o.multicast_address = "225.0.0";
  EXPECT_FALSE(multicast_group(o, &why));
  EXPECT_EQ(why, "Invalid multicast address: '225.0.0'");
  o.multicast_address = "225.0.0.12";
  o.ip_family = "ipv6";
  EXPECT_FALSE(multicast_group(o, &why));
  EXPECT_EQ(why, "Invalid IPv6 multicast address: '225.0.0.12'");
}

TEST(AgentOptions, SerialParams) {
  EXPECT_EQ(parse_serial_params(""), (SerialParams{9600, 8, 'N', 1}));
  EXPECT_EQ(parse_serial_params("115200,8N1"), (SerialParams{115200, 8, 'N', 1}));
  EXPECT_EQ(parse_serial_params("2400,7e2"), (SerialParams{2400, 7, 'E', 2}));
  EXPECT_EQ(parse_serial_params("57600,5O1"), (SerialParams{57600, 5, 'O', 1}));
  EXPECT_EQ(parse_serial_params("19200"), (SerialParams{19200, 8, 'N', 1}));
  std::string why;
  for (const char* bad : {"115201", "115200,", "115200,8N", "115200,4N1", "115200,9N1", "115200,8X1",
                          "115200,8N3", "9600,8N1x", ",8N1", "fast"}) {
    EXPECT_FALSE(parse_serial_params(bad, &why)) << bad;
    EXPECT_EQ(why, std::string("Invalid serial parameters: '") + bad + "'");
  }
}

TEST(AgentOptions, DefaultsMatchTheDocumentation) {
  const Options o;
  EXPECT_EQ(o.protocol, Protocol::vguard);
  EXPECT_EQ(o.op, Op::reboot);
  EXPECT_EQ(o.key_file, "/etc/cluster/fence_vguard.key");
  EXPECT_EQ(o.ipaddr, "127.0.0.1");
  EXPECT_EQ(o.port, 1231);
  EXPECT_EQ(o.timeout_s, 30);
  EXPECT_EQ(o.delay_s, 0);
  EXPECT_EQ(o.transport(), Transport::tcp);
  EXPECT_FALSE(o.target);
}

TEST(AgentOptions, TableMatchesGetoptString) {
  // Every letter in the table appears in kGetoptString with the right argument marker, and vice versa.
  std::string built;
  for (const auto& s : option_table()) {
    if (s.letter == '\0') continue;
    const auto pos = kGetoptString.find(s.letter);
    ASSERT_NE(pos, std::string_view::npos) << s.letter;
    const std::string_view after = kGetoptString.substr(pos + 1);
    switch (s.arg) {
      case ArgKind::none:
        EXPECT_FALSE(after.starts_with(":")) << s.letter;
        break;
      case ArgKind::required:
        EXPECT_TRUE(after.starts_with(":") && !after.starts_with("::")) << s.letter;
        break;
      case ArgKind::optional_attached:
        EXPECT_TRUE(after.starts_with("::")) << s.letter;
        break;
    }
    built += s.letter;
  }
  for (const char c : kGetoptString)
    if (c != ':') {
      EXPECT_NE(built.find(c), std::string::npos) << c;
    }
}

TEST(AgentOptions, NamesAndLettersAreUnique) {
  const auto t = option_table();
  for (std::size_t i = 0; i < t.size(); ++i)
    for (std::size_t j = i + 1; j < t.size(); ++j) {
      if (t[i].letter != '\0') {
        EXPECT_NE(t[i].letter, t[j].letter);
      }
      if (!t[i].stdin_name.empty()) {
        EXPECT_NE(t[i].stdin_name, t[j].stdin_name);
      }
    }
}

TEST(AgentOptions, LookupIsCaseInsensitiveForNamesOnly) {
  ASSERT_NE(find_option("KEY_FILE"), nullptr);
  EXPECT_EQ(find_option("KEY_FILE")->id, OptionId::key_file);
  EXPECT_EQ(find_option('k')->id, OptionId::key_file);
  EXPECT_EQ(find_option('K'), nullptr);
  EXPECT_EQ(find_option('\0'), nullptr);
  EXPECT_EQ(find_option("key-file"), nullptr);
}

TEST(AgentOptions, OpNamesRoundTrip) {
  for (Op op : {Op::null, Op::on, Op::off, Op::reboot, Op::status, Op::monitor, Op::list, Op::list_status,
                Op::metadata, Op::validate_all}) {
    EXPECT_EQ(op_from_name(op_name(op)), op);
  }
  EXPECT_EQ(op_from_name("list_status"), std::nullopt);
  EXPECT_EQ(op_from_name("manpage"), std::nullopt);
  EXPECT_EQ(op_from_name(""), std::nullopt);
}

TEST(AgentOptions, TransportPrecedence) {
  Options o;
  o.vsock_cid = 3;
  EXPECT_EQ(o.transport(), Transport::vsock);
  o.unix_socket = "/s";
  EXPECT_EQ(o.transport(), Transport::unix_socket);
  EXPECT_EQ(endpoint_text(o), "unix:/s");
  o.unix_socket.reset();
  EXPECT_EQ(endpoint_text(o), "vsock:3:1231");
  o.vsock_cid.reset();
  EXPECT_EQ(endpoint_text(o), "tcp:127.0.0.1:1231");
  o.ipaddr = "::1";
  EXPECT_EQ(endpoint_text(o), "tcp:[::1]:1231");
}

TEST(AgentOptions, UsageListsEveryVisibleOption) {
  const std::string argv_usage = usage_text(false);
  const std::string stdin_usage = usage_text(true);
  EXPECT_TRUE(argv_usage.starts_with("usage: fence_vguard [args]\n"));
  EXPECT_FALSE(stdin_usage.starts_with("usage:"));
  for (const auto& s : option_table()) {
    if (s.deprecated || s.id == OptionId::ignored) {
      if (!s.stdin_name.empty()) {
        EXPECT_EQ(stdin_usage.find("\n  " + std::string(s.stdin_name) + " "), std::string::npos)
            << s.stdin_name;
      }
      continue;
    }
    if (s.letter != '\0') {
      EXPECT_NE(argv_usage.find("  -" + std::string(1, s.letter)), std::string::npos);
    }
    if (!s.stdin_name.empty()) {
      EXPECT_NE(stdin_usage.find("  " + std::string(s.stdin_name) + " "), std::string::npos) << s.stdin_name;
    }
  }
  // fence_xvm's layout: two blanks, the argument padded to 20, two blanks, text wrapped at 55 columns.
  for (const std::string* text : {&argv_usage, &stdin_usage}) {
    std::size_t pos = 0;
    while (pos < text->size()) {
      const auto nl = text->find('\n', pos);
      EXPECT_LE(nl - pos, 2 + 20 + 2 + 55u) << text->substr(pos, nl - pos);
      pos = nl + 1;
    }
  }
  EXPECT_NE(argv_usage.find("  -k <file>             Shared key file"), std::string::npos);
  EXPECT_NE(argv_usage.find("  -S[<cid>]  "), std::string::npos);
  EXPECT_NE(argv_usage.find("  -m <protocol>  "), std::string::npos);
  EXPECT_NE(argv_usage.find("  --protocol <protocol>"), std::string::npos);
}

TEST(AgentOptions, HelpAndVersionText) {
  const std::string h = help_text();
  EXPECT_TRUE(h.starts_with(usage_text(false)));
  EXPECT_TRUE(h.ends_with(usage_text(true)));
  EXPECT_NE(h.find("With no command line argument, arguments are read from standard input."),
            std::string::npos);
  EXPECT_EQ(version_text(), "fence_vguard 0.1.0\n");
}

TEST(AgentOptions, DescribeNotesCompatOptions) {
  const ParseResult r = parse_stdin("auth=sha1\nplug=vm1\nkey_file=/k\n");
  const std::string d = describe_options(r.options);
  EXPECT_NE(d.find("target = vm1"), std::string::npos);
  EXPECT_NE(d.find("key_file = /k"), std::string::npos);
  EXPECT_NE(d.find("protocol = vguard"), std::string::npos);
  EXPECT_NE(d.find("note: auth is a fence_xvm option; it has no effect with protocol vguard"),
            std::string::npos);

  const ParseResult x = parse_stdin("protocol=xvm\nauth=sha1\nplug=vm1\nretrans=5\n");
  const std::string dx = describe_options(x.options);
  EXPECT_NE(dx.find("protocol = xvm"), std::string::npos);
  EXPECT_NE(dx.find("endpoint = multicast:225.0.0.12:1229 (retrans 5 tenths of a second)"),
            std::string::npos);
  EXPECT_NE(dx.find("auth = sha1"), std::string::npos);
  EXPECT_NE(dx.find("key_file = /etc/cluster/fence_xvm.key"), std::string::npos);
  EXPECT_EQ(dx.find("note:"), std::string::npos);
  EXPECT_NE(
      describe_options(parse_stdin("protocol=virt\n").options).find("endpoint = vmchannel:10.0.2.179:1229"),
      std::string::npos);
  EXPECT_NE(describe_options(parse_stdin("protocol=virt\nserial_device=/dev/ttyS1\n").options)
                .find("endpoint = serial:/dev/ttyS1 (115200,8N1)"),
            std::string::npos);
}

// ---- preflight: the decisions before any I/O ----

struct PreflightCase {
  const char* name;
  std::string stdin_text;  // used when args is empty
  std::vector<std::string> args;
  bool run;  // true: preflight says "go on"
  int exit_code;
  std::string out_prefix;  // expected start of stdout
  std::string err;
};

const std::string kArgvUsage = usage_text(false);
const std::string kStdinUsage = usage_text(true);

const std::vector<PreflightCase> kPreflightCases = {
    {"StatusRuns", "", {"-o", "status", "-n", "vm1"}, true, 0, "", ""},
    {"RebootIsDefault", "plug=vm1\n", {}, true, 0, "", ""},
    {"NoDomainArgv", "", {"-o", "off"}, false, 1, kArgvUsage, "No domain specified!\n"},
    {"NoDomainStdin", "action=off\n", {}, false, 1, kStdinUsage, "No domain specified!\n"},
    {"NoDomainStatus", "", {"-o", "status"}, false, 1, kArgvUsage, "No domain specified!\n"},
    {"NoDomainNull", "", {"-o", "null"}, false, 1, kArgvUsage, "No domain specified!\n"},
    {"NoDomainValidateNoUsage", "", {"-o", "validate-all"}, false, 1, "", "No domain specified!\n"},
    {"MonitorNeedsNoDomain", "", {"-o", "monitor"}, true, 0, "", ""},
    {"ListNeedsNoDomain", "", {"-o", "list"}, true, 0, "", ""},
    {"ListStatusNeedsNoDomain", "action=list-status\n", {}, true, 0, "", ""},
    {"ValidateRuns", "", {"-o", "validate-all", "-n", "vm1"}, true, 0, "", ""},
    {"ParseErrorUsage", "", {"-o", "status", "-n", "vm1", "-t", "0"}, false, 1, kArgvUsage, ""},
    {"ParseErrorValidateNoUsage", "action=validate-all\nplug=vm1\ntimeout=0\n", {}, false, 1, "", ""},
    {"HelpWinsOverErrors", "", {"-h", "-t", "0"}, false, 0, kArgvUsage, ""},
    {"VersionWinsOverErrors", "", {"-V", "-t", "0"}, false, 0, "fence_vguard 0.1.0\n", ""},
    {"HelpBeforeVersion", "", {"-V", "-?"}, false, 0, kArgvUsage, ""},
    {"Metadata", "", {"-o", "metadata"}, false, 0, "<?xml version=\"1.0\" ?>\n", ""},
    {"MetadataStdin", "action=metadata\n", {}, false, 0, "<?xml version=\"1.0\" ?>\n", ""},
    // fence_xvm checks errors before printing metadata.
    {"MetadataWithParseError", "", {"-o", "metadata", "-t", "0"}, false, 1, kArgvUsage, ""},
    {"NullIsLocalFailure",
     "",
     {"-o", "null", "-n", "vm1"},
     false,
     1,
     "",
     "NULL operation: nothing is sent to vguardd\nOperation failed\n"},
    {"UnknownStdinKeyStillRuns", "bogus=1\naction=status\nplug=vm1\n", {}, true, 0, "", ""},
    {"XvmNullIsLocalFailure",
     "",
     {"-m", "xvm", "-o", "null", "-n", "vm1"},
     false,
     1,
     "",
     "NULL operation: nothing is sent to fence_virtd\nOperation failed\n"},
    {"XvmNoDomain", "protocol=xvm\naction=off\n", {}, false, 1, kStdinUsage, "No domain specified!\n"},
    {"XvmListRuns", "", {"-m", "xvm", "-o", "list"}, true, 0, "", ""},
    {"BlankInPlugIsAParseError",
     "action=off\nplug=my vm\n",
     {},
     false,
     1,
     kStdinUsage,
     "No domain specified!\n"},
};

void PrintTo(const PreflightCase& c, std::ostream* os) { *os << c.name; }

class PreflightTable : public ::testing::TestWithParam<PreflightCase> {};

TEST_P(PreflightTable, Decides) {
  const auto& c = GetParam();
  const ParseResult r = c.args.empty() ? parse_stdin(c.stdin_text) : parse_argv(c.args);
  const auto o = preflight(r);
  if (c.run) {
    EXPECT_FALSE(o.has_value()) << o->err;
    return;
  }
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->exit_code, c.exit_code);
  EXPECT_TRUE(o->out.starts_with(c.out_prefix)) << o->out;
  if (c.out_prefix.empty()) {
    EXPECT_EQ(o->out, "");
  }
  EXPECT_EQ(o->err, c.err);
}

INSTANTIATE_TEST_SUITE_P(AgentOptions, PreflightTable, ::testing::ValuesIn(kPreflightCases),
                         [](const auto& p) { return std::string(p.param.name); });

// ---- request construction ----

TEST(AgentRequest, ActionsTargetsFlagsAndDelay) {
  EXPECT_EQ(to_action(Op::on), proto::Action::on);
  EXPECT_EQ(to_action(Op::off), proto::Action::off);
  EXPECT_EQ(to_action(Op::reboot), proto::Action::reboot);
  EXPECT_EQ(to_action(Op::status), proto::Action::status);
  EXPECT_EQ(to_action(Op::monitor), proto::Action::monitor);
  EXPECT_EQ(to_action(Op::list), proto::Action::list);
  EXPECT_EQ(to_action(Op::list_status), proto::Action::list_status);
  EXPECT_EQ(to_action(Op::null), std::nullopt);
  EXPECT_EQ(to_action(Op::metadata), std::nullopt);
  EXPECT_EQ(to_action(Op::validate_all), std::nullopt);

  for (Op op : {Op::on, Op::off, Op::reboot}) EXPECT_TRUE(needs_delay(op)) << op_name(op);
  for (Op op : {Op::null, Op::status, Op::monitor, Op::list, Op::list_status, Op::metadata, Op::validate_all})
    EXPECT_FALSE(needs_delay(op)) << op_name(op);

  Options o;
  o.target = "vm1";
  o.use_uuid = true;
  o.op = Op::off;
  EXPECT_EQ(request_target(o), "vm1");
  EXPECT_EQ(request_flags(o), proto::kFlagTargetIsUuid);
  o.op = Op::list;
  EXPECT_EQ(request_target(o), "");
  EXPECT_EQ(request_flags(o), 0);
  o.op = Op::status;
  o.use_uuid = false;
  EXPECT_EQ(request_flags(o), 0);
}

TEST(AgentRequest, KeyFailureNamesTheFile) {
  Options o;
  o.key_file = "/x/y.key";
  const Outcome out =
      key_failure(o, make_error(errc::bad_key, "cannot read key file /x/y.key: No such file or directory"));
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_EQ(out.out, "");
  EXPECT_EQ(out.err,
            "Invalid key file: '/x/y.key' (cannot read key file /x/y.key: No such file or directory)\n");
}

// ---- answers -> exit codes ----

proto::DomainEntry entry(const char* name, const char* uuid, proto::PowerState s) {
  return proto::DomainEntry{*Uuid::parse(uuid), name, s};
}

proto::Response response(proto::Status s, std::string message = {}, std::vector<proto::DomainEntry> d = {}) {
  proto::Response r;
  r.status = s;
  r.message = std::move(message);
  r.domains = std::move(d);
  return r;
}

struct AnswerCase {
  const char* name;
  Op op;
  proto::Status status;
  std::string message;
  Outcome expect;
};

const std::vector<AnswerCase> kAnswerCases = {
    {"StatusOn", Op::status, proto::Status::success, "", {0, "Status: ON\n", ""}},
    {"StatusOff", Op::status, proto::Status::off, "", {2, "Status: OFF\n", ""}},
    {"StatusFailure",
     Op::status,
     proto::Status::failure,
     "no such domain 'vm1'",
     {1, "", "no such domain 'vm1'\nOperation failed\n"}},
    {"StatusDenied",
     Op::status,
     proto::Status::denied,
     "key may not act on vm1",
     {3, "", "key may not act on vm1\nPermission denied\n"}},
    {"OffSuccessPrintsNothing", Op::off, proto::Status::success, "destroyed", {0, "", ""}},
    {"OffAnsweredOffIsFailure",
     Op::off,
     proto::Status::off,
     "",
     {1, "", "vguardd answered 'off' to off\nOperation failed\n"}},
    {"OffFailure",
     Op::off,
     proto::Status::failure,
     "libvirt: destroy failed",
     {1, "", "libvirt: destroy failed\nOperation failed\n"}},
    {"OffFailureWithoutMessage", Op::off, proto::Status::failure, "", {1, "", "Operation failed\n"}},
    {"OffDenied", Op::off, proto::Status::denied, "", {3, "", "Permission denied\n"}},
    {"RebootSuccess", Op::reboot, proto::Status::success, "", {0, "", ""}},
    {"RebootFailure", Op::reboot, proto::Status::failure, "x", {1, "", "x\nOperation failed\n"}},
    {"OnSuccess", Op::on, proto::Status::success, "", {0, "", ""}},
    {"OnDenied", Op::on, proto::Status::denied, "no", {3, "", "no\nPermission denied\n"}},
    {"MonitorSuccess", Op::monitor, proto::Status::success, "", {0, "", ""}},
    {"MonitorOffIsFailure",
     Op::monitor,
     proto::Status::off,
     "",
     {1, "", "vguardd answered 'off' to monitor\nOperation failed\n"}},
    {"MonitorFailure",
     Op::monitor,
     proto::Status::failure,
     "libvirt down",
     {1, "", "libvirt down\nOperation failed\n"}},
    {"ListEmpty", Op::list, proto::Status::success, "", {0, "", ""}},
    {"ListFailure", Op::list, proto::Status::failure, "m", {1, "", "m\nOperation failed\n"}},
};

void PrintTo(const AnswerCase& c, std::ostream* os) { *os << c.name; }

class AnswerTable : public ::testing::TestWithParam<AnswerCase> {};

TEST_P(AnswerTable, Maps) {
  const auto& c = GetParam();
  Options o;
  o.op = c.op;
  o.target = "vm1";
  EXPECT_EQ(interpret(o, response(c.status, c.message)), c.expect);
}

INSTANTIATE_TEST_SUITE_P(AgentAnswers, AnswerTable, ::testing::ValuesIn(kAnswerCases),
                         [](const auto& p) { return std::string(p.param.name); });

TEST(AgentAnswers, ListLinesLikeFenceXvm) {
  const auto running = entry("vm-a", "6f1a2b3c-0000-4000-8000-000000000001", proto::PowerState::running);
  EXPECT_EQ(list_line(running), "vm-a" + std::string(29, ' ') + "6f1a2b3c-0000-4000-8000-000000000001 on\n");
  const auto long_name =
      entry(std::string(40, 'n').c_str(), "6f1a2b3c-0000-4000-8000-000000000002", proto::PowerState::shutoff);
  EXPECT_EQ(list_line(long_name), std::string(40, 'n') + " 6f1a2b3c-0000-4000-8000-000000000002 off\n");

  EXPECT_EQ(list_state(proto::PowerState::running), "on");
  EXPECT_EQ(list_state(proto::PowerState::paused), "on");
  EXPECT_EQ(list_state(proto::PowerState::shutoff), "off");
  EXPECT_EQ(list_state(proto::PowerState::unknown), "unknown");
  EXPECT_EQ(list_state(proto::PowerState::other), "unknown");

  const auto paused = entry("b", "6f1a2b3c-0000-4000-8000-000000000003", proto::PowerState::paused);
  const auto unknown = entry("c", "6f1a2b3c-0000-4000-8000-000000000004", proto::PowerState::unknown);
  const std::string expected = list_line(running) + list_line(paused) + list_line(unknown);
  for (Op op : {Op::list, Op::list_status}) {
    Options o;
    o.op = op;
    const Outcome out = interpret(o, response(proto::Status::success, "", {running, paused, unknown}));
    EXPECT_EQ(out, (Outcome{0, expected, ""})) << op_name(op);
  }
}

TEST(AgentAnswers, ClientErrorsNameTheEndpoint) {
  Options o;
  o.op = Op::off;
  o.target = "vm1";
  o.unix_socket = "/nonexistent/sock";

  Outcome out = interpret(o, make_error(errc::not_running, "cannot connect: No such file or directory"));
  EXPECT_EQ(out,
            (Outcome{1, "",
                     "vguardd at unix:/nonexistent/sock: cannot connect: No such file or directory: daemon "
                     "unreachable\nOperation failed\n"}));

  // Not repeated when the client's message already names it.
  out = interpret(o, make_error(errc::not_running, "cannot connect to /nonexistent/sock: refused"));
  EXPECT_EQ(out.err,
            "vguardd: cannot connect to /nonexistent/sock: refused: daemon unreachable\nOperation failed\n");

  o.unix_socket.reset();
  o.timeout_s = 7;
  out = interpret(o, make_error(errc::timed_out, "waiting for vguardd's answer"));
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_EQ(
      out.err,
      "Timed out after 7 s waiting for vguardd at tcp:127.0.0.1:1231 (waiting for vguardd's answer: timed "
      "out)\nOperation failed\n");

  out = interpret(o, make_error(errc::unknown_key, "vguardd refused the request"));
  EXPECT_EQ(out.exit_code, 1);
  EXPECT_NE(out.err.find("unknown key"), std::string::npos);

  out = interpret(o, make_error(errc::permission_denied, "key may not fence vm1"));
  EXPECT_EQ(out.exit_code, 3);
  EXPECT_TRUE(out.err.ends_with("\nPermission denied\n")) << out.err;
}

// Safety: exit 2 ("off") and exit 0 must come only from a verified answer; exit 2 only for status + off.
TEST(AgentAnswers, ExitTwoOnlyForVerifiedOffStatus) {
  const Op ops[] = {Op::on, Op::off, Op::reboot, Op::status, Op::monitor, Op::list, Op::list_status};
  for (Op op : ops) {
    Options o;
    o.op = op;
    o.target = "vm1";
    for (int e = 0; e <= static_cast<int>(errc::busy); ++e) {
      const Outcome out = interpret(o, make_error(static_cast<errc>(e), "x"));
      EXPECT_NE(out.exit_code, 0) << op_name(op) << " errc " << e;
      EXPECT_NE(out.exit_code, 2) << op_name(op) << " errc " << e;
      EXPECT_EQ(out.out, "") << op_name(op) << " errc " << e;
    }
    for (int s = 0; s <= 3; ++s) {
      const Outcome out = interpret(o, response(static_cast<proto::Status>(s)));
      const bool off_status = op == Op::status && static_cast<proto::Status>(s) == proto::Status::off;
      EXPECT_EQ(out.exit_code == 2, off_status) << op_name(op) << " status " << s;
      EXPECT_LE(out.exit_code, 3);
    }
    const Outcome bogus = interpret(o, response(static_cast<proto::Status>(9)));
    EXPECT_EQ(bogus.exit_code, 1);
    EXPECT_EQ(bogus.err, "Unknown response (9)\nOperation failed\n");
  }
}

}  // namespace
}  // namespace vguard::agent
