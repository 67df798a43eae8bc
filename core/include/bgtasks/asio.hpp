// The asio bridge: optional, header-only, for programs that have standalone asio (<asio.hpp>,
// Debian's libasio-dev). The core library does not depend on it; include this header only where
// asio is available.
//
//   co_await timer.async_wait(bgtasks::use_fiber)       in a task body: any asio asynchronous
//                                                        operation, its results as values
//   bgtasks::asio_driver drv(io, exec); drv.start();     an io_context drives the executor
//
// use_fiber: the operation starts when the body awaits it; the body resumes (from poll, through
// the executor's post queue) with what the completion handler received: nothing for void(), the
// value for one argument (an asio::error_code, say), a std::tuple for several (structured
// bindings: `auto [ec, n] = co_await asio::async_read(pipe, buf, bgtasks::use_fiber);`). Errors
// are values: nothing is thrown. The io_context may run on the polling thread (the driver) or on
// threads of its own. Cancelling the task does not interrupt the operation (docs/native-hosts.md):
// the body, or the host, cancels it the asio way (timer.cancel(), a bound cancellation slot), and
// the body then sees asio::error::operation_aborted. If the io_context is destroyed with the
// operation pending (its handler destroyed, never called), the body stays suspended until its
// frame is destroyed.
#pragma once

#include <asio/async_result.hpp>
#include <asio/error.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "bgtasks/executor.hpp"

namespace bgtasks {

// The completion token: an asio operation initiated with it returns an awaitable for task bodies.
struct use_fiber_t {
  constexpr use_fiber_t() noexcept = default;
};
inline constexpr use_fiber_t use_fiber{};

namespace detail {

// The link of one pending asio operation, holding its results until the body takes them.
template <class... Args>
class AsioLink final : public ForeignLink {
 public:
  using ForeignLink::ForeignLink;
  std::optional<std::tuple<Args...>> result;  // written by the handler, read after the wake-up
};

// The completion handler asio receives: stores the results and wakes the fiber, on whatever
// thread the io_context runs it. Destroyed unrun (its io_context went away), it only lets go.
template <class... Args>
class AsioHandler {
 public:
  explicit AsioHandler(AsioLink<Args...>& link) noexcept : link_(&link) { link.add_ref(); }
  AsioHandler(AsioHandler&& o) noexcept : link_(std::exchange(o.link_, nullptr)) {}
  AsioHandler(const AsioHandler&) = delete;
  AsioHandler& operator=(const AsioHandler&) = delete;
  ~AsioHandler() {
    if (link_) link_->release();
  }
  template <class... A>
  void operator()(A&&... args) {
    AsioLink<Args...>* link = std::exchange(link_, nullptr);
    link->result.emplace(std::forward<A>(args)...);
    link->wake();
    link->release();
  }

 private:
  AsioLink<Args...>* link_;
};

template <class Initiation, class InitArgs, class... Args>
class [[nodiscard]] AsioAwaitable : public NativeAwaiter {
 public:
  AsioAwaitable(Initiation init, InitArgs args) : init_(std::move(init)), args_(std::move(args)) {}
  // Movable until awaited (asio returns it through a few calls).
  AsioAwaitable(AsioAwaitable&& o) noexcept(
      std::is_nothrow_move_constructible_v<Initiation>&& std::is_nothrow_move_constructible_v<InitArgs>)
      : init_(std::move(o.init_)), args_(std::move(o.args_)), link_(std::exchange(o.link_, nullptr)) {}
  AsioAwaitable& operator=(AsioAwaitable&&) = delete;
  ~AsioAwaitable() {
    if (!link_) return;
    link_->detach();  // a completion still on its way finds the frame gone
    link_->release();
  }

  bool await_ready() const noexcept { return false; }
  void await_suspend(coro::coroutine_handle<> h) {
    link_ = new AsioLink<Args...>(*suspend_current(h));
    std::apply([this](auto&&... a) { std::move(init_)(AsioHandler<Args...>(*link_), std::move(a)...); },
               std::move(args_));
  }
  auto await_resume() {
    // The fiber is woken only through the handler, which stored the results first.
    auto& r = *link_->result;
    if constexpr (sizeof...(Args) == 0)
      return;
    else if constexpr (sizeof...(Args) == 1)
      return std::move(std::get<0>(r));
    else
      return std::tuple<Args...>(std::move(r));
  }

 private:
  Initiation init_;
  InitArgs args_;
  AsioLink<Args...>* link_ = nullptr;
};

}  // namespace detail

// Runs an Executor from an asio::io_context: polls when the executor has work (the executor's
// wake callback posts a turn to the io_context; a turn is one poll, so asio's handlers and the
// task bodies take turns), and keeps a steady_timer armed for next_deadline(), so an idle
// executor costs nothing. Meant for a real-time clock (SystemClock): deadlines become steady_timer
// delays. Without ready work, a deadline or asio operations, io_context::run() returns, as asio's
// does when out of work; a host whose other threads post to the executor keeps an
// asio::executor_work_guard. start(), stop() and the destructor on the io_context's thread (or
// while it does not run); destroy the driver before the executor.
class asio_driver {
 public:
  asio_driver(asio::io_context& io, Executor& exec) : io_(io), exec_(exec), timer_(io) {}
  asio_driver(const asio_driver&) = delete;
  asio_driver& operator=(const asio_driver&) = delete;
  ~asio_driver() { stop(); }

  void start() {
    if (shared_) return;
    shared_ = std::make_shared<Shared>(this);
    exec_.set_wake_callback([s = shared_, &io = io_] { request_turn(s, io); });
    request_turn(shared_, io_);  // whatever is ready already
  }

  // The executor is no longer driven; turns and timer waits still queued do nothing.
  void stop() {
    if (!shared_) return;
    exec_.set_wake_callback(nullptr);
    shared_->driver = nullptr;
    shared_.reset();
    timer_.cancel();
    armed_.reset();
  }

  // Polls run so far (tests: a driver sleeps rather than spins).
  std::uint64_t polls() const noexcept { return polls_; }

 private:
  // What queued handlers hold: the driver, until it stops.
  struct Shared {
    explicit Shared(asio_driver* d) noexcept : driver(d) {}
    asio_driver* driver;  // io thread only
    std::atomic<bool> turn_queued{false};
  };

  // Any thread (the wake callback): at most one turn queued at a time.
  static void request_turn(const std::shared_ptr<Shared>& s, asio::io_context& io) {
    if (s->turn_queued.exchange(true, std::memory_order_acq_rel)) return;
    asio::post(io, [s] {
      s->turn_queued.store(false, std::memory_order_release);
      if (s->driver) s->driver->turn();
    });
  }

  void turn() {
    exec_.poll();
    ++polls_;
    if (exec_.has_ready()) {
      request_turn(shared_, io_);  // the rest after asio's queued handlers
      return;
    }
    rearm();
  }

  void rearm() {
    const std::optional<std::uint64_t> due = exec_.next_deadline();
    if (due == armed_) return;
    armed_ = due;
    ++generation_;
    if (!due) {
      timer_.cancel();
      return;
    }
    const std::uint64_t now = exec_.now_ms();
    timer_.expires_after(std::chrono::milliseconds(*due > now ? *due - now : 0));
    timer_.async_wait([s = shared_, g = generation_](const asio::error_code& ec) {
      asio_driver* d = s->driver;
      if (ec == asio::error::operation_aborted || !d || g != d->generation_) return;
      d->armed_.reset();
      d->turn();
    });
  }

  asio::io_context& io_;
  Executor& exec_;
  asio::steady_timer timer_;
  std::shared_ptr<Shared> shared_;
  std::optional<std::uint64_t> armed_;  // the deadline the timer waits for, on the executor's clock
  std::uint64_t generation_ = 0;        // of the timer's wait: an older wait's handler does nothing
  std::uint64_t polls_ = 0;
};

}  // namespace bgtasks

// use_fiber as an asio completion token, for operations with one completion signature.
template <class R, class... Args>
struct asio::async_result<bgtasks::use_fiber_t, R(Args...)> {
  // Named, never used, by asio 1.22's wrapping tokens (bind_cancellation_slot, redirect_error,
  // as_tuple); the awaitable is what initiate() returns.
  using return_type = void;

  template <class Initiation, class... InitArgs>
  static auto initiate(Initiation&& init, bgtasks::use_fiber_t, InitArgs&&... args) {
    return bgtasks::detail::AsioAwaitable<std::decay_t<Initiation>, std::tuple<std::decay_t<InitArgs>...>,
                                          std::decay_t<Args>...>(
        std::forward<Initiation>(init), std::tuple<std::decay_t<InitArgs>...>(std::forward<InitArgs>(args)...));
  }
};
