#include "cluster_engine.h"

#include <fmt/format.h>

#include <algorithm>

#include "crypto.h"
#include "key.h"

namespace vguard::fenced {
namespace {

using proto::Action;
using proto::PowerState;
using proto::Status;

constexpr std::uint64_t kSyntheticBit = 1ULL << 63;  // local Engine request ids we use for remote FENCEs

bool is_fence(Action a) { return is_fence_action(a); }

bool newer(const proto::Facts& a, const proto::Facts& b) {
  return std::tie(a.incarnation, a.seq) > std::tie(b.incarnation, b.seq);
}

}  // namespace

ClusterEngine::ClusterEngine(ClusterIdentity id, Policy policy)
    : id_(std::move(id)), policy_(policy), local_(std::move(policy)) {}

bool ClusterEngine::lost(NodeId h) const {
  if (members_.count(h)) return false;
  auto it = hosts_.find(h);
  return it != hosts_.end() && it->second.losses > 0 && it->second.confirmed_loss < it->second.losses;
}

bool ClusterEngine::confirmed(NodeId h) const {
  if (members_.count(h)) return false;
  auto it = hosts_.find(h);
  if (it == hosts_.end() || it->second.losses == 0 || it->second.confirmed_loss != it->second.losses) return false;
  // Loss numbers are counted per partition; what identifies the loss that was confirmed is the host's last
  // report the confirmer had. Newer FACTS (it ran again, seen by any side) void the confirmation.
  const auto& f = it->second.facts;
  const std::uint64_t inc = f ? f->incarnation : 0, seq = f ? f->seq : 0;
  return inc == it->second.confirmed_incarnation && seq == it->second.confirmed_seq;
}

std::string ClusterEngine::host_name(NodeId h) const {
  if (h == 0) return "-";
  auto it = hosts_.find(h);
  if (it != hosts_.end() && !it->second.hostname.empty()) return it->second.hostname;
  return "node" + std::to_string(h);
}

bool ClusterEngine::active_in(const proto::Facts& f, const Uuid& u) const {
  for (const auto& e : f.entries)
    if (e.uuid == u) return !f.reachable || (e.state != PowerState::shutoff && !e.migrated_away);
  return false;
}

std::vector<NodeId> ClusterEngine::hosts_reporting_active(const Uuid& u) const {
  std::vector<NodeId> out;
  for (const auto& [h, rec] : hosts_)
    if (members_.count(h) && rec.facts && active_in(*rec.facts, u)) out.push_back(h);
  return out;
}

PowerState ClusterEngine::state_on(NodeId h, const Uuid& u) const {
  auto it = hosts_.find(h);
  if (it == hosts_.end() || !it->second.facts) return PowerState::unknown;
  if (!it->second.facts->reachable) return PowerState::unknown;
  for (const auto& e : it->second.facts->entries)
    if (e.uuid == u) return e.state;
  return PowerState::unknown;
}

std::string ClusterEngine::digest() const {
  std::string s;
  for (const auto& [h, r] : hosts_)
    s += fmt::format("h{}:{}:{}:{}:{}:{}:{};", h, r.losses, r.confirmed_loss, r.confirmed_incarnation, r.confirmed_seq,
                     r.facts ? r.facts->incarnation : 0, r.facts ? r.facts->seq : 0);
  for (const auto& [u, d] : domains_) s += fmt::format("d{}:{}:{};", u.str(), d.owner, d.epoch);
  return proto::key_id_hex(proto::key_id_of(s));
}

// ---------------------------------------------------------------------------------------------------

std::vector<Command> ClusterEngine::handle(const ClusterEvent& ev) {
  Out out;
  now_ = ev.now;
  std::visit(
      [&](const auto& in) {
        using T = std::decay_t<decltype(in)>;
        if constexpr (std::is_same_v<T, RequestIn>) {
          on_request(ev.now, in, out);
        } else if constexpr (std::is_same_v<T, HvConnected>) {
          hv_connected_ = true;
          local_domains_.clear();
          for (const auto& d : in.domains) local_domains_[d.uuid] = d;
          forward_local(out, local_.handle(Event{ev.now, in}));
          send_facts(out);
        } else if constexpr (std::is_same_v<T, HvDomain>) {
          local_domains_[in.info.uuid] = in.info;
          forward_local(out, local_.handle(Event{ev.now, in}));
          send_facts(out);
        } else if constexpr (std::is_same_v<T, HvLost>) {
          const bool was = hv_connected_;
          hv_connected_ = false;
          forward_local(out, local_.handle(Event{ev.now, in}));
          if (was) send_facts(out);
        } else if constexpr (std::is_same_v<T, OpDone> || std::is_same_v<T, Tick>) {
          forward_local(out, local_.handle(Event{ev.now, in}));
          if constexpr (std::is_same_v<T, Tick>) {
            // One member (the lowest id) watches Pacemaker's history for the lost hosts.
            if (id_.pacemaker_history && synced_ && !members_.empty() && *members_.begin() == id_.self &&
                ev.now >= next_history_poll_) {
              next_history_poll_ = ev.now + 2000;
              for (const auto& [h, rec] : hosts_)
                if (lost(h)) out.push_back(QueryFenceHistory{h, rec.hostname});
            }
            for (auto it = remote_.begin(); it != remote_.end();) {
              if (it->second.deadline > ev.now) {
                ++it;
                continue;
              }
              Remote r = std::move(it->second);
              it = remote_.erase(it);
              proto::DomainEntry d{r.uuid, r.name, PowerState::unknown, host_name(r.host), 0, 0};
              reply(out, r.in, &d, Status::failure, errc::timed_out,
                    "no answer from " + host_name(r.host) + " before the deadline; state not confirmed");
            }
          }
        } else if constexpr (std::is_same_v<T, BusViewIn>) {
          on_view(in.view, out);
        } else if constexpr (std::is_same_v<T, BusMsgIn>) {
          on_message(in.from, in.msg, out);
        } else if constexpr (std::is_same_v<T, BusLostIn>) {
          // This host is in no view: it answers nothing from the replica until it has rejoined and synced.
          in_view_ = false;
          synced_ = false;
          quorate_ = false;
          // Our tables may have missed anything from now on: rejoin as a joiner (FACTS only in the next
          // SYNC), so stale state never enters a merge (safety-design.md §6).
          has_state_ = false;
          state_peers_.clear();
          members_.clear();
          sync_waiting_.clear();
          sync_inbox_.clear();
          buffered_.clear();
          out.push_back(Audit{"membership", {{"event", "bus-lost"}, {"reason", in.reason}}, false});
          out.push_back(LogLine{Level::error, "cluster bus lost: " + in.reason + "; acting on own domains only"});
          fail_remotes(out, "this host lost the cluster bus (" + in.reason + ")", std::nullopt);
        } else if constexpr (std::is_same_v<T, FenceHistoryIn>) {
          on_history(in, out);
        } else if constexpr (std::is_same_v<T, QuorumIn>) {
          if (quorate_ != in.quorate)
            out.push_back(LogLine{Level::notice, in.quorate ? "partition is quorate" : "partition lost quorum"});
          quorate_ = in.quorate;
        }
      },
      ev.input);
  return out;
}

// Passes the local Engine's commands through, turning the replies to FENCEs we executed for other members
// into FENCE_DONE messages.
void ClusterEngine::forward_local(Out& out, std::vector<Command> cmds) {
  for (auto& c : cmds) {
    if (auto* rep = std::get_if<Reply>(&c); rep && (rep->request & kSyntheticBit)) {
      auto it = exec_.find(rep->request);
      if (it == exec_.end()) continue;
      const Execution e = it->second;
      exec_.erase(it);
      proto::MsgFenceDone done;
      done.requester = e.requester;
      done.request = e.request;
      done.from = id_.self;
      done.uuid = e.uuid;
      done.status = rep->response.status;
      done.error = rep->response.error;
      done.message = rep->response.message;
      done.epoch = e.epoch;
      out.push_back(SendMsg{std::move(done)});
      continue;
    }
    out.push_back(std::move(c));
  }
}

void ClusterEngine::send_facts(Out& out) {
  proto::Facts f;
  f.host = id_.self;
  f.hostname = id_.hostname;
  f.incarnation = id_.incarnation;
  f.seq = ++facts_seq_;
  f.reachable = hv_connected_;
  for (const auto& [u, d] : local_domains_) f.entries.push_back({u, d.name, d.state, d.migrated_away});
  if (in_view_) out.push_back(SendMsg{proto::MsgFacts{std::move(f)}});
}

// ---------------------------------------------------------------------------------------------------
// Membership and SYNC

void ClusterEngine::on_view(const View& v, Out& out) {
  const std::set<NodeId> before = members_;
  members_ = std::set<NodeId>(v.members.begin(), v.members.end());
  in_view_ = members_.count(id_.self) != 0;
  std::vector<std::string> left;
  for (const auto& [h, reason] : v.left) {
    // Every member of the new view sees the same left list, so the count stays identical everywhere.
    if (before.count(h) || hosts_.count(h)) {
      auto& rec = hosts_[h];
      rec.id = h;
      ++rec.losses;
    }
    left.push_back(fmt::format("{}({})", host_name(h), static_cast<int>(reason)));
  }
  std::string members;
  for (NodeId m : members_) members += (members.empty() ? "" : ",") + host_name(m);
  out.push_back(Audit{"membership",
                      {{"members", members}, {"left", fmt::format("{}", fmt::join(left, ","))},
                       {"joined", v.joined.size()}},
                      false});
  out.push_back(LogLine{Level::notice, fmt::format("membership: [{}] left: [{}] | joined={}", members,
                                                   fmt::join(left, ","), v.joined.size())});
  for (const auto& [h, reason] : v.left) {
    // A request routed to a host that left has no answer coming: fail it now, never success.
    fail_remotes(out, host_name(h) + " left the membership before answering", h);
  }
  if (!in_view_) {
    synced_ = false;
    return;
  }
  // Start a SYNC round: everything but SYNCs is buffered until every member's SYNC is delivered.
  synced_ = false;
  sync_waiting_ = members_;
  sync_inbox_.clear();
  // Members that completed the last SYNC together hold identical tables, so one of them is enough to carry
  // them: the lowest-id one still present. Everybody of that group computes the same carrier (a member that
  // left in between, e.g. a restarted vguardd, is no longer a candidate). Others send their FACTS only.
  for (const auto& [h, reason] : v.left) state_peers_.erase(h);
  NodeId carrier = 0;
  for (NodeId m : state_peers_)
    if (members_.count(m)) {
      carrier = m;
      break;
    }
  proto::MsgSync s;
  s.from = id_.self;
  s.incarnation = id_.incarnation;
  s.view.assign(members_.begin(), members_.end());
  s.has_state = has_state_ && carrier == id_.self;
  if (s.has_state) {
    for (const auto& [h, rec] : hosts_) s.hosts.push_back(rec);
    for (const auto& [u, d] : domains_) s.domains.push_back(d);
  }
  s.facts.host = id_.self;
  s.facts.hostname = id_.hostname;
  s.facts.incarnation = id_.incarnation;
  s.facts.seq = ++facts_seq_;
  s.facts.reachable = hv_connected_;
  for (const auto& [u, d] : local_domains_) s.facts.entries.push_back({u, d.name, d.state, d.migrated_away});
  out.push_back(SendMsg{std::move(s)});
}

void ClusterEngine::on_message(NodeId from, const proto::ClusterMsg& m, Out& out) {
  if (!in_view_) return;
  if (const auto* s = std::get_if<proto::MsgSync>(&m)) {
    // A SYNC counts once per member per view (a late one from an earlier view, or a repeat, is ignored).
    if (s->from != from || !sync_waiting_.count(from)) return;
    // A SYNC built for another view (delivered late, after the next confchg) describes a state before that
    // view's losses: it never counts.
    if (std::set<NodeId>(s->view.begin(), s->view.end()) != members_) return;
    sync_waiting_.erase(from);
    sync_inbox_.push_back(*s);
    if (sync_waiting_.empty()) {
      merge(out);
      auto pending = std::move(buffered_);
      buffered_.clear();
      for (const auto& [f, msg] : pending) apply(f, msg, out);
    }
    return;
  }
  if (!synced_) {
    buffered_.emplace_back(from, m);
    return;
  }
  apply(from, m, out);
}

// The merge is a function of the SYNC set alone, so every member computes the same state.
void ClusterEngine::merge(Out& out) {
  std::sort(sync_inbox_.begin(), sync_inbox_.end(),
            [](const proto::MsgSync& a, const proto::MsgSync& b) { return a.from < b.from; });
  std::map<NodeId, proto::HostRecord> hosts;
  std::map<Uuid, proto::DomainRecord> domains;
  auto merge_host = [&](const proto::HostRecord& r) {
    auto& h = hosts[r.id];
    h.id = r.id;
    if (!r.hostname.empty()) h.hostname = r.hostname;
    h.losses = std::max(h.losses, r.losses);
    if (r.confirmed_loss > h.confirmed_loss || (r.confirmed_loss == h.confirmed_loss && h.confirmed_by.empty())) {
      h.confirmed_loss = r.confirmed_loss;
      h.confirmed_by = r.confirmed_by;
      h.confirmed_incarnation = r.confirmed_incarnation;
      h.confirmed_seq = r.confirmed_seq;
    }
    if (r.facts && (!h.facts || newer(*r.facts, *h.facts))) h.facts = r.facts;
  };
  for (const auto& s : sync_inbox_) {
    // Only a member that has been through a SYNC brings replicated state; a restarted one brings facts only.
    if (s.has_state) {
      for (const auto& r : s.hosts) merge_host(r);
      for (const auto& d : s.domains) {
        auto [it, fresh] = domains.emplace(d.uuid, d);
        if (!fresh && (d.epoch > it->second.epoch || (d.epoch == it->second.epoch && d.owner < it->second.owner)))
          it->second = d;
      }
    }
    proto::HostRecord self;
    self.id = s.from;
    self.hostname = s.facts.hostname;
    self.facts = s.facts;
    merge_host(self);
  }
  hosts_ = std::move(hosts);
  domains_ = std::move(domains);
  // Members' fresh facts decide ownership, in node order (deterministic).
  for (NodeId m : members_)
    if (hosts_.count(m) && hosts_[m].facts) adopt_owners(*hosts_[m].facts, out);
  synced_ = true;
  has_state_ = true;
  state_peers_ = members_;
  std::size_t lost_hosts = 0;
  for (const auto& [h, r] : hosts_)
    if (lost(h)) ++lost_hosts;
  out.push_back(Audit{"sync",
                      {{"members", members_.size()}, {"domains", domains_.size()}, {"lost_hosts", lost_hosts},
                       {"digest", digest()}},
                      false});
  out.push_back(LogLine{Level::notice, fmt::format("state synchronized: {} members, {} domains, {} lost hosts | digest={}",
                                                   members_.size(), domains_.size(), lost_hosts, digest())});
}

// ---------------------------------------------------------------------------------------------------
// Agreed messages

void ClusterEngine::apply(NodeId from, const proto::ClusterMsg& m, Out& out) {
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, proto::MsgFacts>) {
          if (msg.facts.host != from) return;  // a host speaks only for itself
          apply_facts(msg.facts, out);
        } else if constexpr (std::is_same_v<T, proto::MsgFence>) {
          if (msg.target_host != id_.self || msg.requester != from) return;
          const auto cur = domains_.find(msg.uuid);
          const std::uint64_t epoch = cur == domains_.end() ? 0 : cur->second.epoch;
          if (epoch != msg.epoch) {
            // Routed on a map that has changed since (the domain started or moved elsewhere): our libvirt no
            // longer speaks for it.
            out.push_back(SendMsg{proto::MsgFenceDone{msg.requester, msg.request, id_.self, msg.uuid, Status::failure,
                                                      static_cast<std::uint16_t>(errc::operation_failed),
                                                      fmt::format("ownership changed before the request arrived "
                                                                  "(epoch {} → {})",
                                                                  msg.epoch, epoch),
                                                      msg.epoch}});
            return;
          }
          // Carry it out with the local engine (authorization happened on the requester, which holds the key
          // configuration; the message itself is authenticated with the cluster key).
          const std::uint64_t sid = kSyntheticBit | ++next_synthetic_;
          exec_[sid] = Execution{msg.requester, msg.request, msg.uuid, msg.epoch};
          proto::Request q;
          q.action = msg.action;
          q.target = msg.uuid.str();
          q.flags = proto::kFlagTargetIsUuid;
          q.budget_ms = msg.budget_ms;
          out.push_back(LogLine{Level::notice, fmt::format("{} of {} requested by {} (key {}) | request={}",
                                                           proto::action_name(msg.action), msg.uuid.str(),
                                                           host_name(from), msg.key_name, msg.request)});
          forward_local(out,
                        local_.handle(Event{now_, RequestIn{sid, "cluster:" + host_name(from), std::nullopt, q}}));
        } else if constexpr (std::is_same_v<T, proto::MsgFenceDone>) {
          if (msg.requester != id_.self || msg.from != from) return;
          auto it = remote_.find(msg.request);
          if (it == remote_.end()) return;  // timed out already: the requester was answered "failure"
          Remote r = std::move(it->second);
          remote_.erase(it);
          auto d = domains_.find(msg.uuid);
          const std::uint64_t epoch = d == domains_.end() ? 0 : d->second.epoch;
          const NodeId owner = d == domains_.end() ? 0 : d->second.owner;
          proto::DomainEntry entry{msg.uuid, r.name, PowerState::unknown, host_name(from), epoch, 0};
          if (msg.status == Status::success || msg.status == Status::off) {
            // The executing host's libvirt speaks for the domain only if nothing moved since we routed it: same
            // owner, same epoch, and no other member reports it active.
            std::string why;
            if (msg.epoch != r.epoch || epoch != r.epoch || owner != r.owner)
              why = fmt::format("ownership of {} changed during the request (epoch {} → {})", r.name, r.epoch, epoch);
            for (NodeId h : hosts_reporting_active(msg.uuid))
              if (h != from && why.empty()) why = r.name + " is reported active on " + host_name(h);
            if (!why.empty() && !(r.in.request.action == Action::on && msg.status == Status::success)) {
              reply(out, r.in, &entry, Status::failure, errc::operation_failed, why + "; not confirmed");
              return;
            }
          }
          if (msg.status == Status::off) entry.state = PowerState::shutoff;
          reply(out, r.in, &entry, msg.status, static_cast<errc>(msg.error),
                host_name(from) + ": " + msg.message, is_fence(r.in.request.action));
        } else if constexpr (std::is_same_v<T, proto::MsgConfirmFenced>) {
          auto h = hosts_.find(msg.host);
          const bool applies = h != hosts_.end() && !members_.count(msg.host) && h->second.losses == msg.loss &&
                               msg.loss > 0;
          if (applies) {
            h->second.confirmed_loss = msg.loss;
            h->second.confirmed_by = msg.by;
            h->second.confirmed_incarnation = msg.facts_incarnation;
            h->second.confirmed_seq = msg.facts_seq;
            // Domains it owned that no member reports active are now off by evidence (the power fence).
            out.push_back(Audit{"confirm-fenced",
                                {{"host", host_name(msg.host)}, {"loss", msg.loss}, {"by", msg.by}, {"applied", true}},
                                true});
            out.push_back(LogLine{Level::notice, fmt::format("{} confirmed fenced (loss {}) by {}",
                                                             host_name(msg.host), msg.loss, msg.by)});
          } else {
            out.push_back(Audit{"confirm-fenced",
                                {{"host", host_name(msg.host)}, {"loss", msg.loss}, {"by", msg.by}, {"applied", false}},
                                false});
          }
          if (from == id_.self) {
            for (auto it = confirms_.begin(); it != confirms_.end(); ++it) {
              if (it->second.request.target != host_name(msg.host) &&
                  it->second.request.target != std::to_string(msg.host))
                continue;
              const RequestIn r = it->second;
              confirms_.erase(it);
              reply(out, r, nullptr, applies ? Status::success : Status::failure,
                    applies ? errc::ok : errc::operation_failed,
                    applies ? host_name(msg.host) + " confirmed fenced; its domains count as off"
                            : host_name(msg.host) + " rejoined or was lost again before the confirmation applied");
              break;
            }
          }
        }
      },
      m);
}

void ClusterEngine::apply_facts(const proto::Facts& f, Out& out) {
  auto& rec = hosts_[f.host];
  rec.id = f.host;
  if (!f.hostname.empty()) rec.hostname = f.hostname;
  if (rec.facts && !newer(f, *rec.facts)) return;
  rec.facts = f;
  adopt_owners(f, out);
}

void ClusterEngine::adopt_owners(const proto::Facts& f, Out& out) {
  if (!members_.count(f.host) || !f.reachable) return;  // unknown states never adopt
  for (const auto& e : f.entries) {
    auto [it, fresh] = domains_.try_emplace(e.uuid, proto::DomainRecord{e.uuid, e.name, 0, 0});
    auto& d = it->second;
    if (!e.name.empty()) d.name = e.name;
    if (e.state == PowerState::shutoff || e.migrated_away || e.state == PowerState::unknown) continue;
    if (d.owner == f.host) continue;
    const NodeId prev = d.owner;
    bool take = prev == 0 || confirmed(prev);
    if (!take && members_.count(prev)) {
      // The recorded owner is a member: it moves only if the owner no longer reports it active.
      const auto& pf = hosts_[prev].facts;
      take = pf && pf->reachable && !active_in(*pf, e.uuid);
      if (!take) {
        out.push_back(Audit{"alarm",
                            {{"kind", "duplicate"}, {"uuid", e.uuid.str()}, {"domain", d.name},
                             {"hosts", fmt::format("{},{}", host_name(prev), host_name(f.host))}, {"epoch", d.epoch}},
                            false});
        out.push_back(LogLine{Level::error, fmt::format("DUPLICATE: {} reported active on {} and {} | uuid={} epoch={}",
                                                        d.name, host_name(prev), host_name(f.host), e.uuid.str(),
                                                        d.epoch)});
        continue;
      }
    } else if (!take) {
      out.push_back(Audit{"alarm",
                          {{"kind", "active-while-owner-lost"}, {"uuid", e.uuid.str()}, {"domain", d.name},
                           {"owner", host_name(prev)}, {"on", host_name(f.host)}},
                          false});
      out.push_back(LogLine{Level::error, fmt::format("{} is active on {} while its owner {} is lost and not confirmed "
                                                      "fenced | uuid={}",
                                                      d.name, host_name(f.host), host_name(prev), e.uuid.str())});
      continue;
    }
    d.owner = f.host;
    ++d.epoch;
    out.push_back(Audit{"owner",
                        {{"uuid", e.uuid.str()}, {"domain", d.name}, {"owner", host_name(f.host)},
                         {"previous", host_name(prev)}, {"epoch", d.epoch}},
                        false});
  }
}

void ClusterEngine::fail_remotes(Out& out, const std::string& why, std::optional<NodeId> only_host) {
  for (auto it = remote_.begin(); it != remote_.end();) {
    if (only_host && it->second.host != *only_host) {
      ++it;
      continue;
    }
    Remote r = std::move(it->second);
    it = remote_.erase(it);
    proto::DomainEntry d{r.uuid, r.name, PowerState::unknown, host_name(r.host), 0, 0};
    reply(out, r.in, &d, Status::failure, errc::operation_failed, why + "; state not confirmed");
  }
}

bool ClusterEngine::view_complete() const {
  if (id_.configured.empty() || !quorate_) return false;
  for (NodeId h : id_.configured) {
    if (confirmed(h)) continue;
    if (!members_.count(h)) return false;
    auto it = hosts_.find(h);
    if (it == hosts_.end() || !it->second.facts || !it->second.facts->reachable) return false;
  }
  return true;
}

void ClusterEngine::on_history(const FenceHistoryIn& h, Out& out) {
  if (!lost(h.host) || !synced_) {
    history_.erase(h.host);
    return;
  }
  const std::uint32_t loss = hosts_[h.host].losses;
  auto it = history_.find(h.host);
  if (it == history_.end() || it->second.loss != loss) {
    // First look after this loss: whatever is recorded now may predate the loss, so it is only a baseline.
    history_[h.host] = Baseline{loss, h.last_fenced};
    return;
  }
  if (h.last_fenced <= it->second.fenced) return;
  it->second.fenced = h.last_fenced;
  const std::string by = "pacemaker fencing history (fenced at unix time " + std::to_string(h.last_fenced) + ")";
  out.push_back(Audit{"decision",
                      {{"host", host_name(h.host)}, {"loss", loss}, {"decision", "confirm-fenced"}, {"reason", by}},
                      true});
  out.push_back(LogLine{Level::notice, host_name(h.host) + " fenced according to " + by});
  const auto& hf = hosts_[h.host].facts;
  out.push_back(SendMsg{proto::MsgConfirmFenced{h.host, loss, by, hf ? hf->incarnation : 0, hf ? hf->seq : 0}});
}

// ---------------------------------------------------------------------------------------------------
// Requests

void ClusterEngine::reply(Out& out, const RequestIn& r, const proto::DomainEntry* d, Status st, errc code,
                          std::string message, bool sync_outcome) {
  boost::json::object f{{"request", r.id}, {"action", proto::action_name(r.request.action)}};
  if (d) {
    f["domain"] = d->name;
    f["uuid"] = d->uuid.str();
    f["host"] = d->host;
  }
  f["result"] = status_word(st);
  f["reason"] = message;
  out.push_back(Audit{"outcome", std::move(f), sync_outcome || is_fence(r.request.action)});
  out.push_back(LogLine{st == Status::failure && is_fence(r.request.action) ? Level::error : Level::notice,
                        fmt::format("{} {}: {} ({}) | request={}", proto::action_name(r.request.action),
                                    d ? d->name : r.request.target, status_word(st), message, r.id)});
  proto::Response resp;
  resp.status = st;
  resp.error = static_cast<std::uint16_t>(code);
  resp.message = std::move(message);
  resp.flags = proto::kResponseCluster | (quorate_ ? proto::kResponseQuorate : 0);
  if (d && (r.request.action == Action::status || is_fence(r.request.action))) resp.domains.push_back(*d);
  out.push_back(Reply{r.id, std::move(resp)});
}

void ClusterEngine::list(const RequestIn& r, Out& out) {
  proto::Response resp;
  resp.status = Status::success;
  resp.flags = proto::kResponseCluster | (quorate_ ? proto::kResponseQuorate : 0);
  for (const auto& [u, d] : domains_) {
    if (!allowed(r.key, d.name) && !allowed(r.key, u.str())) continue;
    proto::DomainEntry e{u, d.name, PowerState::unknown, host_name(d.owner), d.epoch, 0};
    NodeId shown = d.owner;
    if (d.owner == 0) {
      // Never ran anywhere we know of: show the lowest host that has it defined.
      for (const auto& [h, rec] : hosts_)
        if (rec.facts && std::any_of(rec.facts->entries.begin(), rec.facts->entries.end(),
                                     [&](const auto& x) { return x.uuid == u; })) {
          shown = h;
          break;
        }
      e.host = host_name(shown);
    }
    if (lost(d.owner)) {
      e.flags |= proto::kDomainOwnerLost;
    } else if (confirmed(d.owner)) {
      e.flags |= proto::kDomainHostFenced;
      e.state = PowerState::shutoff;
    } else {
      e.state = state_on(shown, u);
    }
    if (hosts_reporting_active(u).size() > 1) e.flags |= proto::kDomainDuplicate;
    resp.domains.push_back(std::move(e));
  }
  resp.message = fmt::format("{} domains, {} members{}", resp.domains.size(), members_.size(),
                             quorate_ ? "" : ", no quorum");
  out.push_back(Audit{"outcome",
                      {{"request", r.id}, {"action", proto::action_name(r.request.action)}, {"result", "success"},
                       {"domains", resp.domains.size()}},
                      false});
  out.push_back(Reply{r.id, std::move(resp)});
}

void ClusterEngine::host_list(const RequestIn& r, Out& out) {
  proto::Response resp;
  resp.status = Status::success;
  resp.flags = proto::kResponseCluster | (quorate_ ? proto::kResponseQuorate : 0);
  std::set<NodeId> all = members_;
  for (const auto& [h, rec] : hosts_) all.insert(h);
  for (NodeId h : all) {
    proto::HostEntry e;
    e.id = h;
    e.name = host_name(h);
    auto it = hosts_.find(h);
    if (it != hosts_.end()) {
      e.losses = it->second.losses;
      e.confirmed_by = it->second.confirmed_by;
      e.libvirt_up = it->second.facts && it->second.facts->reachable;
    }
    e.status = h == id_.self ? 3 : members_.count(h) ? 0 : confirmed(h) ? 2 : 1;
    resp.hosts.push_back(std::move(e));
  }
  resp.message = fmt::format("{} members{}", members_.size(), quorate_ ? ", quorate" : ", NOT quorate");
  out.push_back(Reply{r.id, std::move(resp)});
}

void ClusterEngine::confirm(const RequestIn& r, Out& out) {
  NodeId host = 0;
  for (const auto& [h, rec] : hosts_)
    if (host_name(h) == r.request.target || std::to_string(h) == r.request.target) host = h;
  if (host == 0)
    return reply(out, r, nullptr, Status::failure, errc::operation_failed, "no host '" + r.request.target + "'");
  if (members_.count(host))
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 host_name(host) + " is a member: only a lost host can be confirmed fenced");
  if (!lost(host))
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 host_name(host) + " is not lost (or already confirmed)");
  const auto& hf = hosts_[host].facts;
  proto::MsgConfirmFenced m{host, hosts_[host].losses, "vguardctl " + r.requester, hf ? hf->incarnation : 0,
                            hf ? hf->seq : 0};
  out.push_back(Audit{"request",
                      {{"request", r.id}, {"requester", r.requester}, {"action", "confirm-fenced"},
                       {"target", host_name(host)}, {"loss", m.loss}},
                      true});
  confirms_[r.id] = r;
  out.push_back(SendMsg{std::move(m)});
}

// The hook asks before a domain starts here. Without the claim protocol (start claims come with the start
// guard), this refuses what the replicated map already shows: the domain active on another member, or owned
// by a lost host that is not confirmed fenced.
void ClusterEngine::prepare(const RequestIn& r, Out& out) {
  out.push_back(Audit{"request",
                      {{"request", r.id}, {"requester", r.requester}, {"action", "hook-prepare"},
                       {"target", r.request.target}},
                      false});
  const auto u = Uuid::parse(r.request.target);
  if (!u) return reply(out, r, nullptr, Status::failure, errc::no_such_domain, "not a UUID: " + r.request.target);
  const auto it = domains_.find(*u);
  const std::string name = it == domains_.end() ? u->str() : it->second.name;
  for (NodeId h : hosts_reporting_active(*u)) {
    if (h == id_.self) continue;
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 name + " is running on " + host_name(h) + " (epoch " +
                     std::to_string(it == domains_.end() ? 0 : it->second.epoch) + ")");
  }
  for (const auto& [h, hr] : hosts_) {
    if (!lost(h)) continue;
    const bool maybe = (it != domains_.end() && it->second.owner == h) || (hr.facts && active_in(*hr.facts, *u));
    if (maybe)
      return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                   name + "'s last host " + host_name(h) + " is lost and not confirmed fenced");
  }
  reply(out, r, nullptr, Status::success, errc::ok, "no other host runs or owns " + name);
}

void ClusterEngine::on_request(TimeMs now, const RequestIn& r, Out& out) {
  const auto& q = r.request;
  const Action a = q.action;
  if (a == Action::hosts) return host_list(r, out);
  if (a == Action::hook_prepare && !r.key && (!in_view_ || !synced_ || !quorate_)) {
    // Starts need a quorate, synchronized partition: elsewhere the domain may be running unseen.
    out.push_back(Audit{"request",
                        {{"request", r.id}, {"requester", r.requester}, {"action", "hook-prepare"},
                         {"target", q.target}},
                        false});
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 !in_view_ ? "this host is in no cluster view" : !synced_ ? "cluster state transfer in progress"
                                                                        : "this partition has no quorum");
  }
  if (!in_view_ || !synced_) {
    // Outside a view, or before the state transfer completed, the replica is not to be trusted: only this
    // host's own domains can be acted on, and only when they are verifiably here.
    const bool local_target = [&] {
      for (const auto& [u, d] : local_domains_)
        if (u.str() == q.target || d.name == q.target) return true;
      return false;
    }();
    if (local_target && (a == Action::status || a == Action::off || a == Action::reboot))
      return forward_local(out, local_.handle(Event{now, r}));
    out.push_back(Audit{"request",
                        {{"request", r.id}, {"requester", r.requester}, {"key", key_name(r.key)},
                         {"action", proto::action_name(a)}, {"target", q.target}},
                        false});
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 in_view_ ? "cluster state transfer in progress; try again" : "this host is in no cluster view");
  }
  if (a == Action::hook_prepare || a == Action::hook_release) {
    if (r.key) return reply(out, r, nullptr, Status::denied, errc::permission_denied, "control socket only");
    if (a == Action::hook_release) return reply(out, r, nullptr, Status::success, errc::ok, "noted");
    return prepare(r, out);
  }
  if (a == Action::confirm_fenced) {
    if (r.key) return reply(out, r, nullptr, Status::denied, errc::permission_denied, "control socket only");
    return confirm(r, out);
  }
  out.push_back(Audit{"request",
                      {{"request", r.id}, {"requester", r.requester}, {"key", key_name(r.key)},
                       {"action", proto::action_name(a)}, {"target", q.target}},
                      false});
  if (a == Action::list || a == Action::list_status) return list(r, out);
  if (a == Action::monitor) {
    if (hv_connected_) return reply(out, r, nullptr, Status::success, errc::ok, "vguardd, libvirt and the cluster are up");
    return reply(out, r, nullptr, Status::failure, errc::hypervisor_unreachable, "libvirt connection is down");
  }

  // Resolve the target across the cluster: a UUID, or a name that must match exactly one domain.
  std::optional<Uuid> u = Uuid::parse(q.target);
  if ((q.flags & proto::kFlagTargetIsUuid) && !u)
    return reply(out, r, nullptr, Status::failure, errc::no_such_domain, "'" + q.target + "' is not a UUID");
  if (!u) {
    std::set<Uuid> matches;
    for (const auto& [id, d] : domains_)
      if (d.name == q.target) matches.insert(id);
    for (const auto& [h, rec] : hosts_)
      if (rec.facts)
        for (const auto& e : rec.facts->entries)
          if (e.name == q.target) matches.insert(e.uuid);
    if (!allowed(r.key, q.target) && matches.size() != 1)
      return reply(out, r, nullptr, Status::denied, errc::permission_denied,
                   "key '" + key_name(r.key) + "' may not act on '" + q.target + "'");
    if (matches.size() > 1)
      return reply(out, r, nullptr, Status::failure, errc::ambiguous_domain,
                   "name '" + q.target + "' matches " + std::to_string(matches.size()) + " domains; use the UUID");
    if (matches.size() == 1) u = *matches.begin();
  }
  std::string name = q.target;
  const proto::DomainRecord* rec = nullptr;
  if (u) {
    if (auto it = domains_.find(*u); it != domains_.end()) {
      rec = &it->second;
      name = rec->name;
    }
  }
  const bool ok = u ? (allowed(r.key, name) || allowed(r.key, u->str())) : allowed(r.key, q.target);
  if (!ok)
    return reply(out, r, nullptr, Status::denied, errc::permission_denied,
                 "key '" + key_name(r.key) + "' may not act on '" + q.target + "'");
  if (!u) return reply(out, r, nullptr, Status::failure, errc::no_such_domain, "no domain '" + q.target + "' in the cluster");

  // Which host runs it? The members reporting it active, else its recorded owner, else a member that has it
  // defined (shut off there).
  const auto active = hosts_reporting_active(*u);
  if (active.size() > 1) {
    proto::DomainEntry d{*u, name, PowerState::unknown, host_name(active[0]), rec ? rec->epoch : 0,
                         proto::kDomainDuplicate};
    return reply(out, r, &d, Status::failure, errc::operation_failed,
                 fmt::format("{} is reported active on {} and {}; refusing to guess", name, host_name(active[0]),
                             host_name(active[1])));
  }
  // A lost host whose last facts listed the domain as possibly active may still run it.
  for (const auto& [h, hr] : hosts_) {
    if (!lost(h)) continue;
    const bool maybe = (rec && rec->owner == h) || (hr.facts && active_in(*hr.facts, *u));
    if (!maybe) continue;  // even if a member reports it active too: both copies may run
    proto::DomainEntry d{*u, name, PowerState::unknown, host_name(h), rec ? rec->epoch : 0, proto::kDomainOwnerLost};
    return reply(out, r, &d, Status::failure, errc::operation_failed,
                 fmt::format("owner {} of {} is lost (left the membership, loss {}) and not confirmed fenced; "
                             "confirm with 'vguardctl host confirm-fenced {}' once it is powered off",
                             host_name(h), name, hr.losses, host_name(h)));
  }
  NodeId target = 0;
  if (!active.empty()) {
    target = active[0];
  } else if (rec && rec->owner != 0 && members_.count(rec->owner)) {
    target = rec->owner;
  } else if (rec && rec->owner != 0 && confirmed(rec->owner) && quorate_) {
    // Evidence (b): its host was power-fenced for its current loss and no member reports it active.
    proto::DomainEntry d{*u, name, PowerState::shutoff, host_name(rec->owner), rec->epoch, proto::kDomainHostFenced};
    const std::string why = host_name(rec->owner) + " was confirmed fenced by " + hosts_[rec->owner].confirmed_by;
    switch (a) {
      case Action::status: return reply(out, r, &d, Status::off, errc::ok, "off: " + why);
      case Action::off:
      case Action::reboot: return reply(out, r, &d, Status::success, errc::ok, "already off: " + why);
      default: break;  // on: start it where it is defined (below)
    }
  }
  if (target == 0 && (!active.empty() || (rec && rec->owner != 0)))
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 "owner of " + name + " cannot be reached from this partition");
  if (target == 0 && a != Action::on && !view_complete())
    // No host ever ran it (as far as this replica knows): "shut off where it is defined" is evidence only when
    // every configured host is here with its libvirt, or confirmed fenced (safety-design.md §1, evidence c).
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 name + " has no known owner and not every configured host is present, so its state cannot be "
                        "proven (configure [cluster] nodes)");
  if (target == 0) {
    for (NodeId m : members_) {
      const auto& hr = hosts_[m];
      if (hr.facts && std::any_of(hr.facts->entries.begin(), hr.facts->entries.end(),
                                  [&](const auto& e) { return e.uuid == *u; })) {
        target = m;
        break;
      }
    }
  }
  if (target == 0)
    return reply(out, r, nullptr, Status::failure, errc::no_such_domain, "no member has domain '" + name + "'");
  if (target == id_.self) {
    // Our own domain: the local engine decides on libvirt's word (it audits the request itself too).
    out.pop_back();  // its own request record replaces ours
    return forward_local(out, local_.handle(Event{now, r}));
  }
  if (!quorate_)
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 "this partition has no quorum: refusing to act on " + name + " on " + host_name(target));
  const std::uint32_t budget =
      std::min(q.budget_ms == 0 ? policy_.default_budget_ms : q.budget_ms, policy_.max_budget_ms);
  proto::MsgFence m;
  m.requester = id_.self;
  m.request = r.id;
  m.target_host = target;
  m.uuid = *u;
  m.action = a;
  // The executing host gets a little less time, so its answer can still reach us before our deadline.
  m.budget_ms = budget > 200 ? budget - 100 : budget;
  m.key_name = key_name(r.key);
  m.epoch = rec ? rec->epoch : 0;
  out.push_back(Audit{"decision",
                      {{"request", r.id}, {"domain", name}, {"uuid", u->str()}, {"decision", "route"},
                       {"reason", "runs on " + host_name(target)}},
                      false});
  remote_[r.id] = Remote{r, target, *u, name, now + budget, rec ? rec->owner : 0, rec ? rec->epoch : 0};
  out.push_back(SendMsg{std::move(m)});
}

}  // namespace vguard::fenced
