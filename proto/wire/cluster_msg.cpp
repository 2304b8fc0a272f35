#include "cluster_msg.h"

#include "codec.h"
#include "crypto.h"

namespace vguard::proto {
namespace {

constexpr std::uint8_t kKindCluster = 3;
constexpr std::size_t kHeader = 4 + 1 + 1 + 8;
enum class Type : std::uint8_t {
  facts = 1,
  sync = 2,
  fence = 3,
  fence_done = 4,
  confirm_fenced = 5,
  claim = 6,
  ack = 7,
  reconfirm = 8,
  release = 9,
  migrate_end = 10,
  sync_ok = 11,
};

std::string_view clip(std::string_view s) { return s.size() > kMaxString ? s.substr(0, kMaxString) : s; }

void u64(Writer& w, std::uint64_t v) { w.i64(static_cast<std::int64_t>(v)); }
bool u64(Reader& r, std::uint64_t& v) {
  std::int64_t x = 0;
  if (!r.i64(x)) return false;
  v = static_cast<std::uint64_t>(x);
  return true;
}

void put(Writer& w, const Facts& f) {
  w.u32(f.host);
  w.str(clip(f.hostname));
  u64(w, f.incarnation);
  u64(w, f.seq);
  w.u8(f.reachable ? 1 : 0);
  w.u32(static_cast<std::uint32_t>(f.entries.size()));
  for (const auto& e : f.entries) {
    w.bytes(e.uuid.bytes);
    w.str(clip(e.name));
    w.u8(static_cast<std::uint8_t>(e.state));
    w.u8(e.migrated_away ? 1 : 0);
  }
}
bool get(Reader& r, Facts& f) {
  std::uint8_t reach = 0;
  std::uint32_t n = 0;
  if (!r.u32(f.host) || !r.str(f.hostname) || !u64(r, f.incarnation) || !u64(r, f.seq) || !r.u8(reach) || !r.u32(n))
    return false;
  if (reach > 1 || n > kMaxClusterFrame / 21) return false;
  f.reachable = reach == 1;
  f.entries.resize(n);
  for (std::size_t i = 0; i < f.entries.size(); ++i) {
    auto& e = f.entries[i];
    std::uint8_t st = 0, mig = 0;
    if (!r.bytes(e.uuid.bytes) || !r.str(e.name) || !r.u8(st) || !r.u8(mig) || st > 4 || mig > 1) return false;
    // Entries are in strictly ascending UUID order (the sender lists a std::map), so lookups can bisect.
    if (i > 0 && !(f.entries[i - 1].uuid < e.uuid)) return false;
    e.state = static_cast<PowerState>(st);
    e.migrated_away = mig == 1;
  }
  return true;
}

void put(Writer& w, const HostRecord& h) {
  w.u32(h.id);
  w.str(clip(h.hostname));
  w.u32(h.losses);
  w.u32(h.confirmed_loss);
  w.str(clip(h.confirmed_by));
  u64(w, h.confirmed_incarnation);
  u64(w, h.confirmed_seq);
  w.u8(h.facts ? 1 : 0);
  if (h.facts) put(w, *h.facts);
}
bool get(Reader& r, HostRecord& h) {
  std::uint8_t has = 0;
  if (!r.u32(h.id) || !r.str(h.hostname) || !r.u32(h.losses) || !r.u32(h.confirmed_loss) || !r.str(h.confirmed_by) ||
      !u64(r, h.confirmed_incarnation) || !u64(r, h.confirmed_seq) || !r.u8(has) || has > 1)
    return false;
  if (has) {
    h.facts.emplace();
    return get(r, *h.facts);
  }
  return true;
}

struct Encoder {
  Writer& w;
  void operator()(const MsgFacts& m) {
    w.u8(static_cast<std::uint8_t>(Type::facts));
    put(w, m.facts);
  }
  void operator()(const MsgSync& m) {
    w.u8(static_cast<std::uint8_t>(Type::sync));
    w.u32(m.from);
    u64(w, m.incarnation);
    w.u8(m.has_state ? 1 : 0);
    w.u8(m.stateful ? 1 : 0);
    u64(w, m.gen);
    w.u32(static_cast<std::uint32_t>(m.view.size()));
    for (NodeId v : m.view) w.u32(v);
    w.u32(static_cast<std::uint32_t>(m.hosts.size()));
    for (const auto& h : m.hosts) put(w, h);
    w.u32(static_cast<std::uint32_t>(m.domains.size()));
    for (const auto& d : m.domains) {
      w.bytes(d.uuid.bytes);
      w.str(clip(d.name));
      w.u32(d.owner);
      u64(w, d.epoch);
      w.u32(d.mig_source);
      w.u32(d.mig_target);
      u64(w, d.mig_epoch);
      w.u8(d.mig_phase);
      u64(w, d.gen);
    }
    put(w, m.facts);
    u64(w, m.round);
    w.u32(static_cast<std::uint32_t>(m.relayed.size()));
    for (const auto& f : m.relayed) put(w, f);
  }
  void operator()(const MsgSyncOk& m) {
    w.u8(static_cast<std::uint8_t>(Type::sync_ok));
    w.u32(m.from);
    u64(w, m.incarnation);
    u64(w, m.round);
  }
  void operator()(const MsgFence& m) {
    w.u8(static_cast<std::uint8_t>(Type::fence));
    w.u32(m.requester);
    u64(w, m.request);
    w.u32(m.target_host);
    w.bytes(m.uuid.bytes);
    w.u8(static_cast<std::uint8_t>(m.action));
    w.u32(m.budget_ms);
    w.str(clip(m.key_name));
    u64(w, m.epoch);
  }
  void operator()(const MsgFenceDone& m) {
    w.u8(static_cast<std::uint8_t>(Type::fence_done));
    w.u32(m.requester);
    u64(w, m.request);
    w.u32(m.from);
    w.bytes(m.uuid.bytes);
    w.u8(static_cast<std::uint8_t>(m.status));
    w.u16(m.error);
    w.str(clip(m.message));
    u64(w, m.epoch);
  }
  void operator()(const MsgConfirmFenced& m) {
    w.u8(static_cast<std::uint8_t>(Type::confirm_fenced));
    w.u32(m.host);
    w.u32(m.loss);
    w.str(clip(m.by));
    u64(w, m.facts_incarnation);
    u64(w, m.facts_seq);
  }
  void operator()(const MsgClaim& m) {
    w.u8(static_cast<std::uint8_t>(Type::claim));
    w.u8(static_cast<std::uint8_t>(m.kind));
    w.u32(m.requester);
    u64(w, m.request);
    w.bytes(m.uuid.bytes);
    w.str(clip(m.name));
    u64(w, m.expected_epoch);
  }
  void operator()(const MsgAck& m) {
    w.u8(static_cast<std::uint8_t>(Type::ack));
    w.u32(m.requester);
    u64(w, m.request);
    w.u32(m.round);
  }
  void operator()(const MsgReconfirm& m) {
    w.u8(static_cast<std::uint8_t>(Type::reconfirm));
    w.u32(m.requester);
    u64(w, m.request);
    w.bytes(m.uuid.bytes);
    u64(w, m.epoch);
    w.u32(m.round);
  }
  void operator()(const MsgRelease& m) {
    w.u8(static_cast<std::uint8_t>(Type::release));
    w.u32(m.host);
    w.bytes(m.uuid.bytes);
    u64(w, m.epoch);
    u64(w, m.request);
    w.str(clip(m.reason));
  }
  void operator()(const MsgMigrateEnd& m) {
    w.u8(static_cast<std::uint8_t>(Type::migrate_end));
    w.u32(m.host);
    w.bytes(m.uuid.bytes);
    u64(w, m.mig_epoch);
    w.u8(m.ok ? 1 : 0);
    w.str(clip(m.reason));
  }
};

Result<ClusterMsg> decode_body(Reader& r) {
  std::uint8_t type = 0;
  if (!r.u8(type)) return make_error(errc::bad_frame, "missing message type");
  auto truncated = [&](const char* what) { return make_error(errc::bad_frame, std::string("malformed ") + what); };
  switch (static_cast<Type>(type)) {
    case Type::facts: {
      MsgFacts m;
      if (!get(r, m.facts)) return truncated("FACTS");
      return ClusterMsg{std::move(m)};
    }
    case Type::sync: {
      MsgSync m;
      std::uint8_t has = 0, stateful = 0;
      std::uint32_t nh = 0, nd = 0;
      std::uint32_t nv = 0;
      if (!r.u32(m.from) || !u64(r, m.incarnation) || !r.u8(has) || has > 1 || !r.u8(stateful) || stateful > 1 ||
          !u64(r, m.gen) || !r.u32(nv) || nv > 65536)
        return truncated("SYNC");
      m.stateful = stateful == 1;
      m.view.resize(nv);
      for (auto& v : m.view)
        if (!r.u32(v)) return truncated("SYNC view");
      if (!r.u32(nh) || nh > 65536) return truncated("SYNC");
      m.has_state = has == 1;
      m.hosts.resize(nh);
      for (auto& h : m.hosts)
        if (!get(r, h)) return truncated("SYNC host");
      if (!r.u32(nd) || nd > kMaxClusterFrame / 30) return truncated("SYNC");
      m.domains.resize(nd);
      for (auto& d : m.domains)
        if (!r.bytes(d.uuid.bytes) || !r.str(d.name) || !r.u32(d.owner) || !u64(r, d.epoch) ||
            !r.u32(d.mig_source) || !r.u32(d.mig_target) || !u64(r, d.mig_epoch) || !r.u8(d.mig_phase) ||
            d.mig_phase > 2 || !u64(r, d.gen))
          return truncated("SYNC domain");
      if (!get(r, m.facts)) return truncated("SYNC facts");
      std::uint32_t nr = 0;
      if (!u64(r, m.round) || !r.u32(nr) || nr > 65536) return truncated("SYNC");
      m.relayed.resize(nr);
      for (auto& f : m.relayed)
        if (!get(r, f)) return truncated("SYNC relayed facts");
      return ClusterMsg{std::move(m)};
    }
    case Type::sync_ok: {
      MsgSyncOk m;
      if (!r.u32(m.from) || !u64(r, m.incarnation) || !u64(r, m.round)) return truncated("SYNC_OK");
      return ClusterMsg{std::move(m)};
    }
    case Type::fence: {
      MsgFence m;
      std::uint8_t a = 0;
      if (!r.u32(m.requester) || !u64(r, m.request) || !r.u32(m.target_host) || !r.bytes(m.uuid.bytes) || !r.u8(a) ||
          !r.u32(m.budget_ms) || !r.str(m.key_name) || !u64(r, m.epoch))
        return truncated("FENCE");
      if (!action_known(a)) return make_error(errc::unknown_action, "FENCE action " + std::to_string(a));
      m.action = static_cast<Action>(a);
      return ClusterMsg{std::move(m)};
    }
    case Type::fence_done: {
      MsgFenceDone m;
      std::uint8_t st = 0;
      if (!r.u32(m.requester) || !u64(r, m.request) || !r.u32(m.from) || !r.bytes(m.uuid.bytes) || !r.u8(st) ||
          st > 3 || !r.u16(m.error) || !r.str(m.message) || !u64(r, m.epoch))
        return truncated("FENCE_DONE");
      m.status = static_cast<Status>(st);
      return ClusterMsg{std::move(m)};
    }
    case Type::confirm_fenced: {
      MsgConfirmFenced m;
      if (!r.u32(m.host) || !r.u32(m.loss) || !r.str(m.by) || !u64(r, m.facts_incarnation) || !u64(r, m.facts_seq))
        return truncated("CONFIRM_FENCED");
      return ClusterMsg{std::move(m)};
    }
    case Type::claim: {
      MsgClaim m;
      std::uint8_t kind = 0;
      if (!r.u8(kind) || kind < 1 || kind > 2 || !r.u32(m.requester) || !u64(r, m.request) || !r.bytes(m.uuid.bytes) ||
          !r.str(m.name) || !u64(r, m.expected_epoch))
        return truncated("CLAIM");
      m.kind = static_cast<MsgClaim::Kind>(kind);
      return ClusterMsg{std::move(m)};
    }
    case Type::ack: {
      MsgAck m;
      if (!r.u32(m.requester) || !u64(r, m.request) || !r.u32(m.round)) return truncated("ACK");
      return ClusterMsg{m};
    }
    case Type::reconfirm: {
      MsgReconfirm m;
      if (!r.u32(m.requester) || !u64(r, m.request) || !r.bytes(m.uuid.bytes) || !u64(r, m.epoch) || !r.u32(m.round))
        return truncated("RECONFIRM");
      return ClusterMsg{m};
    }
    case Type::release: {
      MsgRelease m;
      if (!r.u32(m.host) || !r.bytes(m.uuid.bytes) || !u64(r, m.epoch) || !u64(r, m.request) || !r.str(m.reason))
        return truncated("RELEASE");
      return ClusterMsg{std::move(m)};
    }
    case Type::migrate_end: {
      MsgMigrateEnd m;
      std::uint8_t ok = 0;
      if (!r.u32(m.host) || !r.bytes(m.uuid.bytes) || !u64(r, m.mig_epoch) || !r.u8(ok) || ok > 1 || !r.str(m.reason))
        return truncated("MIGRATE_END");
      m.ok = ok == 1;
      return ClusterMsg{std::move(m)};
    }
  }
  return make_error(errc::bad_frame, "unknown cluster message type " + std::to_string(type));
}

}  // namespace

std::string encode_cluster(const KeyId& key_id, std::string_view key, const ClusterMsg& m) {
  Writer w;
  w.u32(0);
  w.u8(kVersion);
  w.u8(kKindCluster);
  w.bytes(key_id);
  std::visit(Encoder{w}, m);
  std::string& out = w.out();
  const std::size_t len = out.size() - 4 + kMacLen;
  VG_ASSERT(len <= kMaxClusterFrame, "cluster message exceeds kMaxClusterFrame");
  for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((len >> (8 * i)) & 0xff);
  out.append(as_view(hmac_sha256(key, out)));
  return std::move(out);
}

Result<ClusterMsg> decode_cluster(std::string_view frame, const KeyId& key_id, std::string_view key) {
  if (frame.size() < kHeader + kMacLen + 1) return make_error(errc::bad_frame, "cluster frame too short");
  std::size_t len = 0;
  for (std::size_t i = 0; i < 4; ++i) len |= static_cast<std::size_t>(static_cast<unsigned char>(frame[i])) << (8 * i);
  if (len != frame.size() - 4 || len > kMaxClusterFrame)
    return make_error(errc::bad_frame, "cluster frame length mismatch");
  const std::string_view signed_part = frame.substr(0, frame.size() - kMacLen);
  if (!ct_equal(as_view(hmac_sha256(key, signed_part)), frame.substr(frame.size() - kMacLen)))
    return make_error(errc::bad_mac, "cluster message MAC does not verify (another cluster key?)");
  Reader r(signed_part.substr(4));
  std::uint8_t version = 0, kind = 0;
  KeyId id{};
  r.u8(version);
  r.u8(kind);
  r.bytes(id);
  if (version != kVersion) return make_error(errc::bad_version, "cluster protocol version " + std::to_string(version));
  if (kind != kKindCluster) return make_error(errc::bad_frame, "not a cluster message");
  if (id != key_id) return make_error(errc::unknown_key, "cluster message signed with another key id");
  auto m = decode_body(r);
  if (!m) return m;
  if (!r.done()) return make_error(errc::bad_frame, "trailing bytes after cluster message");
  return m;
}

}  // namespace vguard::proto
