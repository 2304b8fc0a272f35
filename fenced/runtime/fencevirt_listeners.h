#pragma once
// vguardd's listeners for unmodified fence_xvm / fence_virt clients (fence-virt-protocol.md): multicast with
// the TCP callback, TCP, vsock, and serial / vmchannel. They run on the daemon's io thread and turn each
// accepted request into the same RequestIn a native client produces, so the engine (standalone or cluster)
// decides and the forensic log records it; they add what fence_virtd lacks: a signing key's allow globs
// authorize the target (deny by default), a persistent replay memory refuses a signed packet executed before
// (even after a restart), comparisons are constant-time, and nothing runs unauthenticated.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config.h"
#include "log.h"
#include "message.h"
#include "result.h"

namespace vguard::fenced {

/// What the listeners need from the daemon. Every call happens on the io thread.
class FenceVirtHost {
 public:
  virtual ~FenceVirtHost() = default;
  /// Hands a request to the engine exactly like a native request from `requester` signed with `key`, and
  /// resolves with the engine's response; nullopt when the daemon stops first.
  virtual boost::asio::awaitable<std::optional<proto::Response>> ask(std::string requester, proto::KeyId key,
                                                                     proto::Request request) = 0;
  /// A refused request: a forensic "refused" record (rate-limited like native refusals) and a warning.
  virtual void refused(const std::string& peer, const std::string& listener, const std::string& key,
                       const std::string& reason) = 0;
  /// Appends a forensic record (sync = fsync before returning).
  virtual void record(std::string_view type, const boost::json::object& fields, bool sync) = 0;
};

/// The listeners configured in DaemonConfig::fence_virt. Single-threaded: construct, start() and close() on
/// the io thread (or before run()). `pool` runs the serial listener's blocking libvirt scans.
class FenceVirtListeners {
 public:
  FenceVirtListeners(boost::asio::io_context& io, boost::asio::thread_pool& pool, const DaemonConfig& cfg,
                     FenceVirtHost& host, Logger& log);
  ~FenceVirtListeners();
  FenceVirtListeners(const FenceVirtListeners&) = delete;
  FenceVirtListeners& operator=(const FenceVirtListeners&) = delete;

  /// Opens the replay memory and every enabled listener; nothing when none is enabled. Errors (nothing is
  /// served then): errc::io_error (replay memory, a socket), errc::bad_config (multicast group, interface).
  Result<void> start();
  /// Stops accepting and receiving (daemon shutdown). Requests already handed to the engine finish.
  void close();

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with the listeners' coroutines, which may outlive this object
};

}  // namespace vguard::fenced
