// LibvirtHypervisor against libvirt's in-process test driver (no daemon, no root; test-harness.md §A).
#include "libvirt_hypervisor.h"

#include <gtest/gtest.h>
#include <libvirt/libvirt.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace vguard::fenced {
namespace {

using proto::PowerState;
using namespace std::chrono_literals;

template <auto F>
struct CDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    if (p) F(p);
  }
};
using RawConn = std::unique_ptr<virConnect, CDeleter<virConnectClose>>;
using RawDomain = std::unique_ptr<virDomain, CDeleter<virDomainFree>>;

constexpr auto kEventWait = 5s;

const Uuid kAlpha = *Uuid::parse("11111111-1111-1111-1111-111111111111");
const Uuid kBeta = *Uuid::parse("22222222-2222-2222-2222-222222222222");
const Uuid kGamma = *Uuid::parse("33333333-3333-3333-3333-333333333333");
const Uuid kMissing = *Uuid::parse("99999999-9999-9999-9999-999999999999");

std::string node_uri() { return std::string("test://") + VG_TEST_DATA + "/libvirt/testnode.xml"; }

bool is(const Error& e, errc c) { return e.code == make_error_code(c); }

class Recorder final : public HypervisorListener {
 public:
  void on_domain_event(const DomainInfo& d) noexcept override {
    std::lock_guard lk(mu_);
    events_.push_back(d);
    cv_.notify_all();
  }
  void on_connection_lost(const Error& why) noexcept override {
    std::lock_guard lk(mu_);
    lost_.push_back(why);
    cv_.notify_all();
  }
  /// Waits (bounded) until at least `n` events for `u` with state `s` arrived.
  bool wait_event(const Uuid& u, PowerState s, std::size_t n = 1) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, kEventWait, [&] {
      return static_cast<std::size_t>(std::count_if(events_.begin(), events_.end(), [&](const DomainInfo& d) {
               return d.uuid == u && d.state == s;
             })) >= n;
    });
  }
  std::vector<DomainInfo> events() const {
    std::lock_guard lk(mu_);
    return events_;
  }
  std::size_t lost() const {
    std::lock_guard lk(mu_);
    return lost_.size();
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<DomainInfo> events_;
  std::vector<Error> lost_;
};

class LibvirtHypervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hv_ = std::make_unique<LibvirtHypervisor>(node_uri());
    hv_->set_listener(&rec_);
  }
  void TearDown() override { hv_.reset(); }  // closes the connection before the recorder goes away

  Recorder rec_;
  std::unique_ptr<LibvirtHypervisor> hv_;
};

TEST_F(LibvirtHypervisorTest, ListsEveryDomainWithState) {
  ASSERT_TRUE(hv_->connect()) << hv_->connect().error().message();
  EXPECT_TRUE(hv_->connected());
  auto r = hv_->list_domains();
  ASSERT_TRUE(r) << r.error().message();
  auto doms = *r;
  std::sort(doms.begin(), doms.end(),
            [](const DomainInfo& a, const DomainInfo& b) { return a.uuid < b.uuid; });
  ASSERT_EQ(doms.size(), 3u);
  EXPECT_EQ(doms[0], (DomainInfo{kAlpha, "vm-alpha", PowerState::running}));
  EXPECT_EQ(doms[1], (DomainInfo{kBeta, "vm-beta", PowerState::running}));
  EXPECT_EQ(doms[2], (DomainInfo{kGamma, "vm-gamma", PowerState::shutoff}));
}

TEST_F(LibvirtHypervisorTest, ConnectIsIdempotent) {
  ASSERT_TRUE(hv_->connect());
  ASSERT_TRUE(hv_->connect());
  EXPECT_TRUE(hv_->connected());
  EXPECT_TRUE(hv_->list_domains());
}

TEST_F(LibvirtHypervisorTest, CallsBeforeConnectAreUnreachable) {
  EXPECT_FALSE(hv_->connected());
  auto r = hv_->list_domains();
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), errc::hypervisor_unreachable));
  EXPECT_TRUE(is(hv_->destroy(kAlpha).error(), errc::hypervisor_unreachable));
}

TEST_F(LibvirtHypervisorTest, StateOfOneDomain) {
  ASSERT_TRUE(hv_->connect());
  EXPECT_EQ(*hv_->state(kAlpha), PowerState::running);
  EXPECT_EQ(*hv_->state(kGamma), PowerState::shutoff);
}

TEST_F(LibvirtHypervisorTest, DestroyConfirmsShutoffAndEmitsEvent) {
  ASSERT_TRUE(hv_->connect());
  auto r = hv_->destroy(kAlpha);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*hv_->state(kAlpha), PowerState::shutoff);
  EXPECT_TRUE(rec_.wait_event(kAlpha, PowerState::shutoff));
  EXPECT_EQ(*hv_->state(kBeta), PowerState::running);  // only the target
}

TEST_F(LibvirtHypervisorTest, DestroyIsIdempotent) {
  ASSERT_TRUE(hv_->connect());
  EXPECT_TRUE(hv_->destroy(kGamma));  // already shut off
  ASSERT_TRUE(hv_->destroy(kBeta));
  ASSERT_TRUE(hv_->destroy(kBeta));
  EXPECT_EQ(*hv_->state(kBeta), PowerState::shutoff);
}

TEST_F(LibvirtHypervisorTest, StartIsIdempotentAndEmitsEvent) {
  ASSERT_TRUE(hv_->connect());
  auto r = hv_->start(kGamma);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(*hv_->state(kGamma), PowerState::running);
  EXPECT_TRUE(rec_.wait_event(kGamma, PowerState::running));
  EXPECT_TRUE(hv_->start(kGamma));
  EXPECT_TRUE(hv_->start(kAlpha));  // running from the start
}

TEST_F(LibvirtHypervisorTest, UnknownUuidIsNoSuchDomain) {
  ASSERT_TRUE(hv_->connect());
  EXPECT_TRUE(is(hv_->state(kMissing).error(), errc::no_such_domain));
  EXPECT_TRUE(is(hv_->destroy(kMissing).error(), errc::no_such_domain));
  EXPECT_TRUE(is(hv_->start(kMissing).error(), errc::no_such_domain));
  EXPECT_TRUE(hv_->connected());  // a missing domain is not a lost connection
  EXPECT_EQ(rec_.lost(), 0u);
}

TEST_F(LibvirtHypervisorTest, FileUriGivesEachInstanceItsOwnState) {
  ASSERT_TRUE(hv_->connect());
  ASSERT_TRUE(hv_->destroy(kAlpha));
  LibvirtHypervisor other(node_uri());
  ASSERT_TRUE(other.connect());
  EXPECT_EQ(*other.state(kAlpha), PowerState::running);
}

TEST(LibvirtHypervisorUnreachable, ConnectFailsWithLibvirtMessage) {
  Recorder rec;
  LibvirtHypervisor hv("qemu+unix:///system?socket=/nonexistent/sock");
  hv.set_listener(&rec);
  auto r = hv.connect();
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), errc::hypervisor_unreachable));
  EXPECT_NE(r.error().message().find("/nonexistent/sock"), std::string::npos) << r.error().message();
  EXPECT_FALSE(hv.connected());
  EXPECT_TRUE(is(hv.list_domains().error(), errc::hypervisor_unreachable));
  EXPECT_EQ(rec.lost(), 0u);  // never connected, so nothing was lost
}

// test:///default shares one driver state among all connections of the process, so a change made through
// a raw connection reaches the adapter as an event (test-harness.md §A, "State-sharing semantics").
class DefaultDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Constructing the adapter first registers libvirt's event implementation before any virConnectOpen.
    hv_ = std::make_unique<LibvirtHypervisor>("test:///default");
    hv_->set_listener(&rec_);
    ASSERT_TRUE(hv_->connect());
    raw_.reset(virConnectOpen("test:///default"));
    ASSERT_TRUE(raw_);
  }
  void TearDown() override {
    hv_.reset();
    raw_.reset();
  }

  Uuid uuid_of(virDomainPtr d) {
    unsigned char b[VIR_UUID_BUFLEN];
    EXPECT_EQ(virDomainGetUUID(d, b), 0);
    Uuid u;
    std::copy_n(b, u.bytes.size(), u.bytes.begin());
    return u;
  }

  Recorder rec_;
  std::unique_ptr<LibvirtHypervisor> hv_;
  RawConn raw_;
};

TEST_F(DefaultDriverTest, EventsCrossConnections) {
  RawDomain dom(virDomainLookupByName(raw_.get(), "test"));
  ASSERT_TRUE(dom);
  const Uuid u = uuid_of(dom.get());
  ASSERT_EQ(virDomainIsActive(dom.get()), 1);

  ASSERT_EQ(virDomainDestroy(dom.get()), 0);
  EXPECT_TRUE(rec_.wait_event(u, PowerState::shutoff));  // STOPPED
  EXPECT_EQ(*hv_->state(u), PowerState::shutoff);

  ASSERT_EQ(virDomainCreate(dom.get()), 0);
  EXPECT_TRUE(rec_.wait_event(u, PowerState::running));  // STARTED
  ASSERT_EQ(virDomainSuspend(dom.get()), 0);
  EXPECT_TRUE(rec_.wait_event(u, PowerState::paused));  // SUSPENDED
  ASSERT_EQ(virDomainResume(dom.get()), 0);
  EXPECT_EQ(*hv_->state(u), PowerState::running);
}

TEST_F(DefaultDriverTest, DefineAndUndefineReportShutoff) {
  const char* xml =
      "<domain type='test'><name>vg-defined</name><uuid>44444444-4444-4444-4444-444444444444</uuid>"
      "<memory unit='MiB'>32</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>";
  const Uuid u = *Uuid::parse("44444444-4444-4444-4444-444444444444");
  RawDomain dom(virDomainDefineXML(raw_.get(), xml));
  ASSERT_TRUE(dom);
  EXPECT_TRUE(rec_.wait_event(u, PowerState::shutoff));  // DEFINED -> queried
  auto listed = hv_->list_domains();
  ASSERT_TRUE(listed);
  EXPECT_TRUE(std::any_of(listed->begin(), listed->end(), [&](const DomainInfo& d) {
    return d == DomainInfo{u, "vg-defined", PowerState::shutoff};
  }));
  ASSERT_EQ(virDomainUndefine(dom.get()), 0);
  // UNDEFINED of a shut-off domain: the query finds nothing, which is reported as shut off.
  EXPECT_TRUE(rec_.wait_event(u, PowerState::shutoff, 2));
  EXPECT_TRUE(is(hv_->state(u).error(), errc::no_such_domain));
}

TEST_F(DefaultDriverTest, DestroyOfTransientDomainThatVanishesCountsAsOff) {
  const char* xml =
      "<domain type='test'><name>vg-transient</name><uuid>55555555-5555-5555-5555-555555555555</uuid>"
      "<memory unit='MiB'>32</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>";
  const Uuid u = *Uuid::parse("55555555-5555-5555-5555-555555555555");
  RawDomain dom(virDomainCreateXML(raw_.get(), xml, 0));
  ASSERT_TRUE(dom);
  EXPECT_TRUE(rec_.wait_event(u, PowerState::running));
  auto r = hv_->destroy(u);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_TRUE(rec_.wait_event(u, PowerState::shutoff));
  EXPECT_TRUE(is(hv_->state(u).error(), errc::no_such_domain));
}

TEST_F(DefaultDriverTest, ConcurrentCallersAndEvents) {
  RawDomain dom(virDomainLookupByName(raw_.get(), "test"));
  ASSERT_TRUE(dom);
  const Uuid u = uuid_of(dom.get());
  std::atomic<int> failures{0};
  auto caller = [&] {
    for (int i = 0; i < 100; ++i) {
      if (!hv_->list_domains()) ++failures;
      if (!hv_->state(u)) ++failures;
    }
  };
  std::thread t1(caller);
  std::thread t2(caller);
  for (int i = 0; i < 20; ++i) {
    ASSERT_EQ(virDomainSuspend(dom.get()), 0);
    ASSERT_EQ(virDomainResume(dom.get()), 0);
  }
  t1.join();
  t2.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(rec_.wait_event(u, PowerState::paused));
}

TEST(LibvirtHypervisorLifetime, ManyInstancesComeAndGo) {
  // Instances share libvirt's one event loop; each must deliver while others run it, and stop cleanly.
  Recorder keeper_rec;
  LibvirtHypervisor keeper("test:///default");
  keeper.set_listener(&keeper_rec);
  ASSERT_TRUE(keeper.connect());
  for (int i = 0; i < 5; ++i) {
    Recorder rec;
    LibvirtHypervisor hv(node_uri());
    hv.set_listener(&rec);
    ASSERT_TRUE(hv.connect());
    ASSERT_TRUE(hv.destroy(kAlpha));
    EXPECT_TRUE(rec.wait_event(kAlpha, PowerState::shutoff)) << "iteration " << i;
  }
  // Destruction with events still queued: they are dropped, never delivered to a dead listener.
  for (int i = 0; i < 10; ++i) {
    auto rec = std::make_unique<Recorder>();
    auto hv = std::make_unique<LibvirtHypervisor>(node_uri());
    hv->set_listener(rec.get());
    ASSERT_TRUE(hv->connect());
    ASSERT_TRUE(hv->destroy(kAlpha));
    ASSERT_TRUE(hv->start(kAlpha));
    hv.reset();
    rec.reset();
  }
}

}  // namespace
}  // namespace vguard::fenced
