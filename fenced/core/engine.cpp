#include "engine.h"

#include <fmt/format.h>

#include "key.h"

namespace vguard::fenced {
namespace {

using proto::Action;
using proto::PowerState;
using proto::Status;

bool is_fence_action(Action a) { return a == Action::off || a == Action::reboot || a == Action::on; }

std::string_view status_word(Status s) {
  switch (s) {
    case Status::success: return "success";
    case Status::failure: return "failure";
    case Status::off: return "off";
    case Status::denied: return "denied";
  }
  return "?";
}

}  // namespace

std::optional<DomainInfo> Engine::domain(const Uuid& u) const {
  auto it = domains_.find(u);
  if (it == domains_.end()) return std::nullopt;
  DomainInfo d = it->second;
  if (!connected_) d.state = PowerState::unknown;
  return d;
}

std::vector<Command> Engine::handle(const Event& ev) {
  Out out;
  std::visit(
      [&](const auto& in) {
        using T = std::decay_t<decltype(in)>;
        if constexpr (std::is_same_v<T, RequestIn>) {
          on_request(ev.now, in, out);
        } else if constexpr (std::is_same_v<T, HvConnected>) {
          on_connected(in, out);
        } else if constexpr (std::is_same_v<T, HvDomain>) {
          domains_[in.info.uuid] = in.info;
          out.push_back(LogLine{Level::debug, fmt::format("domain {} is {} | uuid={}", in.info.name,
                                                          proto::power_state_name(in.info.state), in.info.uuid.str())});
        } else if constexpr (std::is_same_v<T, HvLost>) {
          on_lost(in, out);
        } else if constexpr (std::is_same_v<T, OpDone>) {
          on_op_done(in, out);
        } else {
          on_tick(ev.now, out);
        }
      },
      ev.input);
  return out;
}

void Engine::on_connected(const HvConnected& c, Out& out) {
  domains_.clear();
  for (const auto& d : c.domains) domains_[d.uuid] = d;
  const bool was = connected_;
  connected_ = true;
  out.push_back(Audit{"hypervisor", {{"event", "connected"}, {"domains", domains_.size()}}, false});
  out.push_back(LogLine{was ? Level::info : Level::notice,
                        fmt::format("hypervisor connected, {} domains", domains_.size())});
}

void Engine::on_lost(const HvLost& l, Out& out) {
  // From now on every state is unknown; unknown is never reported as off.
  const bool was = connected_;
  connected_ = false;
  disconnect_reason_ = l.reason;
  if (was) {
    out.push_back(Audit{"hypervisor", {{"event", "lost"}, {"reason", l.reason}}, false});
    out.push_back(LogLine{Level::error, fmt::format("hypervisor connection lost: {}; domain states unknown", l.reason)});
  }
}

std::string Engine::key_name(const std::optional<proto::KeyId>& key) const {
  if (!key) return "local-root";
  auto it = policy_.keys.find(*key);
  return it == policy_.keys.end() ? proto::key_id_hex(*key) : it->second.name;
}

bool Engine::allowed(const std::optional<proto::KeyId>& key, std::string_view name_or_uuid) const {
  if (!key) return true;  // the root-only control socket administers everything
  auto it = policy_.keys.find(*key);
  if (it == policy_.keys.end()) return false;
  for (const auto& pattern : it->second.allow)
    if (glob_match(pattern, name_or_uuid)) return true;
  return false;
}

void Engine::decide(Out& out, std::uint64_t request, const DomainInfo& d, std::string_view decision,
                    std::string_view reason) {
  out.push_back(Audit{"decision",
                      {{"request", request},
                       {"domain", d.name},
                       {"uuid", d.uuid.str()},
                       {"decision", decision},
                       {"reason", reason}},
                      false});
}

void Engine::finish(Out& out, std::uint64_t request, Action action, const DomainInfo* d, Status st, errc code,
                    std::string message) {
  boost::json::object f{{"request", request}, {"action", proto::action_name(action)}};
  if (d) {
    f["domain"] = d->name;
    f["uuid"] = d->uuid.str();
  }
  f["result"] = status_word(st);
  f["reason"] = message;
  // A fence outcome must be durable before the requester learns it (issue: forensic log v1).
  out.push_back(Audit{"outcome", std::move(f), is_fence_action(action)});
  const Level lvl = st == Status::failure && is_fence_action(action) ? Level::error
                    : is_fence_action(action)                       ? Level::notice
                                                                    : Level::info;
  out.push_back(LogLine{lvl, fmt::format("{} {}: {} ({}) | request={}", proto::action_name(action),
                                         d ? d->name : std::string("-"), status_word(st), message, request)});
  proto::Response resp;
  resp.status = st;
  resp.error = static_cast<std::uint16_t>(code);
  resp.message = std::move(message);
  if (d && (action == Action::status || action == Action::monitor)) {
    DomainInfo shown = *d;
    if (!connected_) shown.state = PowerState::unknown;
    resp.domains.push_back({shown.uuid, shown.name, shown.state});
  }
  out.push_back(Reply{request, std::move(resp)});
}

void Engine::list(const RequestIn& r, Out& out) {
  const Action a = r.request.action;
  if (!connected_) {
    finish(out, r.id, a, nullptr, Status::failure, errc::hypervisor_unreachable,
           "libvirt connection is down (" + disconnect_reason_ + "): domain list unknown");
    return;
  }
  proto::Response resp;
  resp.status = Status::success;
  for (const auto& [u, d] : domains_) {
    if (allowed(r.key, d.name) || allowed(r.key, u.str())) resp.domains.push_back({u, d.name, d.state});
  }
  resp.message = fmt::format("{} domains", resp.domains.size());
  out.push_back(Audit{"outcome",
                      {{"request", r.id}, {"action", proto::action_name(a)}, {"result", "success"},
                       {"domains", resp.domains.size()}},
                      false});
  out.push_back(Reply{r.id, std::move(resp)});
}

void Engine::on_request(TimeMs now, const RequestIn& r, Out& out) {
  const auto& q = r.request;
  out.push_back(Audit{"request",
                      {{"request", r.id},
                       {"requester", r.requester},
                       {"key", key_name(r.key)},
                       {"action", proto::action_name(q.action)},
                       {"target", q.target}},
                      false});

  if (q.action == Action::list || q.action == Action::list_status) return list(r, out);
  if (q.action == Action::monitor) {
    if (connected_)
      return finish(out, r.id, q.action, nullptr, Status::success, errc::ok, "vguardd and libvirt are up");
    return finish(out, r.id, q.action, nullptr, Status::failure, errc::hypervisor_unreachable,
                  "libvirt connection is down: " + disconnect_reason_);
  }
  if (q.action == Action::hook_prepare || q.action == Action::hook_release) {
    if (r.key) {
      return finish(out, r.id, q.action, nullptr, Status::denied, errc::permission_denied,
                    "hook operations are accepted only on the local control socket");
    }
    // Standalone mode: this host is the only one, so no other host can own or run the domain.
    return finish(out, r.id, q.action, nullptr, Status::success, errc::ok,
                  "standalone mode: no other host can own this domain");
  }

  // Resolve the target: a canonical UUID, else a name that must match exactly one domain.
  const DomainInfo* d = nullptr;
  const auto as_uuid = Uuid::parse(q.target);
  if ((q.flags & proto::kFlagTargetIsUuid) && !as_uuid) {
    return finish(out, r.id, q.action, nullptr, Status::failure, errc::no_such_domain,
                  "'" + q.target + "' is not a UUID (use_uuid is set)");
  }
  if (as_uuid) {
    auto it = domains_.find(*as_uuid);
    if (it != domains_.end()) d = &it->second;
  } else {
    int matches = 0;
    for (const auto& [u, info] : domains_)
      if (info.name == q.target) {
        d = &info;
        ++matches;
      }
    if (matches > 1 && !allowed(r.key, q.target)) {
      // Say nothing about duplicates to a key that may not act on this name.
      return finish(out, r.id, q.action, nullptr, Status::denied, errc::permission_denied,
                    "key '" + key_name(r.key) + "' may not act on '" + q.target + "'");
    }
    if (matches > 1)
      return finish(out, r.id, q.action, nullptr, Status::failure, errc::ambiguous_domain,
                    "name '" + q.target + "' matches " + std::to_string(matches) + " domains; use the UUID");
  }

  // Authorization first, so an unauthorized key learns nothing about which domains exist.
  const bool ok = d ? (allowed(r.key, d->name) || allowed(r.key, d->uuid.str())) : allowed(r.key, q.target);
  if (!ok) {
    return finish(out, r.id, q.action, d, Status::denied, errc::permission_denied,
                  "key '" + key_name(r.key) + "' may not act on '" + q.target + "'");
  }
  if (!connected_) {
    // Without libvirt we cannot know anything: never "off", never success.
    return finish(out, r.id, q.action, d, Status::failure, errc::hypervisor_unreachable,
                  "libvirt connection is down (" + disconnect_reason_ + "): state of '" + q.target + "' unknown");
  }
  if (!d) {
    // Unknown is never off (fence_virtd answers "off" here; that is the false fence vguard exists to prevent).
    return finish(out, r.id, q.action, nullptr, Status::failure, errc::no_such_domain,
                  "no domain '" + q.target + "' on this host");
  }

  const std::uint32_t budget =
      std::min(q.budget_ms == 0 ? policy_.default_budget_ms : q.budget_ms, policy_.max_budget_ms);
  switch (q.action) {
    case Action::status:
      if (d->state == PowerState::shutoff)
        return finish(out, r.id, q.action, d, Status::off, errc::ok, "libvirt reports it shut off");
      if (d->state == PowerState::unknown)
        return finish(out, r.id, q.action, d, Status::failure, errc::operation_failed, "state unknown");
      return finish(out, r.id, q.action, d, Status::success, errc::ok,
                    std::string("libvirt reports it ") + std::string(proto::power_state_name(d->state)));
    case Action::off:
    case Action::reboot:
      if (d->state == PowerState::shutoff) {
        // reboot of an off domain does not start it (fence_xvm semantics: fencing is about off).
        decide(out, r.id, *d, "none", "already shut off according to libvirt");
        return finish(out, r.id, q.action, d, Status::success, errc::ok,
                      q.action == Action::reboot ? "already shut off; not started" : "already shut off");
      }
      break;
    case Action::on:
      if (d->state != PowerState::shutoff && d->state != PowerState::unknown) {
        decide(out, r.id, *d, "none", "already active");
        return finish(out, r.id, q.action, d, Status::success, errc::ok, "already active");
      }
      break;
    default:
      return finish(out, r.id, q.action, d, Status::failure, errc::unknown_action, "unsupported action");
  }

  Pending p{r.id, q.action, *d, now + budget, next_op_++, false};
  if (q.action == Action::on) {
    decide(out, r.id, *d, "start", "requested on; libvirt reports it shut off");
    out.push_back(DoStart{p.op, d->uuid});
  } else {
    decide(out, r.id, *d, "destroy",
           fmt::format("requested {}; libvirt reports it {}", proto::action_name(q.action),
                       proto::power_state_name(d->state)));
    out.push_back(DoDestroy{p.op, d->uuid});
  }
  pending_.emplace(p.op, std::move(p));
}

void Engine::on_op_done(const OpDone& done, Out& out) {
  auto it = pending_.find(done.op);
  if (it == pending_.end()) {
    // Its request already timed out and was answered "failure"; record what happened after.
    out.push_back(Audit{"late-result", {{"op", done.op}, {"ok", done.ok}, {"error", done.error}}, false});
    return;
  }
  Pending p = it->second;
  pending_.erase(it);
  if (!done.ok) {
    const std::string what = p.restarting ? "destroyed, but restart failed: " : "";
    if (p.restarting) {
      // The domain is off (the destroy was confirmed): fencing succeeded, the restart did not.
      return finish(out, p.request, p.action, &p.target, Status::success, errc::ok, what + done.error);
    }
    return finish(out, p.request, p.action, &p.target, Status::failure, errc::operation_failed, done.error);
  }
  if (p.action == Action::on || p.restarting) {
    domains_[p.target.uuid].state = PowerState::running;
    return finish(out, p.request, p.action, &p.target, Status::success, errc::ok,
                  p.restarting ? "destroyed, libvirt reported it shut off, started again" : "started");
  }
  // Destroy confirmed: the hypervisor reported the domain shut off.
  domains_[p.target.uuid].state = PowerState::shutoff;
  if (p.action == Action::reboot) {
    out.push_back(Audit{"decision",
                        {{"request", p.request}, {"domain", p.target.name}, {"uuid", p.target.uuid.str()},
                         {"decision", "start"}, {"reason", "reboot: destroy confirmed shut off"}},
                        true});
    p.restarting = true;
    p.op = next_op_++;
    out.push_back(DoStart{p.op, p.target.uuid});
    pending_.emplace(p.op, std::move(p));
    return;
  }
  finish(out, p.request, p.action, &p.target, Status::success, errc::ok, "destroyed; libvirt reports it shut off");
}

void Engine::on_tick(TimeMs now, Out& out) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    Pending p = it->second;
    it = pending_.erase(it);
    if (p.restarting) {
      finish(out, p.request, p.action, &p.target, Status::success, errc::ok,
             "destroyed and confirmed shut off; restart still in progress at the deadline");
    } else {
      finish(out, p.request, p.action, &p.target, Status::failure, errc::timed_out,
             "deadline passed before libvirt confirmed the result");
    }
  }
}

}  // namespace vguard::fenced
