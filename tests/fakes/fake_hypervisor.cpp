#include "fake_hypervisor.h"

#include <utility>

namespace vguard::fenced {

std::optional<errc> FailPlan::next() {
  const std::size_t n = count_++;
  auto it = armed_.find(n);
  if (it == armed_.end()) return std::nullopt;
  const errc e = it->second;
  armed_.erase(it);
  return e;
}

// --- test controls ---------------------------------------------------------------------------------

void FakeHypervisor::add(DomainInfo d) {
  std::lock_guard lk(mu_);
  const Uuid u = d.uuid;
  domains_[u] = std::move(d);
}

void FakeHypervisor::remove(const Uuid& u, bool notify) {
  DomainInfo gone;
  {
    std::lock_guard lk(mu_);
    auto it = domains_.find(u);
    if (it == domains_.end()) return;
    gone = it->second;
    domains_.erase(it);
  }
  gone.state = proto::PowerState::shutoff;
  if (notify) notify_event(gone);
}

bool FakeHypervisor::set_state(const Uuid& u, proto::PowerState s) {
  DomainInfo changed;
  {
    std::lock_guard lk(mu_);
    auto it = domains_.find(u);
    if (it == domains_.end()) return false;
    it->second.state = s;
    changed = it->second;
  }
  notify_event(changed);
  return true;
}

std::optional<DomainInfo> FakeHypervisor::get(const Uuid& u) const {
  std::lock_guard lk(mu_);
  auto it = domains_.find(u);
  if (it == domains_.end()) return std::nullopt;
  return it->second;
}

std::vector<DomainInfo> FakeHypervisor::all() const {
  std::lock_guard lk(mu_);
  std::vector<DomainInfo> out;
  out.reserve(domains_.size());
  for (const auto& [u, d] : domains_) out.push_back(d);
  return out;
}

void FakeHypervisor::set_reachable(bool reachable) {
  bool lost = false;
  {
    std::lock_guard lk(mu_);
    reachable_ = reachable;
    if (!reachable && connected_) {
      connected_ = false;
      lost = true;
    }
  }
  if (lost) notify_lost(make_error(errc::hypervisor_unreachable, "fake: hypervisor unreachable"));
}

void FakeHypervisor::fail_call(std::size_t n, errc e) {
  std::lock_guard lk(mu_);
  plan_.fail_call(n, e);
}

std::size_t FakeHypervisor::calls() const {
  std::lock_guard lk(mu_);
  return plan_.count();
}

std::vector<std::string> FakeHypervisor::journal() const {
  std::lock_guard lk(mu_);
  return journal_;
}

// --- helpers ---------------------------------------------------------------------------------------

std::optional<Error> FakeHypervisor::enter(std::string what, bool* lost) {
  const std::optional<errc> injected = plan_.next();
  journal_.push_back(what);
  if (injected) {
    if (*injected == errc::hypervisor_unreachable && connected_) {
      connected_ = false;
      *lost = true;
    }
    return make_error(
        *injected, "fake: injected failure of call " + std::to_string(plan_.count() - 1) + " (" + what + ")");
  }
  if (!reachable_) return make_error(errc::hypervisor_unreachable, "fake: hypervisor unreachable");
  if (!connected_ && what != "connect")
    return make_error(errc::hypervisor_unreachable, "fake: not connected");
  return std::nullopt;
}

void FakeHypervisor::notify_lost(const Error& why) {
  HypervisorListener* l = nullptr;
  {
    std::lock_guard lk(mu_);
    l = listener_;
  }
  if (l) l->on_connection_lost(why);
}

void FakeHypervisor::notify_event(const DomainInfo& d) {
  HypervisorListener* l = nullptr;
  {
    std::lock_guard lk(mu_);
    l = listener_;
  }
  if (l) l->on_domain_event(d);
}

// --- Hypervisor ------------------------------------------------------------------------------------

void FakeHypervisor::set_listener(HypervisorListener* l) {
  std::lock_guard lk(mu_);
  listener_ = l;
}

Result<void> FakeHypervisor::connect() {
  bool lost = false;
  std::optional<Error> err;
  {
    std::lock_guard lk(mu_);
    err = enter("connect", &lost);
    if (!err) connected_ = true;
  }
  if (lost) notify_lost(*err);
  if (err) return *err;
  return {};
}

bool FakeHypervisor::connected() const {
  std::lock_guard lk(mu_);
  return connected_;
}

Result<std::vector<DomainInfo>> FakeHypervisor::list_domains() {
  bool lost = false;
  std::vector<DomainInfo> out;
  std::optional<Error> err;
  {
    std::lock_guard lk(mu_);
    err = enter("list", &lost);
    if (!err) {
      out.reserve(domains_.size());
      for (const auto& [u, d] : domains_) out.push_back(d);
    }
  }
  if (lost) notify_lost(*err);
  if (err) return *err;
  return out;
}

Result<proto::PowerState> FakeHypervisor::state(const Uuid& u) {
  bool lost = false;
  std::optional<Error> err;
  proto::PowerState s = proto::PowerState::unknown;
  {
    std::lock_guard lk(mu_);
    err = enter("state " + u.str(), &lost);
    if (!err) {
      auto it = domains_.find(u);
      if (it == domains_.end()) {
        err = make_error(errc::no_such_domain, "fake: domain " + u.str());
      } else {
        s = it->second.state;
      }
    }
  }
  if (lost) notify_lost(*err);
  if (err) return *err;
  return s;
}

Result<void> FakeHypervisor::destroy(const Uuid& u) {
  bool lost = false;
  std::optional<Error> err;
  std::optional<DomainInfo> event;
  {
    std::lock_guard lk(mu_);
    err = enter("destroy " + u.str(), &lost);
    if (!err) {
      auto it = domains_.find(u);
      if (it == domains_.end()) {
        err = make_error(errc::no_such_domain, "fake: domain " + u.str());
      } else if (it->second.state != proto::PowerState::shutoff) {
        it->second.state = proto::PowerState::shutoff;
        event = it->second;
      }
    }
  }
  if (lost) notify_lost(*err);
  if (err) return *err;
  if (event) notify_event(*event);
  return {};
}

Result<void> FakeHypervisor::suspend(const Uuid& u) {
  bool lost = false;
  std::optional<Error> err;
  std::optional<DomainInfo> event;
  {
    std::lock_guard lk(mu_);
    err = enter("suspend " + u.str(), &lost);
    if (!err) {
      auto it = domains_.find(u);
      if (it == domains_.end()) {
        err = make_error(errc::no_such_domain, "fake: domain " + u.str());
      } else if (it->second.state == proto::PowerState::shutoff) {
        err = make_error(errc::operation_failed, "fake: domain " + u.str() + " is shut off");
      } else if (it->second.state != proto::PowerState::paused) {
        it->second.state = proto::PowerState::paused;
        event = it->second;
      }
    }
  }
  if (lost) notify_lost(*err);
  if (err) return *err;
  if (event) notify_event(*event);
  return {};
}

Result<void> FakeHypervisor::start(const Uuid& u) {
  bool lost = false;
  std::optional<Error> err;
  std::optional<DomainInfo> event;
  {
    std::lock_guard lk(mu_);
    err = enter("start " + u.str(), &lost);
    if (!err) {
      auto it = domains_.find(u);
      if (it == domains_.end()) {
        err = make_error(errc::no_such_domain, "fake: domain " + u.str());
      } else if (it->second.state == proto::PowerState::shutoff) {
        it->second.state = proto::PowerState::running;
        event = it->second;
      }
    }
  }
  if (lost) notify_lost(*err);
  if (err) return *err;
  if (event) notify_event(*event);
  return {};
}

}  // namespace vguard::fenced
