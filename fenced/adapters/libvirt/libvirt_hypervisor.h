#pragma once
// The libvirt adapter of the Hypervisor port (STYLE.md §2, §4, §5).
#include <memory>
#include <string>
#include <vector>

#include "hypervisor.h"

namespace vguard::fenced {

/// Hypervisor backed by one libvirt connection (any URI: qemu:///system, qemu+unix:///system?socket=...,
/// test:///default, test:///abs/path.xml).
///
/// Process-wide, once: libvirt's error printing is silenced and its default event implementation is
/// registered before the first virConnectOpen. Each instance owns one thread running the libvirt event
/// loop (woken every 100 ms so it can stop); lifecycle events and connection loss reach the listener on
/// that thread (or, with several instances in a process, on another instance's event thread: libvirt has
/// one event loop per process).
///
/// All methods are blocking and thread-safe. destroy() may block up to ~5 s while it confirms the
/// power-off. No libvirt type appears in this header.
class LibvirtHypervisor final : public Hypervisor {
 public:
  /// Starts the event thread; does not connect.
  explicit LibvirtHypervisor(std::string uri);
  /// Deregisters callbacks, waits until none is running, stops the event thread, closes the connection.
  /// No other method may be running or be called concurrently.
  ~LibvirtHypervisor() override;

  void set_listener(HypervisorListener* l) override;
  Result<void> connect() override;
  [[nodiscard]] bool connected() const override;
  Result<std::vector<DomainInfo>> list_domains() override;
  Result<proto::PowerState> state(const Uuid& u) override;
  Result<void> destroy(const Uuid& u) override;
  Result<void> suspend(const Uuid& u) override;
  Result<void> start(const Uuid& u) override;

  /// The URI given at construction.
  [[nodiscard]] const std::string& uri() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vguard::fenced
