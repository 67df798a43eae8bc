// The single-threaded cooperative run queue. The host drives it: poll() runs what is ready,
// run_until_idle() polls until nothing is, next_deadline() says when a timer is due.
// Frames are always resumed from poll's loop (a trampoline): no symmetric-transfer chains,
// because wasm has no guaranteed tail calls. A task body may also await another library's
// awaitable: its completion, from any thread, is routed back through the executor's post queue
// (ForeignAwaiter below), so the body still only ever resumes from poll().
#pragma once

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "bgtasks/block_pool.hpp"
#include "bgtasks/clock.hpp"
#include "bgtasks/coro.hpp"

namespace bgtasks {

class Executor;
template <class T>
class Co;
namespace detail {
class DetachedFiber;
class ForeignLink;
struct PostQueue;
}  // namespace detail

enum class WakeReason : std::uint8_t { None, Timer, Signal, Cancel };

// A schedulable unit: one task body (or one detached coroutine), resumed at its innermost
// suspended frame.
class Fiber {
 public:
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
  Executor& executor() const noexcept { return *exec_; }

 protected:
  explicit Fiber(Executor& exec) noexcept : exec_(&exec) {}
  virtual ~Fiber();
  // Starts the fiber at `top` on the next poll.
  void start(coro::coroutine_handle<> top);
  coro::coroutine_handle<> top() const noexcept { return top_; }
  // The subclass destroyed the top frame: the fiber no longer refers to it.
  void forget_top() noexcept { top_ = resume_point_ = {}; }
  // Runs one step; subclasses wrap it to set ambient context.
  virtual void step() { resume_point_.resume(); }
  // The top frame reached its final suspend point. The subclass owns (and destroys) the frame.
  virtual void finished() = 0;
  // Bulk teardown: this fiber is about to be destroyed with others; it is never scheduled again
  // and the owner calls Executor::purge_dying() once instead of one queue search per fiber.
  void mark_dying() noexcept { dying_ = true; }
  // Its step is on the stack right now (nested polls can have several such fibers).
  bool stepping() const noexcept { return stepping_; }
  // Its owner let go of it while its step ran (Executor::abandon_after_step): called once the step
  // has returned, instead of finished(). Destroys the fiber's frames.
  virtual void abandoned() noexcept {}

 private:
  friend class Executor;
  friend class detail::ForeignLink;
  friend Fiber* suspend_current(coro::coroutine_handle<> h) noexcept;
  Executor* exec_;
  coro::coroutine_handle<> top_;
  coro::coroutine_handle<> resume_point_;
  bool queued_ = false;
  bool dying_ = false;     // set in bulk teardown so the ready queue is purged in one pass
  bool stepping_ = false;  // between poll's resume and the step's return
};

// Records `h` as where the current fiber resumes, and returns that fiber.
Fiber* suspend_current(coro::coroutine_handle<> h) noexcept;

// ---- wake-up plumbing shared by every awaitable -------------------------------------------
// A Waiter lives in an awaiter (in the suspended frame). The first source that fires it wins.
// One word (8 bytes on x86-64, 4 on wasm32): which source fired is kept in the low bits of the
// fiber pointer (fibers are at least 4-aligned, and the four reasons fit in two bits).
class Waiter {
 public:
  // Waits for `f`; not fired yet.
  void arm(Fiber* f) noexcept { bits_ = reinterpret_cast<std::uintptr_t>(f); }
  Fiber* fiber() const noexcept { return reinterpret_cast<Fiber*>(bits_ & ~kReasonBits); }
  WakeReason fired() const noexcept { return static_cast<WakeReason>(bits_ & kReasonBits); }
  void set_fired(WakeReason r) noexcept { bits_ = (bits_ & ~kReasonBits) | static_cast<std::uintptr_t>(r); }

 private:
  static constexpr std::uintptr_t kReasonBits = 3;
  static_assert(static_cast<std::uintptr_t>(WakeReason::Cancel) <= kReasonBits);
  std::uintptr_t bits_ = 0;
};
static_assert(alignof(Fiber) >= 4, "Waiter keeps the wake reason in a Fiber pointer's two low bits");
void fire(Waiter& w, WakeReason reason) noexcept;

struct TimerNode {
  Waiter* waiter = nullptr;
  std::uint64_t deadline = 0;
  std::uint64_t seq = 0;
  std::size_t pos = npos;  // index in the executor's heap, npos when not armed
  static constexpr std::size_t npos = std::numeric_limits<std::size_t>::max();
};

// The links of an intrusive circular list. A WaitList's sentinel is one; a node that is in no
// list has null links (so a node needs no pointer back to its list to unlink itself).
struct WaitLinks {
  WaitLinks* prev = nullptr;
  WaitLinks* next = nullptr;
};

// Three words (24 bytes on x86-64) in every suspended awaiter that waits on a list (a frame
// suspended in ctx.cancelled() holds one).
struct WaitNode : WaitLinks {
  Waiter* waiter = nullptr;
  WaitNode() = default;
  WaitNode(const WaitNode&) = delete;
  WaitNode& operator=(const WaitNode&) = delete;
  ~WaitNode() { unlink(); }
  bool linked() const noexcept { return next != nullptr; }
  void unlink() noexcept {
    if (!next) return;
    prev->next = next;
    next->prev = prev;
    prev = next = nullptr;
  }
};

// Intrusive FIFO of suspended waiters (cancellation tokens, inboxes, Notify, task ends).
class WaitList {
 public:
  WaitList() noexcept { head_.prev = head_.next = &head_; }
  WaitList(const WaitList&) = delete;  // nodes point at the sentinel: a list never moves
  WaitList& operator=(const WaitList&) = delete;
  ~WaitList();
  void push(WaitNode& node, Waiter& waiter) noexcept;
  bool wake_one(WakeReason reason) noexcept;
  std::size_t wake_all(WakeReason reason) noexcept;
  bool empty() const noexcept { return head_.next == &head_; }
  template <class F>
  void for_each(F&& f) {
    for (WaitLinks* n = head_.next; n != &head_;) {
      WaitLinks* next = n->next;  // f may unlink n
      f(static_cast<WaitNode&>(*n));
      n = next;
    }
  }

 private:
  WaitNode& front() noexcept { return static_cast<WaitNode&>(*head_.next); }
  WaitLinks head_;  // sentinel: head_.next is the oldest waiter, head_.prev the newest
};

// ---- which awaiters a task body awaits as they are ----------------------------------------------
// An awaiter built on the plumbing above (it suspends with suspend_current and is woken through
// Executor::schedule) derives from NativeAwaiter, or specialises is_native_awaiter: a task body
// awaits it directly. Every other awaitable is another library's, and a body awaits it through
// ForeignAwaiter (below), which routes its completion back through the executor.
struct NativeAwaiter {};
template <class T>
struct is_native_awaiter : std::is_base_of<NativeAwaiter, T> {};
template <class U>
struct is_native_awaiter<Co<U>> : std::true_type {};

namespace detail {
// BackgroundTaskManager::WaitAwaiter, known by its end-waiter node (manager.hpp cannot be
// included here, and a nested class cannot be declared ahead of its class).
template <class T>
concept waits_on_list = requires {
  typename T::Node;
}
&&std::is_base_of_v<WaitNode, typename T::Node>;
}  // namespace detail

template <class T>
concept native_awaitable = is_native_awaiter<T>::value || detail::waits_on_list<T>;

// ---- the executor ---------------------------------------------------------------------------
// An object that keeps fibers or timers on an executor beyond one call (a task manager). While
// attached, the executor's destructor calls executor_ending() first, so the client drops what it
// has on the executor while the executor still exists; the client must not use it afterwards.
class ExecutorClient {
 public:
  virtual void executor_ending() noexcept = 0;

 protected:
  ExecutorClient() = default;
  virtual ~ExecutorClient() = default;  // virtual: clang warns on make_shared of a derived class otherwise
  ExecutorClient(const ExecutorClient&) = default;
  ExecutorClient& operator=(const ExecutorClient&) = default;
};

class Executor {
 public:
  explicit Executor(Clock& clock);
  ~Executor();  // destroys detached coroutines that never finished
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  Clock& clock() const noexcept { return *clock_; }
  std::uint64_t now_ms() const { return clock_->now_ms(); }

  // Runs work posted from other threads, makes due timers ready, then resumes every fiber that
  // was ready when the poll began, once, first come first served. Returns how many steps ran.
  std::size_t poll();
  // Polls until nothing is ready. Never moves time. Returns the total steps run.
  std::size_t run_until_idle();
  // Earliest armed timer deadline, if any (sleeps past the end of time, kNever, have none).
  std::optional<std::uint64_t> next_deadline() const noexcept;
  // Something would run on the next poll (ready fibers, posted work, or due timers).
  bool has_ready() const;
  // Nothing runnable and no timer that can fire: only an outside event can make progress.
  bool idle() const { return !has_ready() && !next_deadline(); }
  std::size_t ready_count() const noexcept { return ready_.size(); }
  std::size_t timer_count() const noexcept { return timers_.size(); }

  // Manual clock only (false otherwise): move time forward and make due timers ready, in
  // deadline order, ties in arming order. Runs nothing.
  bool advance(std::uint64_t ms);
  bool set_time(std::uint64_t ms);

  // The thread-safe entry: other threads hand work to the polling thread (docs/native-hosts.md).
  void post(std::function<void()> fn);

  // Wake-ups for a host loop that sleeps while there is nothing to do (a condition variable, an
  // asio io_context, a libuv loop). `fn` is called when there is something to do again:
  //   - post() queued work and the posted queue was empty (on the posting thread, any thread);
  //   - outside a poll, a fiber became ready and the ready queue was empty (a cancel, a message,
  //     a completion or a spawn from host code, or the manual clock's advance);
  //   - outside a poll, a timer was armed that is now the earliest deadline.
  // Never for what happens during a poll: the host looks at has_ready() and next_deadline()
  // after each poll anyway. Edge-triggered: once a wake-up is reported, more work arriving before
  // the next poll reports nothing, so a host checks has_ready() before it sleeps (run_until_idle
  // leaves it false). `fn` must be safe to call from any thread and must not throw; it runs
  // under an internal lock, so it must not call set_wake_callback (it may post: the nested
  // wake-up is skipped). Once set_wake_callback returns, the previous callback is not running and
  // is not called again. Callable from any thread; an empty function removes the callback.
  void set_wake_callback(std::function<void()> fn);

  // Runs a coroutine to completion on this executor, owned by the executor.
  void spawn(Co<void> co);

  // The executor and fiber whose step is running on this thread, if any.
  static Executor* current() noexcept;
  static Fiber* current_fiber() noexcept;

  // Plumbing for awaitables.
  void schedule(Fiber* f);
  void arm(TimerNode& node, std::uint64_t deadline) noexcept;
  void disarm(TimerNode& node) noexcept;
  void purge_dying();  // drop queued fibers marked dying, in one pass
  // For an owner destroyed while `f`'s step is on the stack (a body dropped its own manager): `f`
  // is marked dying, and `keep` (what keeps `f` alive) is held until that step returns; then
  // f->abandoned() runs and `keep` is released.
  void abandon_after_step(Fiber& f, std::shared_ptr<void> keep);
  // Clients are told of the executor's end (newest first); detach is a no-op for one not attached.
  void attach(ExecutorClient& client);
  void detach(ExecutorClient& client) noexcept;

 private:
  friend class Fiber;
  friend class detail::DetachedFiber;
  friend class detail::ForeignLink;
  void unqueue(Fiber* f) noexcept;
  void wake_if_first_ready() noexcept;
  void release_detached(Fiber* f) noexcept;
  void release_abandoned(Fiber* f) noexcept;
  void collect_due_timers();
  bool front_timer_due(std::uint64_t now) const noexcept;
  std::size_t run_posted();
  void heap_up(std::size_t i) noexcept;
  void heap_down(std::size_t i) noexcept;
  void heap_remove(std::size_t i) noexcept;
  static bool timer_less(const TimerNode* a, const TimerNode* b) noexcept {
    return a->deadline != b->deadline ? a->deadline < b->deadline : a->seq < b->seq;
  }

  Clock* clock_;
  ManualClock* manual_;
  std::deque<Fiber*> ready_;
  std::vector<TimerNode*> timers_;  // binary min-heap
  std::uint64_t timer_seq_ = 0;
  // Posted work and the wake callback. Shared with pending foreign operations (ForeignLink), so
  // that a completion arriving after the executor is gone finds the queue closed, not freed.
  std::shared_ptr<detail::PostQueue> posted_;
  std::uint32_t poll_depth_ = 0;  // polls of this executor on the stack (wake-ups are for outside them)
  std::vector<Fiber*> detached_;
  std::vector<std::pair<Fiber*, std::shared_ptr<void>>> abandoned_;  // see abandon_after_step
  std::vector<ExecutorClient*> clients_;  // few (one per manager): a vector beats a list here
};

// ---- awaitables on the executor ---------------------------------------------------------------
// co_await sleep_for(exec, ms): plain timer, not cancellation-aware (TaskContext::sleep is).
class SleepAwaiter : public NativeAwaiter {
 public:
  SleepAwaiter(Executor& exec, std::uint64_t deadline) noexcept : exec_(&exec), deadline_(deadline) {}
  SleepAwaiter(const SleepAwaiter&) = delete;
  ~SleepAwaiter() { exec_->disarm(timer_); }
  bool await_ready() const noexcept { return false; }
  void await_suspend(coro::coroutine_handle<> h) noexcept;
  void await_resume() noexcept { exec_->disarm(timer_); }

 private:
  Executor* exec_;
  std::uint64_t deadline_;
  Waiter waiter_;
  TimerNode timer_;
};
inline SleepAwaiter sleep_for(Executor& exec, std::uint64_t ms) { return {exec, saturating_add(exec.now_ms(), ms)}; }
inline SleepAwaiter sleep_until(Executor& exec, std::uint64_t deadline_ms) { return {exec, deadline_ms}; }

// Reschedules the current fiber at the back of the ready queue.
struct YieldAwaiter : NativeAwaiter {
  bool await_ready() const noexcept { return false; }
  void await_suspend(coro::coroutine_handle<> h) noexcept;
  void await_resume() const noexcept {}
};
inline YieldAwaiter yield_now() noexcept { return {}; }

// A one-permit notification, like tokio::sync::Notify: notify_one wakes a waiter or stores a permit.
class Notify {
 public:
  class Awaiter : public NativeAwaiter {
   public:
    explicit Awaiter(Notify& n) noexcept : n_(&n) {}
    bool await_ready() noexcept;
    void await_suspend(coro::coroutine_handle<> h) noexcept;
    void await_resume() noexcept { node_.unlink(); }

   private:
    Notify* n_;
    Waiter waiter_;
    WaitNode node_;
  };
  void notify_one() noexcept;
  void notify_all() noexcept { waiters_.wake_all(WakeReason::Signal); }
  Awaiter notified() noexcept { return Awaiter(*this); }

 private:
  WaitList waiters_;
  bool permit_ = false;
};

// ---- other libraries' awaitables ----------------------------------------------------------------
// Such an awaitable resumes the handle it was given when its operation completes: from its own
// event loop, another thread, or inline. A bgtasks frame must not be resumed there (it would run
// outside a fiber, and off the polling thread), so a task body awaits it through ForeignAwaiter:
// the awaitable gets the handle of a relay, whose resumption posts a reschedule of the fiber to
// the executor; the fiber then resumes from poll(), as after any other wake-up.
namespace detail {

// What a fiber suspended on another library's operation shares with that operation's completion.
// Reference counted (the awaiting frame; the relay or completion handler; a posted delivery), so a
// completion that arrives after the frame was destroyed, or after the executor was, from any
// thread, touches only this and the executor's shared post queue, never the frame or the fiber.
class ForeignLink {
 public:
  // On the polling thread, as the fiber suspends: one reference, the awaiting frame's.
  explicit ForeignLink(Fiber& fiber);
  ForeignLink(const ForeignLink&) = delete;
  ForeignLink& operator=(const ForeignLink&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  // The operation completed (any thread): posts the fiber's reschedule to its executor. Nothing
  // happens if the executor is gone; a frame gone by then is found out on the polling thread.
  void wake() noexcept;
  // The awaiting frame leaves the await, resumed or destroyed (polling thread): a delivery still
  // on its way does nothing.
  void detach() noexcept { fiber_ = nullptr; }
  // After an awaitable's await_suspend took `relay`: if it was in fact built on bgtasks' plumbing
  // without being marked native (it called suspend_current with the relay), the fiber resumes at
  // `h` when that plumbing wakes it, and the caller drops the relay. True in that case.
  static bool reclaim_resume_point(Fiber& f, coro::coroutine_handle<> relay, coro::coroutine_handle<> h) noexcept;
  // Out of line, so that no resume or destroy of another frame is the last thing a body's step
  // does before it suspends: LLVM 14 would turn that call into a tail call, which wasm lacks.
  static void drop_relay(coro::coroutine_handle<> relay) noexcept;
  static void run_nested(coro::coroutine_handle<> next);

 protected:
  virtual ~ForeignLink();

 private:
  friend struct LinkRef;
  void deliver() noexcept;  // polling thread, from the post queue

  std::atomic<std::uint32_t> refs_{1};
  Fiber* fiber_;  // read and written on the polling thread only
  std::shared_ptr<PostQueue> queue_;
};

// A coroutine handle for another library to resume once: its resumption calls link.wake(). It
// holds a reference to `link` until it has run (or is destroyed unrun).
coro::coroutine_handle<> make_relay(ForeignLink& link);

// The awaiter of an awaitable: its operator co_await's result if it has one, else itself.
template <class A>
decltype(auto) get_awaiter(A&& a) {
  if constexpr (requires { static_cast<A&&>(a).operator co_await(); })
    return static_cast<A&&>(a).operator co_await();
  else if constexpr (requires { operator co_await(static_cast<A&&>(a)); })
    return operator co_await(static_cast<A&&>(a));
  else
    return static_cast<A&&>(a);
}

template <class A>
class ForeignAwaiter {
  // The awaiter itself, or a reference to the awaited object (which lives until the end of the
  // full expression of the co_await, across the suspension).
  using Inner = decltype(get_awaiter(std::declval<A>()));

 public:
  explicit ForeignAwaiter(A&& a) : inner_(get_awaiter(static_cast<A&&>(a))) {}
  ForeignAwaiter(const ForeignAwaiter&) = delete;
  ForeignAwaiter& operator=(const ForeignAwaiter&) = delete;
  ~ForeignAwaiter() {
    if (!link_) return;
    link_->detach();
    link_->release();
  }

  bool await_ready() { return static_cast<bool>(inner().await_ready()); }

  // True: suspended until the relay is resumed. False: the awaitable finished at once.
  bool await_suspend(coro::coroutine_handle<> h) {
    Fiber* f = suspend_current(h);
    link_ = new ForeignLink(*f);
    const coro::coroutine_handle<> relay = make_relay(*link_);
    using R = decltype(inner().await_suspend(relay));
    if constexpr (std::is_void_v<R>) {
      hand_over([&] { inner().await_suspend(relay); }, relay);
    } else if constexpr (std::is_same_v<R, bool>) {
      bool suspended = false;
      hand_over([&] { suspended = inner().await_suspend(relay); }, relay);
      if (!suspended) {
        ForeignLink::drop_relay(relay);  // never resumed: the awaitable completed without suspending
        return false;
      }
    } else {
      coro::coroutine_handle<> next;
      hand_over([&] { next = inner().await_suspend(relay); }, relay);
      if (next.address() == relay.address()) {
        ForeignLink::drop_relay(relay);
        return false;
      }
      // The awaitable hands over to a coroutine of its own (a lazily started task): it runs here,
      // nested, not by symmetric transfer, and resumes the relay once it is done.
      ForeignLink::run_nested(next);
      return true;
    }
    if (ForeignLink::reclaim_resume_point(*f, relay, h)) ForeignLink::drop_relay(relay);
    return true;
  }

  decltype(auto) await_resume() { return inner().await_resume(); }

 private:
  std::remove_reference_t<Inner>& inner() noexcept { return inner_; }
  // Calls the awaitable's await_suspend; if that throws, the relay was not taken: it goes, and the
  // exception reaches the body.
  template <class F>
  static void hand_over(F&& call, coro::coroutine_handle<> relay) {
#if defined(__cpp_exceptions)
    try {
      call();
    } catch (...) {
      ForeignLink::drop_relay(relay);
      throw;
    }
#else
    (void)relay;
    call();
#endif
  }
  Inner inner_;
  ForeignLink* link_ = nullptr;
};

// One of bgtasks' own awaiters, awaited where it is. Not the awaiter itself: g++ 12 copies an
// awaiter that await_transform returns by reference into the frame (and most of ours cannot be
// copied), while a prvalue is built in place. The awaited object is a temporary of the co_await's
// full expression, or a named object, and outlives the suspension either way; the calls inline.
template <class A>
struct NativeRef {
  A* a;
  decltype(auto) await_ready() { return a->await_ready(); }
  template <class H>
  decltype(auto) await_suspend(H h) {
    return a->await_suspend(h);
  }
  decltype(auto) await_resume() { return a->await_resume(); }
};

}  // namespace detail

// ---- Co<T>: a lazily started coroutine that can be co_awaited from a task body ----------------
namespace detail {
struct PromiseBase {
  // Frames come from the per-thread block cache (block_pool.hpp).
  static void* operator new(std::size_t n) { return pool_allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { pool_deallocate(p, n); }

  coro::coroutine_handle<> continuation;
#if defined(__cpp_exceptions)
  std::exception_ptr exception;
#endif
  bool starting = false;  // resumed inline by the awaiting parent (last: Promise<T> packs a flag behind it)
  coro::suspend_always initial_suspend() const noexcept { return {}; }
  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    void await_suspend(coro::coroutine_handle<P> h) noexcept {
      PromiseBase& p = h.promise();
      // Top-level frames: poll sees done(). Inline starts: the parent's await_suspend sees done().
      if (!p.continuation || p.starting) return;
      Fiber* f = suspend_current(p.continuation);
      f->executor().schedule(f);
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() const noexcept { return {}; }
  // bgtasks' own awaiters as they are (through NativeRef); any other awaitable through
  // ForeignAwaiter.
  template <class A>
  auto await_transform(A&& a) {
    if constexpr (native_awaitable<std::remove_cvref_t<A>>)
      return NativeRef<std::remove_reference_t<A>>{&a};
    else
      return ForeignAwaiter<A>(static_cast<A&&>(a));
  }
  void unhandled_exception() noexcept {
#if defined(__cpp_exceptions)
    exception = std::current_exception();
#else
    std::terminate();
#endif
  }
  void rethrow_if_failed() {
#if defined(__cpp_exceptions)
    if (exception) std::rethrow_exception(exception);
#endif
  }
};

template <class T>
struct Promise : PromiseBase {
  // Not a std::optional<T>: its flag would take a word of its own, where this one goes into
  // PromiseBase's tail padding, behind `starting` (every task body's frame holds a promise).
  bool has_value = false;
  union {
    T value;
  };
  Promise() noexcept {}
  Promise(const Promise&) = delete;
  Promise& operator=(const Promise&) = delete;
  ~Promise() {
    if (has_value) value.~T();
  }
  Co<T> get_return_object() noexcept;
  template <class U = T>
  void return_value(U&& v) {
    assert(!has_value);  // a co_return runs once: the coroutine then reaches its final suspend
    ::new (static_cast<void*>(&value)) T(std::forward<U>(v));
    has_value = true;
  }
  T take() {
    rethrow_if_failed();
    assert(has_value && "a Co<T> body ended without co_return of a value");
    return std::move(value);
  }
};
template <>
struct Promise<void> : PromiseBase {
  Co<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void take() { rethrow_if_failed(); }
};
}  // namespace detail

template <class T = void>
class [[nodiscard]] Co {
 public:
  using promise_type = detail::Promise<T>;
  using handle_type = coro::coroutine_handle<promise_type>;

  Co() noexcept = default;
  explicit Co(handle_type h) noexcept : h_(h) {}
  Co(Co&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  Co& operator=(Co&& o) noexcept {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  ~Co() { reset(); }

  bool valid() const noexcept { return static_cast<bool>(h_); }
  handle_type release() noexcept { return std::exchange(h_, {}); }

  bool await_ready() const noexcept { return false; }
  // Starts the child inline; if it finishes without suspending the parent just continues.
  bool await_suspend(coro::coroutine_handle<> parent) {
    promise_type& p = h_.promise();
    p.continuation = parent;
    p.starting = true;
    h_.resume();
    p.starting = false;
    return !h_.done();
  }
  T await_resume() { return h_.promise().take(); }

 private:
  void reset() noexcept {
    if (h_) h_.destroy();
    h_ = {};
  }
  handle_type h_;
};

namespace detail {
template <class T>
Co<T> Promise<T>::get_return_object() noexcept {
  return Co<T>(coro::coroutine_handle<Promise<T>>::from_promise(*this));
}
inline Co<void> Promise<void>::get_return_object() noexcept {
  return Co<void>(coro::coroutine_handle<Promise<void>>::from_promise(*this));
}
}  // namespace detail

}  // namespace bgtasks
