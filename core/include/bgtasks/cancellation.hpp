// Cooperative cancellation, as awaken's CancellationToken: cancel() only signals; bodies observe it.
#pragma once

#include <memory>
#include <utility>

#include "bgtasks/executor.hpp"

namespace bgtasks {

namespace detail {
struct CancelState {
  bool cancelled = false;
  WaitList waiters;
};
}  // namespace detail

class CancellationHandle;

class CancellationToken {
 public:
  CancellationToken() : s_(std::make_shared<detail::CancelState>()) {}
  // awaken's CancellationToken::new_pair(): the handle cancels, the token observes.
  static std::pair<CancellationHandle, CancellationToken> new_pair();

  bool is_cancelled() const noexcept { return s_->cancelled; }
  // Idempotent; wakes every body suspended in cancelled() or a cancellation-aware sleep/recv.
  void cancel() const noexcept;

  class Awaiter : public NativeAwaiter {
   public:
    explicit Awaiter(detail::CancelState& s) noexcept : s_(&s) {}
    bool await_ready() const noexcept { return s_->cancelled; }
    void await_suspend(coro::coroutine_handle<> h) noexcept;
    void await_resume() noexcept { node_.unlink(); }

   private:
    detail::CancelState* s_;
    Waiter waiter_;
    WaitNode node_;
  };
  // co_await token.cancelled(): resumes once the token is cancelled.
  Awaiter cancelled() const noexcept { return Awaiter(*s_); }

  detail::CancelState& state() const noexcept { return *s_; }
  // A token over state owned by `owner` (a task keeps its cancel state inline).
  template <class Owner>
  static CancellationToken share(std::shared_ptr<Owner> owner, detail::CancelState* state) {
    return CancellationToken(std::shared_ptr<detail::CancelState>(std::move(owner), state));
  }
  friend bool operator==(const CancellationToken& a, const CancellationToken& b) noexcept { return a.s_ == b.s_; }

 private:
  friend class CancellationHandle;
  explicit CancellationToken(std::shared_ptr<detail::CancelState> s) noexcept : s_(std::move(s)) {}
  std::shared_ptr<detail::CancelState> s_;
};

class CancellationHandle {
 public:
  void cancel() const noexcept { CancellationToken(s_).cancel(); }
  bool is_cancelled() const noexcept { return s_->cancelled; }
  CancellationToken token() const { return CancellationToken(s_); }

 private:
  friend class CancellationToken;
  explicit CancellationHandle(std::shared_ptr<detail::CancelState> s) noexcept : s_(std::move(s)) {}
  std::shared_ptr<detail::CancelState> s_;
};

// co_await cancellable_sleep(exec, token, ms): true when the time passed, false when cancelled first
// (also false at once if already cancelled).
class CancellableSleepAwaiter : public NativeAwaiter {
 public:
  CancellableSleepAwaiter(Executor& exec, detail::CancelState& s, std::uint64_t deadline) noexcept
      : exec_(&exec), s_(&s), deadline_(deadline) {}
  CancellableSleepAwaiter(const CancellableSleepAwaiter&) = delete;
  ~CancellableSleepAwaiter() { exec_->disarm(timer_); }
  bool await_ready() const noexcept { return s_->cancelled; }
  void await_suspend(coro::coroutine_handle<> h) noexcept;
  bool await_resume() noexcept;

 private:
  Executor* exec_;
  detail::CancelState* s_;
  std::uint64_t deadline_;
  Waiter waiter_;
  TimerNode timer_;
  WaitNode node_;
};

}  // namespace bgtasks
