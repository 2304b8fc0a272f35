#pragma once
// An in-memory hypervisor for engine/runtime tests (STYLE.md §2: the fake is a complete implementation).
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "hypervisor.h"

namespace vguard::fenced {

/// Failure injection in the style of Beast's fail_count: "fail call N with errc X". Calls are numbered
/// 0, 1, 2, ... from construction, over every counted operation. Each armed failure fires once.
/// Not thread-safe by itself (FakeHypervisor guards it with its mutex).
class FailPlan {
 public:
  /// Arms call number `n` (0-based, counted from construction) to fail with `e`.
  void fail_call(std::size_t n, errc e) { armed_[n] = e; }
  /// Counts one operation; returns the armed error for it, if any.
  std::optional<errc> next();
  /// Operations counted so far.
  [[nodiscard]] std::size_t count() const { return count_; }
  /// Forgets every armed failure (the count continues).
  void clear() { armed_.clear(); }

 private:
  std::size_t count_ = 0;
  std::map<std::size_t, errc> armed_;
};

/// A small hypervisor: a map uuid -> DomainInfo.
///
/// - Like LibvirtHypervisor, every operation fails with errc::hypervisor_unreachable until connect()
/// succeeds.
/// - destroy()/start() change the state and fire on_domain_event synchronously on the calling thread (after
/// the
///   fake's mutex is released, so a listener may call back in). Already-off destroy / already-active start
///   succeed without an event.
/// - set_reachable(false) drops the connection (on_connection_lost fires once) and makes every call,
/// including
///   connect(), fail with errc::hypervisor_unreachable; set_reachable(true) lets connect() succeed again.
/// - Counted operations for the FailPlan: connect, list_domains, state, destroy, start (one count per call,
///   before anything else happens; an injected failure has no side effect). Injected
///   hypervisor_unreachable also drops the connection, like the real adapter.
/// Thread-safe.
class FakeHypervisor final : public Hypervisor {
 public:
  FakeHypervisor() = default;
  ~FakeHypervisor() override = default;

  // --- test controls (not counted, never fail) ---
  /// Adds or replaces a domain. No event.
  void add(DomainInfo d);
  /// Removes a domain (a transient domain vanishing). Fires on_domain_event with state shutoff when `notify`.
  void remove(const Uuid& u, bool notify = true);
  /// Changes a domain's state from "outside" (guest crash, migration, admin action) and fires the event.
  /// Returns false when the domain is unknown.
  bool set_state(const Uuid& u, proto::PowerState s);
  /// The domain as stored, or nullopt.
  [[nodiscard]] std::optional<DomainInfo> get(const Uuid& u) const;
  /// All domains, ordered by UUID.
  [[nodiscard]] std::vector<DomainInfo> all() const;
  void set_reachable(bool reachable);
  /// Arms a failure: see FailPlan::fail_call.
  void fail_call(std::size_t n, errc e);
  /// Counted operations so far (the next one has this number).
  [[nodiscard]] std::size_t calls() const;
  /// Every counted operation in order, as "connect", "list", "state <uuid>", "destroy <uuid>", "start
  /// <uuid>".
  [[nodiscard]] std::vector<std::string> journal() const;

  // --- Hypervisor ---
  void set_listener(HypervisorListener* l) override;
  Result<void> connect() override;
  [[nodiscard]] bool connected() const override;
  Result<std::vector<DomainInfo>> list_domains() override;
  Result<proto::PowerState> state(const Uuid& u) override;
  Result<void> destroy(const Uuid& u) override;
  Result<void> suspend(const Uuid& u) override;
  Result<void> start(const Uuid& u) override;

 private:
  /// Counts the call and applies the FailPlan and reachability. Caller holds mu_. Sets *lost when the
  /// connection must be reported lost (after unlocking).
  std::optional<Error> enter(std::string what, bool* lost);
  void notify_lost(const Error& why);
  void notify_event(const DomainInfo& d);

  mutable std::mutex mu_;
  HypervisorListener* listener_ = nullptr;
  std::map<Uuid, DomainInfo> domains_;
  FailPlan plan_;
  std::vector<std::string> journal_;
  bool reachable_ = true;
  bool connected_ = false;
};

}  // namespace vguard::fenced
