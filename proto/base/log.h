#pragma once
// Logging facade (STYLE.md §7). A library never picks its sink: the application passes a Logger in.
#include <fmt/format.h>

#include <mutex>
#include <string>
#include <string_view>

namespace vguard {

enum class Level { critical = 2, error = 3, warning = 4, notice = 5, info = 6, debug = 7, trace = 8 };

std::string_view level_name(Level l) noexcept;

/// A log sink. write() is thread-safe in every implementation.
class Logger {
 public:
  virtual ~Logger() = default;
  virtual void write(Level level, std::string_view subsys, std::string_view text) = 0;
  [[nodiscard]] virtual Level threshold() const { return Level::info; }
};

/// Writes "LEVEL subsys: text" lines to stderr (journald captures stderr under systemd).
class StderrLogger final : public Logger {
 public:
  explicit StderrLogger(Level threshold = Level::info) : threshold_(threshold) {}
  void write(Level level, std::string_view subsys, std::string_view text) override;
  [[nodiscard]] Level threshold() const override { return threshold_; }

 private:
  Level threshold_;
  std::mutex mu_;
};

}  // namespace vguard

/// VG_LOG(logger, Level::notice, "engine", "fence {} | uuid={}", a, b)
#define VG_LOG(logger, level, subsys, ...)                                             \
  do {                                                                                 \
    if (static_cast<int>(level) <= static_cast<int>((logger).threshold()))             \
      (logger).write((level), (subsys), ::fmt::format(__VA_ARGS__));                   \
  } while (0)
