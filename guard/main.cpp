// vguard-hook: libvirt qemu hook. Asks the local vguardd before a domain starts or migrates in here, tells it
// when a domain stopped, and asks again when libvirtd restarts and finds a domain running.
// libvirt calls: qemu DOMAIN OPERATION SUB-OPERATION EXTRA, with the domain XML on stdin.
// A non-zero exit with one line on stderr makes libvirt refuse the operation and show that line.
// Decisions are in decide.cpp; this file only reads the config file and stdin and does the asking.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>

#include "client.h"
#include "decide.h"

using namespace vguard;

namespace {

// The whole file, or nullopt when it does not exist (then every setting has its default, as before vguardd
// was configured). Any other failure is an error: the hook must not guess around a file it cannot read.
Result<std::optional<std::string>> read_config(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>();
    return make_error(errc::bad_config, "cannot read " + path + ": " + std::strerror(errno));
  }
  std::string text;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return make_error(errc::bad_config, "cannot read " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return std::optional<std::string>(std::move(text));
}

// $VGUARD_CONFIG (default /etc/vguard/vguard.conf), then $VGUARD_CONTROL_SOCKET over its control_socket.
Result<guard::HookSettings> load_settings() {
  const char* cfg = std::getenv("VGUARD_CONFIG");
  const std::string path = cfg && *cfg ? cfg : std::string(guard::kDefaultConfig);
  auto text = read_config(path);
  if (!text) return text.error();
  guard::HookSettings s;
  if (*text) {
    auto parsed = guard::parse_settings(**text, path);
    if (!parsed) return parsed.error();
    s = std::move(*parsed);
  }
  if (const char* env = std::getenv("VGUARD_CONTROL_SOCKET"); env && *env) s.control_socket = env;
  return s;
}

guard::Outcome run(const std::string& domain, const std::string& op, const std::string& sub) {
  // Operations that ask nothing return before any file or stdin is read.
  if (!guard::plan_for(op, sub).ask) return {};
  const auto settings = load_settings();
  // With a broken config the socket and timeout are unknown: nothing is asked and the operation's default
  // policy applies (a start is refused naming the config error; a reconnect or release is allowed).
  if (!settings) return guard::unreachable(guard::plan_for(op, sub), domain, settings.error().context);
  const guard::Plan plan = guard::plan_for(op, sub, *settings);

  const std::string xml{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  const auto uuid = guard::uuid_from_xml(xml);
  if (!uuid) return guard::no_uuid(plan, domain);
  proto::CallOptions opts;
  opts.endpoint.kind = proto::Endpoint::Kind::unix_socket;
  opts.endpoint.path = settings->control_socket;
  // The client sends vguardd a budget of 90 % of this, so its answer arrives before the hook gives up.
  opts.timeout = std::chrono::seconds(settings->timeout_s);
  return guard::decide(plan, domain, proto::call(opts, *plan.ask, *uuid, proto::kFlagTargetIsUuid));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "vguard-hook: expected DOMAIN OPERATION SUB-OPERATION (called by libvirt as a qemu hook)\n";
    return 1;
  }
  const guard::Outcome o = run(argv[1], argv[2], argv[3]);
  if (!o.message.empty()) std::cerr << o.message << '\n';
  return o.exit_code;
}
