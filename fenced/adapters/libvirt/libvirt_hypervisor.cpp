#include "libvirt_hypervisor.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <utility>

namespace vguard::fenced {
namespace {

template <auto F>
struct CDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    if (p) F(p);  // NOLINT(cppcoreguidelines-no-malloc): this deleter is the RAII wrapper for free()
  }
};
using ConnectPtr = std::unique_ptr<virConnect, CDeleter<virConnectClose>>;
using DomainPtr = std::unique_ptr<virDomain, CDeleter<virDomainFree>>;
// Arrays libvirt allocates (virConnectListAllDomains) are released with free().
using DomainArray = std::unique_ptr<virDomainPtr, CDeleter<::free>>;

constexpr auto kDestroyConfirm = std::chrono::seconds(5);
constexpr auto kDestroyPoll = std::chrono::milliseconds(100);
constexpr int kLoopTickMs = 100;
constexpr auto kBarrierWait = std::chrono::seconds(2);

/// A copy of libvirt's thread-local last error (virGetLastError is only valid on the failing thread).
struct LvError {
  int code = VIR_ERR_OK;
  int domain = VIR_FROM_NONE;
  std::string message;
};

LvError take_error() {
  LvError e;
  if (const virError* v = virGetLastError()) {
    e.code = v->code;
    e.domain = v->domain;
    e.message = v->message ? v->message : "libvirt error " + std::to_string(v->code);
  } else {
    e.message = "unknown libvirt error";
  }
  virResetLastError();
  return e;
}

void silent_error(void*, virErrorPtr) noexcept {}
void tick(int, void*) noexcept {}

// libvirt's own constraint: one event implementation per process, registered before any virConnectOpen.
void init_libvirt_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    virSetErrorFunc(nullptr, silent_error);
    VG_ASSERT(virInitialize() == 0, "virInitialize failed");
    VG_ASSERT(virEventRegisterDefaultImpl() == 0, "virEventRegisterDefaultImpl failed");
  });
}

proto::PowerState map_state(int st) {
  switch (st) {
    case VIR_DOMAIN_RUNNING:
      return proto::PowerState::running;
    case VIR_DOMAIN_PAUSED:
      return proto::PowerState::paused;
    case VIR_DOMAIN_SHUTOFF:
      return proto::PowerState::shutoff;
    // All of these still have a live process behind them: never "off".
    case VIR_DOMAIN_BLOCKED:
    case VIR_DOMAIN_SHUTDOWN:
    case VIR_DOMAIN_CRASHED:
    case VIR_DOMAIN_PMSUSPENDED:
      return proto::PowerState::other;
    default:
      return proto::PowerState::unknown;  // NOSTATE, and states newer than this code
  }
}

Uuid uuid_of(const unsigned char* raw) {
  Uuid u;
  std::copy_n(raw, u.bytes.size(), u.bytes.begin());
  return u;
}

std::string close_reason(int r) {
  switch (r) {
    case VIR_CONNECT_CLOSE_REASON_ERROR:
      return "connection closed: I/O error";
    case VIR_CONNECT_CLOSE_REASON_EOF:
      return "connection closed: end of file";
    case VIR_CONNECT_CLOSE_REASON_KEEPALIVE:
      return "connection closed: keepalive timeout";
    case VIR_CONNECT_CLOSE_REASON_CLIENT:
      return "connection closed by client";
    default:
      return "connection closed (reason " + std::to_string(r) + ")";
  }
}

struct Barrier {
  std::mutex m;
  std::condition_variable cv;
  bool fired = false;
};

}  // namespace

struct LibvirtHypervisor::Impl {
  explicit Impl(std::string u) : uri(std::move(u)), tick_timer(add_tick()), loop([this] { run_loop(); }) {}

  ~Impl() {
    {
      std::lock_guard ck(connect_mu);
      release_connection();
    }
    // After deregistration no new dispatch reaches us, but one may be running on any thread that iterates
    // libvirt's (process-wide) loop. Dispatches are sequential, so once a fresh timeout has fired, it is
    // over.
    drain_dispatch();
    stop.store(true);
    virEventUpdateTimeout(tick_timer, 0);  // wake the loop now rather than at the next 100 ms tick
    if (loop.joinable()) loop.join();
    virEventRemoveTimeout(tick_timer);
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  Impl(Impl&&) = delete;
  Impl& operator=(Impl&&) = delete;

  /// Process init (once), then the periodic wake-up that lets the loop notice `stop`.
  static int add_tick() {
    init_libvirt_once();
    const int id = virEventAddTimeout(kLoopTickMs, tick, nullptr, nullptr);
    VG_ASSERT(id >= 0, "virEventAddTimeout failed");
    return id;
  }

  void run_loop() noexcept {
    while (!stop.load()) {
      if (virEventRunDefaultImpl() < 0) {
        take_error();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  }

  void drain_dispatch() {
    auto b = std::make_shared<Barrier>();
    auto* holder = new std::shared_ptr<Barrier>(b);
    // The free callback runs from an idle source after removal, so the holder outlives any dispatch.
    const int id = virEventAddTimeout(
        0,
        [](int, void* op) noexcept {
          auto& bar = **static_cast<std::shared_ptr<Barrier>*>(op);
          std::lock_guard lk(bar.m);
          bar.fired = true;
          bar.cv.notify_all();
        },
        holder, [](void* op) noexcept { delete static_cast<std::shared_ptr<Barrier>*>(op); });
    if (id < 0) {
      take_error();
      return;  // holder leaks: safer than a double free
    }
    {
      std::unique_lock lk(b->m);
      b->cv.wait_for(lk, kBarrierWait, [&] { return b->fired; });
    }
    virEventRemoveTimeout(id);
  }

  // --- connection handle --------------------------------------------------------------------------

  /// A counted reference to the live connection, or null. `mu` is held only for the copy.
  ConnectPtr acquire() const {
    std::lock_guard lk(mu);
    if (!is_connected || !conn) return {};
    virConnectRef(conn.get());
    return ConnectPtr(conn.get());
  }

  Error not_connected() const { return make_error(errc::hypervisor_unreachable, uri + ": not connected"); }

  /// Reports loss of connection `c` to the listener, once per connection.
  void mark_lost(virConnectPtr c, const Error& why) noexcept {
    {
      std::lock_guard lk(mu);
      if (!is_connected || conn.get() != c) return;
      is_connected = false;
    }
    std::lock_guard lk(listener_mu);
    if (listener) listener->on_connection_lost(why);
  }

  /// Converts a libvirt failure into an Error; a failure that means the connection is gone marks it lost.
  Error classify(virConnectPtr c, const LvError& e, errc fallback, const std::string& what) {
    std::string ctx = what + ": " + e.message;
    if (e.code == VIR_ERR_NO_DOMAIN) return make_error(errc::no_such_domain, std::move(ctx));
    // A system error from the RPC layer is a broken socket; from a driver (say, a SIGKILL that failed)
    // it is a failed operation on a healthy connection, unless the connection died as well.
    const bool rpc_layer = e.domain == VIR_FROM_RPC || e.domain == VIR_FROM_REMOTE;
    bool lost = e.code == VIR_ERR_RPC || e.code == VIR_ERR_NO_CONNECT ||
                (e.code == VIR_ERR_SYSTEM_ERROR && rpc_layer);
    if (!lost && c) {
      lost = virConnectIsAlive(c) == 0;
      virResetLastError();
    }
    if (lost) {
      Error err = make_error(errc::hypervisor_unreachable, uri + ": " + ctx);
      mark_lost(c, err);
      return err;
    }
    return make_error(fallback, std::move(ctx));
  }

  Error fail(virConnectPtr c, errc fallback, const std::string& what) {
    return classify(c, take_error(), fallback, what);
  }

  /// Unsubscribes from and drops the current connection (live or dead). Caller holds connect_mu.
  void release_connection() {
    ConnectPtr old;
    int id = -1;
    bool close_reg = false;
    {
      std::lock_guard lk(mu);
      old = std::move(conn);
      id = std::exchange(lifecycle_id, -1);
      close_reg = std::exchange(close_registered, false);
      is_connected = false;
    }
    if (!old) return;
    // On a dead remote connection these fail after removing the local registration: nothing to do then.
    if (id >= 0 && virConnectDomainEventDeregisterAny(old.get(), id) < 0) take_error();
    if (close_reg && virConnectUnregisterCloseCallback(old.get(), on_close) < 0) take_error();
    // `old` closes here; a pool thread still holding a reference keeps it open until it is done.
  }

  Result<void> connect() {
    std::lock_guard ck(connect_mu);
    {
      std::lock_guard lk(mu);
      if (is_connected) return {};
    }
    release_connection();

    ConnectPtr c(virConnectOpen(uri.c_str()));
    if (!c)
      return make_error(errc::hypervisor_unreachable, "connecting to " + uri + ": " + take_error().message);
    // Subscribe before anyone lists: a change between listing and subscribing would otherwise be lost.
    const int id = virConnectDomainEventRegisterAny(c.get(), nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                    VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), this, nullptr);
    if (id < 0) {
      return make_error(errc::hypervisor_unreachable,
                        "subscribing to lifecycle events on " + uri + ": " + take_error().message);
    }
    // Drivers without close notification (the in-process test driver) need neither of these.
    const bool close_reg = virConnectRegisterCloseCallback(c.get(), on_close, this, nullptr) == 0;
    if (!close_reg) take_error();
    if (virConnectSetKeepAlive(c.get(), 5, 3) < 0) take_error();

    virConnectPtr raw = c.get();
    {
      std::lock_guard lk(mu);
      conn = std::move(c);
      lifecycle_id = id;
      close_registered = close_reg;
      is_connected = true;
    }
    // A close notification that fired before `conn` was published found nothing to mark.
    if (virConnectIsAlive(raw) == 0) {
      virResetLastError();
      Error err = make_error(errc::hypervisor_unreachable, "connecting to " + uri + ": connection closed");
      mark_lost(raw, err);
      return err;
    }
    return {};
  }

  // --- domain helpers -----------------------------------------------------------------------------

  Result<DomainPtr> lookup(virConnectPtr c, const Uuid& u) {
    DomainPtr d(virDomainLookupByUUID(c, u.bytes.data()));
    if (!d) return fail(c, errc::operation_failed, "domain " + u.str());
    return d;
  }

  Result<proto::PowerState> get_state(virConnectPtr c, virDomainPtr d, const std::string& what) {
    int st = 0;
    int reason = 0;
    if (virDomainGetState(d, &st, &reason, 0) < 0) return fail(c, errc::operation_failed, what);
    return map_state(st);
  }

  // --- callbacks (libvirt event thread) -----------------------------------------------------------

  static int on_lifecycle(virConnectPtr, virDomainPtr dom, int event, int detail, void* opaque) noexcept {
    try {
      static_cast<Impl*>(opaque)->deliver(dom, event, detail);
    } catch (...) {
      // Nothing may unwind into libvirt. The listener learns the state from the next list/state call.
    }
    return 0;
  }

  static void on_close(virConnectPtr c, int reason, void* opaque) noexcept {
    try {
      auto* self = static_cast<Impl*>(opaque);
      self->mark_lost(c, make_error(errc::hypervisor_unreachable, self->uri + ": " + close_reason(reason)));
    } catch (...) {
    }
  }

  void deliver(virDomainPtr dom, int event, int detail) {
    {
      std::lock_guard lk(listener_mu);
      if (!listener) return;
    }
    unsigned char raw[VIR_UUID_BUFLEN];
    if (virDomainGetUUID(dom, raw) < 0) {
      take_error();
      return;
    }
    DomainInfo d;
    d.uuid = uuid_of(raw);
    if (const char* n = virDomainGetName(dom)) d.name = n;
    switch (event) {
      case VIR_DOMAIN_EVENT_STARTED:
      case VIR_DOMAIN_EVENT_RESUMED:
        d.state = proto::PowerState::running;
        break;
      case VIR_DOMAIN_EVENT_SUSPENDED:
        d.state = proto::PowerState::paused;
        break;
      case VIR_DOMAIN_EVENT_STOPPED:
        d.state = proto::PowerState::shutoff;
        d.migrated_away = detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED;
        break;
      case VIR_DOMAIN_EVENT_PMSUSPENDED:
        d.state = proto::PowerState::other;
        break;
      default:
        // DEFINED, UNDEFINED, SHUTDOWN (the guest may still be running), CRASHED, and newer events: the event
        // alone does not say whether a process is alive, so ask. libvirt allows calls from a callback.
        d.state = query_after_event(dom);
        break;
    }
    // Held across the call so that set_listener(nullptr) waits for it (the listener posts and returns).
    std::lock_guard lk(listener_mu);
    if (listener) listener->on_domain_event(d);
  }

  static proto::PowerState query_after_event(virDomainPtr dom) {
    int st = 0;
    int reason = 0;
    if (virDomainGetState(dom, &st, &reason, 0) == 0) return map_state(st);
    // Gone: undefined while shut off, or a transient domain that stopped. Anything else stays unknown.
    return take_error().code == VIR_ERR_NO_DOMAIN ? proto::PowerState::shutoff : proto::PowerState::unknown;
  }

  // --- state --------------------------------------------------------------------------------------

  const std::string uri;
  std::mutex listener_mu;  // guards listener; held while calling it (never across a libvirt call)
  HypervisorListener* listener = nullptr;

  std::mutex connect_mu;  // serializes connect() and teardown; never taken by callbacks
  mutable std::mutex mu;  // guards the four fields below; never held across a libvirt call that can block
  ConnectPtr conn;
  int lifecycle_id = -1;
  bool close_registered = false;
  bool is_connected = false;

  std::atomic<bool> stop{false};
  int tick_timer = -1;
  std::thread loop;
};

LibvirtHypervisor::LibvirtHypervisor(std::string uri) : impl_(std::make_unique<Impl>(std::move(uri))) {}

LibvirtHypervisor::~LibvirtHypervisor() = default;

void LibvirtHypervisor::set_listener(HypervisorListener* l) {
  std::lock_guard lk(impl_->listener_mu);
  impl_->listener = l;
}

Result<void> LibvirtHypervisor::connect() { return impl_->connect(); }

bool LibvirtHypervisor::connected() const {
  std::lock_guard lk(impl_->mu);
  return impl_->is_connected;
}

const std::string& LibvirtHypervisor::uri() const { return impl_->uri; }

Result<std::vector<DomainInfo>> LibvirtHypervisor::list_domains() {
  ConnectPtr c = impl_->acquire();
  if (!c) return impl_->not_connected();
  virDomainPtr* raw = nullptr;
  const int n = virConnectListAllDomains(c.get(), &raw, 0);
  if (n < 0) return impl_->fail(c.get(), errc::operation_failed, "listing domains");
  DomainArray array(raw);
  std::vector<DomainPtr> doms;
  doms.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) doms.emplace_back(raw[i]);

  std::vector<DomainInfo> out;
  out.reserve(doms.size());
  for (const DomainPtr& d : doms) {
    DomainInfo info;
    unsigned char uuid[VIR_UUID_BUFLEN];
    if (virDomainGetUUID(d.get(), uuid) < 0)
      return impl_->fail(c.get(), errc::operation_failed, "listing domains");
    info.uuid = uuid_of(uuid);
    if (const char* name = virDomainGetName(d.get())) info.name = name;
    int st = 0;
    int reason = 0;
    if (virDomainGetState(d.get(), &st, &reason, 0) == 0) {
      info.state = map_state(st);
    } else {
      const LvError e = take_error();
      if (e.code == VIR_ERR_NO_DOMAIN) continue;  // a transient domain vanished since the listing
      Error err = impl_->classify(c.get(), e, errc::operation_failed, "state of " + info.uuid.str());
      if (err.code == make_error_code(errc::hypervisor_unreachable)) return err;
      info.state = proto::PowerState::unknown;  // never guess "off"
    }
    out.push_back(std::move(info));
  }
  return out;
}

Result<proto::PowerState> LibvirtHypervisor::state(const Uuid& u) {
  ConnectPtr c = impl_->acquire();
  if (!c) return impl_->not_connected();
  auto d = impl_->lookup(c.get(), u);
  if (!d) return d.error();
  return impl_->get_state(c.get(), d->get(), "state of " + u.str());
}

Result<void> LibvirtHypervisor::destroy(const Uuid& u) {
  ConnectPtr c = impl_->acquire();
  if (!c) return impl_->not_connected();
  auto looked = impl_->lookup(c.get(), u);
  if (!looked) return looked.error();
  const DomainPtr dom = std::move(*looked);
  const std::string what = "destroy " + u.str();

  auto st = impl_->get_state(c.get(), dom.get(), what);
  if (!st) return st.error();
  if (*st == proto::PowerState::shutoff) return {};

  bool destroyed_by_us = true;
  if (virDomainDestroy(dom.get()) < 0) {
    const LvError e = take_error();
    // "domain is not running": it stopped on its own since the check; the confirmation below decides.
    if (e.code != VIR_ERR_OPERATION_INVALID) return impl_->classify(c.get(), e, errc::operation_failed, what);
    destroyed_by_us = false;
  }

  // Success means libvirt reports the domain inactive, never merely that the call returned.
  const auto deadline = std::chrono::steady_clock::now() + kDestroyConfirm;
  for (;;) {
    int s = 0;
    int reason = 0;
    proto::PowerState now_state = proto::PowerState::unknown;
    if (virDomainGetState(dom.get(), &s, &reason, 0) == 0) {
      if (s == VIR_DOMAIN_SHUTOFF) return {};
      now_state = map_state(s);
    } else {
      const LvError e = take_error();
      // A transient domain disappears once destroyed: gone after our own destroy is off.
      if (e.code == VIR_ERR_NO_DOMAIN && destroyed_by_us) return {};
      return impl_->classify(c.get(), e, errc::operation_failed, what);
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return make_error(
          errc::operation_failed,
          what + ": domain still " + std::string(proto::power_state_name(now_state)) + " 5 s after destroy");
    }
    std::this_thread::sleep_for(kDestroyPoll);
  }
}

Result<void> LibvirtHypervisor::suspend(const Uuid& u) {
  ConnectPtr c = impl_->acquire();
  if (!c) return impl_->not_connected();
  auto looked = impl_->lookup(c.get(), u);
  if (!looked) return looked.error();
  const DomainPtr dom = std::move(*looked);
  const std::string what = "suspend " + u.str();
  auto st = impl_->get_state(c.get(), dom.get(), what);
  if (!st) return st.error();
  if (*st == proto::PowerState::paused) return {};
  if (*st == proto::PowerState::shutoff) return make_error(errc::operation_failed, what + ": domain is shut off");
  if (virDomainSuspend(dom.get()) < 0) return impl_->fail(c.get(), errc::operation_failed, what);
  // Success means libvirt reports it paused, never merely that the call returned.
  auto after = impl_->get_state(c.get(), dom.get(), what);
  if (!after) return after.error();
  if (*after != proto::PowerState::paused)
    return make_error(errc::operation_failed,
                      what + ": domain " + std::string(proto::power_state_name(*after)) + " after suspend");
  return {};
}

Result<void> LibvirtHypervisor::start(const Uuid& u) {
  ConnectPtr c = impl_->acquire();
  if (!c) return impl_->not_connected();
  auto looked = impl_->lookup(c.get(), u);
  if (!looked) return looked.error();
  const DomainPtr dom = std::move(*looked);
  const std::string what = "start " + u.str();

  const int active = virDomainIsActive(dom.get());
  if (active < 0) return impl_->fail(c.get(), errc::operation_failed, what);
  if (active == 1) return {};
  if (virDomainCreate(dom.get()) < 0) {
    const LvError e = take_error();
    // "already running": someone started it since the check, which is what was asked.
    if (e.code == VIR_ERR_OPERATION_INVALID && virDomainIsActive(dom.get()) == 1) return {};
    virResetLastError();
    return impl_->classify(c.get(), e, errc::operation_failed, what);
  }
  return {};
}

}  // namespace vguard::fenced
