#pragma once
// vguardd's runtime: one Asio io thread owns the Engine, the listeners, timers and the forensic log;
// blocking libvirt calls run on a small thread pool and post their results back (STYLE.md §5).
#include <boost/asio/io_context.hpp>
#include <memory>

#include "bus.h"
#include "cluster_engine.h"
#include "config.h"
#include "fence_history.h"
#include "hypervisor.h"
#include "log.h"
#include "result.h"

namespace vguard::fenced {

class AuditFile;

struct DaemonOptions {
  DaemonConfig config;
  bool install_signal_handlers = true;
  /// Cluster mode when set: the bus to the other hosts' vguardd (corosync CPG) and this host's identity.
  /// The daemon calls bus->set_listener() and bus->start(); the bus must outlive the daemon.
  Bus* bus = nullptr;
  std::string hostname;          ///< this host's name in the cluster
  std::uint64_t incarnation = 0; ///< unique per start (e.g. wall clock in ms)
  /// Pacemaker's fencing history, when [cluster] pacemaker_history = yes (must outlive the daemon).
  FenceHistory* history = nullptr;
};

/// Runs vguardd until SIGTERM/SIGINT (or stop()). Returns an error if a listener or the forensic log
/// cannot be opened at startup; nothing is served then.
class Daemon {
 public:
  Daemon(DaemonOptions opts, Hypervisor& hv, Logger& log);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  /// Opens the forensic log and every listener. Call before run().
  Result<void> start();
  /// Serves until stopped. Blocks the calling thread (the io thread).
  void run();
  /// Thread-safe: asks run() to return.
  void stop();
  /// The io_context that run() drives (to build a bus adapter on it before start()).
  boost::asio::io_context& io_context();
  /// Cluster mode with a bus the daemon owns (built on io_context()); call before start().
  void own_bus(std::unique_ptr<Bus> bus);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vguard::fenced
