// vguardctl: vguard's admin CLI. Composition root only: binds the real client, clock and own path to ctl::run().
#include <chrono>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "cli.h"
#include "client.h"

int main(int argc, char** argv) {
  using namespace vguard;
  ctl::Deps deps;
  deps.call = [](const std::string& socket_path, std::chrono::milliseconds timeout, proto::Action action,
                 const std::string& target) {
    proto::CallOptions opts;
    opts.endpoint.kind = proto::Endpoint::Kind::unix_socket;
    opts.endpoint.path = socket_path;
    opts.key = std::nullopt;  // the local root socket
    opts.timeout = timeout;
    return proto::call(opts, action, target);
  };
  deps.now_unix_ms = [] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  std::error_code ec;
  deps.self_exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();  // empty if unknown
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  const int rc = ctl::run(args, std::cout, std::cerr, deps);
  std::cout.flush();
  if (!std::cout) {
    std::cerr << "vguardctl: cannot write to standard output\n";
    return 1;
  }
  return rc;
}
