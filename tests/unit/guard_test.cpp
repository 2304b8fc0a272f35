// guard/: vguard-hook's pure decisions: which hook invocations ask vguardd, the [hook] policies, the config
// keys it reads, and the line it prints for every kind of answer.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

#include "decide.h"
#include "key.h"

namespace vguard::guard {
namespace {

using proto::Action;

// Every operation and sub-operation libvirt's qemu hook passes (libvirt.org/hooks.html), plus nonsense.
const char* const kOps[] = {"prepare", "start", "started", "stopped", "release", "migrate", "restore",
                            "reconnect", "attach", "", "PREPARE", "bogus"};
const char* const kSubs[] = {"begin", "end", "-", "", "Begin"};

struct Want {
  std::optional<Action> ask;
  bool refuse = false;  // refuse_if_unreachable
  bool obey = false;
};

Want expected(std::string_view op, std::string_view sub, const HookSettings& s) {
  if (op == "prepare" && sub == "begin") return {Action::hook_prepare, s.refuse_prepare, true};
  if (op == "migrate" && sub == "begin") return {Action::hook_migrate, s.refuse_migrate, true};
  if (op == "reconnect" && sub == "begin") return {Action::hook_reconnect, s.refuse_reconnect, true};
  if (op == "release" && sub == "end") return {Action::hook_release, false, false};
  return {};
}

HookSettings settings(bool prepare, bool migrate, bool reconnect) {
  HookSettings s;
  s.refuse_prepare = prepare;
  s.refuse_migrate = migrate;
  s.refuse_reconnect = reconnect;
  return s;
}

TEST(GuardPlan, EveryOperationUnderEveryPolicy) {
  for (int bits = 0; bits < 8; ++bits) {
    const HookSettings s = settings(bits & 1, bits & 2, bits & 4);
    for (const char* op : kOps)
      for (const char* sub : kSubs) {
        const Plan p = plan_for(op, sub, s);
        const Want w = expected(op, sub, s);
        EXPECT_EQ(p.ask, w.ask) << op << " " << sub << " policy bits " << bits;
        EXPECT_EQ(p.refuse_if_unreachable, w.refuse) << op << " " << sub << " policy bits " << bits;
        EXPECT_EQ(p.obey_answer, w.obey) << op << " " << sub << " policy bits " << bits;
      }
  }
}

TEST(GuardPlan, Defaults) {
  // Fail closed before a start or an incoming migration; never kill a running guest at reconnect.
  EXPECT_TRUE(plan_for("prepare", "begin").refuse_if_unreachable);
  EXPECT_TRUE(plan_for("migrate", "begin").refuse_if_unreachable);
  EXPECT_FALSE(plan_for("reconnect", "begin").refuse_if_unreachable);
  EXPECT_EQ(plan_for("reconnect", "begin").ask, Action::hook_reconnect);
  // A restore is guarded by the "prepare begin" libvirt runs right after it; asking here would claim twice.
  EXPECT_FALSE(plan_for("restore", "begin").ask);
  EXPECT_FALSE(plan_for("restore", "begin", settings(true, true, true)).ask);
  EXPECT_FALSE(plan_for("migrate", "end").ask);  // no such sub-operation; nothing to ask
}

// ---- outcomes

proto::Response answer(proto::Status st, std::string msg, errc e = errc::ok) {
  proto::Response r;
  r.status = st;
  r.message = std::move(msg);
  r.error = static_cast<std::uint16_t>(e);
  return r;
}

TEST(GuardOutcome, SuccessAllowsEveryAskingOperation) {
  const std::pair<const char*, const char*> asking[] = {
      {"prepare", "begin"}, {"migrate", "begin"}, {"reconnect", "begin"}, {"release", "end"}};
  for (const auto& [op, sub] : asking)
    EXPECT_EQ(decide(plan_for(op, sub), "web-1", answer(proto::Status::success, "ok")), Outcome{}) << op;
}

TEST(GuardOutcome, RefusalNamesTheDomainAndVguarddsReason) {
  const auto no = answer(proto::Status::failure, "web-1 runs on h2 (epoch 4)", errc::operation_failed);
  EXPECT_EQ(decide(plan_for("prepare", "begin"), "web-1", no),
            (Outcome{1, "vguard: refusing to start web-1: web-1 runs on h2 (epoch 4)"}));
  EXPECT_EQ(decide(plan_for("migrate", "begin"), "web-1", no),
            (Outcome{1, "vguard: refusing incoming migration of web-1: web-1 runs on h2 (epoch 4)"}));
  EXPECT_EQ(decide(plan_for("reconnect", "begin"), "web-1", no),
            (Outcome{1, "vguard: refusing to reconnect to web-1: web-1 runs on h2 (epoch 4)"}));
  // Whatever vguardd says about a release, the domain is gone: never refused.
  EXPECT_EQ(decide(plan_for("release", "end"), "web-1", no), Outcome{});
  // vguardd's "no" is obeyed whatever the unreachable policy says.
  EXPECT_EQ(decide(plan_for("prepare", "begin", settings(false, false, false)), "web-1", no).exit_code, 1);
  EXPECT_EQ(decide(plan_for("prepare", "begin"), "d", answer(proto::Status::denied, "control socket only")),
            (Outcome{1, "vguard: refusing to start d: control socket only"}));
  EXPECT_EQ(decide(plan_for("prepare", "begin"), "d", answer(proto::Status::failure, "")),
            (Outcome{1, "vguard: refusing to start d: vguardd said no"}));
}

TEST(GuardOutcome, UnreachableFollowsThePolicy) {
  const Result<proto::Response> down = make_error(errc::not_running, "cannot connect to unix:/run/vguard/vguardd.sock");
  const std::string reason = down.error().message();
  EXPECT_EQ(decide(plan_for("prepare", "begin"), "db-1", down),
            (Outcome{1, "vguard: cannot ask vguardd (" + reason + "); refusing to start db-1 (fail-closed)"}));
  EXPECT_EQ(decide(plan_for("migrate", "begin"), "db-1", down),
            (Outcome{1, "vguard: cannot ask vguardd (" + reason + "); refusing incoming migration of db-1 (fail-closed)"}));
  EXPECT_EQ(decide(plan_for("reconnect", "begin"), "db-1", down), Outcome{});
  EXPECT_EQ(decide(plan_for("release", "end"), "db-1", down), Outcome{});

  const HookSettings open = settings(false, false, true);
  EXPECT_EQ(decide(plan_for("prepare", "begin", open), "db-1", down), Outcome{});
  EXPECT_EQ(decide(plan_for("migrate", "begin", open), "db-1", down), Outcome{});
  EXPECT_EQ(decide(plan_for("reconnect", "begin", open), "db-1", down),
            (Outcome{1, "vguard: cannot ask vguardd (" + reason + "); refusing to reconnect to db-1 (fail-closed)"}));
  EXPECT_EQ(decide(plan_for("release", "end", open), "db-1", down), Outcome{});

  const Result<proto::Response> late = make_error(errc::timed_out, "waiting for vguardd's answer");
  EXPECT_EQ(decide(plan_for("prepare", "begin"), "db-1", late).exit_code, 1);
}

TEST(GuardOutcome, AVguarddThatDoesNotKnowTheRequestCountsAsUnreachable) {
  const auto unknown = answer(proto::Status::failure, "unsupported action", errc::unknown_action);
  EXPECT_EQ(decide(plan_for("reconnect", "begin"), "web-1", unknown), Outcome{});
  const Outcome o = decide(plan_for("migrate", "begin"), "web-1", unknown);
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.message, "vguard: cannot ask vguardd (it does not support this request: unsupported action); "
                       "refusing incoming migration of web-1 (fail-closed)");
}

TEST(GuardOutcome, NoUuidFollowsThePolicy) {
  EXPECT_EQ(no_uuid(plan_for("prepare", "begin"), "x"),
            (Outcome{1, "vguard: cannot read the UUID of domain x from its XML; refusing to start x"}));
  EXPECT_EQ(no_uuid(plan_for("migrate", "begin"), "x").exit_code, 1);
  EXPECT_EQ(no_uuid(plan_for("reconnect", "begin"), "x"), Outcome{});
  EXPECT_EQ(no_uuid(plan_for("release", "end"), "x"), Outcome{});
  EXPECT_EQ(no_uuid(plan_for("prepare", "begin", settings(false, true, false)), "x"), Outcome{});
}

TEST(GuardOutcome, AlwaysExactlyOneLine) {
  const auto multi = answer(proto::Status::failure, "first\nsecond\r\nthird");
  const Outcome o = decide(plan_for("prepare", "begin"), "a\nb", multi);
  EXPECT_EQ(o.message, "vguard: refusing to start a b: first second  third");
  EXPECT_EQ(o.message.find('\n'), std::string::npos);
}

// ---- settings

TEST(GuardSettings, DefaultsAndValues) {
  auto s = parse_settings("", "/etc/vguard/vguard.conf");
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->control_socket, "/run/vguard/vguardd.sock");
  EXPECT_TRUE(s->refuse_prepare);
  EXPECT_TRUE(s->refuse_migrate);
  EXPECT_FALSE(s->refuse_reconnect);
  EXPECT_EQ(s->timeout_s, 10u);

  s = parse_settings(
      "# vguardd's keys are not the hook's business\n[daemon]\nlisten = 127.0.0.1:1231\ncontrol_socket = /tmp/v.sock\n"
      "[key.a]\nfile = /k\n[hook]\nunreachable_prepare = allow\nunreachable_migrate = allow\n"
      "unreachable_reconnect = refuse\ntimeout = 300\n[guard]\nreconnect_policy = refuse\n",
      "f.conf");
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_EQ(s->control_socket, "/tmp/v.sock");
  EXPECT_FALSE(s->refuse_prepare);
  EXPECT_FALSE(s->refuse_migrate);
  EXPECT_TRUE(s->refuse_reconnect);
  EXPECT_EQ(s->timeout_s, 300u);

  s = parse_settings("[hook]\nunreachable_prepare = refuse\nunreachable_reconnect = allow\ntimeout = 1\n", "f");
  ASSERT_TRUE(s) << s.error().message();
  EXPECT_TRUE(s->refuse_prepare);
  EXPECT_FALSE(s->refuse_reconnect);
  EXPECT_EQ(s->timeout_s, 1u);
}

TEST(GuardSettings, BadValuesNameFileLineAndKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"[hook]\nunreachable_prepare = deny\n", "f.conf:2: bad value 'deny' for unreachable_prepare: expected refuse or allow"},
      {"[hook]\n\nunreachable_migrate = yes\n", "f.conf:3: bad value 'yes' for unreachable_migrate"},
      {"[hook]\nunreachable_reconnect =\n", "f.conf:2: bad value '' for unreachable_reconnect"},
      {"[hook]\ntimeout = 0\n", "f.conf:2: bad value '0' for timeout: expected an integer from 1 to 300"},
      {"[hook]\ntimeout = 301\n", "f.conf:2: bad value '301'"},
      {"[hook]\ntimeout = 5s\n", "f.conf:2: bad value '5s'"},
      {"[hook]\ntimeout = 5\ntimeout = 6\n", "f.conf:3: 'hook.timeout' is set more than once"},
      {"[daemon]\ncontrol_socket = rel.sock\n", "f.conf:2: control_socket must be an absolute path"},
      {"[hook]\njunk\n", "f.conf:2: expected 'key = value'"},
  };
  for (const auto& [text, want] : cases) {
    auto s = parse_settings(text, "f.conf");
    ASSERT_FALSE(s) << text;
    EXPECT_EQ(s.error().code, make_error_code(errc::bad_config));
    EXPECT_NE(s.error().context.find(want), std::string::npos) << "got: " << s.error().context << "\nwant: " << want;
  }
}

TEST(GuardSettings, BrokenConfigIsUnreachable) {
  // main.cpp passes the config error as the reason: a start is refused naming it, a reconnect allowed.
  const auto err = parse_settings("[hook]\ntimeout = never\n", "/etc/vguard/vguard.conf");
  ASSERT_FALSE(err);
  const Outcome o = unreachable(plan_for("prepare", "begin"), "web-1", err.error().context);
  EXPECT_EQ(o.message, "vguard: cannot ask vguardd (/etc/vguard/vguard.conf:2: bad value 'never' for timeout: "
                       "expected an integer from 1 to 300); refusing to start web-1 (fail-closed)");
  EXPECT_EQ(unreachable(plan_for("reconnect", "begin"), "web-1", err.error().context), Outcome{});
}

TEST(Guard, UuidFromXml) {
  EXPECT_EQ(uuid_from_xml("<domain type='kvm'><name>a</name><uuid>AAAAAAAA-0000-0000-0000-000000000001</uuid></domain>"),
            "aaaaaaaa-0000-0000-0000-000000000001");
  EXPECT_FALSE(uuid_from_xml("<domain><name>a</name></domain>"));
  EXPECT_FALSE(uuid_from_xml("<domain><uuid>not-a-uuid</uuid></domain>"));
  EXPECT_FALSE(uuid_from_xml("<domain><uuid>"));
  EXPECT_FALSE(uuid_from_xml(""));
}

// ---- the built program: config file, environment, stdin and the socket, end to end

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "vguard-hook-XXXXXX").string();
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

struct HookRun {
  int code = -1;
  std::string err;
};

// Runs vguard-hook as libvirt does: empty environment (plus env), the XML on stdin; captures stderr.
HookRun run_hook(const std::string& env, const std::string& args, const std::string& xml, const std::string& dir) {
  const std::string in = dir + "/stdin.xml";
  const std::string err = dir + "/stderr.txt";
  std::ofstream(in) << xml;
  const std::string cmd = "env -i " + env + " " + VGUARD_HOOK_PATH + " " + args + " <" + in + " 2>" + err + " >/dev/null";
  const int st = std::system(cmd.c_str());
  HookRun r;
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  std::ifstream e(err);
  r.err.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
  return r;
}

// A one-shot stand-in for vguardd's control socket: answers one request with status and message and
// remembers the request.
class FakeVguardd {
 public:
  FakeVguardd(const std::string& path, proto::Status status, std::string message) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    EXPECT_EQ(::listen(fd_, 1), 0);
    thread_ = std::thread([this, status, msg = std::move(message)] {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string frame(4, '\0');
      if (read_exact(c, frame.data(), 4)) {
        auto len = proto::frame_length(frame);
        if (len) {
          frame.resize(4 + *len);
          if (read_exact(c, frame.data() + 4, *len)) {
            auto f = proto::decode_frame(frame, "");
            if (f && f->request) {
              request = *f->request;
              proto::Response resp;
              resp.nonce = f->request->nonce;
              resp.status = status;
              resp.message = msg;
              const std::string out = proto::encode_response(proto::kLocalKeyId, "", resp);
              EXPECT_EQ(::write(c, out.data(), out.size()), static_cast<ssize_t>(out.size()));
            }
          }
        }
      }
      ::close(c);
    });
  }
  ~FakeVguardd() {
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  FakeVguardd(const FakeVguardd&) = delete;
  FakeVguardd& operator=(const FakeVguardd&) = delete;
  std::optional<proto::Request> request;

 private:
  static bool read_exact(int fd, char* buf, std::size_t n) {
    while (n > 0) {
      const ssize_t got = ::read(fd, buf, n);
      if (got <= 0) return false;
      buf += got;
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
};

constexpr const char* kXml = "<domain type='kvm'><name>web-1</name><uuid>11111111-2222-4333-8444-555555555555</uuid></domain>";

TEST(GuardProgram, OperationsThatAskNothingNeverTouchTheConfigOrTheSocket) {
  TempDir tmp;
  // An unreadable config path and no socket: these still pass at once.
  for (const char* args : {"web-1 start begin -", "web-1 restore begin -", "web-1 started begin -",
                           "web-1 stopped end -", "web-1 migrate end -"}) {
    const auto r = run_hook("VGUARD_CONFIG=" + tmp.path(), args, kXml, tmp.path());
    EXPECT_EQ(r.code, 0) << args;
    EXPECT_EQ(r.err, "") << args;
  }
  const auto r = run_hook("", "web-1 prepare", kXml, tmp.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "vguard-hook: expected DOMAIN OPERATION SUB-OPERATION (called by libvirt as a qemu hook)\n");
}

TEST(GuardProgram, NoVguarddFollowsTheHookSection) {
  TempDir tmp;
  const std::string sock = tmp.path() + "/none.sock";
  const std::string conf = tmp.path() + "/vguard.conf";
  std::ofstream(conf) << "[daemon]\ncontrol_socket = " << sock << "\n[key.x]\nfile = /k\n";
  const std::string env = "VGUARD_CONFIG=" + conf;
  auto r = run_hook(env, "web-1 prepare begin -", kXml, tmp.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err.rfind("vguard: cannot ask vguardd (cannot connect to unix:" + sock, 0), 0u) << r.err;
  EXPECT_NE(r.err.find("); refusing to start web-1 (fail-closed)\n"), std::string::npos) << r.err;
  r = run_hook(env, "web-1 migrate begin -", kXml, tmp.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("); refusing incoming migration of web-1 (fail-closed)\n"), std::string::npos) << r.err;
  for (const char* args : {"web-1 reconnect begin -", "web-1 release end -"}) {
    r = run_hook(env, args, kXml, tmp.path());
    EXPECT_EQ(r.code, 0) << args;
    EXPECT_EQ(r.err, "") << args;
  }
  r = run_hook(env, "web-1 prepare begin -", "<domain><name>web-1</name></domain>", tmp.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "vguard: cannot read the UUID of domain web-1 from its XML; refusing to start web-1\n");

  std::ofstream(conf) << "[daemon]\ncontrol_socket = " << sock
                      << "\n[hook]\nunreachable_prepare = allow\nunreachable_migrate = allow\n"
                         "unreachable_reconnect = refuse\ntimeout = 2\n";
  for (const char* args : {"web-1 prepare begin -", "web-1 migrate begin -", "web-1 release end -"}) {
    r = run_hook(env, args, kXml, tmp.path());
    EXPECT_EQ(r.code, 0) << args << ": " << r.err;
  }
  r = run_hook(env, "web-1 reconnect begin -", kXml, tmp.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("refusing to reconnect to web-1 (fail-closed)\n"), std::string::npos) << r.err;

  // VGUARD_CONTROL_SOCKET wins over the file; a missing file means defaults.
  r = run_hook("VGUARD_CONFIG=" + tmp.path() + "/missing.conf VGUARD_CONTROL_SOCKET=" + sock, "web-1 prepare begin -",
               kXml, tmp.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("unix:" + sock), std::string::npos) << r.err;
}

TEST(GuardProgram, ABrokenConfigIsNamedAndNothingIsAsked) {
  TempDir tmp;
  const std::string conf = tmp.path() + "/vguard.conf";
  std::ofstream(conf) << "[hook]\n\nunreachable_prepare = maybe\n";
  const std::string env = "VGUARD_CONFIG=" + conf;
  auto r = run_hook(env, "web-1 prepare begin -", kXml, tmp.path());
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "vguard: cannot ask vguardd (" + conf +
                       ":3: bad value 'maybe' for unreachable_prepare: expected refuse or allow); refusing to start "
                       "web-1 (fail-closed)\n");
  r = run_hook(env, "web-1 reconnect begin -", kXml, tmp.path());
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.err, "");
}

TEST(GuardProgram, VguarddsAnswerIsObeyedAndItsDeadlineSent) {
  TempDir tmp;
  const std::string sock = tmp.path() + "/v.sock";
  const std::string conf = tmp.path() + "/vguard.conf";
  std::ofstream(conf) << "[daemon]\ncontrol_socket = " << sock << "\n[hook]\ntimeout = 20\n";
  const std::string env = "VGUARD_CONFIG=" + conf;
  {
    FakeVguardd d(sock, proto::Status::failure, "web-1 runs on h2 (epoch 4)");
    const auto r = run_hook(env, "web-1 migrate begin -", kXml, tmp.path());
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.err, "vguard: refusing incoming migration of web-1: web-1 runs on h2 (epoch 4)\n");
    ASSERT_TRUE(d.request);
    EXPECT_EQ(d.request->action, proto::Action::hook_migrate);
    EXPECT_EQ(d.request->target, "11111111-2222-4333-8444-555555555555");
    EXPECT_EQ(d.request->flags, proto::kFlagTargetIsUuid);
    EXPECT_EQ(d.request->budget_ms, 18000u);  // 90 % of [hook] timeout: vguardd answers before the hook gives up
  }
  fs::remove(sock);
  {
    FakeVguardd d(sock, proto::Status::failure, "owned by h2; refusing the reconnect (reconnect_policy = refuse)");
    const auto r = run_hook(env, "web-1 reconnect begin -", kXml, tmp.path());
    EXPECT_EQ(r.code, 1);
    EXPECT_EQ(r.err, "vguard: refusing to reconnect to web-1: owned by h2; refusing the reconnect "
                     "(reconnect_policy = refuse)\n");
    ASSERT_TRUE(d.request);
    EXPECT_EQ(d.request->action, proto::Action::hook_reconnect);
  }
  fs::remove(sock);
  {
    FakeVguardd d(sock, proto::Status::success, "granted");
    const auto r = run_hook(env, "web-1 prepare begin -", kXml, tmp.path());
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.err, "");
    ASSERT_TRUE(d.request);
    EXPECT_EQ(d.request->action, proto::Action::hook_prepare);
  }
  fs::remove(sock);
  {
    FakeVguardd d(sock, proto::Status::failure, "whatever");
    const auto r = run_hook(env, "web-1 release end -", kXml, tmp.path());
    EXPECT_EQ(r.code, 0);
    EXPECT_EQ(r.err, "");
    ASSERT_TRUE(d.request);
    EXPECT_EQ(d.request->action, proto::Action::hook_release);
  }
}

}  // namespace
}  // namespace vguard::guard
