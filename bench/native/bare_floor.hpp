// The bare floor for spawn -> complete: a minimal run queue of C++20 coroutines. spawn pushes the
// handle, run() resumes each once and destroys the frames that finished. No ids, no records, no
// cancellation, no ambient context: what any coroutine task runtime pays at the very least
// (one frame allocation, one resume, one free, one queue slot).
#pragma once

#include <cstddef>
#include <exception>
#include <utility>
#include <vector>

#include "bgtasks/coro.hpp"  // <coroutine> or <experimental/coroutine> (Emscripten 3.1.6)

namespace bare {

namespace coro = bgtasks::coro;

struct Task {
  struct promise_type {
    Task get_return_object() noexcept { return Task{coro::coroutine_handle<promise_type>::from_promise(*this)}; }
    coro::suspend_always initial_suspend() const noexcept { return {}; }
    coro::suspend_always final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }
  };
  coro::coroutine_handle<promise_type> h;
};

class RunQueue {
 public:
  RunQueue() = default;
  RunQueue(const RunQueue&) = delete;
  RunQueue& operator=(const RunQueue&) = delete;
  ~RunQueue() {
    for (auto h : ready_) h.destroy();
    for (auto h : parked_) h.destroy();
  }
  void reserve(std::size_t n) { ready_.reserve(n); }
  void spawn(Task t) { ready_.push_back(t.h); }
  // Resumes every queued coroutine once; finished frames are destroyed, suspended ones parked
  // (they stay alive until the queue is destroyed: the floor's "live idle task").
  std::size_t run() {
    const std::size_t n = ready_.size();
    for (std::size_t i = 0; i < n; ++i) {
      coro::coroutine_handle<> h = ready_[i];
      h.resume();
      if (h.done())
        h.destroy();
      else
        parked_.push_back(h);
    }
    ready_.clear();
    return n;
  }
  std::size_t parked() const noexcept { return parked_.size(); }

 private:
  std::vector<coro::coroutine_handle<>> ready_;
  std::vector<coro::coroutine_handle<>> parked_;
};

inline Task trivial() { co_return; }

// Suspends once and never resumes on its own (an idle task, for the memory probe).
inline Task idle() { co_await coro::suspend_always{}; }

}  // namespace bare
