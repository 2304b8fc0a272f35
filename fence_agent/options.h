#pragma once
// fence_vguard option handling: a pure re-implementation of fence_xvm's stdin and getopt rules
// (fence-virt-protocol.md §6). No I/O here: main.cpp reads stdin and hands the text in, and the key file is
// checked later (agent.h), so every rule below is reachable from a table-driven test.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vguard::agent {

inline constexpr std::string_view kProgramName = "fence_vguard";
inline constexpr std::string_view kDefaultKeyFile = "/etc/cluster/fence_vguard.key";
inline constexpr std::string_view kDefaultAddress = "127.0.0.1";
inline constexpr std::uint16_t kDefaultAgentPort = 1231;  ///< = proto::kDefaultPort (checked in agent.cpp)
inline constexpr int kDefaultTimeout = 30;
/// fence_xvm reads stdin with fgets(buf, 256): at most 255 characters of a line are seen.
inline constexpr std::size_t kMaxStdinLine = 255;
/// fence_xvm's MAX_DOMAINNAME_LENGTH: a target must be shorter than this.
inline constexpr std::size_t kMaxTargetLength = 64;
/// The getopt(3) string (fence_xvm's and fence_virt's letters, plus -U). "S::" = optional attached argument.
inline constexpr std::string_view kGetoptString = "di:a:T:S::U:A:D:P:p:r:C:c:k:n:H:uo:t:w:?hV";

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
  bool in_metadata = true;   ///< agent/nodename/self, option, -h/-?/-V are not parameters
  bool compat_only = false;  ///< accepted for fence_xvm/fence_virt configs, validated, then ignored
};

/// The whole table, in help/metadata order.
std::span<const OptionSpec> option_table();
/// Row by stdin name (ASCII case-insensitive) or by getopt letter; nullptr when unknown.
const OptionSpec* find_option(std::string_view stdin_name);
const OptionSpec* find_option(char letter);

/// Where vguardd is reached. Precedence when several are set: unix_socket, then vsock, then TCP (fence_virt
/// also lets a vsock CID win over -T).
enum class Transport { tcp, vsock, unix_socket };

/// Parsed options. Values of compatibility-only options are kept so they can be shown under -d.
struct Options {
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

  // Compatibility only (no effect on the native protocol).
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
/// - lines whose first character is '#' are skipped, then leading blanks are stripped, blank lines skipped;
/// - the line is cut at the first space, tab, CR, LF (or NUL): "plug=my vm" targets "my", as in fence_xvm;
/// - key=value is split at the first '='; keys are ASCII case-insensitive; a key without '=' has no value;
/// - unknown keys give "Parse error: Ignoring unknown option '<key>'" and are skipped (not an error).
ParseResult parse_stdin(std::string_view text);

/// Parses command-line arguments (without argv[0]) like GNU getopt with kGetoptString: bundling ("-du"),
/// attached or separate arguments ("-nvm", "-n vm"), "-S" only with an attached CID ("-S3"), "--" ends
/// options. Deviations from fence_xvm, both on the safe side: an unknown option or a missing argument is an
/// error (fence_xvm treats it as -? and exits 0), and a stray operand is an error (fence_xvm silently ignores
/// it).
ParseResult parse_argv(std::span<const std::string> args);

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
