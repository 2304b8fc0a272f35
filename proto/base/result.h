#pragma once
// Result<T>: recoverable errors are values (STYLE.md §3).
#include <boost/system/error_category.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>
#include <string>

namespace vguard {

/// vguard's own error conditions. Numbers are stable: they appear in logs.
enum class errc {
  ok = 0,
  bad_frame = 1,          ///< malformed, truncated or oversize frame
  bad_version = 2,        ///< unsupported protocol version byte
  bad_mac = 3,            ///< HMAC does not verify (wrong key or altered frame)
  unknown_key = 4,        ///< key id not configured
  stale_timestamp = 5,    ///< request timestamp outside the replay window
  replayed_nonce = 6,     ///< nonce already seen inside the window
  unknown_action = 7,     ///< action code not defined
  permission_denied = 8,  ///< key not allowed to act on that domain
  no_such_domain = 9,     ///< domain unknown to the hypervisor
  hypervisor_unreachable = 10,  ///< libvirt connection down
  timed_out = 11,         ///< a deadline passed
  operation_failed = 12,  ///< the hypervisor refused or failed
  bad_config = 13,        ///< configuration error
  io_error = 14,          ///< file or socket error
  bad_key = 15,           ///< key file missing, unreadable or too short
  ambiguous_domain = 16,  ///< a name matches more than one domain
  not_running = 17,       ///< daemon unreachable
  busy = 18,              ///< replay cache full or too many requests
};

/// The "vguard" error category.
const boost::system::error_category& vguard_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), vguard_category()};
}

/// An error: a code plus human context ("reading /etc/x: ...").
struct Error {
  boost::system::error_code code;
  std::string context;

  /// "context: message", or just the message.
  [[nodiscard]] std::string message() const;
};

inline Error make_error(errc e, std::string context = {}) { return Error{make_error_code(e), std::move(context)}; }

template <class T>
using Result = boost::system::result<T, Error>;

/// Required by boost::system::result<T, Error>::value().
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

/// Bugs abort (STYLE.md §3): a fencing daemon must never act on corrupted state.
[[noreturn]] void assert_fail(const char* cond, const char* msg, const char* file, int line) noexcept;

}  // namespace vguard

namespace boost::system {
template <>
struct is_error_code_enum<vguard::errc> : std::true_type {};
}  // namespace boost::system

#define VG_ASSERT(cond, msg) \
  do {                       \
    if (!(cond)) ::vguard::assert_fail(#cond, msg, __FILE__, __LINE__); \
  } while (0)
