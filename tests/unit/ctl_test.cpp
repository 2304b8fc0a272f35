// ctl/: vguardctl's logic in-process (keygen, status, log show/verify, command line), plus the built binary
// once for its exit codes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "audit.h"
#include "cli.h"
#include "cluster_fmt.h"
#include "install_hook.h"
#include "key.h"
#include "keygen.h"
#include "log_cmd.h"
#include "status.h"

namespace vguard::ctl {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
namespace fs = std::filesystem;

constexpr std::int64_t kNow = 1795316645123;  // 2026-11-22T03:04:05.123Z
constexpr std::string_view kWebUuid = "5e1f0c2a-7d4b-4c8e-9a61-0b3d2f4e6a71";

std::string data(const std::string& name) { return std::string(VG_TEST_DATA) + "/audit/" + name; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "vguard-ctl-XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- keygen
// ------------------------------------------------------------------------------------------------

TEST(CtlKeygen, WritesPrivateKeyAndReportsItsId) {
  TempDir tmp;
  KeygenOptions o;
  o.out = tmp.path() + "/etc/vguard/vguard.key";
  auto r = keygen(o);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  const std::string key = slurp(o.out);
  EXPECT_EQ(key.size(), 4096u);
  EXPECT_EQ(mode_of(o.out), 0600u);
  EXPECT_EQ(mode_of(tmp.path() + "/etc"), 0700u);
  EXPECT_EQ(mode_of(tmp.path() + "/etc/vguard"), 0700u);
  EXPECT_EQ(r->key_id_hex, proto::key_id_hex(proto::key_id_of(key)));
  EXPECT_EQ(r->key_id_hex.size(), 16u);
  EXPECT_THAT(r->snippet, StartsWith("key id: " + r->key_id_hex + "\n"));
  EXPECT_THAT(r->snippet, HasSubstr("[key.NAME]\nfile = " + o.out + "\nallow = ...\n"));
  // The key loads with the daemon's own loader.
  auto loaded = proto::load_key_file(o.out);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message();
  EXPECT_EQ(proto::key_id_hex(loaded->id), r->key_id_hex);
}

TEST(CtlKeygen, RefusesToOverwriteWithoutForce) {
  TempDir tmp;
  KeygenOptions o;
  o.out = tmp.path() + "/k";
  o.bytes = 32;
  ASSERT_TRUE(keygen(o).has_value());
  const std::string first = slurp(o.out);
  auto again = keygen(o);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().context, "key file " + o.out + " already exists; use --force to replace it");
  EXPECT_EQ(slurp(o.out), first);

  o.force = true;
  o.bytes = 64;
  auto forced = keygen(o);
  ASSERT_TRUE(forced.has_value()) << forced.error().message();
  const std::string second = slurp(o.out);
  EXPECT_EQ(second.size(), 64u);
  EXPECT_NE(second.substr(0, 32), first);
  EXPECT_EQ(mode_of(o.out), 0600u);
  // The temporary file was renamed, nothing is left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 1);
}

TEST(CtlKeygen, SizeLimitsAndBadPaths) {
  TempDir tmp;
  KeygenOptions o;
  o.out = tmp.path() + "/k";
  for (std::size_t bad : {std::size_t{0}, std::size_t{15}, std::size_t{4097}}) {
    o.bytes = bad;
    auto r = keygen(o);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, make_error_code(errc::bad_key));
    EXPECT_FALSE(fs::exists(o.out));
  }
  o.bytes = 16;
  ASSERT_TRUE(keygen(o).has_value());
  EXPECT_EQ(slurp(o.out).size(), 16u);

  o.out = tmp.path() + "/k/sub/key";  // "k" is a file
  auto r = keygen(o);
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().context, HasSubstr("ot a directory"));
}

// ---- status
// ------------------------------------------------------------------------------------------------

std::vector<proto::DomainEntry> two_domains() {
  std::vector<proto::DomainEntry> d(2);
  d[0].uuid = *Uuid::parse(kWebUuid);
  d[0].name = "web1";
  d[0].state = proto::PowerState::running;
  d[1].uuid = *Uuid::parse("a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d");
  d[1].name = "database-primary";
  d[1].state = proto::PowerState::shutoff;
  return d;
}

TEST(CtlStatus, TableIsAligned) {
  EXPECT_EQ(format_status_table(two_domains()),
            "NAME              UUID                                  STATE\n"
            "web1              5e1f0c2a-7d4b-4c8e-9a61-0b3d2f4e6a71  running\n"
            "database-primary  a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d  shut off\n");
  EXPECT_EQ(format_status_table({}), "NAME  UUID                                  STATE\n");
  auto d = two_domains();
  d[0].name = "evil\x1b[2J";
  EXPECT_THAT(format_status_table(d), HasSubstr("evil?[2J"));
}

TEST(CtlStatus, JsonIsAnArrayOfObjects) {
  const std::string j = format_status_json(two_domains());
  EXPECT_EQ(j,
            "[{\"name\":\"web1\",\"uuid\":\"5e1f0c2a-7d4b-4c8e-9a61-0b3d2f4e6a71\",\"state\":\"running\"},"
            "{\"name\":\"database-primary\",\"uuid\":\"a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d\",\"state\":"
            "\"shut off\"}]\n");
  EXPECT_EQ(format_status_json({}), "[]\n");
}

TEST(CtlStatus, RefusedResponseIsAnError) {
  proto::Response r;
  r.status = proto::Status::denied;
  r.error = static_cast<std::uint16_t>(errc::permission_denied);
  r.message = "not allowed";
  auto d = domains_from_response(r);
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code, make_error_code(errc::permission_denied));
  EXPECT_THAT(d.error().message(), HasSubstr("not allowed"));
  r.status = proto::Status::success;
  r.domains = two_domains();
  ASSERT_TRUE(domains_from_response(r).has_value());
  EXPECT_EQ(domains_from_response(r)->size(), 2u);
}

// ---- cluster mode: status and hosts formatting
// ----------------------------------------------------------------

proto::Response cluster_list(bool quorate) {
  proto::Response r;
  r.status = proto::Status::success;
  r.flags = proto::kResponseCluster | (quorate ? proto::kResponseQuorate : 0);
  r.domains = two_domains();
  r.domains[0].host = "hv1";
  r.domains[0].epoch = 3;
  r.domains[1].host = "hv2-long-name";
  r.domains[1].epoch = 12;
  r.domains[1].flags = proto::kDomainOwnerLost | proto::kDomainDuplicate;
  r.domains[1].state = proto::PowerState::unknown;
  return r;
}

proto::Response three_hosts(bool quorate) {
  proto::Response r;
  r.status = proto::Status::success;
  r.flags = proto::kResponseCluster | (quorate ? proto::kResponseQuorate : 0);
  r.hosts.resize(4);
  r.hosts[0] = {1, "hv1", 3, 0, "", true};
  r.hosts[1] = {2, "hv2", 0, 1, "", true};
  r.hosts[2] = {3, "hv3", 1, 2, "", false};
  r.hosts[3] = {12, "hv4", 2, 1, "vguardctl unix:pid=77,uid=0", false};
  return r;
}

TEST(CtlCluster, FlagAndStatusNames) {
  EXPECT_TRUE(domain_flag_names(0).empty());
  EXPECT_EQ(domain_flag_names(proto::kDomainHostFenced), std::vector<std::string>{"HOST-FENCED"});
  EXPECT_EQ(domain_flag_names(0xff),
            (std::vector<std::string>{"OWNER-LOST", "DUPLICATE", "HOST-FENCED", "MIGRATING"}));
  EXPECT_EQ(host_status_name(0), "member");
  EXPECT_EQ(host_status_name(1), "lost");
  EXPECT_EQ(host_status_name(2), "fenced");
  EXPECT_EQ(host_status_name(3), "self");
  EXPECT_EQ(host_status_name(9), "unknown");
}

TEST(CtlCluster, StatusTableHasHostEpochAndFlags) {
  EXPECT_EQ(format_cluster_status_table(cluster_list(true)),
            "cluster: 2 domains, quorate\n"
            "NAME              UUID                                  STATE    HOST           EPOCH  FLAGS\n"
            "web1              5e1f0c2a-7d4b-4c8e-9a61-0b3d2f4e6a71  running  hv1            3      -\n"
            "database-primary  a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d  unknown  hv2-long-name  12     "
            "OWNER-LOST,DUPLICATE\n");
  auto r = cluster_list(false);
  r.domains.resize(1);
  r.domains[0].host.clear();
  r.domains[0].state = proto::PowerState::shutoff;
  r.domains[0].flags = proto::kDomainHostFenced;
  r.domains[0].name = "x\x1b";
  EXPECT_EQ(format_cluster_status_table(r),
            "cluster: 1 domain, NOT quorate\n"
            "NAME  UUID                                  STATE     HOST  EPOCH  FLAGS\n"
            "x?    5e1f0c2a-7d4b-4c8e-9a61-0b3d2f4e6a71  shut off  -     3      HOST-FENCED\n");
  r.domains.clear();
  EXPECT_EQ(format_cluster_status_table(r),
            "cluster: 0 domains, NOT quorate\nNAME  UUID  STATE  HOST  EPOCH  FLAGS\n");
}

TEST(CtlCluster, StatusJsonIsAnObject) {
  EXPECT_EQ(format_cluster_status_json(cluster_list(true)),
            "{\"quorate\":true,\"domains\":["
            "{\"name\":\"web1\",\"uuid\":\"5e1f0c2a-7d4b-4c8e-9a61-0b3d2f4e6a71\",\"state\":\"running\","
            "\"host\":\"hv1\",\"epoch\":3,\"flags\":[]},"
            "{\"name\":\"database-primary\",\"uuid\":\"a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d\",\"state\":"
            "\"unknown\","
            "\"host\":\"hv2-long-name\",\"epoch\":12,\"flags\":[\"OWNER-LOST\",\"DUPLICATE\"]}]}\n");
  auto r = cluster_list(false);
  r.domains.clear();
  EXPECT_EQ(format_cluster_status_json(r), "{\"quorate\":false,\"domains\":[]}\n");
}

TEST(CtlCluster, HostsTable) {
  EXPECT_EQ(format_hosts_table(three_hosts(true)),
            "quorate: yes\n"
            "ID  NAME  STATUS  LOSSES  LIBVIRT  CONFIRMED-BY\n"
            "1   hv1   self    0       up       -\n"
            "2   hv2   member  1       up       -\n"
            "3   hv3   lost    2       down     -\n"
            "12  hv4   fenced  1       down     vguardctl unix:pid=77,uid=0\n");
  proto::Response r;
  r.flags = proto::kResponseCluster;
  EXPECT_EQ(format_hosts_table(r), "quorate: no\nID  NAME  STATUS  LOSSES  LIBVIRT  CONFIRMED-BY\n");
}

TEST(CtlCluster, HostsJson) {
  const std::string j = format_hosts_json(three_hosts(false));
  EXPECT_THAT(j, StartsWith("{\"quorate\":false,\"hosts\":[{\"id\":1,\"name\":\"hv1\",\"status\":\"self\","
                            "\"losses\":0,\"libvirt_up\":true,\"confirmed_by\":\"\"},"));
  const auto v = boost::json::parse(j);
  ASSERT_EQ(v.at("hosts").as_array().size(), 4u);
  const auto& h4 = v.at("hosts").as_array()[3];
  EXPECT_EQ(h4.at("id").as_int64(), 12);
  EXPECT_EQ(h4.at("status").as_string(), "fenced");
  EXPECT_EQ(h4.at("losses").as_int64(), 1);
  EXPECT_EQ(h4.at("libvirt_up").as_bool(), false);
  EXPECT_EQ(h4.at("confirmed_by").as_string(), "vguardctl unix:pid=77,uid=0");
}

// ---- log show
// ----------------------------------------------------------------------------------------------

TEST(CtlSince, IsoPrefixesAreCompletedToTheirFirstInstant) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"2026-11-22", "2026-11-22T00:00:00.000Z"},
      {"2026-11-22T03", "2026-11-22T03:00:00.000Z"},
      {"2026-11-22T03:00", "2026-11-22T03:00:00.000Z"},
      {"2026-11-22 03:04:05Z", "2026-11-22T03:04:05.000Z"},
      {"2026-11-22T03:04:05.1", "2026-11-22T03:04:05.100Z"},
      {"2026-11-22T03:04:05.123Z", "2026-11-22T03:04:05.123Z"},
  };
  for (const auto& [in, want] : cases) {
    auto r = parse_since(in, kNow);
    ASSERT_TRUE(r.has_value()) << in << ": " << r.error().message();
    EXPECT_EQ(*r, want) << in;
  }
}

TEST(CtlSince, RelativeAges) {
  EXPECT_EQ(*parse_since("30s", kNow), "2026-11-22T03:03:35.123Z");
  EXPECT_EQ(*parse_since("10m", kNow), "2026-11-22T02:54:05.123Z");
  EXPECT_EQ(*parse_since("2h", kNow), "2026-11-22T01:04:05.123Z");
  EXPECT_EQ(*parse_since("1d", kNow), "2026-11-21T03:04:05.123Z");
  EXPECT_EQ(*parse_since("0s", kNow), "2026-11-22T03:04:05.123Z");
}

TEST(CtlSince, BadInputIsExplained) {
  for (const char* bad :
       {"", "yesterday", "2026-13-01", "2026-11-32", "2026-11-22T24:00", "2026-11-22T03:00+02:00", "5x", "m",
        "-5m", "99999999999999999d", "2026-11-22T03:04:05.", "2026/11/22"}) {
    auto r = parse_since(bad, kNow);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, make_error_code(errc::bad_config));
    EXPECT_THAT(r.error().context, HasSubstr("invalid --since"));
    EXPECT_THAT(r.error().context, HasSubstr("10m"));
  }
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(CtlShow, HumanFormShowsEveryRecord) {
  auto r = show_log(slurp(data("good.log")), {});
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_TRUE(r->warnings.empty());
  const auto lines = lines_of(r->out);
  ASSERT_EQ(lines.size(), 10u);
  EXPECT_EQ(lines[0], "2026-11-22T03:04:05.123Z 1 startup node=hv1 version=0.1.0");
  EXPECT_EQ(lines[1], "2026-11-22T03:04:06.623Z 2 membership ring=1.7 members=[1,2,3] quorate=true");
  EXPECT_EQ(lines[3], std::string("2026-11-22T03:04:09.623Z 4 destroy domain=web1 uuid=") +
                          std::string(kWebUuid) + " reason=\"fence request r-1\"");
  EXPECT_EQ(r->out.find("hash"), std::string::npos);
  EXPECT_EQ(r->out.find("prev"), std::string::npos);
}

TEST(CtlShow, FiltersByDomainNameOrUuidAndTime) {
  const std::string content = slurp(data("good.log"));
  ShowOptions o;
  o.domain = "web1";
  auto r = show_log(content, o);
  ASSERT_TRUE(r.has_value());
  auto lines = lines_of(r->out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_THAT(lines[0], HasSubstr(" 3 fence_request "));
  EXPECT_THAT(lines[2], HasSubstr(" 5 destroy_done "));

  o.domain = "5E1F0C2A-7D4B-4C8E-9A61-0B3D2F4E6A71";  // uuids match in any case
  r = show_log(content, o);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(lines_of(r->out).size(), 3u);

  o.domain = "WEB1";  // names do not
  EXPECT_EQ(show_log(content, o)->out, "");

  o.domain.reset();
  o.since = *parse_since("2026-11-22T03:04:14", kNow);  // record 7 is at 03:04:14.123
  lines = lines_of(show_log(content, o)->out);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_THAT(lines[0], HasSubstr(" 7 start_denied "));

  o.domain = "db1";
  lines = lines_of(show_log(content, o)->out);
  ASSERT_EQ(lines.size(), 1u);
}

TEST(CtlShow, JsonPrintsTheRawLines) {
  const std::string content = slurp(data("good.log"));
  ShowOptions o;
  o.json = true;
  EXPECT_EQ(show_log(content, o)->out, content);
  o.domain = "db1";
  const std::string out = show_log(content, o)->out;
  EXPECT_EQ(lines_of(out).size(), 1u);
  EXPECT_NE(content.find(out), std::string::npos);
}

TEST(CtlShow, QuotesValuesThatCouldMislead) {
  audit::ChainHead h;
  const std::string line =
      audit::make_record(h, "2026-01-01T00:00:00.000Z", "note",
                         {{"msg", "a b"}, {"esc", "\x1b[31mred"}, {"eq", "k=v"}, {"e", ""}}, h);
  auto r = show_log(line + "\n", {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->out, "2026-01-01T00:00:00.000Z 1 note msg=\"a b\" esc=\"\\u001b[31mred\" eq=\"k=v\" e=\"\"\n");
}

TEST(CtlShow, GarbageIsAnErrorNamingTheLine) {
  auto r = show_log(slurp(data("garbage.log")), {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, make_error_code(errc::bad_frame));
  EXPECT_THAT(r.error().context, HasSubstr("line 6: not a valid record: not JSON"));
}

TEST(CtlShow, TamperedAndTornLogsShowWithWarnings) {
  auto r = show_log(slurp(data("edited.log")), {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(lines_of(r->out).size(), 10u);
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_THAT(r->warnings[0], HasSubstr("chain not intact: line 7 (seq 7)"));

  r = show_log(slurp(data("torn.log")), {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(lines_of(r->out).size(), 10u);
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_THAT(r->warnings[0], HasSubstr("torn last line"));
}

// ---- log verify
// --------------------------------------------------------------------------------------------

TEST(CtlVerify, OutcomesAndExitCodes) {
  auto v = verify_outcome(audit::verify_log(slurp(data("good.log"))));
  EXPECT_EQ(v.exit_code, kExitOk);
  EXPECT_THAT(v.message, StartsWith("OK: 10 records, chain intact, head "));
  EXPECT_EQ(v.message.size(), std::string("OK: 10 records, chain intact, head ").size() + 16);

  v = verify_outcome(audit::verify_log(slurp(data("removed.log"))));
  EXPECT_EQ(v.exit_code, kExitFailure);
  EXPECT_EQ(v.message, "TAMPERED: line 5: seq 6 follows seq 4 (record removed?)");

  v = verify_outcome(audit::verify_log(slurp(data("torn.log"))));
  EXPECT_EQ(v.exit_code, kExitTornTail);
  EXPECT_EQ(
      v.message,
      "OK with torn tail: torn last line (incomplete write, e.g. crash) after seq 10; chain intact up to it");

  v = verify_outcome(audit::verify_log(""));
  EXPECT_EQ(v.exit_code, kExitOk);
  EXPECT_EQ(v.message, "OK: 0 records, chain intact, head 0000000000000000");
}

// ---- the command line, in-process
// --------------------------------------------------------------------------

struct Run {
  int code;
  std::string out;
  std::string err;
};

struct FakeDaemon {
  Result<proto::Response> answer = make_error(errc::not_running, "connect /x.sock: Connection refused");
  std::string socket_seen;
  std::chrono::milliseconds timeout_seen{0};
  std::optional<proto::Action> action_seen;
  std::string target_seen;
  int calls = 0;
};

Run run_ctl(const std::vector<std::string>& args, FakeDaemon* daemon = nullptr) {
  Deps deps;
  deps.call = [daemon](const std::string& socket, std::chrono::milliseconds timeout, proto::Action action,
                       const std::string& target) -> Result<proto::Response> {
    if (!daemon) return make_error(errc::not_running, "no daemon in this test");
    daemon->socket_seen = socket;
    daemon->timeout_seen = timeout;
    daemon->action_seen = action;
    daemon->target_seen = target;
    ++daemon->calls;
    return daemon->answer;
  };
  deps.now_unix_ms = [] { return kNow; };
  std::ostringstream out;
  std::ostringstream err;
  const int code = run(args, out, err, deps);
  return {code, out.str(), err.str()};
}

TEST(CtlCli, VersionAndHelp) {
  auto r = run_ctl({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "vguardctl 0.1.0\n");
  for (const auto& args : std::vector<std::vector<std::string>>{{"--help"}, {"-h"}, {"help"}}) {
    r = run_ctl(args);
    EXPECT_EQ(r.code, 0);
    EXPECT_THAT(r.out, HasSubstr("Usage: vguardctl COMMAND"));
    EXPECT_THAT(r.out, HasSubstr("log verify"));
    EXPECT_EQ(r.err, "");
  }
  r = run_ctl({"help", "keygen"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("--bytes"));
  r = run_ctl({"log", "show", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("--since"));
}

TEST(CtlCli, UsageErrorsExitTwoWithOneLine) {
  struct Case {
    std::vector<std::string> args;
    std::string err;
  };
  const std::vector<Case> cases = {
      {{}, "vguardctl: missing command. Try 'vguardctl --help'.\n"},
      {{"frobnicate"}, "vguardctl: unknown command 'frobnicate'. Try 'vguardctl --help'.\n"},
      {{"--bogus"}, "vguardctl: unknown option '--bogus'. Try 'vguardctl --help'.\n"},
      {{"status", "--bogus"}, "vguardctl: unrecognised option '--bogus'. Try 'vguardctl status --help'.\n"},
      {{"status", "extra"}, "vguardctl: unexpected argument 'extra'. Try 'vguardctl status --help'.\n"},
      {{"log"}, "vguardctl: 'log' needs a subcommand: show or verify. Try 'vguardctl --help'.\n"},
      {{"log", "frob"}, "unknown log subcommand 'frob'"},
      {{"log", "show", "--since", "yesterday"}, "invalid --since 'yesterday'"},
      {{"log", "verify", "--file"}, "Try 'vguardctl log verify --help'.\n"},
      {{"keygen", "--bytes", "8"}, "--bytes 8 is out of range 16..4096"},
      {{"keygen", "--bytes", "lots"}, "Try 'vguardctl keygen --help'.\n"},
      {{"status", "--timeout", "0"}, "--timeout must be within"},
      {{"hosts", "extra"}, "vguardctl: unexpected argument 'extra'. Try 'vguardctl hosts --help'.\n"},
      {{"hosts", "--timeout", "9999"}, "--timeout must be within"},
      {{"host"}, "vguardctl: 'host' needs a subcommand: confirm-fenced. Try 'vguardctl --help'.\n"},
      {{"host", "foo"},
       "vguardctl: unknown host subcommand 'foo' (expected confirm-fenced). Try 'vguardctl --help'.\n"},
      {{"host", "confirm-fenced"},
       "vguardctl: missing HOST (a host name or corosync node id). Try 'vguardctl host confirm-fenced "
       "--help'.\n"},
      {{"host", "confirm-fenced", "--yes"}, "missing HOST"},
      {{"host", "confirm-fenced", "hv2", "hv3", "--yes"}, "unexpected argument 'hv3'"},
      {{"host", "confirm-fenced", "", "--yes"}, "HOST must not be empty"},
      {{"host", "confirm-fenced", "hv2", "--bogus"}, "Try 'vguardctl host confirm-fenced --help'.\n"},
      {{"host", "confirm-fenced", "hv2", "--timeout", "0", "--yes"}, "--timeout must be within"},
      {{"install-hook", "extra"}, "vguardctl: unexpected argument 'extra'. Try 'vguardctl install-hook --help'.\n"},
      {{"install-hook", "--hook"}, "Try 'vguardctl install-hook --help'.\n"},
  };
  for (const auto& c : cases) {
    const auto r = run_ctl(c.args);
    EXPECT_EQ(r.code, kExitUsage) << r.err;
    EXPECT_THAT(r.err, StartsWith("vguardctl: "));
    EXPECT_THAT(r.err, HasSubstr(c.err));
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST(CtlCli, StatusAsksTheSocketAndPrints) {
  FakeDaemon d;
  proto::Response resp;
  resp.status = proto::Status::success;
  resp.domains = two_domains();
  d.answer = resp;
  auto r = run_ctl({"status", "--socket", "/tmp/s.sock", "--timeout", "3"}, &d);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(d.socket_seen, "/tmp/s.sock");
  EXPECT_EQ(d.timeout_seen, std::chrono::seconds(3));
  EXPECT_EQ(r.out, format_status_table(two_domains()));

  r = run_ctl({"list", "--json"}, &d);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(d.socket_seen, "/run/vguard/vguardd.sock");
  const auto j = boost::json::parse(r.out);
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j.as_array().size(), 2u);
  EXPECT_EQ(j.as_array()[1].at("state").as_string(), "shut off");
}

TEST(CtlCli, UnreachableOrRefusingDaemonFails) {
  FakeDaemon d;
  auto r = run_ctl({"status"}, &d);
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, StartsWith("vguardctl: cannot reach vguardd at /run/vguard/vguardd.sock: "));
  EXPECT_THAT(r.err, HasSubstr("Connection refused"));

  proto::Response refused;
  refused.status = proto::Status::denied;
  refused.message = "only root";
  d.answer = refused;
  r = run_ctl({"status"}, &d);
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_THAT(r.err, HasSubstr("refused list_status"));
  EXPECT_THAT(r.err, HasSubstr("only root"));
}

TEST(CtlCli, LogVerifyExitCodes) {
  auto r = run_ctl({"log", "verify", "--file", data("good.log")});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, StartsWith("OK: 10 records, chain intact, head "));
  for (const char* name :
       {"edited.log", "removed.log", "reordered.log", "inserted.log", "rehashed.log", "garbage.log"}) {
    r = run_ctl({"log", "verify", "--file", data(name)});
    EXPECT_EQ(r.code, kExitFailure) << name;
    EXPECT_THAT(r.out, StartsWith("TAMPERED: line ")) << name;
  }
  r = run_ctl({"log", "verify", "--file", data("torn.log")});
  EXPECT_EQ(r.code, kExitTornTail);
  EXPECT_THAT(r.out, StartsWith("OK with torn tail: "));
}

TEST(CtlCli, MissingFilesAreNamed) {
  const std::string missing = "/nonexistent/vguard/forensic.log";
  for (const char* cmd : {"verify", "show"}) {
    const auto r = run_ctl({"log", cmd, "--file", missing});
    EXPECT_EQ(r.code, kExitFailure) << cmd;
    EXPECT_EQ(r.err, "vguardctl: cannot read " + missing + ": No such file or directory\n");
    EXPECT_EQ(r.out, "");
  }
}

TEST(CtlCli, LogShowFiltersAndWarns) {
  auto r = run_ctl({"log", "show", "--file", data("good.log"), "--domain", "db1", "--json"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(lines_of(r.out).size(), 1u);
  r = run_ctl({"log", "show", "--file", data("good.log"), "--since", "1d"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(lines_of(r.out).size(), 10u);  // the golden records are at "now" (kNow) and later
  r = run_ctl({"log", "show", "--file", data("good.log"), "--since", "2026-11-22T03:04:14"});
  EXPECT_EQ(lines_of(r.out).size(), 4u);
  r = run_ctl({"log", "show", "--file", data("edited.log")});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("vguardctl: warning: "));
  EXPECT_THAT(r.err, HasSubstr("chain not intact"));
  r = run_ctl({"log", "show", "--file", data("garbage.log")});
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_THAT(r.err, HasSubstr("garbage.log: line 6: not a valid record"));
}

TEST(CtlCli, KeygenWritesAndRefuses) {
  TempDir tmp;
  const std::string key = tmp.path() + "/vguard.key";
  auto r = run_ctl({"keygen", "--out", key, "--bytes", "32"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("key id: "));
  EXPECT_EQ(slurp(key).size(), 32u);
  EXPECT_EQ(mode_of(key), 0600u);
  r = run_ctl({"keygen", "--out", key});
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_THAT(r.err, HasSubstr("already exists; use --force"));
  r = run_ctl({"keygen", "--out", key, "--force"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(slurp(key).size(), 4096u);
}

TEST(CtlCli, StatusInClusterMode) {
  FakeDaemon d;
  d.answer = cluster_list(false);
  auto r = run_ctl({"status"}, &d);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(d.action_seen, proto::Action::list_status);
  EXPECT_EQ(r.out, format_cluster_status_table(cluster_list(false)));
  EXPECT_THAT(r.out, StartsWith("cluster: 2 domains, NOT quorate\n"));
  r = run_ctl({"list", "--json"}, &d);
  EXPECT_EQ(r.code, 0);
  const auto j = boost::json::parse(r.out);
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.at("quorate").as_bool(), false);
  EXPECT_EQ(j.at("domains").as_array().size(), 2u);
}

TEST(CtlCli, HostsAsksTheDaemon) {
  FakeDaemon d;
  d.answer = three_hosts(true);
  auto r = run_ctl({"hosts", "--socket", "/tmp/c.sock", "--timeout", "7"}, &d);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(d.action_seen, proto::Action::hosts);
  EXPECT_EQ(d.target_seen, "");
  EXPECT_EQ(d.socket_seen, "/tmp/c.sock");
  EXPECT_EQ(d.timeout_seen, std::chrono::seconds(7));
  EXPECT_EQ(r.out, format_hosts_table(three_hosts(true)));
  r = run_ctl({"hosts", "--json"}, &d);
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, format_hosts_json(three_hosts(true)));
  r = run_ctl({"hosts", "--help"}, &d);
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("--socket"));
}

TEST(CtlCli, HostsInStandaloneModeFails) {
  FakeDaemon d;
  proto::Response standalone;
  standalone.status = proto::Status::failure;
  standalone.error = static_cast<std::uint16_t>(errc::operation_failed);
  standalone.message = "standalone mode: this host is in no cluster";
  d.answer = standalone;
  auto r = run_ctl({"hosts"}, &d);
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "vguardctl: standalone mode: this host is in no cluster\n");
  r = run_ctl({"hosts"}, nullptr);
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_THAT(r.err, StartsWith("vguardctl: cannot reach vguardd at /run/vguard/vguardd.sock: "));
}

TEST(CtlCli, ConfirmFencedNeedsYes) {
  FakeDaemon d;
  d.answer = three_hosts(true);
  auto r = run_ctl({"host", "confirm-fenced", "hv3"}, &d);
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_EQ(d.calls, 0);  // a dry run never reaches vguardd
  EXPECT_THAT(r.out, StartsWith("would confirm that hv3 was powered off (fenced)"));
  EXPECT_THAT(r.out, HasSubstr("re-run with --yes"));
  EXPECT_EQ(r.err, "vguardctl: not confirmed: add --yes\n");
}

TEST(CtlCli, ConfirmFencedSendsTheHost) {
  FakeDaemon d;
  proto::Response ok;
  ok.status = proto::Status::success;
  ok.flags = proto::kResponseCluster | proto::kResponseQuorate;
  ok.message = "hv3 confirmed fenced; its domains count as off";
  d.answer = ok;
  auto r = run_ctl({"host", "confirm-fenced", "--yes", "3", "--socket", "/tmp/c.sock"}, &d);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(d.action_seen, proto::Action::confirm_fenced);
  EXPECT_EQ(d.target_seen, "3");
  EXPECT_EQ(d.socket_seen, "/tmp/c.sock");
  EXPECT_EQ(r.out, "hv3 confirmed fenced; its domains count as off\n");
  EXPECT_EQ(r.err, "");

  proto::Response no;
  no.status = proto::Status::failure;
  no.message = "hv2 is a member: only a lost host can be confirmed fenced";
  d.answer = no;
  r = run_ctl({"host", "confirm-fenced", "hv2", "--yes"}, &d);
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_EQ(d.target_seen, "hv2");
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "vguardctl: hv2 is a member: only a lost host can be confirmed fenced\n");

  r = run_ctl({"host", "confirm-fenced", "hv2", "--yes"}, nullptr);
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_THAT(r.err, HasSubstr("cannot reach vguardd"));

  r = run_ctl({"host", "confirm-fenced", "--help"}, &d);
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("--yes"));
  r = run_ctl({"help", "hosts"}, &d);
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("Usage: vguardctl hosts"));
}

// ---- install-hook
// ------------------------------------------------------------------------------------------

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

void write_file(const std::string& path, const std::string& text, unsigned mode) {
  std::ofstream(path, std::ios::binary) << text;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

// Runs a command through /bin/sh with an empty environment, as libvirt runs hooks; returns its stdout.
std::string run_clean(const std::string& command, int* status = nullptr) {
  FILE* p = ::popen(("env -i " + command).c_str(), "r");
  EXPECT_NE(p, nullptr);
  if (!p) return {};
  std::string text;
  char buf[512];
  while (const std::size_t n = std::fread(buf, 1, sizeof buf, p)) text.append(buf, n);
  const int st = ::pclose(p);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return text;
}

// A hooks directory and a stand-in for vguard-hook that prints its arguments and VGUARD_CONFIG.
class InstallHookTest : public ::testing::Test {
 protected:
  TempDir tmp;
  std::string hooks = tmp.path() + "/etc/libvirt/hooks";
  std::string program = tmp.path() + "/bin dir/fake hook";
  std::string config = tmp.path() + "/it's vguard.conf";
  void SetUp() override {
    fs::create_directories(tmp.path() + "/bin dir");
    write_file(program, "#!/bin/sh\nprintf 'args=%s|' \"$@\"\nprintf 'config=%s\\n' \"$VGUARD_CONFIG\"\n", 0755);
  }
  [[nodiscard]] InstallHookOptions opts() const {
    InstallHookOptions o;
    o.hooks_dir = hooks;
    o.config = config;
    o.hook = program;
    return o;
  }
};

TEST(CtlInstallHook, WrapperText) {
  EXPECT_EQ(shell_quote("/usr/libexec/vguard/vguard-hook"), "'/usr/libexec/vguard/vguard-hook'");
  EXPECT_EQ(shell_quote("it's"), "'it'\\''s'");
  EXPECT_EQ(shell_quote(""), "''");
  const std::string w = hook_wrapper("/etc/vguard/vguard.conf", "/usr/libexec/vguard/vguard-hook");
  EXPECT_THAT(w, StartsWith("#!/bin/sh\n# vguard-hook wrapper, installed by vguardctl install-hook\n"));
  EXPECT_THAT(w, HasSubstr("\nVGUARD_CONFIG='/etc/vguard/vguard.conf' exec '/usr/libexec/vguard/vguard-hook' \"$@\"\n"));
}

TEST_F(InstallHookTest, FreshInstallCreatesTheDirectoryAndAnExecutableWrapper) {
  auto r = install_hook(opts());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->action, InstalledHook::Action::installed);
  EXPECT_EQ(r->target, hooks + "/qemu");
  EXPECT_EQ(mode_of(hooks), 0755u);
  EXPECT_EQ(mode_of(tmp.path() + "/etc/libvirt"), 0755u);
  EXPECT_EQ(mode_of(r->target), 0755u);
  EXPECT_EQ(slurp(r->target), hook_wrapper(config, program));
  EXPECT_EQ(entries(hooks), std::vector<std::string>{"qemu"});  // no temporary file left behind
}

TEST_F(InstallHookTest, TheWrapperRunsTheHookWithItsArgumentsAndConfig) {
  auto r = install_hook(opts());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  int status = -1;
  const std::string out = run_clean(shell_quote(r->target) + " web-1 prepare begin - </dev/null", &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(out, "args=web-1|args=prepare|args=begin|args=-|config=" + config + "\n");
}

TEST_F(InstallHookTest, ReRunIsIdempotent) {
  ASSERT_TRUE(install_hook(opts()).has_value());
  struct stat before {};
  ASSERT_EQ(::stat((hooks + "/qemu").c_str(), &before), 0);
  auto r = install_hook(opts());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->action, InstalledHook::Action::unchanged);
  struct stat after {};
  ASSERT_EQ(::stat((hooks + "/qemu").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);  // not even rewritten
  EXPECT_EQ(entries(hooks), std::vector<std::string>{"qemu"});
}

TEST_F(InstallHookTest, OurOwnWrapperIsUpdated) {
  ASSERT_TRUE(install_hook(opts()).has_value());
  auto o = opts();
  o.config = "/etc/vguard/other.conf";
  auto r = install_hook(o);
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->action, InstalledHook::Action::updated);
  EXPECT_EQ(slurp(hooks + "/qemu"), hook_wrapper("/etc/vguard/other.conf", program));
  // Same content but a wrong mode is repaired too.
  ASSERT_EQ(::chmod((hooks + "/qemu").c_str(), 0644), 0);
  r = install_hook(o);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->action, InstalledHook::Action::updated);
  EXPECT_EQ(mode_of(hooks + "/qemu"), 0755u);
}

TEST_F(InstallHookTest, AForeignHookIsRefusedAndLeftUnchanged) {
  fs::create_directories(hooks);
  const std::string foreign = "#!/bin/sh\n# someone else's hook\nexit 0\n";
  write_file(hooks + "/qemu", foreign, 0750);
  auto r = install_hook(opts());
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().context, hooks + "/qemu exists and is not a vguard hook; not touching it (move it into " +
                                   hooks + "/qemu.d/ or remove it)");
  EXPECT_EQ(slurp(hooks + "/qemu"), foreign);
  EXPECT_EQ(mode_of(hooks + "/qemu"), 0750u);
  EXPECT_EQ(entries(hooks), std::vector<std::string>{"qemu"});

  // A link (say to vguard-hook itself, as older instructions suggested) is not ours to replace either.
  fs::remove(hooks + "/qemu");
  fs::create_symlink(program, hooks + "/qemu");
  r = install_hook(opts());
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().context, HasSubstr("exists and is not a vguard hook"));
  EXPECT_TRUE(fs::is_symlink(hooks + "/qemu"));
}

TEST_F(InstallHookTest, QemuDotDIsPreferredWhenItExists) {
  fs::create_directories(hooks + "/qemu.d");
  write_file(hooks + "/qemu", "#!/bin/sh\nexit 0\n", 0755);  // another hook keeps the main name
  auto r = install_hook(opts());
  ASSERT_TRUE(r.has_value()) << r.error().message();
  EXPECT_EQ(r->target, hooks + "/qemu.d/vguard");
  EXPECT_EQ(hook_target(hooks), hooks + "/qemu.d/vguard");
  EXPECT_EQ(slurp(hooks + "/qemu.d/vguard"), hook_wrapper(config, program));
  EXPECT_EQ(mode_of(hooks + "/qemu.d/vguard"), 0755u);
  EXPECT_EQ(slurp(hooks + "/qemu"), "#!/bin/sh\nexit 0\n");
}

TEST_F(InstallHookTest, BadInputChangesNothing) {
  struct Case {
    InstallHookOptions o;
    std::string want;
  };
  std::vector<Case> cases;
  cases.push_back({opts(), ""});
  cases.back().o.config = "vguard.conf";
  cases.back().want = "the configuration file must be an absolute path, not 'vguard.conf'";
  cases.push_back({opts(), ""});
  cases.back().o.hook = "vguard-hook";
  cases.back().want = "the vguard-hook program must be an absolute path, not 'vguard-hook'";
  cases.push_back({opts(), ""});
  cases.back().o.hook = tmp.path() + "/missing";
  cases.back().want = tmp.path() + "/missing is not an executable file; name vguard-hook with --hook PATH";
  cases.push_back({opts(), ""});
  cases.back().o.hook = config;  // exists, not executable
  cases.back().want = "is not an executable file";
  write_file(config, "", 0644);
  for (const auto& c : cases) {
    auto r = install_hook(c.o);
    ASSERT_FALSE(r.has_value()) << c.want;
    EXPECT_THAT(r.error().context, HasSubstr(c.want));
    EXPECT_FALSE(fs::exists(tmp.path() + "/etc")) << c.want;
  }
}

TEST(CtlInstallHook, DefaultProgram) {
  TempDir tmp;
  const std::string installed = "/usr/local/libexec/vguard/vguard-hook";
  const std::string rel = "../libexec/vguard/vguard-hook";
  fs::create_directories(tmp.path() + "/bin");
  EXPECT_EQ(default_hook_program(tmp.path() + "/bin/vguardctl", rel, installed), installed);
  EXPECT_EQ(default_hook_program("", rel, installed), installed);
  fs::create_directories(tmp.path() + "/libexec/vguard");
  write_file(tmp.path() + "/libexec/vguard/vguard-hook", "", 0755);
  EXPECT_EQ(default_hook_program(tmp.path() + "/bin/vguardctl", rel, installed),
            tmp.path() + "/libexec/vguard/vguard-hook");
  write_file(tmp.path() + "/bin/vguard-hook", "", 0755);  // a build tree: next to vguardctl wins
  EXPECT_EQ(default_hook_program(tmp.path() + "/bin/vguardctl", rel, installed), tmp.path() + "/bin/vguard-hook");
}

TEST_F(InstallHookTest, CommandLine) {
  const std::vector<std::string> args = {"install-hook", "--hooks-dir", hooks, "--config", config, "--hook", program};
  const std::string restart =
      "libvirtd must be restarted to notice a new hook: systemctl restart libvirtd (running guests keep running)\n";
  auto r = run_ctl(args);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "vguard hook installed at " + hooks + "/qemu: runs " + program + " with VGUARD_CONFIG=" + config +
                       "\n" + restart);
  EXPECT_EQ(r.err, "");
  r = run_ctl(args);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "vguard hook already installed at " + hooks + "/qemu\n");
  r = run_ctl({"install-hook", "--hooks-dir", hooks, "--config", "/etc/vguard/b.conf", "--hook", program});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "vguard hook updated at " + hooks + "/qemu: runs " + program +
                       " with VGUARD_CONFIG=/etc/vguard/b.conf\n" + restart);

  const std::string other = tmp.path() + "/other";
  fs::create_directories(other);
  write_file(other + "/qemu", "#!/bin/sh\n", 0755);
  r = run_ctl({"install-hook", "--hooks-dir", other, "--hook", program});
  EXPECT_EQ(r.code, kExitFailure);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "vguardctl: " + other + "/qemu exists and is not a vguard hook; not touching it (move it into " +
                       other + "/qemu.d/ or remove it)\n");
  EXPECT_EQ(slurp(other + "/qemu"), "#!/bin/sh\n");

  r = run_ctl({"install-hook", "--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_THAT(r.out, HasSubstr("Usage: vguardctl install-hook [--hooks-dir DIR] [--config FILE] [--hook PATH]"));
  EXPECT_THAT(r.out, HasSubstr("/etc/libvirt/hooks"));
  EXPECT_THAT(r.out, HasSubstr("/etc/vguard/vguard.conf"));
  r = run_ctl({"--help"});
  EXPECT_THAT(r.out, HasSubstr("install-hook"));
}

// ---- the built binary
// --------------------------------------------------------------------------------------

int run_binary(const std::string& args, std::string* out = nullptr) {
  const std::string cmd = std::string(VGUARDCTL_PATH) + " " + args + " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[512];
  while (const std::size_t n = std::fread(buf, 1, sizeof buf, p)) text.append(buf, n);
  const int status = ::pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(CtlBinary, ExitCodes) {
  std::string out;
  EXPECT_EQ(run_binary("--version", &out), 0);
  EXPECT_EQ(out, "vguardctl 0.1.0\n");
  EXPECT_EQ(run_binary("log verify --file " + data("good.log"), &out), 0);
  EXPECT_THAT(out, StartsWith("OK: 10 records"));
  EXPECT_EQ(run_binary("log verify --file " + data("edited.log"), &out), 1);
  EXPECT_THAT(out, StartsWith("TAMPERED: line 7 (seq 7)"));
  EXPECT_EQ(run_binary("log verify --file " + data("torn.log")), 3);
  EXPECT_EQ(run_binary("log verify --file /nonexistent/forensic.log"), 1);
  EXPECT_EQ(run_binary(""), 2);
  EXPECT_EQ(run_binary("bogus"), 2);
  TempDir tmp;
  EXPECT_EQ(run_binary("status --timeout 2 --socket " + tmp.path() + "/none.sock"), 1);
}

TEST(CtlBinary, InstallHookDefaultsToTheVguardHookNextToIt) {
  const std::string beside = fs::path(VGUARDCTL_PATH).parent_path() / "vguard-hook";
  if (!fs::exists(beside)) GTEST_SKIP() << beside << " is not built";
  TempDir tmp;
  std::string out;
  EXPECT_EQ(run_binary("install-hook --hooks-dir " + tmp.path() + "/hooks", &out), 0);
  EXPECT_EQ(slurp(tmp.path() + "/hooks/qemu"), hook_wrapper("/etc/vguard/vguard.conf", beside));
  EXPECT_EQ(run_binary("install-hook --hooks-dir " + tmp.path() + "/hooks", &out), 0);
  EXPECT_EQ(out, "vguard hook already installed at " + tmp.path() + "/hooks/qemu\n");
}

}  // namespace
}  // namespace vguard::ctl
