#include "config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <utility>

namespace vguard::fenced {
namespace {

class ConfigTest : public ::testing::Test {
 protected:
  std::string dir = ::testing::TempDir();
  std::string key_path = dir + "/cfg-test.key";
  std::string key2_path = dir + "/cfg-test2.key";
  void SetUp() override {
    std::ofstream(key_path, std::ios::binary) << "0123456789abcdef0123456789abcdef";
    std::ofstream(key2_path, std::ios::binary) << "fedcba9876543210fedcba9876543210";
  }
  std::string write(const std::string& text) {
    const std::string p = dir + "/vguard-test.conf";
    std::ofstream(p) << text;
    return p;
  }
  std::string error_of(const std::string& text) {
    auto c = load_config(write(text));
    EXPECT_FALSE(c) << "accepted:\n" << text;
    return c ? std::string() : c.error().context;
  }
};

TEST_F(ConfigTest, FullFileLoads) {
  auto c = load_config(write("# comment\n[daemon]\nlibvirt_uri = test:///default\nlisten = 127.0.0.1:1231\n"
                             "listen = [::1]:1231\ncontrol_socket = /tmp/x.sock\nlog_file = /tmp/f.log\n"
                             "replay_window = 20\nrequest_timeout = 10\nlog_level = debug\n\n[key.guests-a]\nfile = " +
                             key_path + "\nallow = web-*, db-1\nallow = 11111111-1111-1111-1111-111111111111\n"
                                        "[key.guests-b]\nfile = " + key2_path + "\n"));
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->libvirt_uri, "test:///default");
  EXPECT_EQ(c->listen.size(), 2u);
  EXPECT_EQ(c->replay_window, 20u);
  ASSERT_EQ(c->keys.size(), 2u);
  EXPECT_EQ(c->keys[0].name, "guests-a");
  EXPECT_EQ(c->keys[0].allow, (std::vector<std::string>{"web-*", "db-1", "11111111-1111-1111-1111-111111111111"}));
  EXPECT_TRUE(c->keys[1].allow.empty());
  auto p = c->policy();
  EXPECT_EQ(p.keys.size(), 2u);
  EXPECT_EQ(p.default_budget_ms, 10000u);
}

TEST_F(ConfigTest, DefaultsWhenEmpty) {
  auto c = load_config(write(""));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->libvirt_uri, "qemu:///system");
  EXPECT_TRUE(c->listen.empty());
  EXPECT_EQ(c->control_socket, "/run/vguard/vguardd.sock");
}

TEST_F(ConfigTest, ErrorsNameFileLineAndProblem) {
  struct Case {
    std::string text;
    std::string want;
  } cases[] = {
      {"[daemon]\nlibvrt_uri = x\n", "vguard-test.conf:2: unknown key 'daemon.libvrt_uri'"},
      {"[daemon]\n\nreplay_window = abc\n", ":3: bad value 'abc' for replay_window"},
      {"[daemon]\nrequest_timeout = 0\n", ":2: bad value '0' for request_timeout"},
      {"[daemon]\nlisten = 127.0.0.1\n", ":2: bad listen address '127.0.0.1'"},
      {"[daemon]\nlisten = 127.0.0.1:99999\n", ":2: bad port"},
      {"[daemon]\nlog_level = loud\n", ":2: bad log_level 'loud'"},
      {"[daemon]\nlog_file = relative.log\n", ":2: log_file must be an absolute path"},
      {"[daemon]\nlibvirt_uri = a\nlibvirt_uri = b\n", ":3: 'daemon.libvirt_uri' is set more than once"},
      {"[daemon]\njunk line\n", ":2: expected 'key = value'"},
      {"[key.a]\nallow = x\n", ":1: key 'a' has no 'file'"},
      {"[key.a]\nfile = /nonexistent/k\n", ":2: cannot read key file /nonexistent/k"},
      {"[key.a]\nfile = " + key_path + "\nalow = x\n", ":3: unknown key 'alow' in section [key.a]"},
      {"[key.a]\nfile = " + key_path + "\n[key.b]\nfile = " + key_path + "\n", "use the same key bytes"},
      {"[deamon]\nlisten = 1.2.3.4:5\n", ":2: unknown key 'deamon.listen'"},
      {"[daemon]\nlisten = localhost:1231\n", ":2: bad listen address 'localhost:1231': 'localhost' is not a numeric"},
      {"[daemon]\nlisten = 127.0.0.1:1\nlisten = 127.0.0.1:1\n", ":3: listen address '127.0.0.1:1' is given twice"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.text);
    EXPECT_NE(e.find(c.want), std::string::npos) << "got: " << e << "\nwant: " << c.want;
  }
}

TEST_F(ConfigTest, MissingFile) {
  auto c = load_config("/nonexistent/vguard.conf");
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().context.find("/nonexistent/vguard.conf"), std::string::npos);
}

TEST(Listen, Parse) {
  auto a = parse_listen("vsock:1231");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->kind, ListenAddress::Kind::vsock);
  a = parse_listen("[::1]:7");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "::1");
  EXPECT_FALSE(parse_listen("::1:7"));
  EXPECT_FALSE(parse_listen(":7"));
  EXPECT_FALSE(parse_listen("vsock:0"));
}

}  // namespace
}  // namespace vguard::fenced

namespace vguard::fenced {
namespace {
TEST_F(ConfigTest, ClusterSection) {
  auto c = load_config(write("[cluster]\nenabled = yes\nkey_file = " + key_path +
                             "\nhostname = hv1\npacemaker_history = yes\nnodes = 1, 2,3\n"));
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_TRUE(c->cluster);
  EXPECT_TRUE(c->pacemaker_history);
  EXPECT_EQ(c->hostname, "hv1");
  EXPECT_EQ(c->cluster_group, "vguard");
  EXPECT_EQ(c->nodes, (std::vector<std::uint32_t>{1, 2, 3}));
  EXPECT_NE(error_of("[cluster]\nnodes = 1,x\n").find(":2: bad value 'x' for nodes"), std::string::npos);
  EXPECT_NE(error_of("[cluster]\nenabled = yes\n").find("needs key_file"), std::string::npos);
  EXPECT_NE(error_of("[cluster]\ngroup = fence-agents\n").find("fence_virtd"), std::string::npos);
  EXPECT_NE(error_of("[cluster]\npacemaker_history = maybe\n").find(":2: bad value 'maybe'"), std::string::npos);
  EXPECT_NE(error_of("[cluster]\nenabled = perhaps\n").find(":2: bad value"), std::string::npos);
}
}  // namespace
}  // namespace vguard::fenced

namespace vguard::fenced {
namespace {
using Dup = GuardPolicy::Duplicate;
using Rec = GuardPolicy::Reconnect;

TEST_F(ConfigTest, GuardAndHookDefaults) {
  auto c = load_config(write(""));
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->guard.duplicate, Dup::alert);
  EXPECT_EQ(c->guard.reconnect, Rec::alert);
  EXPECT_TRUE(c->hook_refuse_prepare);
  EXPECT_TRUE(c->hook_refuse_migrate);
  EXPECT_FALSE(c->hook_refuse_reconnect);  // a failing reconnect hook makes libvirt kill the running guest
  EXPECT_EQ(c->hook_timeout, 10u);
  // Empty sections change nothing either.
  c = load_config(write("[guard]\n[hook]\n"));
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_EQ(c->guard.duplicate, Dup::alert);
  EXPECT_EQ(c->hook_timeout, 10u);
}

TEST_F(ConfigTest, GuardPolicies) {
  const std::pair<const char*, Dup> dups[] = {{"alert", Dup::alert}, {"pause", Dup::pause}, {"destroy", Dup::destroy}};
  for (const auto& [word, want] : dups) {
    auto c = load_config(write(std::string("[guard]\nduplicate_policy = ") + word + "\n"));
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->guard.duplicate, want) << word;
    EXPECT_EQ(c->guard.reconnect, Rec::alert) << word;
  }
  const std::pair<const char*, Rec> recs[] = {{"alert", Rec::alert}, {"refuse", Rec::refuse}};
  for (const auto& [word, want] : recs) {
    auto c = load_config(write(std::string("[guard]\nreconnect_policy = ") + word + "\n"));
    ASSERT_TRUE(c) << c.error().message();
    EXPECT_EQ(c->guard.reconnect, want) << word;
    EXPECT_EQ(c->guard.duplicate, Dup::alert) << word;
  }
}

TEST_F(ConfigTest, HookSettings) {
  auto c = load_config(write("[hook]\nunreachable_prepare = allow\nunreachable_migrate = allow\n"
                             "unreachable_reconnect = refuse\ntimeout = 300\n"));
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_FALSE(c->hook_refuse_prepare);
  EXPECT_FALSE(c->hook_refuse_migrate);
  EXPECT_TRUE(c->hook_refuse_reconnect);
  EXPECT_EQ(c->hook_timeout, 300u);
  c = load_config(write("[hook]\nunreachable_prepare = refuse\nunreachable_migrate = refuse\n"
                        "unreachable_reconnect = allow\ntimeout = 1\n"));
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_TRUE(c->hook_refuse_prepare);
  EXPECT_TRUE(c->hook_refuse_migrate);
  EXPECT_FALSE(c->hook_refuse_reconnect);
  EXPECT_EQ(c->hook_timeout, 1u);
  // Each key is independent of the others.
  c = load_config(write("[hook]\nunreachable_migrate = allow\n"));
  ASSERT_TRUE(c) << c.error().message();
  EXPECT_TRUE(c->hook_refuse_prepare);
  EXPECT_FALSE(c->hook_refuse_migrate);
  EXPECT_FALSE(c->hook_refuse_reconnect);
}

TEST_F(ConfigTest, GuardAndHookErrorsNameFileLineAndKey) {
  struct Case {
    std::string text;
    std::string want;
  } cases[] = {
      {"[guard]\nduplicate_policy = kill\n",
       "vguard-test.conf:2: bad value 'kill' for duplicate_policy: expected alert or pause or destroy"},
      {"[guard]\n\nreconnect_policy = destroy\n",
       "vguard-test.conf:3: bad value 'destroy' for reconnect_policy: expected alert or refuse"},
      {"[guard]\nduplicate_policy = Pause\n", ":2: bad value 'Pause' for duplicate_policy"},
      {"[guard]\nduplicate_policy =\n", ":2: bad value '' for duplicate_policy"},
      {"[guard]\nduplicate_policy = alert\nduplicate_policy = pause\n",
       ":3: 'guard.duplicate_policy' is set more than once"},
      {"[guard]\nreconnect = refuse\n", ":2: unknown key 'guard.reconnect'"},
      {"[hook]\nunreachable_prepare = deny\n",
       "vguard-test.conf:2: bad value 'deny' for unreachable_prepare: expected refuse or allow"},
      {"[hook]\nunreachable_migrate = yes\n", ":2: bad value 'yes' for unreachable_migrate"},
      {"[hook]\n# c\nunreachable_reconnect = no\n", ":3: bad value 'no' for unreachable_reconnect"},
      {"[hook]\nunreachable_restore = refuse\n", ":2: unknown key 'hook.unreachable_restore': a restore is guarded"},
      {"[hook]\ntimeout = 0\n", "vguard-test.conf:2: bad value '0' for timeout: expected an integer from 1 to 300"},
      {"[hook]\ntimeout = 301\n", ":2: bad value '301' for timeout"},
      {"[hook]\ntimeout = 10s\n", ":2: bad value '10s' for timeout"},
      {"[hook]\ntimeout = -1\n", ":2: bad value '-1' for timeout"},
      {"[hook]\ntimeout = 5\ntimeout = 6\n", ":3: 'hook.timeout' is set more than once"},
      {"[hook]\nunreachable_start = refuse\n", ":2: unknown key 'hook.unreachable_start'"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(c.text);
    EXPECT_NE(e.find(c.want), std::string::npos) << "got: " << e << "\nwant: " << c.want;
  }
}
}  // namespace
}  // namespace vguard::fenced
