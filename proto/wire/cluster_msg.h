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
  std::vector<FactsEntry> entries;  ///< strictly ascending by uuid (decode refuses anything else)
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
  NodeId owner = 0;         ///< 0 = none (never owned, or released by its owner on evidence)
  std::uint64_t epoch = 0;  ///< grows on every grant and change of owner, in the agreed order
  /// A migration hand-over granted to `mig_target` (phase 1), switched over to it (phase 2: owner is the
  /// target, the source's copy may still exist until it reports it gone), or none/ended (0). mig_epoch only
  /// grows (the target's epoch once it owns the domain); a message naming another mig_epoch is stale.
  NodeId mig_source = 0;
  NodeId mig_target = 0;
  std::uint64_t mig_epoch = 0;
  std::uint8_t mig_phase = 0;
  /// The decisive generation in which the record last changed (see MsgSync::gen): a change made by a side
  /// that was not decisive never outranks one made later by a decisive view.
  std::uint64_t gen = 0;
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
  bool stateful = false;   ///< the sender completed a SYNC in a decisive view and has not restarted since
  std::uint64_t gen = 0;   ///< decisive generation: +1 at every SYNC that completes in a decisive view
  std::vector<NodeId> view;  ///< the members of the view it was built for (a SYNC counts only in that view)
  std::vector<HostRecord> hosts;
  std::vector<DomainRecord> domains;
  Facts facts;  ///< the sender's own fresh FACTS
  /// The sender's own count of the confchgs it has delivered when it built this SYNC (its round identity; see
  /// MsgSyncOk). Member lists recur, so the list alone does not tell a stale SYNC from a current one.
  std::uint64_t round = 0;
  /// Other hosts' FACTS the sender delivered in a SYNC round that never completed (dropped with that round):
  /// their host may have left since, so they travel here and the merge keeps each host's newest.
  std::vector<Facts> relayed;
};
/// "My SYNC of round `round` was current when I delivered it back": sent by every member when it delivers its
/// own SYNC and has delivered no confchg since it built it. A member's SYNC counts in a round only once this
/// confirmation of it is delivered too, so a SYNC queued for an earlier view with the same member list (one
/// ring change giving several confchgs) never counts in the later one.
struct MsgSyncOk {
  NodeId from = 0;
  std::uint64_t incarnation = 0;
  std::uint64_t round = 0;
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

/// REQUEST (safety-design.md §5): a start claim (the hook's "prepare begin") or a migration hand-over (the
/// target's "migrate begin"), decided by every member at delivery against the replica.
struct MsgClaim {
  enum class Kind : std::uint8_t { start = 1, migrate = 2 };
  Kind kind = Kind::start;
  NodeId requester = 0;
  std::uint64_t request = 0;  ///< requester-local id
  Uuid uuid;
  std::string name;
  std::uint64_t expected_epoch = 0;  ///< the epoch the requester saw; another one at delivery refuses
};
/// "I hold the grant of (requester, request)": sent by every member that granted it at delivery (round 0) or
/// that holds it when asked again after a membership change (round n, MsgReconfirm). The requester answers
/// yes once every member of the view has acknowledged the current round: the grant is then stable.
struct MsgAck {
  NodeId requester = 0;
  std::uint64_t request = 0;
  std::uint32_t round = 0;
};
/// After a membership change the requester of a granted, not yet stable claim asks the new view again.
struct MsgReconfirm {
  NodeId requester = 0;
  std::uint64_t request = 0;
  Uuid uuid;
  std::uint64_t epoch = 0;
  std::uint32_t round = 0;
};
/// STOPPED / ABORT: the owner gives a domain up on its own evidence (the release hook or libvirt's stop event
/// of that start, or "my hook was answered no"). A mismatched epoch, or a migration recorded, makes it a no-op.
struct MsgRelease {
  NodeId host = 0;
  Uuid uuid;
  std::uint64_t epoch = 0;
  std::uint64_t request = 0;  ///< the aborted claim, 0 for a stop
  std::string reason;
};
/// MIGRATE_END(fail) from the target on its own evidence (its incoming copy stopped before it ran, or its
/// hook was answered no): the record returns to the source. A mismatched mig_epoch makes it a no-op.
struct MsgMigrateEnd {
  NodeId host = 0;
  Uuid uuid;
  std::uint64_t mig_epoch = 0;
  bool ok = false;
  std::string reason;
};

using ClusterMsg = std::variant<MsgFacts, MsgSync, MsgFence, MsgFenceDone, MsgConfirmFenced, MsgClaim, MsgAck,
                                MsgReconfirm, MsgRelease, MsgMigrateEnd, MsgSyncOk>;

/// Encodes a message signed with the cluster key.
std::string encode_cluster(const KeyId& key_id, std::string_view key, const ClusterMsg& m);
/// Verifies (CRYPTO_memcmp) and decodes. Errors: bad_frame, bad_version, bad_mac, unknown_key (key id differs).
Result<ClusterMsg> decode_cluster(std::string_view frame, const KeyId& key_id, std::string_view key);

}  // namespace vguard::proto
