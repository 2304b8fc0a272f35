// Scenario tests of the standalone engine: every rule of "who may act on what, and when is a domain off".
#include "engine.h"

#include <gtest/gtest.h>

#include "key.h"

namespace vguard::fenced {
namespace {

using proto::Action;
using proto::PowerState;
using proto::Status;

const Uuid kAlpha = *Uuid::parse("11111111-1111-1111-1111-111111111111");
const Uuid kBeta = *Uuid::parse("22222222-2222-2222-2222-222222222222");
const Uuid kGamma = *Uuid::parse("33333333-3333-3333-3333-333333333333");
const proto::KeyId kGuestKey = proto::key_id_of("guest-cluster-a-key-bytes");
const proto::KeyId kOtherKey = proto::key_id_of("guest-cluster-b-key-bytes");
const proto::KeyId kUnknownKey = proto::key_id_of("never-configured-key");

Policy policy() {
  Policy p;
  p.keys[kGuestKey] = {"guests-a", {"vm-a*", "33333333-*"}};
  p.keys[kOtherKey] = {"guests-b", {}};  // no allow line: deny everything
  return p;
}

// The engine plus a model hypervisor that answers its commands (auto = true) or lets the test do it.
struct Harness {
  Engine engine{policy()};
  TimeMs now = 1000;
  std::uint64_t next = 1;
  std::map<Uuid, PowerState> model{{kAlpha, PowerState::running}, {kBeta, PowerState::paused}, {kGamma, PowerState::shutoff}};
  bool autorun = true;
  std::vector<std::string> journal;  // commands the engine issued, "destroy <uuid>" ...

  std::vector<Command> feed(Input in) {
    auto cmds = engine.handle(Event{now, std::move(in)});
    if (!autorun) return cmds;
    // Answer hypervisor commands like a small hypervisor would, then feed the results back.
    std::vector<Command> all_cmds = cmds;
    for (const auto& c : cmds) {
      std::optional<OpDone> done;
      if (const auto* d = std::get_if<DoDestroy>(&c)) {
        journal.push_back("destroy " + d->uuid.str());
        model[d->uuid] = PowerState::shutoff;
        done = OpDone{d->op, true, "", errc::ok, PowerState::shutoff};
      } else if (const auto* st = std::get_if<DoStart>(&c)) {
        journal.push_back("start " + st->uuid.str());
        model[st->uuid] = PowerState::running;
        done = OpDone{st->op, true, "", errc::ok, PowerState::running};
      } else if (const auto* q = std::get_if<DoQuery>(&c)) {
        journal.push_back("query " + q->uuid.str());
        done = OpDone{q->op, true, "", errc::ok, model[q->uuid]};
      }
      if (done) {
        auto more = feed(*done);
        all_cmds.insert(all_cmds.end(), more.begin(), more.end());
      }
    }
    return all_cmds;
  }

  void connect() {
    feed(HvConnected{{{kAlpha, "vm-alpha", PowerState::running},
                      {kBeta, "vm-beta", PowerState::paused},
                      {kGamma, "vm-gamma", PowerState::shutoff}}});
  }
  std::vector<Command> request(Action a, std::string target, std::optional<proto::KeyId> key = kGuestKey,
                               std::uint32_t budget = 0, std::uint8_t flags = 0) {
    proto::Request r;
    r.action = a;
    r.target = std::move(target);
    r.budget_ms = budget;
    r.flags = flags;
    return feed(RequestIn{next++, "127.0.0.1:5000", key, r});
  }
};

template <class T>
std::vector<T> all(const std::vector<Command>& cmds) {
  std::vector<T> out;
  for (const auto& c : cmds)
    if (const auto* x = std::get_if<T>(&c)) out.push_back(*x);
  return out;
}

const Reply& only_reply(const std::vector<Command>& cmds) {
  static Reply r;
  auto replies = all<Reply>(cmds);
  EXPECT_EQ(replies.size(), 1u);
  r = replies.empty() ? Reply{} : replies.front();
  return r;
}

// The forensic record of an outcome comes before the reply it justifies.
void expect_audit_before_reply(const std::vector<Command>& cmds) {
  bool outcome = false;
  for (const auto& c : cmds) {
    if (const auto* a = std::get_if<Audit>(&c); a && a->type == "outcome") outcome = true;
    if (std::holds_alternative<Reply>(c)) {
      EXPECT_TRUE(outcome) << "reply without a preceding outcome record";
    }
  }
}

struct StatusCase {
  const char* name;
  Action action;
  std::string target;
  std::optional<proto::KeyId> key;
  Status want;
  errc want_err;
};

TEST(Engine, AnswersTable) {
  const StatusCase cases[] = {
      {"status running by name", Action::status, "vm-alpha", kGuestKey, Status::success, errc::ok},
      {"status running by uuid", Action::status, kAlpha.str(), kGuestKey, Status::success, errc::ok},
      {"status upper-case uuid", Action::status, "11111111-1111-1111-1111-111111111111", kGuestKey, Status::success, errc::ok},
      {"status paused counts as on", Action::status, "vm-beta", std::nullopt, Status::success, errc::ok},
      {"status shut off by uuid glob", Action::status, kGamma.str(), kGuestKey, Status::off, errc::ok},
      {"status of a denied domain", Action::status, "vm-beta", kGuestKey, Status::denied, errc::permission_denied},
      {"status by uuid of a denied domain", Action::status, kBeta.str(), kGuestKey, Status::denied, errc::permission_denied},
      {"key without allow lines", Action::status, "vm-alpha", kOtherKey, Status::denied, errc::permission_denied},
      {"unconfigured key", Action::off, "vm-alpha", kUnknownKey, Status::denied, errc::permission_denied},
      {"unknown domain allowed by glob is not off", Action::status, "vm-anything", kGuestKey, Status::failure, errc::no_such_domain},
      {"unknown domain off fails", Action::off, "vm-anything", kGuestKey, Status::failure, errc::no_such_domain},
      {"unknown domain not allowed: denied, no leak", Action::status, "nosuchvm", kGuestKey, Status::denied, errc::permission_denied},
      {"off of shut-off domain", Action::off, kGamma.str(), kGuestKey, Status::success, errc::ok},
      {"off of running domain", Action::off, "vm-alpha", kGuestKey, Status::success, errc::ok},
      {"reboot of shut-off domain does not start it", Action::reboot, kGamma.str(), kGuestKey, Status::success, errc::ok},
      {"on of running domain", Action::on, "vm-alpha", kGuestKey, Status::success, errc::ok},
      {"monitor", Action::monitor, "", kGuestKey, Status::success, errc::ok},
      {"hook over the network is refused", Action::hook_prepare, kAlpha.str(), kGuestKey, Status::denied, errc::permission_denied},
      {"hook on the local socket", Action::hook_prepare, kAlpha.str(), std::nullopt, Status::success, errc::ok},
  };
  for (const auto& c : cases) {
    Harness h;
    h.connect();
    auto cmds = h.request(c.action, c.target, c.key);
    const Reply& r = only_reply(cmds);
    EXPECT_EQ(r.response.status, c.want) << c.name << ": " << r.response.message;
    EXPECT_EQ(r.response.error, static_cast<std::uint16_t>(c.want_err)) << c.name;
    expect_audit_before_reply(cmds);
    ASSERT_FALSE(all<Audit>(cmds).empty());
    EXPECT_EQ(all<Audit>(cmds).front().type, "request") << c.name;
  }
}

TEST(Engine, OffDestroysAndAnswersOnlyAfterConfirmation) {
  Harness h;
  h.autorun = false;
  h.connect();
  auto cmds = h.request(Action::off, "vm-alpha");
  EXPECT_TRUE(all<Reply>(cmds).empty()) << "no answer before libvirt confirms";
  auto d = all<DoDestroy>(cmds);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].uuid, kAlpha);
  auto decisions = all<Audit>(cmds);
  ASSERT_FALSE(decisions.empty());
  EXPECT_EQ(decisions.back().type, "decision");
  // Written before the destroy; fsync'd with the outcome (a crash that loses it also ends the domain here).
  EXPECT_FALSE(decisions.back().sync) << "one fdatasync per fence, with the outcome";
  cmds = h.feed(OpDone{d[0].op, true, "", errc::ok, PowerState::shutoff});
  const Reply& r = only_reply(cmds);
  EXPECT_EQ(r.response.status, Status::success);
  expect_audit_before_reply(cmds);
  auto audits = all<Audit>(cmds);
  ASSERT_FALSE(audits.empty());
  EXPECT_TRUE(audits.back().sync) << "a fence outcome is fsync'd before the reply";
  EXPECT_EQ(h.engine.domain(kAlpha)->state, PowerState::shutoff);
}

TEST(Engine, OffAlwaysAsksLibvirtEvenIfCacheSaysOff) {
  // The cache said shut off, but a start raced it: the destroy still runs, libvirt decides.
  Harness h;
  h.connect();
  h.model[kGamma] = PowerState::running;  // started behind the cache's back (event not yet seen)
  auto cmds = h.request(Action::off, kGamma.str());
  EXPECT_EQ(only_reply(cmds).response.status, Status::success);
  EXPECT_EQ(h.model[kGamma], PowerState::shutoff);
  EXPECT_EQ(h.journal, std::vector<std::string>{"destroy " + kGamma.str()});
}

TEST(Engine, StatusAsksLibvirtNotTheCache) {
  Harness h;
  h.connect();
  h.model[kGamma] = PowerState::running;
  EXPECT_EQ(only_reply(h.request(Action::status, kGamma.str())).response.status, Status::success);
  h.model[kGamma] = PowerState::shutoff;
  EXPECT_EQ(only_reply(h.request(Action::status, kGamma.str())).response.status, Status::off);
}

TEST(Engine, FailedDestroyIsFailure) {
  Harness h;
  h.autorun = false;
  h.connect();
  auto d = all<DoDestroy>(h.request(Action::off, "vm-alpha"));
  ASSERT_EQ(d.size(), 1u);
  const Reply& r = only_reply(h.feed(OpDone{d[0].op, false, "libvirt: operation failed"}));
  EXPECT_EQ(r.response.status, Status::failure);
  EXPECT_NE(r.response.message.find("operation failed"), std::string::npos);
}

TEST(Engine, RebootQueriesDestroysThenStarts) {
  Harness h;
  h.connect();
  const Reply& r = only_reply(h.request(Action::reboot, "vm-alpha"));
  EXPECT_EQ(r.response.status, Status::success);
  EXPECT_EQ(h.journal, (std::vector<std::string>{"query " + kAlpha.str(), "destroy " + kAlpha.str(),
                                                 "start " + kAlpha.str()}));
}

TEST(Engine, RebootOfOffDomainDoesNotStartIt) {
  Harness h;
  h.connect();
  EXPECT_EQ(only_reply(h.request(Action::reboot, kGamma.str())).response.status, Status::success);
  EXPECT_EQ(h.journal, std::vector<std::string>{"query " + kGamma.str()});
  EXPECT_EQ(h.model[kGamma], PowerState::shutoff);
}

TEST(Engine, RebootWhoseRestartFailsStillFenced) {
  Harness h;
  h.autorun = false;
  h.connect();
  auto q = all<DoQuery>(h.request(Action::reboot, "vm-alpha"));
  auto d = all<DoDestroy>(h.feed(OpDone{q.at(0).op, true, "", errc::ok, PowerState::running}));
  auto s = all<DoStart>(h.feed(OpDone{d.at(0).op, true, "", errc::ok, PowerState::shutoff}));
  const Reply& r = only_reply(h.feed(OpDone{s.at(0).op, false, "no memory"}));
  EXPECT_EQ(r.response.status, Status::success) << "the domain was confirmed off: fencing succeeded";
  EXPECT_NE(r.response.message.find("restart failed"), std::string::npos);
}

TEST(Engine, OnStartsShutOffDomain) {
  Harness h;
  h.connect();
  EXPECT_EQ(only_reply(h.request(Action::on, kGamma.str())).response.status, Status::success);
  EXPECT_EQ(h.engine.domain(kGamma)->state, PowerState::running);
  EXPECT_EQ(h.model[kGamma], PowerState::running);
}

TEST(Engine, RequestsOnOneDomainRunOneAtATime) {
  // on, then off before the start finished: the off waits, and runs after the start.
  Harness h;
  h.autorun = false;
  h.connect();
  auto s = all<DoStart>(h.request(Action::on, kGamma.str()));
  ASSERT_EQ(s.size(), 1u);
  auto off_cmds = h.request(Action::off, kGamma.str());
  EXPECT_TRUE(all<Reply>(off_cmds).empty()) << "off must not answer from a state a start is changing";
  EXPECT_TRUE(all<DoDestroy>(off_cmds).empty()) << "off waits its turn";
  auto status_cmds = h.request(Action::status, kGamma.str());
  EXPECT_TRUE(all<DoQuery>(status_cmds).empty());
  auto after_start = h.feed(OpDone{s[0].op, true, "", errc::ok, PowerState::running});
  ASSERT_EQ(all<Reply>(after_start).size(), 1u);
  auto d = all<DoDestroy>(after_start);
  ASSERT_EQ(d.size(), 1u) << "the off runs once the start is done";
  auto after_destroy = h.feed(OpDone{d[0].op, true, "", errc::ok, PowerState::shutoff});
  ASSERT_EQ(all<Reply>(after_destroy).size(), 1u);
  auto q = all<DoQuery>(after_destroy);
  ASSERT_EQ(q.size(), 1u) << "then the status";
  EXPECT_EQ(only_reply(h.feed(OpDone{q[0].op, true, "", errc::ok, PowerState::shutoff})).response.status, Status::off);
  // Other domains are not held up.
  EXPECT_EQ(all<DoQuery>(h.request(Action::status, "vm-alpha")).size(), 1u);
}

TEST(Engine, MigratedAwayIsNeverOffNorStarted) {
  Harness h;
  h.connect();
  DomainInfo gone{kAlpha, "vm-alpha", PowerState::shutoff, true};
  h.feed(HvDomain{gone});
  for (Action a : {Action::status, Action::off, Action::reboot, Action::on}) {
    auto cmds = h.request(a, "vm-alpha");
    const Reply& r = only_reply(cmds);
    EXPECT_EQ(r.response.status, Status::failure) << proto::action_name(a);
    EXPECT_NE(r.response.message.find("migrated away"), std::string::npos);
    EXPECT_TRUE(h.journal.empty()) << proto::action_name(a);
  }
  // A plain shut-off event afterwards does not clear it; a start here does.
  h.feed(HvDomain{{kAlpha, "vm-alpha", PowerState::shutoff}});
  EXPECT_EQ(only_reply(h.request(Action::status, "vm-alpha")).response.status, Status::failure);
  h.feed(HvDomain{{kAlpha, "vm-alpha", PowerState::running}});
  EXPECT_EQ(only_reply(h.request(Action::status, "vm-alpha")).response.status, Status::success);
}

TEST(Engine, NoSuchDomainFromLibvirtIsFailure) {
  Harness h;
  h.autorun = false;
  h.connect();
  auto q = all<DoQuery>(h.request(Action::status, "vm-alpha"));
  const Reply& r = only_reply(h.feed(OpDone{q.at(0).op, false, "gone", errc::no_such_domain}));
  EXPECT_EQ(r.response.status, Status::failure);
}

TEST(Engine, DeadlineGivesFailureNeverSuccess) {
  Harness h;
  h.autorun = false;
  h.connect();
  auto d = all<DoDestroy>(h.request(Action::off, "vm-alpha", kGuestKey, 500));
  ASSERT_EQ(d.size(), 1u);
  auto waiting = h.request(Action::off, "vm-alpha", kGuestKey, 5000);
  EXPECT_TRUE(all<DoDestroy>(waiting).empty());
  h.now += 499;
  EXPECT_TRUE(all<Reply>(h.feed(Tick{})).empty());
  h.now += 2;
  const Reply& r = only_reply(h.feed(Tick{}));
  EXPECT_EQ(r.response.status, Status::failure);
  EXPECT_EQ(r.response.error, static_cast<std::uint16_t>(errc::timed_out));
  // A late confirmation is logged, answers nothing twice, and only then lets the waiting request run.
  auto late = h.feed(OpDone{d[0].op, true, "", errc::ok, PowerState::shutoff});
  EXPECT_TRUE(all<Reply>(late).empty());
  ASSERT_FALSE(all<Audit>(late).empty());
  EXPECT_EQ(all<Audit>(late)[0].type, "late-result");
  EXPECT_EQ(all<DoDestroy>(late).size(), 1u);
}

TEST(Engine, QueuedRequestExpires) {
  Harness h;
  h.autorun = false;
  h.connect();
  ASSERT_EQ(all<DoDestroy>(h.request(Action::off, "vm-alpha", kGuestKey, 5000)).size(), 1u);
  h.request(Action::status, "vm-alpha", kGuestKey, 100);
  h.now += 101;
  const Reply& r = only_reply(h.feed(Tick{}));
  EXPECT_EQ(r.response.error, static_cast<std::uint16_t>(errc::timed_out));
  EXPECT_NE(r.response.message.find("waiting"), std::string::npos);
}

TEST(Engine, DisconnectedMeansUnknownNeverOff) {
  for (Action a : {Action::status, Action::off, Action::reboot, Action::on, Action::list, Action::monitor}) {
    Harness h;
    h.connect();
    h.feed(HvLost{"libvirtd went away"});
    EXPECT_FALSE(h.engine.hypervisor_connected());
    auto cmds = h.request(a, kGamma.str());  // gamma was shut off before the loss
    const Reply& r = only_reply(cmds);
    EXPECT_EQ(r.response.status, Status::failure) << proto::action_name(a);
    EXPECT_EQ(r.response.error, static_cast<std::uint16_t>(errc::hypervisor_unreachable)) << proto::action_name(a);
    EXPECT_NE(r.response.message.find("libvirtd went away"), std::string::npos);
    EXPECT_TRUE(all<DoDestroy>(cmds).empty());
    EXPECT_EQ(h.engine.domain(kGamma)->state, PowerState::unknown);
  }
}

TEST(Engine, NotConnectedAtStartIsUnknown) {
  Harness h;
  EXPECT_EQ(only_reply(h.request(Action::status, "vm-alpha")).response.status, Status::failure);
}

TEST(Engine, ReconnectRestoresService) {
  Harness h;
  h.connect();
  h.feed(HvLost{"gone"});
  EXPECT_EQ(only_reply(h.request(Action::status, kGamma.str())).response.status, Status::failure);
  h.connect();
  EXPECT_EQ(only_reply(h.request(Action::status, kGamma.str())).response.status, Status::off);
}

TEST(Engine, LifecycleEventsUpdateTheMap) {
  Harness h;
  h.connect();
  h.feed(HvDomain{{kAlpha, "vm-alpha", PowerState::shutoff}});
  EXPECT_EQ(h.engine.domain(kAlpha)->state, PowerState::shutoff);
  h.feed(HvDomain{{kAlpha, "vm-alpha", PowerState::running}});
  EXPECT_EQ(h.engine.domain(kAlpha)->state, PowerState::running);
  const Uuid fresh = *Uuid::parse("55555555-5555-5555-5555-555555555555");
  h.feed(HvDomain{{fresh, "vm-anew", PowerState::running}});
  EXPECT_EQ(only_reply(h.request(Action::list, "")).response.domains.size(), 3u) << "new domain listed (vm-a*)";
}

TEST(Engine, ListIsFilteredByKey) {
  Harness h;
  h.connect();
  auto r = only_reply(h.request(Action::list, ""));
  ASSERT_EQ(r.response.domains.size(), 2u);  // vm-alpha by name glob, gamma by uuid glob
  EXPECT_EQ(r.response.domains[0].name, "vm-alpha");
  EXPECT_EQ(r.response.domains[1].name, "vm-gamma");
  r = only_reply(h.request(Action::list_status, "", std::nullopt));
  EXPECT_EQ(r.response.domains.size(), 3u);
  r = only_reply(h.request(Action::list, "", kOtherKey));
  EXPECT_EQ(r.response.status, Status::success);
  EXPECT_TRUE(r.response.domains.empty());
}

TEST(Engine, AmbiguousNameRefused) {
  Harness h;
  const Uuid dup = *Uuid::parse("44444444-4444-4444-4444-444444444444");
  h.feed(HvConnected{{{kAlpha, "vm-alpha", PowerState::running}, {dup, "vm-alpha", PowerState::running}}});
  auto cmds = h.request(Action::off, "vm-alpha");
  EXPECT_EQ(only_reply(cmds).response.error, static_cast<std::uint16_t>(errc::ambiguous_domain));
  EXPECT_TRUE(all<DoDestroy>(cmds).empty());
}

TEST(Engine, UseUuidFlagRequiresUuid) {
  Harness h;
  h.connect();
  auto r = only_reply(h.request(Action::status, "vm-alpha", kGuestKey, 0, proto::kFlagTargetIsUuid));
  EXPECT_EQ(r.response.status, Status::failure);
}

TEST(Engine, DeniedRequestChangesNothing) {
  Harness h;
  h.connect();
  auto cmds = h.request(Action::off, "vm-beta");
  EXPECT_EQ(only_reply(cmds).response.status, Status::denied);
  EXPECT_TRUE(all<DoDestroy>(cmds).empty());
  EXPECT_EQ(h.engine.domain(kBeta)->state, PowerState::paused);
  EXPECT_EQ(h.engine.pending(), 0u);
}

}  // namespace
}  // namespace vguard::fenced

namespace vguard::fenced {
namespace {
TEST(Engine, AmbiguousNameNotRevealedToUnauthorizedKey) {
  Harness h;
  const Uuid dup = *Uuid::parse("44444444-4444-4444-4444-444444444444");
  h.feed(HvConnected{{{kBeta, "vm-beta", PowerState::running}, {dup, "vm-beta", PowerState::running}}});
  auto r = only_reply(h.request(Action::status, "vm-beta"));
  EXPECT_EQ(r.response.status, Status::denied);
}
}  // namespace
}  // namespace vguard::fenced
