#include "message.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "crypto.h"
#include "key.h"

namespace vguard::proto {
namespace {

const std::string kKey = "vguard-golden-key-0123456789abcdef";

Request golden_request() {
  Request r;
  for (std::size_t i = 0; i < r.nonce.size(); ++i) r.nonce[i] = static_cast<std::uint8_t>(i + 1);
  r.timestamp_ms = 1795000000123;  // 2026-11-18
  r.action = Action::off;
  r.flags = kFlagTargetIsUuid;
  r.budget_ms = 30000;
  r.target = "11111111-1111-1111-1111-111111111111";
  return r;
}

Response golden_response() {
  Response r;
  r.nonce = golden_request().nonce;
  r.status = Status::off;
  r.error = 0;
  r.message = "vm-alpha is shut off";
  r.domains.push_back({*Uuid::parse("11111111-1111-1111-1111-111111111111"), "vm-alpha", PowerState::shutoff});
  r.domains.push_back({*Uuid::parse("22222222-2222-2222-2222-222222222222"), "vm-beta", PowerState::running, "h2", 7,
                       kDomainOwnerLost});
  r.flags = kResponseQuorate | kResponseCluster;
  r.hosts.push_back({2, "h2", 1, 3, "", false});
  r.hosts.push_back({3, "h3", 2, 1, "root@h1", true});
  return r;
}

// Golden files hold hex; VG_REGENERATE=1 rewrites them from the encoder (review the diff).
void check_golden(const std::string& name, const std::string& bytes) {
  const std::string path = std::string(VG_TEST_DATA) + "/proto/" + name;
  const std::string hex = to_hex(bytes);
  if (std::getenv("VG_REGENERATE")) {
    std::ofstream(path) << hex << "\n";
  }
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing golden file " << path << " (run with VG_REGENERATE=1)";
  std::string want;
  in >> want;
  EXPECT_EQ(hex, want) << "encoding of " << name << " changed: wire compatibility broken";
}

TEST(Message, RequestGoldenVector) {
  const KeyId id = key_id_of(kKey);
  check_golden("request_v1.hex", encode_request(id, kKey, golden_request()));
}

TEST(Message, ResponseGoldenVector) {
  const KeyId id = key_id_of(kKey);
  check_golden("response_v1.hex", encode_response(id, kKey, golden_response()));
}

TEST(Message, GoldenRequestDecodes) {
  std::ifstream in(std::string(VG_TEST_DATA) + "/proto/request_v1.hex");
  std::string hex;
  in >> hex;
  auto bytes = from_hex(hex);
  ASSERT_TRUE(bytes);
  auto f = decode_frame(*bytes, kKey);
  ASSERT_TRUE(f) << f.error().message();
  ASSERT_TRUE(f->request);
  EXPECT_EQ(f->request->target, golden_request().target);
  EXPECT_EQ(f->request->action, Action::off);
  EXPECT_EQ(f->request->timestamp_ms, golden_request().timestamp_ms);
  EXPECT_EQ(f->key_id, key_id_of(kKey));
}

TEST(Message, RequestRoundTrip) {
  for (auto a : {Action::off, Action::reboot, Action::on, Action::status, Action::monitor, Action::list,
                 Action::list_status, Action::hook_prepare, Action::hook_release}) {
    Request r = golden_request();
    r.action = a;
    r.target = std::string(kMaxString, 'x');
    auto f = decode_frame(encode_request(key_id_of(kKey), kKey, r), kKey);
    ASSERT_TRUE(f) << f.error().message();
    EXPECT_EQ(f->request->action, a);
    EXPECT_EQ(f->request->target, r.target);
    EXPECT_EQ(f->request->nonce, r.nonce);
    EXPECT_EQ(f->request->budget_ms, r.budget_ms);
    EXPECT_EQ(f->request->flags, r.flags);
  }
}

TEST(Message, ResponseRoundTrip) {
  auto f = decode_frame(encode_response(kLocalKeyId, "", golden_response()), "");
  ASSERT_TRUE(f) << f.error().message();
  ASSERT_TRUE(f->response);
  EXPECT_EQ(f->response->domains, golden_response().domains);
  EXPECT_EQ(f->response->message, golden_response().message);
  EXPECT_EQ(f->response->status, Status::off);
  EXPECT_EQ(f->response->hosts, golden_response().hosts);
  EXPECT_EQ(f->response->flags, golden_response().flags);
}

TEST(Message, WrongKeyIsBadMac) {
  auto frame = encode_request(key_id_of(kKey), kKey, golden_request());
  auto f = decode_frame(frame, "another-key-of-sufficient-length");
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, make_error_code(errc::bad_mac));
}

TEST(Message, EveryFlippedBitIsRejected) {
  const auto frame = encode_request(key_id_of(kKey), kKey, golden_request());
  for (std::size_t i = 4; i < frame.size(); ++i) {
    for (int bit = 0; bit < 8; bit += 3) {
      std::string bad = frame;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      auto f = decode_frame(bad, kKey);
      EXPECT_FALSE(f) << "flip at byte " << i << " accepted";
    }
  }
}

TEST(Message, EveryTruncationIsRejected) {
  const auto frame = encode_request(key_id_of(kKey), kKey, golden_request());
  for (std::size_t n = 0; n < frame.size(); ++n) {
    auto f = decode_frame(frame.substr(0, n), kKey);
    ASSERT_FALSE(f) << "truncation to " << n << " accepted";
    EXPECT_EQ(f.error().code, make_error_code(errc::bad_frame)) << n;
  }
}

TEST(Message, LengthPrefixLimits) {
  auto l = frame_length(std::string("\x00\x00\x00\x00", 4));
  EXPECT_FALSE(l);
  l = frame_length(std::string("\x01\x00\x01\x00", 4));  // 65537
  ASSERT_FALSE(l);
  EXPECT_NE(l.error().context.find("exceeds"), std::string::npos);
  l = frame_length(std::string("\xff\xff\xff\xff", 4));
  EXPECT_FALSE(l);
  l = frame_length(std::string("\x60\x00\x00\x00", 4));
  ASSERT_TRUE(l);
  EXPECT_EQ(*l, 0x60u);
}

// Builds a correctly signed frame with arbitrary content, to reach the checks behind the MAC.
std::string sign_raw(std::string body_after_prefix) {
  std::string out(4, '\0');
  const std::size_t len = body_after_prefix.size() + kMacLen;
  for (int i = 0; i < 4; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((len >> (8 * i)) & 0xff);
  out += body_after_prefix;
  out += std::string(as_view(hmac_sha256(kKey, out)));
  return out;
}

TEST(Message, SignedButMalformedBodies) {
  const auto good = encode_request(key_id_of(kKey), kKey, golden_request());
  std::string inner = good.substr(4, good.size() - 4 - kMacLen);

  std::string v2 = inner;
  v2[0] = 2;
  auto f = decode_frame(sign_raw(v2), kKey);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, make_error_code(errc::bad_version));

  std::string kind = inner;
  kind[1] = 9;
  f = decode_frame(sign_raw(kind), kKey);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, make_error_code(errc::bad_frame));

  std::string action = inner;
  action[1 + 1 + 8 + 16 + 8] = 99;  // version, kind, key id, nonce, timestamp
  f = decode_frame(sign_raw(action), kKey);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, make_error_code(errc::unknown_action));

  f = decode_frame(sign_raw(inner + "x"), kKey);
  ASSERT_FALSE(f);
  EXPECT_NE(f.error().context.find("trailing"), std::string::npos);

  std::string longstr = inner;
  const std::size_t strpos = 1 + 1 + 8 + 16 + 8 + 1 + 1 + 4;
  longstr[strpos] = static_cast<char>(0xff);
  longstr[strpos + 1] = static_cast<char>(0xff);
  f = decode_frame(sign_raw(longstr), kKey);
  ASSERT_FALSE(f);
  EXPECT_EQ(f.error().code, make_error_code(errc::bad_frame));
}

TEST(Message, ActionNames) {
  for (const char* n : {"off", "reboot", "on", "status", "monitor", "list", "list-status"}) {
    auto a = action_from_name(n);
    ASSERT_TRUE(a) << n;
    EXPECT_EQ(action_name(*a), n);
  }
  EXPECT_FALSE(action_from_name("destroy"));
  EXPECT_FALSE(action_known(0));
  EXPECT_FALSE(action_known(8));
  EXPECT_TRUE(action_known(20));
  EXPECT_TRUE(action_known(21));
  EXPECT_FALSE(action_known(22));
  EXPECT_EQ(action_name(Action::hook_migrate), "hook-migrate");
  EXPECT_EQ(action_from_name("hook-reconnect"), Action::hook_reconnect);
}

TEST(Key, IdIsStableAndKeyDependent) {
  EXPECT_EQ(key_id_hex(key_id_of(kKey)), key_id_hex(key_id_of(kKey)));
  EXPECT_NE(key_id_hex(key_id_of(kKey)), key_id_hex(key_id_of(kKey + "x")));
  EXPECT_EQ(key_id_hex(key_id_of(kKey)).size(), 16u);
}

TEST(Key, LoadErrorsNameTheFile) {
  auto k = load_key_file("/nonexistent/vguard.key");
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().message().find("/nonexistent/vguard.key"), std::string::npos);
  const std::string shortk = ::testing::TempDir() + "/short.key";
  std::ofstream(shortk) << "tooshort";
  k = load_key_file(shortk);
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().message().find("at least 16"), std::string::npos);
  const std::string okk = ::testing::TempDir() + "/ok.key";
  std::ofstream(okk, std::ios::binary) << kKey;
  k = load_key_file(okk);
  ASSERT_TRUE(k);
  EXPECT_EQ(k->id, key_id_of(kKey));
}

TEST(Crypto, HmacKnownAnswer) {
  // RFC 4231 test case 2.
  auto d = hmac_sha256("Jefe", "what do ya want for nothing?");
  EXPECT_EQ(to_hex(as_view(d)), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_TRUE(ct_equal("abc", "abc"));
  EXPECT_FALSE(ct_equal("abc", "abd"));
  EXPECT_FALSE(ct_equal("abc", "abcd"));
  EXPECT_NE(random_bytes(16), random_bytes(16));
}

}  // namespace
}  // namespace vguard::proto

namespace vguard::proto {
namespace {
TEST(Message, OversizeListIsTruncatedNotFatal) {
  Response r = golden_response();
  r.domains.clear();
  for (int i = 0; i < 5000; ++i) {
    DomainEntry d;
    d.uuid.bytes[0] = static_cast<std::uint8_t>(i);
    d.name = "domain-with-a-fairly-long-name-" + std::to_string(i);
    d.state = PowerState::running;
    r.domains.push_back(d);
  }
  r.domains[0].name = std::string(5000, 'n');  // longer than kMaxString: clipped
  const auto frame = encode_response(kLocalKeyId, "", r);
  EXPECT_LE(frame.size(), kMaxFrame + 4);
  auto f = decode_frame(frame, "");
  ASSERT_TRUE(f) << f.error().message();
  EXPECT_LT(f->response->domains.size(), 5000u);
  EXPECT_GT(f->response->domains.size(), 500u);
  EXPECT_EQ(f->response->domains[0].name.size(), kMaxString);
  EXPECT_NE(f->response->message.find("list truncated"), std::string::npos);
}
}  // namespace
}  // namespace vguard::proto
