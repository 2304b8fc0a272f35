#include "result.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace vguard {
namespace {
class Category final : public boost::system::error_category {
 public:
  const char* name() const noexcept override { return "vguard"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok: return "success";
      case errc::bad_frame: return "malformed frame";
      case errc::bad_version: return "unsupported protocol version";
      case errc::bad_mac: return "authentication failed (wrong key or altered frame)";
      case errc::unknown_key: return "unknown key";
      case errc::stale_timestamp: return "timestamp outside the replay window";
      case errc::replayed_nonce: return "replayed request (nonce already seen)";
      case errc::unknown_action: return "unknown action";
      case errc::permission_denied: return "permission denied";
      case errc::no_such_domain: return "no such domain";
      case errc::hypervisor_unreachable: return "hypervisor unreachable";
      case errc::timed_out: return "timed out";
      case errc::operation_failed: return "operation failed";
      case errc::bad_config: return "bad configuration";
      case errc::io_error: return "I/O error";
      case errc::bad_key: return "bad key";
      case errc::ambiguous_domain: return "ambiguous domain name";
      case errc::not_running: return "daemon unreachable";
      case errc::busy: return "busy";
    }
    return "unknown vguard error " + std::to_string(ev);
  }
};
}  // namespace

const boost::system::error_category& vguard_category() noexcept {
  static const Category c;
  return c;
}

std::string Error::message() const {
  if (context.empty()) return code.message();
  return context + ": " + code.message();
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw std::runtime_error(e.message());
}

void assert_fail(const char* cond, const char* msg, const char* file, int line) noexcept {
  std::fprintf(stderr, "vguard: assertion failed: %s (%s) at %s:%d\n", msg, cond, file, line);
  std::abort();
}

}  // namespace vguard
