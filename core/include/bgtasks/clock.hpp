// Time is injected: the system clock in production, a manual clock in tests. Nothing advances by itself.
#pragma once

#include <cstdint>

namespace bgtasks {

// The deadline of a sleep that would end at or past the clock's last millisecond (UINT64_MAX): it
// never fires (only a cancel ends it), so a sleep never returns true before its duration has
// passed, even once a manual clock has stopped at the end of time.
inline constexpr std::uint64_t kNever = UINT64_MAX;

// now + ms without wrapping around: kNever when the sum does not fit (a manual clock stops there).
constexpr std::uint64_t saturating_add(std::uint64_t now, std::uint64_t ms) noexcept {
  return ms >= kNever - now ? kNever : now + ms;
}

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the unix epoch (awaken's now_ms) or since whatever the manual clock was set to.
  virtual std::uint64_t now_ms() const = 0;
  virtual bool is_manual() const noexcept { return false; }
};

class SystemClock final : public Clock {
 public:
  std::uint64_t now_ms() const override;
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::uint64_t start_ms = 0) noexcept : now_(start_ms) {}
  std::uint64_t now_ms() const override { return now_; }
  bool is_manual() const noexcept override { return true; }
  // Moving time does not run anything; use Executor::advance to also make due timers ready.
  void advance(std::uint64_t ms) noexcept { now_ = saturating_add(now_, ms); }
  // Time never goes backwards: set() to an earlier value is ignored.
  void set(std::uint64_t ms) noexcept {
    if (ms > now_) now_ = ms;
  }

 private:
  std::uint64_t now_;
};

}  // namespace bgtasks
