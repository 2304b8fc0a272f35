#pragma once
// vguardd's runtime: one Asio io thread owns the Engine, the listeners, timers and the forensic log;
// blocking libvirt calls run on a small thread pool and post their results back (STYLE.md §5).
#include <memory>

#include "config.h"
#include "hypervisor.h"
#include "log.h"
#include "result.h"

namespace vguard::fenced {

class AuditFile;

struct DaemonOptions {
  DaemonConfig config;
  bool install_signal_handlers = true;
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

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vguard::fenced
