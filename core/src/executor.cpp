#include "bgtasks/executor.hpp"

#include <algorithm>
#include <cassert>

namespace bgtasks {
namespace {
thread_local Executor* t_current_executor = nullptr;
thread_local Fiber* t_current_fiber = nullptr;

// Restores the previous current executor/fiber, so nested executors (a body polling another) work.
struct CurrentGuard {
  Executor* prev_exec;
  Fiber* prev_fiber;
  CurrentGuard(Executor* e, Fiber* f) : prev_exec(t_current_executor), prev_fiber(t_current_fiber) {
    t_current_executor = e;
    t_current_fiber = f;
  }
  ~CurrentGuard() {
    t_current_executor = prev_exec;
    t_current_fiber = prev_fiber;
  }
};

// Set while this thread runs a wake callback: a wake-up it causes itself (a post) is skipped.
thread_local bool t_in_wake_callback = false;

}  // namespace

namespace detail {
// The posted work of an executor and its wake callback. The executor owns it; pending foreign
// operations share it, so it outlives the executor: closed then, it takes nothing more.
struct PostQueue {
  std::mutex mutex;
  std::vector<std::function<void()>> items;
  std::atomic<bool> has_items{false};
  bool closed = false;  // the executor is gone

  std::mutex wake_mutex;
  std::function<void()> wake_fn;
  std::atomic<bool> has_wake{false};

  // False (and `fn` dropped) once closed. `wake`: report the first item to the wake callback.
  bool push(std::function<void()>&& fn, bool wake_host = true) {
    bool first = false;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (closed) return false;
      items.push_back(std::move(fn));
      first = !has_items.load(std::memory_order_relaxed);
      has_items.store(true, std::memory_order_release);
    }
    if (first && wake_host && has_wake.load(std::memory_order_acquire)) wake();
    return true;
  }

  void wake() noexcept {
    if (t_in_wake_callback) return;
    std::lock_guard<std::mutex> lock(wake_mutex);
    if (!wake_fn) return;
    t_in_wake_callback = true;
    wake_fn();  // noexcept here: a throwing callback terminates
    t_in_wake_callback = false;
  }

  void set_wake(std::function<void()>&& fn) {
    std::function<void()> old;
    {
      std::lock_guard<std::mutex> lock(wake_mutex);
      old = std::exchange(wake_fn, std::move(fn));
      has_wake.store(static_cast<bool>(wake_fn), std::memory_order_release);
    }
  }  // the old callback goes outside the lock

  // The executor's end: what is still queued is dropped (never run), later pushes are refused.
  void close() noexcept {
    std::vector<std::function<void()>> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex);
      closed = true;
      dropped.swap(items);
      has_items.store(false, std::memory_order_release);
    }
    set_wake({});
  }
};

// A coroutine spawned with Executor::spawn, owned by the executor.
class DetachedFiber final : public Fiber {
 public:
  DetachedFiber(Executor& exec, Co<void>::handle_type h) : Fiber(exec), h_(h) { start(h); }
  ~DetachedFiber() override {
    if (h_) h_.destroy();
  }
  void finished() override;

 private:
  Co<void>::handle_type h_;
};
}  // namespace detail

// ---- Fiber -----------------------------------------------------------------------------------
Fiber::~Fiber() {
  if (queued_ && !dying_) exec_->unqueue(this);
}

void Fiber::start(coro::coroutine_handle<> top) {
  top_ = top;
  resume_point_ = top;
  exec_->schedule(this);
}

Fiber* suspend_current(coro::coroutine_handle<> h) noexcept {
  Fiber* f = t_current_fiber;
  assert(f && "co_await on a bgtasks awaitable outside a fiber run by Executor::poll");
  f->resume_point_ = h;
  return f;
}

// ---- other libraries' awaitables -------------------------------------------------------------
namespace detail {

ForeignLink::ForeignLink(Fiber& fiber) : fiber_(&fiber), queue_(fiber.executor().posted_) {}
ForeignLink::~ForeignLink() = default;

// A reference to a link, as a posted function (copyable, as std::function wants).
struct LinkRef {
  ForeignLink* link;
  explicit LinkRef(ForeignLink* l) noexcept : link(l) {}  // adopts a reference
  LinkRef(const LinkRef& o) noexcept : link(o.link) { link->add_ref(); }
  LinkRef(LinkRef&& o) noexcept : link(std::exchange(o.link, nullptr)) {}
  LinkRef& operator=(const LinkRef&) = delete;
  ~LinkRef() {
    if (link) link->release();
  }
  void operator()() const noexcept { link->deliver(); }
};

void ForeignLink::wake() noexcept {
  add_ref();
  // A closed queue (the executor is gone) drops the function, and with it that reference.
  queue_->push(std::function<void()>(LinkRef(this)));
}

void ForeignLink::deliver() noexcept {
  // Null when the frame left the await meanwhile (destroyed by a forced end or its owner's end).
  if (Fiber* f = std::exchange(fiber_, nullptr)) f->executor().schedule(f);
}

namespace {
// The relay's coroutine: created suspended; resumed once by the other library, it wakes its link
// and frees itself.
struct Relay {
  struct promise_type {
    ForeignLink* link = nullptr;
    Relay get_return_object() noexcept { return Relay{coro::coroutine_handle<promise_type>::from_promise(*this)}; }
    coro::suspend_always initial_suspend() const noexcept { return {}; }
    coro::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() noexcept { link->wake(); }
    void unhandled_exception() noexcept { std::terminate(); }
    ~promise_type() {
      if (link) link->release();
    }
  };
  coro::coroutine_handle<promise_type> h;
};

Relay relay_coroutine() { co_return; }
}  // namespace

coro::coroutine_handle<> make_relay(ForeignLink& link) {
  Relay r = relay_coroutine();
  link.add_ref();
  r.h.promise().link = &link;
  return r.h;
}

void ForeignLink::drop_relay(coro::coroutine_handle<> relay) noexcept { relay.destroy(); }
void ForeignLink::run_nested(coro::coroutine_handle<> next) { next.resume(); }

bool ForeignLink::reclaim_resume_point(Fiber& f, coro::coroutine_handle<> relay, coro::coroutine_handle<> h) noexcept {
  if (f.resume_point_.address() != relay.address()) return false;
  f.resume_point_ = h;
  return true;
}

}  // namespace detail

// ---- wake-up plumbing ----------------------------------------------------------------------
void fire(Waiter& w, WakeReason reason) noexcept {
  if (w.fired() != WakeReason::None) return;
  w.set_fired(reason);
  w.fiber()->executor().schedule(w.fiber());
}

WaitList::~WaitList() {
  // Waiters outliving their list (a destroyed inbox, token or notify) are detached, not woken.
  while (!empty()) front().unlink();
}

void WaitList::push(WaitNode& node, Waiter& waiter) noexcept {
  node.unlink();
  node.waiter = &waiter;
  node.prev = head_.prev;
  node.next = &head_;
  head_.prev->next = &node;
  head_.prev = &node;
}

bool WaitList::wake_one(WakeReason reason) noexcept {
  while (!empty()) {
    WaitNode& n = front();
    n.unlink();
    if (n.waiter->fired() == WakeReason::None) {
      fire(*n.waiter, reason);
      return true;
    }
  }
  return false;
}

std::size_t WaitList::wake_all(WakeReason reason) noexcept {
  std::size_t woken = 0;
  while (wake_one(reason)) ++woken;  // wake_one empties the list before it returns false
  return woken;
}

// ---- Executor --------------------------------------------------------------------------------
Executor::Executor(Clock& clock)
    : clock_(&clock),
      manual_(clock.is_manual() ? static_cast<ManualClock*>(&clock) : nullptr),
      posted_(std::make_shared<detail::PostQueue>()) {}

Executor::~Executor() {
  // Clients first, while everything here still works: ending one may end others (a frame that
  // owned another manager), which then detach themselves.
  while (!clients_.empty()) {
    ExecutorClient* c = clients_.back();
    clients_.pop_back();
    c->executor_ending();
  }
  // Abandoned fibers wait for a step that can no longer return (the executor is going): free them.
  for (auto& [f, keep] : std::exchange(abandoned_, {})) f->abandoned();
  for (Fiber* f : detached_) f->dying_ = true;
  purge_dying();
  auto detached = std::move(detached_);
  for (Fiber* f : detached) delete f;
  // Last: the frames above may have left foreign operations pending, whose completions find it closed.
  posted_->close();
}

void Executor::attach(ExecutorClient& client) { clients_.push_back(&client); }

void Executor::detach(ExecutorClient& client) noexcept {
  auto it = std::find(clients_.begin(), clients_.end(), &client);
  if (it != clients_.end()) clients_.erase(it);
}

Executor* Executor::current() noexcept { return t_current_executor; }
Fiber* Executor::current_fiber() noexcept { return t_current_fiber; }

void Executor::schedule(Fiber* f) {
  if (f->queued_ || f->dying_) return;
  f->queued_ = true;
  ready_.push_back(f);
  if (posted_->has_wake.load(std::memory_order_relaxed)) [[unlikely]]
    wake_if_first_ready();
}

// Out of line: schedule's path without a callback stays one test.
void Executor::wake_if_first_ready() noexcept {
  if (poll_depth_ == 0 && ready_.size() == 1) posted_->wake();
}

void Executor::set_wake_callback(std::function<void()> fn) { posted_->set_wake(std::move(fn)); }

void Executor::unqueue(Fiber* f) noexcept {
  auto it = std::find(ready_.begin(), ready_.end(), f);
  if (it != ready_.end()) ready_.erase(it);
  f->queued_ = false;
}

void Executor::purge_dying() {
  ready_.erase(std::remove_if(ready_.begin(), ready_.end(),
                              [](Fiber* f) {
                                if (!f->dying_) return false;
                                f->queued_ = false;
                                return true;
                              }),
               ready_.end());
}

std::size_t Executor::run_posted() {
  detail::PostQueue& q = *posted_;
  if (!q.has_items.load(std::memory_order_acquire)) return 0;
  std::vector<std::function<void()>> batch;
  {
    std::lock_guard<std::mutex> lock(q.mutex);
    batch.swap(q.items);
    q.has_items.store(false, std::memory_order_release);
  }
  for (auto& fn : batch) fn();
  return batch.size();
}

// A post from this executor's own poll needs no wake-up: the host polls again after it.
void Executor::post(std::function<void()> fn) { posted_->push(std::move(fn), t_current_executor != this); }

std::size_t Executor::poll() {
  CurrentGuard guard(this, nullptr);
  struct Depth {
    std::uint32_t& d;
    explicit Depth(std::uint32_t& v) noexcept : d(v) { ++d; }
    ~Depth() { --d; }
  } depth(poll_depth_);
  std::size_t ran = run_posted();
  collect_due_timers();
  // Fibers woken during this poll wait for the next one: each ready fiber runs once.
  std::size_t n = ready_.size();
  for (std::size_t i = 0; i < n && !ready_.empty(); ++i) {
    Fiber* f = ready_.front();
    ready_.pop_front();
    f->queued_ = false;
    // Only a suspended fiber is ever queued (every wake-up source fires a waiter that its own
    // suspension armed), so a poll nested in a step cannot resume the fiber of that step.
    assert(!f->stepping_ && "a fiber was scheduled while its own step was running");
    f->stepping_ = true;
    t_current_fiber = f;
    f->step();
    t_current_fiber = nullptr;
    f->stepping_ = false;
    ++ran;
    if (f->dying_) {         // its owner went away during the step
      release_abandoned(f);  // may delete f
      continue;
    }
    if (f->top_ && f->top_.done()) f->finished();  // may delete f
  }
  return ran;
}

std::size_t Executor::run_until_idle() {
  std::size_t total = 0;
  while (has_ready()) total += poll();
  return total;
}

bool Executor::front_timer_due(std::uint64_t now) const noexcept {
  // A deadline of kNever (a sleep past the end of time) is never due, even once the clock got there.
  return !timers_.empty() && timers_.front()->deadline != kNever && timers_.front()->deadline <= now;
}

bool Executor::has_ready() const {
  if (!ready_.empty() || posted_->has_items.load(std::memory_order_acquire)) return true;
  return front_timer_due(clock_->now_ms());
}

// Timers armed for kNever sort last and are never due: they are not a deadline.
std::optional<std::uint64_t> Executor::next_deadline() const noexcept {
  if (timers_.empty() || timers_.front()->deadline == kNever) return std::nullopt;
  return timers_.front()->deadline;
}

bool Executor::advance(std::uint64_t ms) {
  if (!manual_) return false;
  manual_->advance(ms);
  collect_due_timers();
  return true;
}

bool Executor::set_time(std::uint64_t ms) {
  if (!manual_) return false;
  manual_->set(ms);
  collect_due_timers();
  return true;
}

void Executor::collect_due_timers() {
  const std::uint64_t now = clock_->now_ms();
  while (front_timer_due(now)) {
    TimerNode* t = timers_.front();
    heap_remove(0);
    fire(*t->waiter, WakeReason::Timer);
  }
}

void Executor::spawn(Co<void> co) {
  auto* f = new detail::DetachedFiber(*this, co.release());
  detached_.push_back(f);
}

void detail::DetachedFiber::finished() {
  executor().release_detached(this);
#if defined(__cpp_exceptions)
  std::exception_ptr escaped = std::exchange(h_.promise().exception, nullptr);
  delete this;
  if (escaped) std::rethrow_exception(escaped);  // on the polling thread, out of poll()
#else
  delete this;
#endif
}

void Executor::abandon_after_step(Fiber& f, std::shared_ptr<void> keep) {
  f.dying_ = true;
  abandoned_.emplace_back(&f, std::move(keep));
}

void Executor::release_abandoned(Fiber* f) noexcept {
  auto it = std::find_if(abandoned_.begin(), abandoned_.end(), [f](const auto& e) { return e.first == f; });
  if (it == abandoned_.end()) return;
  std::shared_ptr<void> keep = std::move(it->second);
  abandoned_.erase(it);
  f->abandoned();  // user code (frame destructors) may abandon or release other fibers meanwhile
}  // `keep` goes last: it may free f

void Executor::release_detached(Fiber* f) noexcept {
  auto it = std::find(detached_.begin(), detached_.end(), f);
  if (it != detached_.end()) detached_.erase(it);
}

// ---- timer heap --------------------------------------------------------------------------------
void Executor::arm(TimerNode& node, std::uint64_t deadline) noexcept {
  disarm(node);
  node.deadline = deadline;
  node.seq = timer_seq_++;
  node.pos = timers_.size();
  timers_.push_back(&node);
  heap_up(node.pos);
  // A new earliest deadline armed from outside a poll: a sleeping host must re-arm its timer.
  if (node.pos == 0 && posted_->has_wake.load(std::memory_order_relaxed)) [[unlikely]]
    if (poll_depth_ == 0 && deadline != kNever) posted_->wake();
}

void Executor::disarm(TimerNode& node) noexcept {
  if (node.pos != TimerNode::npos) heap_remove(node.pos);
}

void Executor::heap_up(std::size_t i) noexcept {
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (!timer_less(timers_[i], timers_[parent])) break;
    std::swap(timers_[i], timers_[parent]);
    timers_[i]->pos = i;
    timers_[parent]->pos = parent;
    i = parent;
  }
}

void Executor::heap_down(std::size_t i) noexcept {
  const std::size_t n = timers_.size();
  for (;;) {
    std::size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && timer_less(timers_[l], timers_[m])) m = l;
    if (r < n && timer_less(timers_[r], timers_[m])) m = r;
    if (m == i) break;
    std::swap(timers_[i], timers_[m]);
    timers_[i]->pos = i;
    timers_[m]->pos = m;
    i = m;
  }
}

void Executor::heap_remove(std::size_t i) noexcept {
  TimerNode* removed = timers_[i];
  const std::size_t last = timers_.size() - 1;
  if (i != last) {
    timers_[i] = timers_[last];
    timers_[i]->pos = i;
  }
  timers_.pop_back();
  removed->pos = TimerNode::npos;
  if (i < timers_.size()) {
    heap_down(i);
    heap_up(i);
  }
}

// ---- awaitables ----------------------------------------------------------------------------------
void SleepAwaiter::await_suspend(coro::coroutine_handle<> h) noexcept {
  waiter_.arm(suspend_current(h));
  timer_.waiter = &waiter_;
  exec_->arm(timer_, deadline_);
}

void YieldAwaiter::await_suspend(coro::coroutine_handle<> h) noexcept {
  Fiber* f = suspend_current(h);
  f->executor().schedule(f);
}

bool Notify::Awaiter::await_ready() noexcept {
  if (!n_->permit_) return false;
  n_->permit_ = false;
  return true;
}

void Notify::Awaiter::await_suspend(coro::coroutine_handle<> h) noexcept {
  waiter_.arm(suspend_current(h));
  n_->waiters_.push(node_, waiter_);
}

void Notify::notify_one() noexcept {
  if (!waiters_.wake_one(WakeReason::Signal)) permit_ = true;
}

}  // namespace bgtasks
