#include "engine.h"

#include <fmt/format.h>

#include "key.h"

namespace vguard::fenced {
namespace {

using proto::Action;
using proto::PowerState;
using proto::Status;

}  // namespace

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

std::string Policy::key_name(const std::optional<proto::KeyId>& key) const {
  if (!key) return "local-root";
  auto it = keys.find(*key);
  return it == keys.end() ? proto::key_id_hex(*key) : it->second.name;
}

bool Policy::allowed(const std::optional<proto::KeyId>& key, std::string_view name_or_uuid) const {
  if (!key) return true;  // the root-only control socket administers everything
  auto it = keys.find(*key);
  if (it == keys.end()) return false;
  for (const auto& pattern : it->second.allow)
    if (glob_match(pattern, name_or_uuid)) return true;
  return false;
}

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
          on_domain(in.info, out);
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

void Engine::on_domain(const DomainInfo& d, Out& out) {
  DomainInfo& cur = domains_[d.uuid];
  // "Migrated away" sticks until the domain is active here again: shut off here, it runs elsewhere.
  const bool migrated = d.migrated_away || (cur.migrated_away && d.state == PowerState::shutoff);
  cur = d;
  cur.migrated_away = migrated;
  out.push_back(LogLine{Level::debug, fmt::format("domain {} is {}{} | uuid={}", d.name, proto::power_state_name(d.state),
                                                  migrated ? " (migrated away)" : "", d.uuid.str())});
}

void Engine::on_connected(const HvConnected& c, Out& out) {
  std::map<Uuid, DomainInfo> fresh;
  for (const auto& d : c.domains) {
    fresh[d.uuid] = d;
    // A listing cannot tell "migrated away" from "shut off"; keep what the events said.
    if (auto it = domains_.find(d.uuid); it != domains_.end() && d.state == PowerState::shutoff)
      fresh[d.uuid].migrated_away = it->second.migrated_away;
  }
  domains_ = std::move(fresh);
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

void Engine::decide(Out& out, std::uint64_t request, const DomainInfo& d, std::string_view decision,
                    std::string_view reason) {
  // A decision before a destroy or start is written before the action but not fsync'd: write() puts it in the
  // page cache, which survives any crash of vguardd; only a crash of this host's kernel loses it, and that
  // also ends every domain on this host, the very one the action touched. The outcome record, which the
  // requester acts on, is fsync'd before the reply (finish) and its fdatasync covers this record too.
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
  if (q.action == Action::hook_prepare || q.action == Action::hook_release || q.action == Action::hook_migrate ||
      q.action == Action::hook_reconnect) {
    if (r.key) {
      return finish(out, r.id, q.action, nullptr, Status::denied, errc::permission_denied,
                    "hook operations are accepted only on the local control socket");
    }
    // Standalone mode: this host is the only one, so no other host can own or run the domain.
    return finish(out, r.id, q.action, nullptr, Status::success, errc::ok,
                  "standalone mode: no other host can own this domain");
  }

  if (q.action == Action::hosts || q.action == Action::confirm_fenced) {
    return finish(out, r.id, q.action, nullptr, Status::failure, errc::operation_failed,
                  "standalone mode: this host is in no cluster");
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

  if (d->migrated_away) {
    // Shut off here because it migrated to another host: it is running there. Never "off", never started here.
    return finish(out, r.id, q.action, d, Status::failure, errc::operation_failed,
                  "'" + d->name + "' migrated away from this host; its state on the other host is unknown here");
  }
  if (q.action != Action::status && q.action != Action::off && q.action != Action::reboot && q.action != Action::on)
    return finish(out, r.id, q.action, d, Status::failure, errc::unknown_action, "unsupported action");

  const std::uint32_t budget =
      std::min(q.budget_ms == 0 ? policy_.default_budget_ms : q.budget_ms, policy_.max_budget_ms);
  Pending p{r.id, q.action, *d, now + budget, 0, Phase::queued};
  if (busy_.count(d->uuid)) {
    out.push_back(LogLine{Level::info, fmt::format("{} {} waits for the operation in progress on it | request={}",
                                                   proto::action_name(q.action), d->name, r.id)});
    waiting_[d->uuid].push_back(std::move(p));
    return;
  }
  begin(std::move(p), out);
}

void Engine::begin(Pending p, Out& out) {
  if (!connected_) {
    return finish(out, p.request, p.action, &p.target, Status::failure, errc::hypervisor_unreachable,
                  "libvirt connection is down (" + disconnect_reason_ + "): state of '" + p.target.name + "' unknown");
  }
  // Every answer rests on what libvirt says now, not on the cached state: status and reboot ask first, off
  // always destroys (idempotent; the adapter confirms shut off), on always starts (idempotent).
  switch (p.action) {
    case Action::status:
    case Action::reboot:
      p.phase = Phase::query;
      break;
    case Action::off:
      decide(out, p.request, p.target, "destroy", "requested off");
      p.phase = Phase::destroy;
      break;
    default:
      decide(out, p.request, p.target, "start", "requested on");
      p.phase = Phase::start;
      break;
  }
  step(std::move(p), out);
}

void Engine::step(Pending p, Out& out) {
  p.op = next_op_++;
  busy_[p.target.uuid] = p.op;
  switch (p.phase) {
    case Phase::query: out.push_back(DoQuery{p.op, p.target.uuid}); break;
    case Phase::destroy: out.push_back(DoDestroy{p.op, p.target.uuid}); break;
    case Phase::start: out.push_back(DoStart{p.op, p.target.uuid}); break;
    case Phase::queued: VG_ASSERT(false, "step() of a queued request");
  }
  pending_.emplace(p.op, std::move(p));
}

void Engine::complete(const Pending& p, Out& out) {
  busy_.erase(p.target.uuid);
  auto it = waiting_.find(p.target.uuid);
  if (it == waiting_.end()) return;
  Pending next = std::move(it->second.front());
  it->second.erase(it->second.begin());
  if (it->second.empty()) waiting_.erase(it);
  begin(std::move(next), out);
}

void Engine::on_op_done(const OpDone& done, Out& out) {
  auto it = pending_.find(done.op);
  if (it == pending_.end()) {
    // Its request already timed out and was answered "failure"; record what happened after, then let the
    // next request on that domain run.
    out.push_back(Audit{"late-result",
                        {{"op", done.op}, {"ok", done.ok}, {"error", done.error},
                         {"state", proto::power_state_name(done.state)}},
                        false});
    if (auto l = late_.find(done.op); l != late_.end()) {
      Pending freed;
      freed.target.uuid = l->second;
      late_.erase(l);
      complete(freed, out);
    }
    return;
  }
  Pending p = std::move(it->second);
  pending_.erase(it);
  const DomainInfo* d = &p.target;

  if (!done.ok) {
    if (p.phase == Phase::start && p.action == Action::reboot) {
      // The destroy was confirmed: the domain is off, so fencing succeeded; the restart did not.
      finish(out, p.request, p.action, d, Status::success, errc::ok,
             "destroyed and confirmed shut off; restart failed: " + done.error);
    } else if (done.code == errc::no_such_domain) {
      finish(out, p.request, p.action, d, Status::failure, errc::no_such_domain,
             "libvirt no longer knows '" + p.target.name + "' on this host: " + done.error);
    } else {
      finish(out, p.request, p.action, d, Status::failure, done.code, done.error);
    }
    return complete(p, out);
  }

  switch (p.phase) {
    case Phase::query:
      p.target.state = done.state;
      domains_[p.target.uuid].state = done.state;
      if (p.action == Action::status) {
        if (done.state == PowerState::shutoff)
          finish(out, p.request, p.action, d, Status::off, errc::ok, "libvirt reports it shut off");
        else if (done.state == PowerState::unknown)
          finish(out, p.request, p.action, d, Status::failure, errc::operation_failed, "libvirt reports no state");
        else
          finish(out, p.request, p.action, d, Status::success, errc::ok,
                 std::string("libvirt reports it ") + std::string(proto::power_state_name(done.state)));
        return complete(p, out);
      }
      // reboot
      if (done.state == PowerState::shutoff) {
        // fence_xvm semantics: a reboot is about getting the domain off; one that is off stays off.
        decide(out, p.request, p.target, "none", "reboot of a domain libvirt reports shut off: not started");
        finish(out, p.request, p.action, d, Status::success, errc::ok, "already shut off; not started");
        return complete(p, out);
      }
      decide(out, p.request, p.target, "destroy",
             fmt::format("requested reboot; libvirt reports it {}", proto::power_state_name(done.state)));
      p.phase = Phase::destroy;
      return step(std::move(p), out);
    case Phase::destroy:
      domains_[p.target.uuid].state = PowerState::shutoff;
      if (p.action == Action::reboot) {
        decide(out, p.request, p.target, "start", "reboot: destroy confirmed shut off");
        p.phase = Phase::start;
        return step(std::move(p), out);
      }
      finish(out, p.request, p.action, d, Status::success, errc::ok, "destroyed; libvirt reports it shut off");
      return complete(p, out);
    case Phase::start:
      domains_[p.target.uuid].state = PowerState::running;
      finish(out, p.request, p.action, d, Status::success, errc::ok,
             p.action == Action::reboot ? "destroyed, libvirt reported it shut off, started again" : "started");
      return complete(p, out);
    case Phase::queued: VG_ASSERT(false, "completion of a queued request");
  }
}

void Engine::on_tick(TimeMs now, Out& out) {
  std::vector<Pending> expired;
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    expired.push_back(std::move(it->second));
    it = pending_.erase(it);
  }
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    auto& q = it->second;
    for (auto w = q.begin(); w != q.end();) {
      if (w->deadline > now) {
        ++w;
        continue;
      }
      finish(out, w->request, w->action, &w->target, Status::failure, errc::timed_out,
             "deadline passed while waiting for another operation on the domain");
      w = q.erase(w);
    }
    it = q.empty() ? waiting_.erase(it) : std::next(it);
  }
  for (auto& p : expired) {
    if (p.phase == Phase::start && p.action == Action::reboot) {
      finish(out, p.request, p.action, &p.target, Status::success, errc::ok,
             "destroyed and confirmed shut off; restart still in progress at the deadline");
    } else {
      finish(out, p.request, p.action, &p.target, Status::failure, errc::timed_out,
             "deadline passed before libvirt confirmed the result");
    }
    // The operation itself may still be running in libvirt: keep the domain busy until its result arrives
    // (then recorded as late-result), so no later request overtakes it.
    busy_[p.target.uuid] = p.op;
    late_[p.op] = p.target.uuid;
  }
}

}  // namespace vguard::fenced
