#include "message.h"

#include <cstring>

#include "codec.h"
#include "crypto.h"

namespace vguard::proto {
namespace {

constexpr std::uint8_t kKindRequest = 1;
constexpr std::uint8_t kKindResponse = 2;
constexpr std::size_t kHeader = 4 + 1 + 1 + 8;  // prefix, version, kind, key id

Writer start(std::uint8_t kind, const KeyId& key_id) {
  Writer w;
  w.u32(0);  // patched in finish()
  w.u8(kVersion);
  w.u8(kind);
  w.bytes(key_id);
  return w;
}

std::string finish(Writer& w, std::string_view key) {
  std::string& out = w.out();
  const std::size_t len = out.size() - 4 + kMacLen;
  VG_ASSERT(len <= kMaxFrame, "frame exceeds kMaxFrame");
  for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((len >> (8 * i)) & 0xff);
  const Digest mac = hmac_sha256(key, out);
  out.append(as_view(mac));
  return std::move(out);
}


}  // namespace

std::optional<Action> action_from_name(std::string_view n) {
  if (n == "off") return Action::off;
  if (n == "reboot") return Action::reboot;
  if (n == "on") return Action::on;
  if (n == "status") return Action::status;
  if (n == "monitor") return Action::monitor;
  if (n == "list") return Action::list;
  if (n == "list-status") return Action::list_status;
  if (n == "hook-prepare") return Action::hook_prepare;
  if (n == "hook-release") return Action::hook_release;
  if (n == "confirm-fenced") return Action::confirm_fenced;
  if (n == "hosts") return Action::hosts;
  if (n == "hook-migrate") return Action::hook_migrate;
  if (n == "hook-reconnect") return Action::hook_reconnect;
  return std::nullopt;
}

std::string_view action_name(Action a) {
  switch (a) {
    case Action::off: return "off";
    case Action::reboot: return "reboot";
    case Action::on: return "on";
    case Action::status: return "status";
    case Action::monitor: return "monitor";
    case Action::list: return "list";
    case Action::list_status: return "list-status";
    case Action::hook_prepare: return "hook-prepare";
    case Action::hook_release: return "hook-release";
    case Action::confirm_fenced: return "confirm-fenced";
    case Action::hosts: return "hosts";
    case Action::hook_migrate: return "hook-migrate";
    case Action::hook_reconnect: return "hook-reconnect";
  }
  return "?";
}

bool action_known(std::uint8_t v) {
  return (v >= 1 && v <= 7) || (v >= 16 && v <= 21);
}

std::string_view power_state_name(PowerState s) {
  switch (s) {
    case PowerState::unknown: return "unknown";
    case PowerState::running: return "running";
    case PowerState::paused: return "paused";
    case PowerState::shutoff: return "shut off";
    case PowerState::other: return "active";
  }
  return "?";
}

std::string encode_request(const KeyId& key_id, std::string_view key, const Request& r) {
  Writer w = start(kKindRequest, key_id);
  w.bytes(r.nonce);
  w.i64(r.timestamp_ms);
  w.u8(static_cast<std::uint8_t>(r.action));
  w.u8(r.flags);
  w.u32(r.budget_ms);
  w.str(r.target);
  return finish(w, key);
}

std::string_view clip(std::string_view s) { return s.size() > kMaxString ? s.substr(0, kMaxString) : s; }

std::string encode_response(const KeyId& key_id, std::string_view key, const Response& r) {
  // A response always fits in one frame: entries that would not fit are left out and the message says so
  // (a host with that many domains is listed in parts by name patterns). Never abort on data.
  std::string message(clip(r.message));
  std::size_t fixed = 4 + 1 + 1 + 8 + kNonceLen + 1 + 2 + 2 + kMaxString + 4 + kMacLen + 1 + 4;
  for (const auto& h : r.hosts) fixed += 4 + 2 + clip(h.name).size() + 1 + 4 + 2 + clip(h.confirmed_by).size() + 1;
  std::size_t fit = 0;
  for (const auto& d : r.domains) {
    const std::size_t entry = 16 + 2 + clip(d.name).size() + 1 + 2 + clip(d.host).size() + 8 + 1;
    if (fixed + entry - 4 > kMaxFrame) break;
    fixed += entry;
    ++fit;
  }
  if (fit < r.domains.size())
    message = std::string(clip(message + " (list truncated: " + std::to_string(fit) + " of " +
                               std::to_string(r.domains.size()) + " domains)"));
  Writer w = start(kKindResponse, key_id);
  w.bytes(r.nonce);
  w.u8(static_cast<std::uint8_t>(r.status));
  w.u16(r.error);
  w.str(message);
  w.u32(static_cast<std::uint32_t>(fit));
  for (std::size_t i = 0; i < fit; ++i) {
    const auto& d = r.domains[i];
    w.bytes(d.uuid.bytes);
    w.str(clip(d.name));
    w.u8(static_cast<std::uint8_t>(d.state));
    w.str(clip(d.host));
    w.i64(static_cast<std::int64_t>(d.epoch));
    w.u8(d.flags);
  }
  w.u8(r.flags);
  w.u32(static_cast<std::uint32_t>(r.hosts.size()));
  for (const auto& h : r.hosts) {
    w.u32(h.id);
    w.str(clip(h.name));
    w.u8(h.status);
    w.u32(h.losses);
    w.str(clip(h.confirmed_by));
    w.u8(h.libvirt_up ? 1 : 0);
  }
  return finish(w, key);
}

Result<std::size_t> frame_length(std::string_view prefix4) {
  if (prefix4.size() != 4) return make_error(errc::bad_frame, "length prefix must be 4 bytes");
  std::size_t len = 0;
  for (std::size_t i = 0; i < 4; ++i) len |= static_cast<std::size_t>(static_cast<unsigned char>(prefix4[i])) << (8 * i);
  if (len < kHeader - 4 + kMacLen)
    return make_error(errc::bad_frame, "frame length " + std::to_string(len) + " is shorter than header and MAC");
  if (len > kMaxFrame)
    return make_error(errc::bad_frame,
                      "frame length " + std::to_string(len) + " exceeds maximum " + std::to_string(kMaxFrame));
  return len;
}

Result<KeyId> peek_key_id(std::string_view frame) {
  if (frame.size() < kHeader) return make_error(errc::bad_frame, "frame shorter than its header");
  KeyId id{};
  std::memcpy(id.data(), frame.data() + 6, id.size());
  return id;
}

Result<Frame> decode_frame(std::string_view frame, std::string_view key) {
  if (frame.size() < 4) return make_error(errc::bad_frame, "truncated length prefix");
  auto len = frame_length(frame.substr(0, 4));
  if (!len) return len.error();
  if (frame.size() - 4 != *len)
    return make_error(errc::bad_frame, "frame has " + std::to_string(frame.size() - 4) + " bytes, length says " +
                                           std::to_string(*len));
  const std::string_view signed_part = frame.substr(0, frame.size() - kMacLen);
  const Digest want = hmac_sha256(key, signed_part);
  if (!ct_equal(as_view(want), frame.substr(frame.size() - kMacLen)))
    return make_error(errc::bad_mac, "frame MAC does not verify");

  Reader rd(signed_part.substr(4));
  std::uint8_t version = 0, kind = 0;
  Frame f;
  rd.u8(version);
  if (version != kVersion)
    return make_error(errc::bad_version, "version " + std::to_string(version) + ", expected " + std::to_string(kVersion));
  rd.u8(kind);
  rd.bytes(f.key_id);
  if (kind == kKindRequest) {
    Request r;
    std::uint8_t action = 0;
    if (!rd.bytes(r.nonce) || !rd.i64(r.timestamp_ms) || !rd.u8(action) || !rd.u8(r.flags) || !rd.u32(r.budget_ms) ||
        !rd.str(r.target))
      return make_error(errc::bad_frame, "truncated request body");
    if (!rd.done()) return make_error(errc::bad_frame, "trailing bytes after request body");
    if (!action_known(action)) return make_error(errc::unknown_action, "action code " + std::to_string(action));
    r.action = static_cast<Action>(action);
    f.request = std::move(r);
  } else if (kind == kKindResponse) {
    Response r;
    std::uint8_t status = 0;
    std::uint32_t count = 0;
    if (!rd.bytes(r.nonce) || !rd.u8(status) || !rd.u16(r.error) || !rd.str(r.message) || !rd.u32(count))
      return make_error(errc::bad_frame, "truncated response body");
    if (status > 3) return make_error(errc::bad_frame, "response status " + std::to_string(status));
    r.status = static_cast<Status>(status);
    // Each entry takes at least 19 bytes: bound count before reserving.
    if (count > kMaxFrame / 19) return make_error(errc::bad_frame, "domain count too large");
    r.domains.reserve(count);
    for (std::uint32_t i = 0; i < count; ++i) {
      DomainEntry d;
      std::uint8_t st = 0;
      std::int64_t epoch = 0;
      if (!rd.bytes(d.uuid.bytes) || !rd.str(d.name) || !rd.u8(st) || !rd.str(d.host) || !rd.i64(epoch) ||
          !rd.u8(d.flags))
        return make_error(errc::bad_frame, "truncated domain entry " + std::to_string(i));
      if (st > 4) return make_error(errc::bad_frame, "domain state " + std::to_string(st));
      d.state = static_cast<PowerState>(st);
      d.epoch = static_cast<std::uint64_t>(epoch);
      r.domains.push_back(std::move(d));
    }
    std::uint32_t nhosts = 0;
    if (!rd.u8(r.flags) || !rd.u32(nhosts)) return make_error(errc::bad_frame, "truncated response trailer");
    if (nhosts > 65536) return make_error(errc::bad_frame, "host count too large");
    for (std::uint32_t i = 0; i < nhosts; ++i) {
      HostEntry h;
      std::uint8_t up = 0;
      if (!rd.u32(h.id) || !rd.str(h.name) || !rd.u8(h.status) || !rd.u32(h.losses) || !rd.str(h.confirmed_by) ||
          !rd.u8(up) || up > 1)
        return make_error(errc::bad_frame, "truncated host entry " + std::to_string(i));
      h.libvirt_up = up == 1;
      r.hosts.push_back(std::move(h));
    }
    if (!rd.done()) return make_error(errc::bad_frame, "trailing bytes after response body");
    f.response = std::move(r);
  } else {
    return make_error(errc::bad_frame, "frame kind " + std::to_string(kind));
  }
  return f;
}

}  // namespace vguard::proto
