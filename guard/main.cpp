// vguard-hook: libvirt qemu hook. Asks the local vguardd before a domain starts on this host.
// libvirt calls: qemu DOMAIN OPERATION SUB-OPERATION EXTRA, with the domain XML on stdin.
// A non-zero exit with one line on stderr makes libvirt refuse the operation and show that line.
#include <boost/program_options.hpp>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>

#include "client.h"
#include "decide.h"

namespace po = boost::program_options;
using namespace vguard;

namespace {

// The control socket path: $VGUARD_CONTROL_SOCKET, else [daemon] control_socket of $VGUARD_CONFIG
// (default /etc/vguard/vguard.conf), else the built-in default.
std::string control_socket() {
  if (const char* env = std::getenv("VGUARD_CONTROL_SOCKET"); env && *env) return env;
  const char* cfg = std::getenv("VGUARD_CONFIG");
  std::ifstream in(cfg && *cfg ? cfg : "/etc/vguard/vguard.conf");
  std::string path = "/run/vguard/vguardd.sock";
  if (!in) return path;
  po::options_description desc;
  desc.add_options()("daemon.control_socket", po::value(&path));
  try {
    po::variables_map vm;
    po::store(po::parse_config_file(in, desc, true), vm);
    po::notify(vm);
  } catch (const po::error&) {
    // vguardd refuses to start on a broken config, so the default socket is as good as any guess here;
    // a prepare still fails closed if nothing answers there.
  }
  return path;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "vguard-hook: expected DOMAIN OPERATION SUB-OPERATION (called by libvirt as a qemu hook)\n";
    return 1;
  }
  const std::string domain = argv[1];
  const guard::Plan plan = guard::plan_for(argv[2], argv[3]);
  if (!plan.ask) return 0;

  const std::string xml{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  const auto uuid = guard::uuid_from_xml(xml);
  if (!uuid) {
    if (!plan.refuse_if_unreachable) return 0;
    std::cerr << "vguard: cannot read the UUID of domain " << domain << " from its XML; refusing to start it\n";
    return 1;
  }
  proto::CallOptions opts;
  opts.endpoint.kind = proto::Endpoint::Kind::unix_socket;
  opts.endpoint.path = control_socket();
  opts.timeout = std::chrono::milliseconds(10000);
  auto r = proto::call(opts, *plan.ask, *uuid, proto::kFlagTargetIsUuid);
  if (!r) {
    if (!plan.refuse_if_unreachable) return 0;
    std::cerr << "vguard: cannot ask vguardd (" << r.error().message() << "); refusing to start " << domain
              << " (fail-closed)\n";
    return 1;
  }
  if (r->status == proto::Status::success) return 0;
  if (!plan.refuse_if_unreachable) return 0;
  std::cerr << "vguard: refusing to start " << domain << ": " << r->message << "\n";
  return 1;
}
