#pragma once
// vguardd ↔ vguardd messages over the cluster bus (corosync CPG), protocol v1.
// Frame: u32le length | u8 version | u8 kind = 3 | key id[8] (cluster key) | u8 type | body | HMAC-SHA256[32]
// over everything before the MAC, like client frames (message.h), with a larger limit: a SYNC carries the
// whole map. Bodies are explicit little-endian fields; see the encoders for the exact order.
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "message.h"
#include "result.h"
#include "uuid.h"

namespace vguard::proto {

inline constexpr std::size_t kMaxClusterFrame = 16 * 1024 * 1024;

using NodeId = std::uint32_t;

/// One domain as a host's libvirt reports it.
struct FactsEntry {
  Uuid uuid;
  std::string name;
  PowerState state = PowerState::unknown;
  bool migrated_away = false;
  friend bool operator==(const FactsEntry&, const FactsEntry&) = default;
};

/// What one host's libvirt reports (safety-design.md §5 FACTS). A host is the only authority on what is
/// active on it. (incarnation, seq) orders a host's reports; a newer incarnation is a restarted vguardd.
struct Facts {
  NodeId host = 0;
  std::string hostname;
  std::uint64_t incarnation = 0;
  std::uint64_t seq = 0;
  bool reachable = false;  ///< libvirt connected; when false every entry counts as maybe active
  std::vector<FactsEntry> entries;
  friend bool operator==(const Facts&, const Facts&) = default;
};

/// Replicated per-host record.
struct HostRecord {
  NodeId id = 0;
  std::string hostname;
  std::uint32_t losses = 0;            ///< how many times it left the membership (its current loss = losses)
  std::uint32_t confirmed_loss = 0;    ///< the loss number confirmed fenced (== losses: confirmed now)
  std::string confirmed_by;            ///< who confirmed, for the record
  std::uint64_t confirmed_incarnation = 0;  ///< the host's last FACTS (incarnation, seq) the confirmer saw:
  std::uint64_t confirmed_seq = 0;          ///< newer FACTS (it ran again somewhere) void the confirmation
  std::optional<Facts> facts;          ///< its last FACTS
  friend bool operator==(const HostRecord&, const HostRecord&) = default;
};

/// Replicated per-domain record.
struct DomainRecord {
  Uuid uuid;
  std::string name;
  NodeId owner = 0;         ///< 0 = none
  std::uint64_t epoch = 0;  ///< grows on every change of owner, in the agreed order
  friend bool operator==(const DomainRecord&, const DomainRecord&) = default;
};

struct MsgFacts {
  Facts facts;
};
/// Sent by every member as its first message after each membership change (state transfer and merge).
struct MsgSync {
  NodeId from = 0;
  std::uint64_t incarnation = 0;
  bool has_state = false;  ///< carries the replicated tables (one member per previously synced group does)
  std::vector<NodeId> view;  ///< the members of the view it was built for (a SYNC counts only in that view)
  std::vector<HostRecord> hosts;
  std::vector<DomainRecord> domains;
  Facts facts;  ///< the sender's own fresh FACTS
};
/// Asks the host that runs a domain to carry out a fence action.
struct MsgFence {
  NodeId requester = 0;
  std::uint64_t request = 0;  ///< requester-local id
  NodeId target_host = 0;
  Uuid uuid;
  Action action = Action::status;
  std::uint32_t budget_ms = 0;
  std::string key_name;       ///< who asked, for the executing host's log
  std::uint64_t epoch = 0;    ///< the domain's epoch when it was routed; the executor refuses another one
};
/// The executing host's answer.
struct MsgFenceDone {
  NodeId requester = 0;
  std::uint64_t request = 0;
  NodeId from = 0;
  Uuid uuid;
  Status status = Status::failure;
  std::uint16_t error = 0;
  std::string message;
  std::uint64_t epoch = 0;  ///< the routed epoch (echoed from FENCE)
};
/// An administrator (or Pacemaker) confirmed that a lost host was power-fenced for its loss number `loss`.
struct MsgConfirmFenced {
  NodeId host = 0;
  std::uint32_t loss = 0;
  std::string by;
  std::uint64_t facts_incarnation = 0;  ///< the host's last FACTS the confirmer saw (0/0: none)
  std::uint64_t facts_seq = 0;
};

using ClusterMsg = std::variant<MsgFacts, MsgSync, MsgFence, MsgFenceDone, MsgConfirmFenced>;

/// Encodes a message signed with the cluster key.
std::string encode_cluster(const KeyId& key_id, std::string_view key, const ClusterMsg& m);
/// Verifies (CRYPTO_memcmp) and decodes. Errors: bad_frame, bad_version, bad_mac, unknown_key (key id differs).
Result<ClusterMsg> decode_cluster(std::string_view frame, const KeyId& key_id, std::string_view key);

}  // namespace vguard::proto
