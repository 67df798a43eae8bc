#include "bgtasks/cancellation.hpp"

namespace bgtasks {

std::pair<CancellationHandle, CancellationToken> CancellationToken::new_pair() {
  auto s = std::make_shared<detail::CancelState>();
  return {CancellationHandle(s), CancellationToken(s)};
}

void CancellationToken::cancel() const noexcept {
  if (s_->cancelled) return;
  s_->cancelled = true;
  s_->waiters.wake_all(WakeReason::Cancel);
}

void CancellationToken::Awaiter::await_suspend(coro::coroutine_handle<> h) noexcept {
  waiter_.arm(suspend_current(h));
  s_->waiters.push(node_, waiter_);
}

void CancellableSleepAwaiter::await_suspend(coro::coroutine_handle<> h) noexcept {
  waiter_.arm(suspend_current(h));
  timer_.waiter = &waiter_;
  exec_->arm(timer_, deadline_);
  s_->waiters.push(node_, waiter_);
}

bool CancellableSleepAwaiter::await_resume() noexcept {
  exec_->disarm(timer_);
  node_.unlink();
  // Already cancelled before suspending (await_ready) counts as cancelled.
  return waiter_.fired() == WakeReason::Timer;
}

}  // namespace bgtasks
