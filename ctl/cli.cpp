#include "cli.h"

#include <fmt/format.h>

#include <boost/program_options.hpp>
#include <ostream>
#include <sstream>

#include "audit.h"
#include "cluster_fmt.h"
#include "fs_util.h"
#include "install_hook.h"
#include "keygen.h"
#include "log_cmd.h"
#include "status.h"

#ifndef VG_VERSION
#define VG_VERSION "0.1.0"
#endif
// Where CMake installs vguard-hook: PREFIX/libexec/vguard/vguard-hook, and the same relative to the bindir.
#ifndef VG_HOOK_INSTALLED
#define VG_HOOK_INSTALLED "/usr/local/libexec/vguard/vguard-hook"
#endif
#ifndef VG_HOOK_FROM_BINDIR
#define VG_HOOK_FROM_BINDIR "../libexec/vguard/vguard-hook"
#endif

namespace vguard::ctl {
namespace {

namespace po = boost::program_options;

constexpr std::string_view kProg = "vguardctl";

struct UsageError {
  std::string what;
  std::string command;  // for the "Try ..." hint; empty = general
};

std::string help_hint(const std::string& command) {
  return command.empty() ? fmt::format("Try '{} --help'.", kProg)
                         : fmt::format("Try '{} {} --help'.", kProg, command);
}

std::string command_help(const std::string& synopsis, const po::options_description& desc) {
  std::ostringstream s;
  s << "Usage: " << kProg << ' ' << synopsis << "\n\n" << desc;
  return s.str();
}

// Parses a subcommand's options; no positional arguments are accepted.
po::variables_map parse(const std::string& command, const std::vector<std::string>& args,
                        const po::options_description& desc) {
  const po::parsed_options parsed = po::command_line_parser(args).options(desc).run();
  for (const auto& o : parsed.options) {
    if (o.position_key != -1)
      throw UsageError{"unexpected argument '" +
                           (o.original_tokens.empty() ? o.value.front() : o.original_tokens.front()) + "'",
                       command};
  }
  po::variables_map vm;
  po::store(parsed, vm);
  po::notify(vm);
  return vm;
}

int fail(std::ostream& err, const std::string& msg) {
  err << kProg << ": " << msg << '\n';
  return kExitFailure;
}

int cmd_keygen(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("keygen options");
  std::string file;
  long long bytes = 0;
  desc.add_options()("help,h", "show this help")(
      "out,o", po::value(&file)->default_value(std::string(kDefaultKeyFile)),
      "key file to create (mode 0600)")(
      "bytes", po::value(&bytes)->default_value(static_cast<long long>(kDefaultKeyBytes)),
      "number of random bytes (16..4096)")("force", "replace an existing key file");
  const auto vm = parse("keygen", args, desc);
  if (vm.count("help")) {
    out << command_help("keygen [--out FILE] [--bytes N] [--force]", desc);
    return kExitOk;
  }
  if (bytes < 16 || bytes > 4096)
    throw UsageError{fmt::format("--bytes {} is out of range 16..4096", bytes), "keygen"};
  KeygenOptions o;
  o.out = file;
  o.bytes = static_cast<std::size_t>(bytes);
  o.force = vm.count("force") > 0;
  auto r = keygen(o);
  if (!r) return fail(err, r.error().context);
  out << r->snippet;
  return kExitOk;
}

// --socket and --timeout, shared by the commands that ask vguardd.
struct DaemonOptions {
  std::string socket;
  long long timeout_s = 0;
  void add(po::options_description& desc) {
    desc.add_options()("socket", po::value(&socket)->default_value(std::string(kDefaultSocket)),
                       "vguardd's control socket")("timeout", po::value(&timeout_s)->default_value(10),
                                                   "seconds to wait for vguardd (1..3600)");
  }
  void check(const std::string& command) const {
    if (timeout_s < 1 || timeout_s > 3600)
      throw UsageError{"--timeout must be within 1..3600 seconds", command};
  }
  [[nodiscard]] std::chrono::milliseconds timeout() const { return std::chrono::seconds(timeout_s); }
};

int cmd_status(const std::string& name, const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err, const Deps& deps) {
  po::options_description desc(name + " options");
  DaemonOptions d;
  desc.add_options()("help,h", "show this help");
  d.add(desc);
  desc.add_options()("json", "print JSON instead of a table (cluster mode: an object, see vguardctl(8))");
  const auto vm = parse(name, args, desc);
  if (vm.count("help")) {
    out << command_help(name + " [--socket PATH] [--timeout SEC] [--json]", desc);
    return kExitOk;
  }
  d.check(name);
  auto resp = deps.call(d.socket, d.timeout(), proto::Action::list_status, "");
  if (!resp)
    return fail(err, fmt::format("cannot reach vguardd at {}: {}", d.socket, resp.error().message()));
  auto domains = domains_from_response(*resp);
  if (!domains)
    return fail(err,
                fmt::format("vguardd at {} refused list_status: {}", d.socket, domains.error().message()));
  const bool json = vm.count("json") > 0;
  if (resp->flags & proto::kResponseCluster)
    out << (json ? format_cluster_status_json(*resp) : format_cluster_status_table(*resp));
  else
    out << (json ? format_status_json(*domains) : format_status_table(*domains));
  return kExitOk;
}

int cmd_hosts(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, const Deps& deps) {
  po::options_description desc("hosts options");
  DaemonOptions d;
  desc.add_options()("help,h", "show this help");
  d.add(desc);
  desc.add_options()("json", "print a JSON object instead of a table");
  const auto vm = parse("hosts", args, desc);
  if (vm.count("help")) {
    out << command_help("hosts [--socket PATH] [--timeout SEC] [--json]", desc);
    return kExitOk;
  }
  d.check("hosts");
  auto resp = deps.call(d.socket, d.timeout(), proto::Action::hosts, "");
  if (!resp)
    return fail(err, fmt::format("cannot reach vguardd at {}: {}", d.socket, resp.error().message()));
  if (resp->status != proto::Status::success)
    return fail(err, resp->message.empty() ? std::string("vguardd refused the request") : resp->message);
  out << (vm.count("json") ? format_hosts_json(*resp) : format_hosts_table(*resp));
  return kExitOk;
}

int cmd_confirm_fenced(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                       const Deps& deps) {
  const std::string command = "host confirm-fenced";
  po::options_description desc("host confirm-fenced options");
  DaemonOptions d;
  std::vector<std::string> hosts;
  desc.add_options()("help,h", "show this help");
  d.add(desc);
  desc.add_options()("yes", "really confirm it (without it, only print what would be done)");
  po::options_description hidden;
  hidden.add_options()("host", po::value(&hosts));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description pos;
  pos.add("host", -1);
  po::variables_map vm;
  po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
  po::notify(vm);
  if (vm.count("help")) {
    out << command_help(command + " HOST [--socket PATH] [--timeout SEC] [--yes]", desc);
    return kExitOk;
  }
  if (hosts.empty()) throw UsageError{"missing HOST (a host name or corosync node id)", command};
  if (hosts.size() > 1) throw UsageError{"unexpected argument '" + hosts[1] + "'", command};
  const std::string& host = hosts[0];
  if (host.empty()) throw UsageError{"HOST must not be empty", command};
  d.check(command);
  if (!vm.count("yes")) {
    out << fmt::format(
        "would confirm that {0} was powered off (fenced) after it left the cluster.\n"
        "Every member then counts the domains {0} ran as off: status reports them off, off and reboot\n"
        "succeed without acting, and they may be started on other hosts. If {0} is in fact still\n"
        "running, those domains run twice.\n"
        "Check that {0} is powered off (power switch, BMC) first, then re-run with --yes.\n",
        host);
    return fail(err, "not confirmed: add --yes");
  }
  auto resp = deps.call(d.socket, d.timeout(), proto::Action::confirm_fenced, host);
  if (!resp)
    return fail(err, fmt::format("cannot reach vguardd at {}: {}", d.socket, resp.error().message()));
  if (resp->status != proto::Status::success)
    return fail(err, resp->message.empty() ? std::string("vguardd refused the request") : resp->message);
  out << resp->message << '\n';
  return kExitOk;
}

int cmd_log_show(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                 const Deps& deps) {
  po::options_description desc("log show options");
  std::string file;
  std::string domain;
  std::string since;
  desc.add_options()("help,h", "show this help")(
      "file", po::value(&file)->default_value(std::string(kDefaultLogFile)), "forensic log to read")(
      "domain", po::value(&domain), "only records whose domain name or uuid is this")(
      "since", po::value(&since), "only records at or after this time (ISO UTC, or an age: 30s 10m 2h 1d)")(
      "json", "print the raw JSON lines");
  const auto vm = parse("log show", args, desc);
  if (vm.count("help")) {
    out << command_help("log show [--file F] [--domain D] [--since T] [--json]", desc);
    return kExitOk;
  }
  ShowOptions o;
  if (vm.count("domain")) o.domain = domain;
  if (vm.count("since")) {
    auto bound = parse_since(since, deps.now_unix_ms());
    if (!bound) throw UsageError{bound.error().context, "log show"};
    o.since = *bound;
  }
  o.json = vm.count("json") > 0;
  auto content = read_file(file);
  if (!content) return fail(err, content.error().context);
  auto shown = show_log(*content, o);
  if (!shown) return fail(err, file + ": " + shown.error().context);
  out << shown->out;
  for (const auto& w : shown->warnings) err << kProg << ": warning: " << file << ": " << w << '\n';
  return kExitOk;
}

int cmd_log_verify(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  po::options_description desc("log verify options");
  std::string file;
  desc.add_options()("help,h", "show this help")(
      "file", po::value(&file)->default_value(std::string(kDefaultLogFile)), "forensic log to verify");
  const auto vm = parse("log verify", args, desc);
  if (vm.count("help")) {
    out << command_help("log verify [--file F]", desc);
    return kExitOk;
  }
  auto content = read_file(file);
  if (!content) return fail(err, content.error().context);
  const VerifyOutcome v = verify_outcome(audit::verify_log(*content));
  out << v.message << '\n';
  return v.exit_code;
}

int cmd_install_hook(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
                     const Deps& deps) {
  po::options_description desc("install-hook options");
  InstallHookOptions o;
  const std::string default_hook = default_hook_program(deps.self_exe, VG_HOOK_FROM_BINDIR, VG_HOOK_INSTALLED);
  desc.add_options()                                                                          //
      ("help,h", "show this help")                                                            //
      ("hooks-dir", po::value(&o.hooks_dir)->default_value(o.hooks_dir),
       "libvirt's hook directory: the wrapper goes to DIR/qemu.d/vguard if DIR/qemu.d is a directory, else to "
       "DIR/qemu")                                                                            //
      ("config", po::value(&o.config)->default_value(o.config), "the vguard.conf vguard-hook reads (absolute path)")  //
      ("hook", po::value(&o.hook)->default_value(default_hook), "the vguard-hook program (absolute path)");
  const auto vm = parse("install-hook", args, desc);
  if (vm.count("help")) {
    out << command_help("install-hook [--hooks-dir DIR] [--config FILE] [--hook PATH]", desc);
    return kExitOk;
  }
  auto r = install_hook(o);
  if (!r) return fail(err, r.error().context);
  if (r->action == InstalledHook::Action::unchanged) {
    out << "vguard hook already installed at " << r->target << '\n';
    return kExitOk;
  }
  out << fmt::format("vguard hook {} at {}: runs {} with VGUARD_CONFIG={}\n",
                     r->action == InstalledHook::Action::updated ? "updated" : "installed", r->target, o.hook,
                     o.config)
      << "libvirtd must be restarted to notice a new hook: systemctl restart libvirtd (running guests keep "
         "running)\n";
  return kExitOk;
}

int dispatch(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, const Deps& deps) {
  if (args.empty()) throw UsageError{"missing command", ""};
  const std::string& a0 = args[0];
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (a0 == "--help" || a0 == "-h") {
    out << usage();
    return kExitOk;
  }
  if (a0 == "--version" || a0 == "-V") {
    out << kProg << ' ' << VG_VERSION << '\n';
    return kExitOk;
  }
  if (a0 == "help") {
    if (rest.empty()) {
      out << usage();
      return kExitOk;
    }
    std::vector<std::string> again = rest;
    again.emplace_back("--help");
    return dispatch(again, out, err, deps);
  }
  if (!a0.empty() && a0[0] == '-') throw UsageError{"unknown option '" + a0 + "'", ""};
  if (a0 == "keygen") return cmd_keygen(rest, out, err);
  if (a0 == "status" || a0 == "list") return cmd_status(a0, rest, out, err, deps);
  if (a0 == "log") {
    if (rest.empty()) throw UsageError{"'log' needs a subcommand: show or verify", ""};
    const std::vector<std::string> rest2(rest.begin() + 1, rest.end());
    if (rest[0] == "show") return cmd_log_show(rest2, out, err, deps);
    if (rest[0] == "verify") return cmd_log_verify(rest2, out, err);
    if (rest[0] == "--help" || rest[0] == "-h") {
      out << usage();
      return kExitOk;
    }
    throw UsageError{"unknown log subcommand '" + rest[0] + "' (expected show or verify)", ""};
  }
  if (a0 == "hosts") return cmd_hosts(rest, out, err, deps);
  if (a0 == "install-hook") return cmd_install_hook(rest, out, err, deps);
  if (a0 == "host") {
    if (rest.empty()) throw UsageError{"'host' needs a subcommand: confirm-fenced", ""};
    const std::vector<std::string> rest2(rest.begin() + 1, rest.end());
    if (rest[0] == "confirm-fenced") return cmd_confirm_fenced(rest2, out, err, deps);
    if (rest[0] == "--help" || rest[0] == "-h") {
      out << usage();
      return kExitOk;
    }
    throw UsageError{"unknown host subcommand '" + rest[0] + "' (expected confirm-fenced)", ""};
  }
  throw UsageError{"unknown command '" + a0 + "'", ""};
}

}  // namespace

std::string usage() {
  return fmt::format(
      "Usage: {0} COMMAND [OPTIONS]\n"
      "\n"
      "Commands:\n"
      "  keygen [--out FILE] [--bytes N] [--force]   create a shared key file (mode 0600)\n"
      "  status [--socket PATH] [--json]             list domains and their state (asks vguardd)\n"
      "  list [--socket PATH] [--json]               same as status\n"
      "  log show [--file F] [--domain D] [--since T] [--json]\n"
      "                                              print forensic log records\n"
      "  log verify [--file F]                       check the forensic log's hash chain\n"
      "  hosts [--socket PATH] [--json]              cluster mode: hosts, their state, quorum\n"
      "  host confirm-fenced HOST [--yes]            cluster mode: declare a lost host powered off\n"
      "  install-hook [--hooks-dir DIR] [--config FILE] [--hook PATH]\n"
      "                                              install vguard-hook as libvirt's qemu hook\n"
      "  help [COMMAND]                              show help\n"
      "\n"
      "Options: --help, --version. '{0} COMMAND --help' lists a command's options.\n"
      "Exit status: 0 ok, 1 failure (log verify: tampered; host confirm-fenced: no --yes), 2 usage error,\n"
      "3 log verify: torn last line.\n",
      kProg);
}

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, const Deps& deps) {
  std::string command;
  if (!args.empty())
    command = (args[0] == "log" || args[0] == "host") && args.size() > 1 ? args[0] + " " + args[1] : args[0];
  if (command.empty() || command[0] == '-' || command == "help") command.clear();
  try {
    return dispatch(args, out, err, deps);
  } catch (const UsageError& e) {
    err << kProg << ": " << e.what << ". " << help_hint(e.command.empty() ? std::string() : e.command)
        << '\n';
    return kExitUsage;
  } catch (const po::error& e) {
    // Only the command line can throw here (unknown option, bad value, stray argument).
    err << kProg << ": " << e.what() << ". " << help_hint(command) << '\n';
    return kExitUsage;
  }
}

}  // namespace vguard::ctl
