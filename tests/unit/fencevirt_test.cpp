// fence_xvm / fence_virt compatibility: the codec (proto/fencevirt), vguardd's replay memory and duplicate
// history (fenced/adapters/fencevirt) and the [fence_xvm]/[fence_virt_*] configuration.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config.h"
#include "executed_digests.h"
#include "fence_virt.h"
#include "request_history.h"

namespace vguard::fencevirt {
namespace {

const std::string kKey = "test-key";

std::string to_hex(std::string_view b) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}
std::string from_hex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return out;
}
std::string golden_path() { return std::string(VG_TEST_DATA) + "/proto/fence_xvm_request_v1.hex"; }
std::string read_golden() {
  std::ifstream in(golden_path());
  std::string hex;
  in >> hex;
  return from_hex(hex);
}

// The request of fence-virt-protocol.md §1.5: REBOOT "vm1", sha256, callback 192.0.2.10:1229, random 01..06,
// seqno 123456, family AF_INET, key "test-key".
Request golden_request() {
  Request r;
  r.op = Op::reboot;
  r.hash = Hash::sha256;
  r.addrlen = 4;
  r.domain = "vm1";
  r.address = {192, 0, 2, 10};
  r.port = 1229;
  r.random = {1, 2, 3, 4, 5, 6};
  r.seqno = 123456;
  r.family = 2;
  const std::string digest = from_hex("19cefebc290f114d2218e0344baee8029d8de4f58dff81b94e5a9dab1f0dd8fe");
  std::copy(digest.begin(), digest.end(), r.digest.begin());
  return r;
}

TEST(FenceVirtCodec, GoldenVectorEncodesAndVerifies) {
  const std::string want = read_golden();
  ASSERT_EQ(want.size(), kRequestSize) << "missing or short golden file " << golden_path();
  const std::string got = encode(golden_request());
  if (std::getenv("VG_REGENERATE")) std::ofstream(golden_path()) << to_hex(got) << "\n";
  EXPECT_EQ(to_hex(got), to_hex(want)) << "fence_xvm request encoding changed: compatibility broken";
  EXPECT_TRUE(verify(want, kKey, Hash::sha256));
  EXPECT_TRUE(verify(want, kKey, Hash::sha1));
  // The documented digest is the plain prefix hash H(key ‖ packet with a zero digest field).
  std::string zeroed = want;
  std::fill(zeroed.begin() + kDigestOffset, zeroed.end(), '\0');
  const auto h = challenge_response(Hash::sha256, kKey, zeroed);
  EXPECT_EQ(to_hex(std::string_view(reinterpret_cast<const char*>(h.data()), 32)),
            "19cefebc290f114d2218e0344baee8029d8de4f58dff81b94e5a9dab1f0dd8fe");
}

TEST(FenceVirtCodec, GoldenVectorDecodesFieldByField) {
  auto r = decode(read_golden());
  ASSERT_TRUE(r) << r.error().message();
  const Request g = golden_request();
  EXPECT_EQ(r->op, Op::reboot);
  EXPECT_EQ(r->hash, Hash::sha256);
  EXPECT_EQ(r->addrlen, 4);
  EXPECT_EQ(r->flags, 0);
  EXPECT_EQ(r->domain, "vm1");
  EXPECT_EQ(r->address, g.address);
  EXPECT_EQ(r->port, 1229);
  EXPECT_EQ(r->random, g.random);
  EXPECT_EQ(r->seqno, 123456u);
  EXPECT_EQ(r->family, 2u);
  EXPECT_EQ(r->digest, g.digest);
}

TEST(FenceVirtCodec, SignedRoundTripEveryHash) {
  for (Hash h : {Hash::sha1, Hash::sha256, Hash::sha512}) {
    Request r;
    r.op = Op::off;
    r.hash = h;
    r.flags = kFlagUuid;
    r.domain = "11111111-1111-1111-1111-111111111111";
    r.addrlen = 16;
    r.address = {0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    r.family = 10;
    r.port = 4321;
    r.seqno = 999999;
    sign(r, kKey);
    EXPECT_NE(r.random, (std::array<std::uint8_t, 6>{})) << hash_name(h);
    const std::string pkt = encode(r);
    ASSERT_EQ(pkt.size(), kRequestSize);
    EXPECT_TRUE(verify(pkt, kKey, h)) << hash_name(h);
    EXPECT_TRUE(verify(pkt, kKey, Hash::sha1)) << "a stronger hash than the minimum is accepted";
    // Only the algorithm's bytes are set; the rest of the 64-byte field stays zero.
    for (std::size_t i = kDigestOffset + digest_length(h); i < kRequestSize; ++i) EXPECT_EQ(pkt[i], '\0');
    auto d = decode(pkt);
    ASSERT_TRUE(d);
    EXPECT_EQ(encode(*d), pkt);
    EXPECT_EQ(d->domain, r.domain);
    EXPECT_EQ(d->flags, kFlagUuid);
  }
  // Retransmissions are re-signed with fresh random bytes: a different digest each time.
  Request a;
  a.op = Op::status;
  a.domain = "x";
  Request b = a;
  sign(a, kKey);
  sign(b, kKey);
  EXPECT_NE(encode(a), encode(b));
}

TEST(FenceVirtCodec, VerifyRefusals) {
  const std::string good = read_golden();
  ASSERT_EQ(good.size(), kRequestSize);
  auto code_of = [](const Result<void>& r) {
    return r ? errc::ok : static_cast<errc>(r.error().code.value());
  };
  // A hash weaker than the configured minimum.
  EXPECT_EQ(code_of(verify(good, kKey, Hash::sha512)), errc::permission_denied);
  Request weak = golden_request();
  weak.hash = Hash::sha1;
  sign(weak, kKey);
  auto r = verify(encode(weak), kKey, Hash::sha256);
  EXPECT_EQ(code_of(r), errc::permission_denied);
  EXPECT_NE(r.error().context.find("weaker"), std::string::npos) << r.error().context;
  // Hash none while a minimum is configured; accepted only with minimum none (explicit).
  Request none = golden_request();
  none.hash = Hash::none;
  sign(none, kKey);
  EXPECT_EQ(code_of(verify(encode(none), kKey, Hash::sha1)), errc::permission_denied);
  EXPECT_TRUE(verify(encode(none), kKey, Hash::none));
  // Wrong key, no key.
  EXPECT_EQ(code_of(verify(good, "test-kex", Hash::sha256)), errc::bad_mac);
  EXPECT_EQ(code_of(verify(good, "", Hash::sha256)), errc::bad_mac);
  // Unknown hash type.
  std::string bad = good;
  bad[1] = 4;
  EXPECT_EQ(code_of(verify(bad, kKey, Hash::sha1)), errc::bad_frame);
  EXPECT_FALSE(decode(bad));
  // Truncated and oversize.
  EXPECT_EQ(code_of(verify(good.substr(0, 175), kKey, Hash::sha256)), errc::bad_frame);
  EXPECT_EQ(code_of(verify(good + '\0', kKey, Hash::sha256)), errc::bad_frame);
  EXPECT_FALSE(decode(good.substr(0, 175)));
  EXPECT_FALSE(decode(good + '\0'));
  // Any changed byte, including the zero padding of the digest field (all 64 bytes are compared).
  for (std::size_t i : {std::size_t{0}, std::size_t{4}, std::size_t{96}, std::size_t{98}, std::size_t{104},
                        kDigestOffset, kDigestOffset + 40, kRequestSize - 1}) {
    std::string x = good;
    x[i] = static_cast<char>(x[i] ^ 0x01);
    EXPECT_EQ(code_of(verify(x, kKey, Hash::sha256)), errc::bad_mac) << "byte " << i;
  }
  // Unknown op: the signature may verify, decode refuses it.
  Request op7 = golden_request();
  std::string p7 = encode(op7);
  p7[0] = 7;
  EXPECT_FALSE(decode(p7));
}

TEST(FenceVirtCodec, DomainIsCappedAt63Bytes) {
  Request r;
  r.domain = std::string(80, 'a');
  const std::string pkt = encode(r);
  EXPECT_EQ(pkt[4 + 62], 'a');
  EXPECT_EQ(pkt[4 + 63], '\0') << "the field always ends in NUL";
  auto d = decode(pkt);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->domain, std::string(63, 'a'));
  // A peer that fills all 64 bytes still yields at most 63.
  std::string full = pkt;
  full[4 + 63] = 'b';
  EXPECT_EQ(decode(full)->domain, std::string(63, 'a'));
}

TEST(FenceVirtCodec, ChallengeResponse) {
  const auto c = new_challenge();
  const std::string cs(reinterpret_cast<const char*>(c.data()), c.size());
  EXPECT_NE(new_challenge(), c);
  for (Hash h : {Hash::sha1, Hash::sha256, Hash::sha512}) {
    const auto a = challenge_response(h, kKey, cs);
    const std::string as(reinterpret_cast<const char*>(a.data()), a.size());
    EXPECT_TRUE(check_response(h, kKey, cs, as));
    for (std::size_t i = digest_length(h); i < kChallengeSize; ++i) EXPECT_EQ(a[i], 0) << "zero padding";
    EXPECT_FALSE(check_response(h, "other", cs, as));
    EXPECT_FALSE(check_response(h, kKey, cs, as.substr(0, 63)));
    std::string flipped = as;
    flipped[63] = 1;
    EXPECT_FALSE(check_response(h, kKey, cs, flipped)) << "padding is compared too";
  }
  EXPECT_FALSE(check_response(Hash::none, kKey, cs, std::string(64, '\0')));
}

TEST(FenceVirtCodec, HostRecordsZeroFilled) {
  const std::string rec = encode_host({"vm-a", "6695eb01-f6a4-8304-79aa-97f2502e193f", 1});
  ASSERT_EQ(rec.size(), kHostRecordSize);
  EXPECT_EQ(rec.substr(0, 5), std::string("vm-a\0", 5));
  for (std::size_t i = 4; i < 64; ++i) EXPECT_EQ(rec[i], '\0') << i;
  for (std::size_t i = 64 + 36; i < 128; ++i) EXPECT_EQ(rec[i], '\0') << i;
  EXPECT_EQ(rec[128], 1);
  EXPECT_EQ(rec[129], '\0') << "pad byte";
  EXPECT_EQ(host_terminator(), std::string(130, '\0'));
  auto back = decode_host(rec);
  EXPECT_EQ(back.domain, "vm-a");
  EXPECT_EQ(back.uuid, "6695eb01-f6a4-8304-79aa-97f2502e193f");
  EXPECT_EQ(back.state, 1);
  // Long strings are cut to 63 bytes and NUL-terminated.
  const std::string longrec = encode_host({std::string(70, 'n'), std::string(70, 'u'), 5});
  EXPECT_EQ(longrec[63], '\0');
  EXPECT_EQ(longrec[127], '\0');
  EXPECT_EQ(decode_host(longrec).domain, std::string(63, 'n'));
}

TEST(FenceVirtCodec, HostRecordDecodingToleratesGarbage) {
  // As fence_virtd sends them: strings NUL-terminated early, stack garbage after the NUL, in byte 63 and the
  // pad.
  std::string rec(kHostRecordSize, 'G');
  std::memcpy(rec.data(), "test\0", 5);
  rec[63] = '3';
  std::memcpy(rec.data() + 64, "6695eb01-f6a4-8304-79aa-97f2502e193f\0", 37);
  rec[127] = '>';
  rec[128] = 5;
  rec[129] = 125;
  auto h = decode_host(rec);
  EXPECT_EQ(h.domain, "test");
  EXPECT_EQ(h.uuid, "6695eb01-f6a4-8304-79aa-97f2502e193f");
  EXPECT_EQ(h.state, 5);
  // No NUL at all: capped at 63.
  std::string nonul(kHostRecordSize, 'x');
  EXPECT_EQ(decode_host(nonul).domain.size(), 63u);
  EXPECT_EQ(decode_host(nonul).uuid.size(), 63u);
  EXPECT_EQ(decode_host(host_terminator()).domain, "");
}

TEST(FenceVirtCodec, SerialCodec) {
  SerialRequest r{Op::off, 0, "web-1", 654321};
  const std::string b = encode_serial(r);
  ASSERT_EQ(b.size(), kSerialRequestSize);
  EXPECT_EQ(to_hex(b.substr(0, 6)), "616262610100");
  EXPECT_EQ(b.substr(6, 6), std::string("web-1\0", 6));
  EXPECT_EQ(to_hex(b.substr(70)), "f1fb0900");
  auto d = decode_serial(b);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->op, Op::off);
  EXPECT_EQ(d->domain, "web-1");
  EXPECT_EQ(d->seqno, 654321u);
  EXPECT_FALSE(decode_serial(b.substr(0, 73)));
  EXPECT_FALSE(decode_serial(b + 'x'));
  std::string nomagic = b;
  nomagic[0] = 'x';
  EXPECT_FALSE(decode_serial(nomagic));
  std::string badop = b;
  badop[4] = 9;
  EXPECT_FALSE(decode_serial(badop));
  EXPECT_EQ(to_hex(encode_serial_response(kRespOff)), "6162626102");
}

TEST(FenceVirtCodec, HashNames) {
  for (Hash h : {Hash::none, Hash::sha1, Hash::sha256, Hash::sha512})
    EXPECT_EQ(hash_from_name(hash_name(h)), h);
  EXPECT_FALSE(hash_from_name("md5"));
  EXPECT_FALSE(hash_from_name("SHA256"));
}

TEST(FenceVirtCodec, KeyFiles) {
  const std::string dir = ::testing::TempDir();
  const std::string p = dir + "/fv-key";
  std::ofstream(p, std::ios::binary) << std::string("\0\x01key\n", 6);
  auto k = read_key_file(p);
  ASSERT_TRUE(k) << k.error().message();
  EXPECT_EQ(*k, std::string("\0\x01key\n", 6)) << "used as is: no trimming, binary";
  std::ofstream(p, std::ios::binary | std::ios::trunc) << std::string(4096, 'k');
  EXPECT_TRUE(read_key_file(p));
  std::ofstream(p, std::ios::binary | std::ios::trunc) << std::string(4097, 'k');
  EXPECT_FALSE(read_key_file(p));
  std::ofstream(p, std::ios::binary | std::ios::trunc);
  EXPECT_FALSE(read_key_file(p));
  EXPECT_FALSE(read_key_file(dir + "/no-such-key"));
}

}  // namespace
}  // namespace vguard::fencevirt

namespace vguard::fenced {
namespace {

std::string digest_n(int n) {
  std::string d(64, '\0');
  d[0] = static_cast<char>(n & 0xff);
  d[1] = static_cast<char>((n >> 8) & 0xff);
  d[63] = 'z';
  return d;
}

class ExecutedDigestsTest : public ::testing::Test {
 protected:
  std::string dir = ::testing::TempDir() + "/fv-replay-" + std::to_string(::getpid());
  std::string path = dir + "/sub/replay";
  void SetUp() override { std::filesystem::remove_all(dir); }
  void TearDown() override { std::filesystem::remove_all(dir); }
};

std::uintmax_t full_size(std::size_t slots) {
  return ExecutedDigests::kHeaderSize + slots * ExecutedDigests::kSlotSize;
}

TEST_F(ExecutedDigestsTest, RemembersAcrossReopen) {
  {
    auto m = ExecutedDigests::open(path, 16);
    ASSERT_TRUE(m) << m.error().message();
    EXPECT_EQ(std::filesystem::file_size(path), full_size(16)) << "created at full size";
    EXPECT_FALSE((*m)->contains(digest_n(1)));
    ASSERT_TRUE((*m)->remember(digest_n(1)));
    ASSERT_TRUE((*m)->remember(digest_n(1)));  // idempotent
    ASSERT_TRUE((*m)->remember(digest_n(2)));
    ASSERT_TRUE((*m)->remember_written(digest_n(4)));  // a read: written, not flushed
    EXPECT_TRUE((*m)->contains(digest_n(1)));
    EXPECT_TRUE((*m)->contains(digest_n(4)));
    EXPECT_EQ((*m)->size(), 3u);
    // A second opener (another vguardd) is refused while the first holds it.
    EXPECT_FALSE(ExecutedDigests::open(path, 16));
  }
  auto m = ExecutedDigests::open(path, 16);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_TRUE((*m)->contains(digest_n(1)));
  EXPECT_TRUE((*m)->contains(digest_n(2)));
  EXPECT_TRUE((*m)->contains(digest_n(4))) << "written without a flush, still there after a reopen";
  EXPECT_FALSE((*m)->contains(digest_n(3)));
  EXPECT_FALSE((*m)->contains("short"));
  EXPECT_EQ(std::filesystem::file_size(path), full_size(16)) << "the file never grows";
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST_F(ExecutedDigestsTest, BoundedNewestKeptAcrossWrapAround) {
  {
    auto m = ExecutedDigests::open(path, 4);
    ASSERT_TRUE(m);
    for (int i = 0; i < 10; ++i) ASSERT_TRUE((*m)->remember(digest_n(i)));
    EXPECT_EQ((*m)->size(), 4u);
    for (int i = 0; i < 6; ++i) EXPECT_FALSE((*m)->contains(digest_n(i))) << i;
    for (int i = 6; i < 10; ++i) EXPECT_TRUE((*m)->contains(digest_n(i))) << i;
    EXPECT_EQ(std::filesystem::file_size(path), full_size(4));
  }
  {
    auto m = ExecutedDigests::open(path, 4);
    ASSERT_TRUE(m);
    for (int i = 6; i < 10; ++i) EXPECT_TRUE((*m)->contains(digest_n(i))) << i;
    EXPECT_FALSE((*m)->contains(digest_n(5)));
    // Sequence numbers continue after a restart: the next write evicts the oldest (6), in memory and on disk.
    ASSERT_TRUE((*m)->remember(digest_n(10)));
    EXPECT_FALSE((*m)->contains(digest_n(6)));
  }
  auto m = ExecutedDigests::open(path, 4);
  ASSERT_TRUE(m);
  EXPECT_FALSE((*m)->contains(digest_n(6)));
  for (int i = 7; i < 11; ++i) EXPECT_TRUE((*m)->contains(digest_n(i))) << i;
}

TEST_F(ExecutedDigestsTest, CapacityChangeKeepsNewest) {
  {
    auto m = ExecutedDigests::open(path, 8);
    ASSERT_TRUE(m);
    for (int i = 0; i < 6; ++i) ASSERT_TRUE((*m)->remember(digest_n(i)));
  }
  {
    auto m = ExecutedDigests::open(path, 3);
    ASSERT_TRUE(m) << m.error().message();
    EXPECT_EQ(std::filesystem::file_size(path), full_size(3));
    EXPECT_EQ((*m)->size(), 3u);
    for (int i = 3; i < 6; ++i) EXPECT_TRUE((*m)->contains(digest_n(i))) << i;
    EXPECT_FALSE((*m)->contains(digest_n(2)));
  }
  auto m = ExecutedDigests::open(path, 32);
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)->size(), 3u);
  ASSERT_TRUE((*m)->remember(digest_n(99)));
  EXPECT_TRUE((*m)->contains(digest_n(5)));
}

TEST_F(ExecutedDigestsTest, AppendThenSyncElsewhere) {
  {
    auto m = ExecutedDigests::open(path, 2);
    ASSERT_TRUE(m);
    std::vector<int> fds;
    for (int i = 0; i < 5; ++i) {
      auto fd = (*m)->append_unsynced(digest_n(i));
      ASSERT_TRUE(fd) << fd.error().message();
      EXPECT_TRUE((*m)->contains(digest_n(i))) << "remembered before the flush";
      fds.push_back(*fd);
    }
    for (int fd : fds) EXPECT_TRUE(ExecutedDigests::sync_and_close(fd));
    EXPECT_FALSE(ExecutedDigests::sync_and_close(-1));
  }
  auto m = ExecutedDigests::open(path, 2);
  ASSERT_TRUE(m);
  EXPECT_TRUE((*m)->contains(digest_n(3)));
  EXPECT_TRUE((*m)->contains(digest_n(4)));
  EXPECT_FALSE((*m)->contains(digest_n(2)));
}

TEST_F(ExecutedDigestsTest, TornSlotIgnoredForeignFileRefused) {
  {
    auto m = ExecutedDigests::open(path, 8);
    ASSERT_TRUE(m);
    ASSERT_TRUE((*m)->remember(digest_n(7)));
    ASSERT_TRUE((*m)->remember(digest_n(8)));
  }
  {
    // A write cut short: half of digest 8's slot (sequence 2) overwritten with other bytes.
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(ExecutedDigests::kHeaderSize + 2 * ExecutedDigests::kSlotSize));
    f << std::string(30, 'x');
  }
  std::ofstream(path, std::ios::binary | std::ios::app) << std::string(30, 'y');  // and a tail of garbage
  {
    auto m = ExecutedDigests::open(path, 8);
    ASSERT_TRUE(m) << m.error().message();
    EXPECT_TRUE((*m)->contains(digest_n(7)));
    EXPECT_FALSE((*m)->contains(digest_n(8))) << "an inconsistent slot is empty";
    EXPECT_EQ((*m)->size(), 1u);
  }
  EXPECT_EQ(std::filesystem::file_size(path), full_size(8)) << "rewritten at its size";
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "not a replay memory file at all";
  auto bad = ExecutedDigests::open(path, 8);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().context.find("header"), std::string::npos);
  std::filesystem::create_symlink(path, dir + "/link");
  EXPECT_FALSE(ExecutedDigests::open(dir + "/link", 8)) << "symlinks are refused";
}

TEST(RequestHistoryTest, DuplicatesForTenSecondsIgnoringCase) {
  RequestHistory h;
  EXPECT_FALSE(h.seen(1, 42, "Web-1", 1000));
  h.record(1, 42, "Web-1", 1000);
  EXPECT_TRUE(h.seen(1, 42, "web-1", 1500));
  EXPECT_TRUE(h.seen(1, 42, "WEB-1", 10999));
  EXPECT_FALSE(h.seen(2, 42, "web-1", 2000)) << "another op";
  EXPECT_FALSE(h.seen(1, 43, "web-1", 2000)) << "another seqno";
  EXPECT_FALSE(h.seen(1, 42, "web-2", 2000)) << "another domain";
  EXPECT_FALSE(h.seen(1, 42, "web-1", 11000)) << "expired after 10 s";
  EXPECT_EQ(h.size(), 0u);
  h.record(4, 1, "x", 0);
  h.forget(4, 1, "X");
  EXPECT_FALSE(h.seen(4, 1, "x", 1));
  for (std::uint32_t i = 0; i < RequestHistory::kMaxEntries + 10; ++i) h.record(4, i, "x", 5);
  EXPECT_EQ(h.size(), RequestHistory::kMaxEntries);
}

class FenceVirtConfigTest : public ::testing::Test {
 protected:
  std::string dir = ::testing::TempDir();
  std::string key_path = dir + "/fv-cfg.key";
  void SetUp() override { std::ofstream(key_path, std::ios::binary) << std::string(4096, 'K'); }
  std::string write(const std::string& text) {
    const std::string p = dir + "/fv-test.conf";
    std::ofstream(p) << "[daemon]\nlog_file = /var/lib/x/forensic.log\n[key.xvm]\nfile = " << key_path
                     << "\nallow = web-*\n"
                     << text;
    return p;
  }
  std::string error_of(const std::string& text) {
    auto c = load_config(write(text));
    EXPECT_FALSE(c) << "accepted:\n" << text;
    return c ? std::string() : c.error().context;
  }
};

TEST_F(FenceVirtConfigTest, FullSections) {
  auto c = load_config(
      write("[fence_xvm]\nenabled = yes\nmulticast_address = ff05::3:1\nport = 1230\ninterface = lo\n"
            "hash = sha512\nauth = sha1\nkeys = xvm\n"
            "[fence_virt_tcp]\nenabled = yes\nlisten = 127.0.0.1:1229\nlisten = [::1]:1229\nkeys = xvm\n"
            "allow_all_domains = yes\n"
            "[fence_virt_vsock]\nenabled = no\nport = 4000\n"
            "[fence_virt_serial]\nenabled = yes\npath = /run/vguard/serial\nmode = vmchannel\n"
            "group = web-1, web-2\ngroup = db-*\n"
            "[fence_virt]\nreplay_entries = 2048\n"));
  ASSERT_TRUE(c) << c.error().message();
  const auto& f = c->fence_virt;
  EXPECT_TRUE(f.xvm.enabled);
  EXPECT_EQ(f.xvm.multicast_address, "ff05::3:1");
  EXPECT_EQ(f.xvm.port, 1230u);
  EXPECT_EQ(f.xvm.interface, "lo");
  EXPECT_EQ(f.xvm.hash, fencevirt::Hash::sha512);
  EXPECT_EQ(f.xvm.auth, fencevirt::Hash::sha1);
  EXPECT_EQ(f.xvm.keys, std::vector<std::string>{"xvm"});
  EXPECT_FALSE(f.xvm.allow_all_domains);
  EXPECT_EQ(f.tcp.listen.size(), 2u);
  EXPECT_TRUE(f.tcp.allow_all_domains);
  EXPECT_EQ(f.vsock.port, 4000u);
  EXPECT_TRUE(f.serial.vmchannel);
  ASSERT_EQ(f.serial.groups.size(), 2u);
  EXPECT_EQ(f.serial.groups[0], (std::vector<std::string>{"web-1", "web-2"}));
  EXPECT_EQ(f.replay_entries, 2048u);
  EXPECT_EQ(f.replay_file, "/var/lib/x/fence_virt.replay") << "next to the forensic log by default";
  // Policy: the key's own globs, plus the tcp allow-all identity and one per serial group.
  const Policy p = c->policy();
  EXPECT_TRUE(p.allowed(fencevirt_allow_all_id("fence_virt_tcp"), "anything"));
  EXPECT_FALSE(p.allowed(fencevirt_allow_all_id("fence_xvm"), "anything")) << "not switched on for fence_xvm";
  EXPECT_TRUE(p.allowed(fencevirt_serial_group_id(1), "db-7"));
  EXPECT_FALSE(p.allowed(fencevirt_serial_group_id(0), "db-7"));
  EXPECT_NE(fencevirt_allow_all_id("fence_xvm"), c->keys[0].key.id);
}

TEST_F(FenceVirtConfigTest, DefaultsOff) {
  auto c = load_config(write(""));
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_FALSE(c->fence_virt.any_enabled());
  EXPECT_EQ(c->fence_virt.xvm.multicast_address, "225.0.0.12");
  EXPECT_EQ(c->fence_virt.xvm.port, 1229u);
  EXPECT_EQ(c->fence_virt.xvm.hash, fencevirt::Hash::sha256);
  EXPECT_EQ(c->fence_virt.tcp.listen, std::vector<std::string>{"127.0.0.1:1229"});
  EXPECT_EQ(c->fence_virt.replay_entries, 65536u);
}

TEST_F(FenceVirtConfigTest, ErrorsNameFileAndLine) {
  struct Case {
    std::string text;
    std::string want;  // substring of the error, which starts with FILE:LINE
  };
  const std::vector<Case> cases = {
      {"[fence_xvm]\nhash = none\n", ":7: fence_xvm.hash = none is not supported"},
      {"[fence_xvm]\nauth = md5\n", ":7: bad value 'md5' for fence_xvm.auth"},
      {"[fence_xvm]\nmulticast_address = 10.0.0.1\n", ":7: bad multicast_address"},
      {"[fence_xvm]\nport = 0\n", ":7: bad value '0'"},
      {"[fence_xvm]\nenabled = maybe\n", ":7: bad value 'maybe'"},
      {"[fence_xvm]\nbogus = 1\n", ":7: unknown key 'bogus' in section [fence_xvm]"},
      {"[fence_xvm]\nenabled = yes\n", ":6: [fence_xvm] is enabled but names no keys"},
      {"[fence_xvm]\nenabled = yes\nkeys = nope\n",
       ":6: [fence_xvm] names key 'nope', but there is no [key.nope]"},
      {"[fence_xvm]\nhash = sha1\nhash = sha256\n", ":8: 'fence_xvm.hash' is set more than once"},
      {"[fence_virt_tcp]\nlisten = vsock:1229\n", ":7: fence_virt_tcp.listen takes ADDRESS:PORT"},
      {"[fence_virt_tcp]\nlisten = localhost:1229\n", ":7: bad listen address"},
      {"[fence_virt_serial]\nenabled = yes\n", ":6: [fence_virt_serial] is enabled but has no path"},
      {"[fence_virt_serial]\nenabled = yes\npath = /x\n",
       ":6: [fence_virt_serial] is enabled but has no group"},
      {"[fence_virt_serial]\nmode = tty\n", ":7: bad value 'tty' for mode"},
      {"[fence_virt]\nreplay_entries = 10\n", ":7: bad value '10'"},
      {"[fence_virt]\nreplay_file = relative\n", ":7: replay_file must be an absolute path"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.text);
    EXPECT_NE(e.find("fv-test.conf" + c.want), std::string::npos) << "for:\n" << c.text << "got: " << e;
  }
}

}  // namespace
}  // namespace vguard::fenced
