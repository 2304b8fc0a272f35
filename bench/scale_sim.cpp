// In-process scale figure for cluster mode: H ClusterEngines (default 64) over the FakeBusHub, each host with D
// domains of its own (default 1,000), encoded and decoded with the real cluster codec. Hosts join one by one;
// prints the time from the last join to a converged map (every member synced, equal digests, H×D domains) and
// the heap per engine. A proxy for the 64-process benchmark (same engine and codec, no corosync, no libvirt).
// Usage: bench_scale [HOSTS] [DOMAINS]
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>

#include "cluster_engine.h"
#include "cluster_msg.h"
#include "fake_bus.h"
#include "key.h"

using namespace vguard;
using namespace vguard::fenced;

namespace {
const std::string kKey = "scale-bench-cluster-key-0123456789";
const proto::KeyId kKeyId = proto::key_id_of(kKey);

struct Host final : BusListener {
  FakeBusHub& hub;
  NodeId id;
  ClusterEngine engine;
  Host(FakeBusHub& h, NodeId n) : hub(h), id(n), engine(ClusterIdentity{n, "h" + std::to_string(n), 1}, Policy{}) {}
  void run(const std::vector<Command>& cmds) {
    for (const auto& c : cmds)
      if (const auto* m = std::get_if<SendMsg>(&c)) (void)hub.bus(id).send(proto::encode_cluster(kKeyId, kKey, m->msg));
  }
  void feed(ClusterInput in) { run(engine.handle(ClusterEvent{0, std::move(in)})); }
  void on_message(NodeId from, std::string bytes) override {
    auto m = proto::decode_cluster(bytes, kKeyId, kKey);
    if (!m) std::abort();
    feed(BusMsgIn{from, std::move(*m)});
  }
  void on_view(const View& v) override { feed(BusViewIn{v}); }
  void on_quorum(bool q) override { feed(QuorumIn{q}); }
  void on_lost(const Error& e) override { feed(BusLostIn{e.message()}); }
};
}  // namespace

int main(int argc, char** argv) {
  const int hosts = argc > 1 ? std::atoi(argv[1]) : 64;
  const int domains = argc > 2 ? std::atoi(argv[2]) : 1000;
  FakeBusHub hub(1);
  const auto heap0 = mallinfo2().uordblks;
  std::vector<std::unique_ptr<Host>> hs;
  using Clock = std::chrono::steady_clock;
  Clock::time_point last_join;
  for (int n = 1; n <= hosts; ++n) {
    auto h = std::make_unique<Host>(hub, static_cast<NodeId>(n));
    auto& bus = hub.add_node(static_cast<NodeId>(n));
    bus.set_listener(h.get());
    std::vector<DomainInfo> list;
    for (int d = 0; d < domains; ++d) {
      DomainInfo info;
      info.uuid.bytes[0] = static_cast<std::uint8_t>(n);
      info.uuid.bytes[1] = static_cast<std::uint8_t>(n >> 8);
      info.uuid.bytes[14] = static_cast<std::uint8_t>(d >> 8);
      info.uuid.bytes[15] = static_cast<std::uint8_t>(d);
      info.name = "vm-" + std::to_string(n) + "-" + std::to_string(d);
      info.state = d % 4 == 0 ? proto::PowerState::shutoff : proto::PowerState::running;
      list.push_back(std::move(info));
    }
    h->feed(HvConnected{std::move(list)});
    hs.push_back(std::move(h));
    if (n < hosts) {
      (void)bus.start();
      hub.run_until_idle();
    } else {
      last_join = Clock::now();
      (void)bus.start();
      hub.run_until_idle();
    }
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - last_join).count();
  const std::string digest = hs[0]->engine.digest();
  bool ok = true;
  for (const auto& h : hs)
    ok = ok && h->engine.synced() && h->engine.digest() == digest &&
         h->engine.domains().size() == static_cast<std::size_t>(hosts) * static_cast<std::size_t>(domains);
  // The engines' own memory: the heap they free when destroyed (the fake bus keeps every delivered message
  // in its logs, which is not what a vguardd holds).
  const auto heap_all = mallinfo2().uordblks;
  (void)heap0;
  for (int n = 1; n <= hosts; ++n) hub.bus(static_cast<NodeId>(n)).set_listener(nullptr);
  hs.clear();
  const double per_engine_mib =
      static_cast<double>(heap_all - mallinfo2().uordblks) / (1024.0 * 1024.0) / static_cast<double>(hosts);
  std::printf("%d hosts x %d domains: converged=%s; last join to converged map %.1f ms for all %d engines on one "
              "core (%.1f ms of engine work per host); replicated state %.1f MiB per engine\n",
              hosts, domains, ok ? "yes" : "NO", ms, hosts, ms / hosts, per_engine_mib);
  std::printf("targets: map within 1 s of the last join (per host, hosts run in parallel): %s; 64 MiB per vguardd "
              "(engine state only, not a process RSS): %s\n",
              ms / hosts <= 1000 ? "met" : "NOT met", per_engine_mib <= 64 ? "met" : "NOT met");
  return ok ? 0 : 1;
}
