#pragma once
// The hypervisor port: what vguardd needs from libvirt, and nothing more (STYLE.md §2).
#include <string>
#include <vector>

#include "message.h"
#include "result.h"
#include "uuid.h"

namespace vguard::fenced {

/// One domain as the hypervisor reports it.
struct DomainInfo {
  Uuid uuid;
  std::string name;
  proto::PowerState state = proto::PowerState::unknown;
  /// Set on a STOPPED event whose detail is MIGRATED: the domain left this host for another one, so
  /// "shut off here" says nothing about whether it runs (it does, elsewhere).
  bool migrated_away = false;
  friend bool operator==(const DomainInfo&, const DomainInfo&) = default;
};

/// Receives hypervisor notifications. Called on an unspecified thread (libvirt's event thread);
/// implementations re-post to their own executor and must not block.
class HypervisorListener {
 public:
  virtual ~HypervisorListener() = default;
  /// A lifecycle event: the domain's state after the event (a shut-off transient domain may vanish next).
  virtual void on_domain_event(const DomainInfo& d) noexcept = 0;
  /// The connection dropped (libvirtd stopped, keepalive timeout). Every state is unknown until connect()
  /// and list_domains() succeed again.
  virtual void on_connection_lost(const Error& why) noexcept = 0;
};

/// Blocking and thread-safe: the runtime calls it on its blocking pool, never on the io thread.
class Hypervisor {
 public:
  Hypervisor() = default;
  Hypervisor(const Hypervisor&) = delete;
  Hypervisor& operator=(const Hypervisor&) = delete;
  virtual ~Hypervisor() = default;

  /// Sets the listener (before connect()). Thread-safe; set_listener(nullptr) returns only once no callback
  /// into the previous listener is running, so the listener may be destroyed right after it.
  virtual void set_listener(HypervisorListener* l) = 0;
  /// (Re)opens the connection and subscribes to lifecycle events. Subscription comes first, so a listing
  /// taken afterwards misses no change. Idempotent when already connected. errc::hypervisor_unreachable.
  virtual Result<void> connect() = 0;
  /// True while the connection is believed alive.
  [[nodiscard]] virtual bool connected() const = 0;
  /// Every defined or running domain. errc::hypervisor_unreachable.
  virtual Result<std::vector<DomainInfo>> list_domains() = 0;
  /// Current state of one domain. errc::no_such_domain, errc::hypervisor_unreachable.
  virtual Result<proto::PowerState> state(const Uuid& u) = 0;
  /// Destroys (hard power-off) the domain and returns only once the hypervisor reports it shut off
  /// (or gone, for a transient domain). Idempotent: already shut off is success.
  /// errc::no_such_domain, errc::operation_failed, errc::hypervisor_unreachable.
  virtual Result<void> destroy(const Uuid& u) = 0;
  /// Pauses (suspends) an active domain; returns once the hypervisor reports it paused. Idempotent: already
  /// paused is success. Same errors as destroy.
  virtual Result<void> suspend(const Uuid& u) = 0;
  /// Starts a defined domain. Idempotent: already active is success. Same errors as destroy.
  virtual Result<void> start(const Uuid& u) = 0;
};

}  // namespace vguard::fenced
