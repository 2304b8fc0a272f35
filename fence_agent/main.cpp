// fence_vguard: parse (stdin when run without arguments, else getopt), delay, one call to vguardd (or, with
// protocol xvm/virt, to fence_virtd), print, exit. Every decision is in options.cpp / agent.cpp; this file
// and xvm_client.cpp only do the I/O.
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "agent.h"
#include "client.h"
#include "fence_virt.h"
#include "key.h"
#include "options.h"
#include "xvm_client.h"

namespace {

using namespace vguard;
using namespace vguard::agent;

void write(std::FILE* f, const std::string& text) {
  if (!text.empty()) std::fwrite(text.data(), 1, text.size(), f);
}

int finish(const Outcome& o) {
  write(stdout, o.out);
  write(stderr, o.err);
  std::fflush(stdout);
  return o.exit_code;
}

std::string read_stdin() {
  std::string text;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) text.append(buf, n);
  return text;
}

proto::Endpoint endpoint_of(const Options& o) {
  proto::Endpoint ep;
  switch (o.transport()) {
    case Transport::unix_socket:
      ep.kind = proto::Endpoint::Kind::unix_socket;
      ep.path = *o.unix_socket;
      break;
    case Transport::vsock:
      ep.kind = proto::Endpoint::Kind::vsock;
      ep.cid = *o.vsock_cid;
      ep.port = o.port;
      break;
    case Transport::tcp:
    case Transport::multicast:  // not with protocol vguard
    case Transport::vmchannel:
    case Transport::serial:
      ep.kind = proto::Endpoint::Kind::tcp;
      ep.host = o.ipaddr;
      ep.port = o.port;
      break;
  }
  return ep;
}

void delay_if_needed(const Options& o) {
  if (o.delay_s > 0 && needs_delay(o.op)) {
    if (o.debug > 0) std::fprintf(stderr, "Delaying for %d seconds\n", o.delay_s);
    std::this_thread::sleep_for(std::chrono::seconds(o.delay_s));
  }
}

// protocol xvm / virt: fence_xvm's protocol to fence_virtd.
int run_xvm(const Options& o) {
  std::string key;
  if (xvm_needs_key(o)) {
    // No silent fallback to unsigned requests when the key cannot be read (fence_xvm's §7.4 downgrade).
    auto k = fencevirt::read_key_file(o.key_file);
    if (!k) return finish(key_failure(o, k.error()));
    key = std::move(*k);
  }
  if (o.op == Op::validate_all) return kExitSuccess;
  delay_if_needed(o);
  return finish(interpret_xvm(o, xvm_call(o, key)));
}

}  // namespace

int main(int argc, char** argv) {
  // Like fence_virt, the program name picks the protocol: fence_xvm / fence_virt (a symlink to fence_vguard)
  // speak fence_xvm's protocol unless protocol= says otherwise.
  const Protocol initial = protocol_for_program(argc > 0 && argv[0] != nullptr ? argv[0] : "");
  // Like fence_xvm, stdin is read only when there is no argument at all (that is how Pacemaker runs agents).
  ParseResult parsed;
  if (argc <= 1) {
    parsed = parse_stdin(read_stdin(), initial);
  } else {
    const std::vector<std::string> args(argv + 1, argv + argc);
    parsed = parse_argv(args, initial);
  }
  for (const auto& line : parsed.diagnostics) std::fprintf(stderr, "%s\n", line.c_str());
  if (auto done = preflight(parsed)) return finish(*done);

  const Options& o = parsed.options;
  if (o.debug > 0) write(stderr, describe_options(o));
  if (o.protocol != Protocol::vguard) return run_xvm(o);

  // The key is required for every request, the Unix socket included: no unauthenticated fallback.
  auto key = proto::load_key_file(o.key_file);
  if (!key) return finish(key_failure(o, key.error()));
  if (o.op == Op::validate_all) return kExitSuccess;

  const auto action = to_action(o.op);
  if (!action) return finish(Outcome{kExitFailure, {}, "Operation failed\n"});  // unreachable after preflight

  delay_if_needed(o);

  proto::CallOptions call;
  call.endpoint = endpoint_of(o);
  call.key = std::move(*key);
  call.timeout = std::chrono::seconds(o.timeout_s);
  const auto answer = proto::call(call, *action, request_target(o), request_flags(o));
  return finish(interpret(o, answer));
}
