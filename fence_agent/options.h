#pragma once
// fence_vguard option handling: a pure re-implementation of fence_xvm's stdin and getopt rules
// (fence-virt-protocol.md §6). No I/O here: main.cpp reads stdin and hands the text in, and the key file is
// checked later (agent.h), so every rule below is reachable from a table-driven test.
//
// Protocols: vguard's native protocol is the default. protocol=xvm / protocol=virt (-m, --protocol, or the
// program invoked as fence_xvm / fence_virt) speak fence_xvm's wire protocol to an unmodified fence_virtd;
// then the fence_xvm/fence_virt options (multicast_address, retrans, hash, auth, serial_device, ...) take
// effect and the defaults become fence_xvm's (key /etc/cluster/fence_xvm.key, port 1229).
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vguard::agent {

inline constexpr std::string_view kProgramName = "fence_vguard";
inline constexpr std::string_view kDefaultKeyFile = "/etc/cluster/fence_vguard.key";
/// fence_xvm's key file and port: the defaults with protocol xvm or virt.
inline constexpr std::string_view kXvmKeyFile = "/etc/cluster/fence_xvm.key";
inline constexpr std::uint16_t kXvmPort = 1229;
inline constexpr std::string_view kXvmGroup4 = "225.0.0.12";
inline constexpr std::string_view kXvmGroup6 = "ff05::3:1";
inline constexpr std::string_view kXvmChannelAddress = "10.0.2.179";
inline constexpr std::string_view kDefaultAddress = "127.0.0.1";
inline constexpr std::uint16_t kDefaultAgentPort = 1231;  ///< = proto::kDefaultPort (checked in agent.cpp)
inline constexpr int kDefaultTimeout = 30;
/// fence_xvm reads stdin with fgets(buf, 256): at most 255 characters of a line are seen.
inline constexpr std::size_t kMaxStdinLine = 255;
/// fence_xvm's MAX_DOMAINNAME_LENGTH: a target must be shorter than this.
inline constexpr std::size_t kMaxTargetLength = 64;
/// The getopt(3) string (fence_xvm's and fence_virt's letters, plus -U and -m). "S::" = optional attached
/// argument. fence_xvm's "M:" is not there: it has no meaning in fence_xvm either, and a typo is an error.
inline constexpr std::string_view kGetoptString = "di:a:T:S::U:m:A:D:P:p:r:C:c:k:n:H:uo:t:w:?hV";

/// Which wire protocol the agent speaks.
/// - vguard: vguardd's native protocol (TCP, vsock or Unix socket; HMAC-SHA256 with nonce and timestamp);
/// - xvm: fence_xvm's protocol to fence_virtd: multicast, or TCP with ipaddr, or vsock with vsock;
/// - virt: the same protocol with fence_virt's default transport: serial device (serial_device) or VM channel
///   (channel_address:ipport, no authentication), or TCP with ipaddr, or vsock with vsock.
enum class Protocol { vguard, xvm, virt };
/// "vguard", "xvm", "virt" (ASCII case-insensitive); nullopt otherwise.
std::optional<Protocol> protocol_from_name(std::string_view name);
std::string_view protocol_name(Protocol p);
/// The protocol implied by the program name, like fence_virt's argv[0] check: the basename "fence_xvm" gives
/// xvm, "fence_virt" gives virt, anything else vguard.
Protocol protocol_for_program(std::string_view argv0);

/// The fence-agent operations (fence_xvm's list, in its spelling).
enum class Op { null, on, off, reboot, status, monitor, list, list_status, metadata, validate_all };

/// Case-insensitive, as fence_xvm's strcasecmp: "OFF" is off. "list-status" is list_status.
std::optional<Op> op_from_name(std::string_view name);
std::string_view op_name(Op op);

/// Every option fence_vguard knows. The order is the order of help and metadata.
enum class OptionId {
  debug,
  ip_family,          // compatibility only
  multicast_address,  // compatibility only
  ipaddr,
  vsock,
  unix_socket,
  protocol,
  channel_address,  // compatibility only
  serial_device,    // compatibility only
  serial_params,    // compatibility only
  ipport,
  retrans,  // compatibility only
  auth,     // compatibility only
  hash,     // compatibility only
  key_file,
  plug,
  port,
  use_uuid,
  action,
  option,  // deprecated alias of action, stdin only
  timeout,
  delay,
  domain,  // deprecated alias of plug, stdin only
  help,
  version,
  ignored,  // agent, nodename, self: accepted and ignored (stdin only)
};

/// How an option takes its argument on the command line.
enum class ArgKind { none, required, optional_attached };

/// One row of the option table (help, metadata and both parsers are driven by it, libvirt-style).
struct OptionSpec {
  OptionId id;
  char letter;                  ///< getopt letter, '\0' when stdin only
  std::string_view stdin_name;  ///< empty for command-line-only options (-h, -?, -V)
  ArgKind arg;
  std::string_view arg_name;       ///< placeholder in help ("-n <domain>")
  std::string_view content_type;   ///< metadata content type
  std::string_view default_value;  ///< metadata default ("" = none)
  std::string_view description;
  bool required = false;    ///< metadata required="1"
  bool deprecated = false;  ///< metadata deprecated="1", left out of help
  std::string_view obsoletes;
  bool in_metadata = true;  ///< agent/nodename/self, option, -h/-?/-V are not parameters
  bool compat_only =
      false;  ///< fence_xvm/fence_virt option: used with protocol xvm/virt, ignored with vguard
  std::string_view long_name;  ///< "--name" also accepted on the command line ("" = none; only --protocol)
};

/// The whole table, in help/metadata order.
std::span<const OptionSpec> option_table();
/// Row by stdin name (ASCII case-insensitive) or by getopt letter; nullptr when unknown.
const OptionSpec* find_option(std::string_view stdin_name);
const OptionSpec* find_option(char letter);

/// Where the request goes.
/// - protocol vguard: unix_socket, then vsock, then tcp (fence_virt also lets a vsock CID win over -T);
/// - protocol xvm/virt: vsock, then tcp when ipaddr was given, then multicast (xvm), or serial when
///   serial_device was given, else vmchannel (virt). unix_socket is an error there.
enum class Transport { tcp, vsock, unix_socket, multicast, vmchannel, serial };
std::string_view transport_name(Transport t);

/// Parsed options. Values of compatibility-only options are kept so they can be shown under -d.
struct Options {
  Protocol protocol = Protocol::vguard;
  Op op = Op::reboot;
  std::optional<std::string> target;  ///< plug / port / domain; set at most once
  bool use_uuid = false;
  std::string key_file{kDefaultKeyFile};
  std::string ipaddr{kDefaultAddress};
  std::uint16_t port = kDefaultAgentPort;
  std::optional<std::uint32_t> vsock_cid;
  std::optional<std::string> unix_socket;
  int timeout_s = kDefaultTimeout;
  int delay_s = 0;
  int debug = 0;
  bool help = false;
  bool version = false;
  /// Given explicitly (else the protocol's default applies: fence_xvm's key file and port for xvm/virt, and
  /// for xvm/virt an ipaddr selects TCP mode).
  bool key_file_set = false;
  bool port_set = false;
  bool ipaddr_set = false;

  // fence_xvm / fence_virt options: used with protocol xvm/virt, no effect on the native protocol.
  std::string ip_family = "auto";
  std::optional<std::string> multicast_address;
  int retrans = 20;
  std::string auth = "sha256";
  std::string hash = "sha256";
  std::optional<std::string> serial_device;
  std::string serial_params = "115200,8N1";
  std::string channel_address = "10.0.2.179";
  /// stdin names of the compatibility options that were given, in order (for debug notes).
  std::vector<std::string> compat_given;

  [[nodiscard]] Transport transport() const;
};

/// The multicast group of protocol xvm: ip_family and multicast_address resolved like fence_xvm (default
/// 225.0.0.12, or ff05::3:1 with ipv6), except that "auto" decides by parsing the address (inet_pton) instead
/// of looking for '.' and ':'. The address must be a multicast address of that family.
struct MulticastGroup {
  bool ipv6 = false;
  std::string address;
};
/// nullopt with the reason in *why when the address is invalid for the family.
std::optional<MulticastGroup> multicast_group(const Options& o, std::string* why = nullptr);

/// fence_virt's serial_params: "<speed>[,<bits><parity><stop>]", for example "115200,8N1". Speeds 2400,
/// 9600, 19200, 38400, 57600, 115200; an empty value means 9600 (fence_virt's rule); bits 5-8; parity N, E or
/// O; stop bits 1 or 2. Checked when the serial transport is used.
struct SerialParams {
  unsigned speed = 9600;
  int bits = 8;
  char parity = 'N';
  int stop = 1;
  friend bool operator==(const SerialParams&, const SerialParams&) = default;
};
std::optional<SerialParams> parse_serial_params(std::string_view text, std::string* why = nullptr);

/// The outcome of parsing stdin or argv.
struct ParseResult {
  Options options;
  bool from_stdin = false;
  /// Lines for stderr, in the order they arose: errors and the non-fatal "Parse error: Ignoring unknown
  /// option" warnings. Without a trailing newline.
  std::vector<std::string> diagnostics;
  /// Number of errors (fence_xvm's F_ERR). Non-zero means: usage (unless validate-all) and exit 1.
  int errors = 0;

  [[nodiscard]] bool ok() const { return errors == 0; }
};

/// Parses fence_xvm-style stdin text (used only when the agent was run without arguments):
/// - a line is read as by fgets(buf, 256): only its first 255 characters count. Unlike fence_xvm, the rest of
///   an overlong line is dropped with a warning instead of being parsed as a line of its own;
/// - lines whose first character is '#' are skipped, then leading blanks and trailing blanks/CRs are
///   stripped, blank lines skipped;
/// - fence_xvm cuts the line at the first space, tab, CR or NUL, so that "plug=my vm" fences "my": a
///   different domain. fence_vguard refuses such a line instead when its name is known (an error: "Invalid
///   value for 'plug': 'my vm' contains a blank or control character"); an unknown name is ignored as usual;
/// - key=value is split at the first '='; keys are ASCII case-insensitive; a key without '=' has no value;
/// - unknown keys give "Parse error: Ignoring unknown option '<key>'" and are skipped (not an error).
/// `initial` is the protocol before any protocol= line (protocol_for_program of argv[0]).
ParseResult parse_stdin(std::string_view text, Protocol initial = Protocol::vguard);

/// Parses command-line arguments (without argv[0]) like GNU getopt with kGetoptString: bundling ("-du"),
/// attached or separate arguments ("-nvm", "-n vm"), "-S" only with an attached CID ("-S3"), "--" ends
/// options; the long form "--protocol xvm" / "--protocol=xvm" of -m. Deviations from fence_xvm, both on the
/// safe side: an unknown option or a missing argument is an error (fence_xvm treats it as -? and exits 0),
/// and a stray operand is an error (fence_xvm silently ignores it).
ParseResult parse_argv(std::span<const std::string> args, Protocol initial = Protocol::vguard);

/// Applies one option value the way both parsers do (exposed for tests). value is nullopt for "key" without
/// '=' on stdin and for options without argument on the command line.
void apply_option(const OptionSpec& spec, std::optional<std::string_view> value, ParseResult& result);

/// "usage: fence_vguard [args]" plus the option table (stdin == false), or the table of stdin names
/// (stdin == true), each followed by an empty line; fence_xvm's layout (20 + 55 columns, wrapped).
std::string usage_text(bool stdin_names);
/// The -h text: usage, the stdin explanation, then the stdin names.
std::string help_text();
/// "fence_vguard 0.1.0\n".
std::string version_text();
/// The parsed options, one "name = value" per line, for -d (stderr).
std::string describe_options(const Options& o);

}  // namespace vguard::agent
