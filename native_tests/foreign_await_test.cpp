// Task bodies awaiting other libraries' awaitables (ForeignAwaiter in executor.hpp): whoever
// resumes the handle such an awaitable was given (another thread, the host's own code, a foreign
// coroutine), the body itself resumes only from Executor::poll, on the polling thread. A late
// completion (after a forced end, the manager's end, the executor's end) does nothing.
// Cross-thread tests wait on conditions (a joined thread, a flag polled with a bound), never on time.
#include <gtest/gtest.h>

#include <atomic>
#include <coroutine>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "support.hpp"

// ---- a stand-in for another library: its awaitables know nothing of bgtasks --------------------
namespace foreign {

// A one-shot event: await it until set(), which resumes the waiter inline, on the caller's thread.
class Event {
 public:
  void set(int v) {
    value_ = v;
    done_ = true;
    if (auto h = std::exchange(waiter_, {})) h.resume();
  }
  bool has_waiter() const { return static_cast<bool>(waiter_); }
  // Gives up on its waiter the way a coroutine's owner does: destroys the handle it holds.
  void abandon() {
    if (auto h = std::exchange(waiter_, {})) h.destroy();
  }

  struct Awaiter {
    Event* e;
    bool await_ready() const noexcept { return e->done_; }
    void await_suspend(std::coroutine_handle<> h) noexcept { e->waiter_ = h; }
    int await_resume() const noexcept { return e->value_; }
  };
  Awaiter operator co_await() noexcept { return Awaiter{this}; }

 private:
  std::coroutine_handle<> waiter_;
  int value_ = 0;
  bool done_ = false;
};

// An operation whose state lives on the heap, shared with whoever completes it (another thread),
// as a real I/O library's operation does: a completion never touches the awaiting frame.
class RemoteOp {
 public:
  struct State {
    std::coroutine_handle<> h;
    int result = 0;
    std::atomic<bool> waiting{false};
  };
  RemoteOp() : s_(std::make_shared<State>()) {}
  // From any thread, once the awaiter is waiting.
  void complete(int v) const {
    s_->result = v;
    s_->waiting.store(false, std::memory_order_release);
    std::exchange(s_->h, {}).resume();
  }
  bool waiting() const { return s_->waiting.load(std::memory_order_acquire); }

  struct Awaiter {
    std::shared_ptr<State> s;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) noexcept {
      s->h = h;
      s->waiting.store(true, std::memory_order_release);
    }
    int await_resume() const noexcept { return s->result; }
  };
  Awaiter operator co_await() const { return Awaiter{s_}; }

 private:
  std::shared_ptr<State> s_;
};

// Completes on a thread of its own, started by await_suspend (so possibly before await_suspend
// has returned). The test joins the thread. Not an aggregate: g++ 12 destroys a braced aggregate
// temporary with a default member initialiser twice when it is co_awaited (bgtasks or not).
struct ThreadOp {
  ThreadOp(std::thread* t, int v) : thread(t), in(v) {}
  std::thread* thread;
  int in;
  std::shared_ptr<int> out = std::make_shared<int>(0);
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    *thread = std::thread([out = out, v = in, h] {
      *out = v * 2;
      h.resume();
    });
  }
  int await_resume() const { return *out; }
};

// Ready at once: never suspends.
struct Ready {
  int v;
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept { ADD_FAILURE() << "suspended a ready awaitable"; }
  int await_resume() const noexcept { return v; }
};

// await_suspend returning bool: false means "done after all, do not suspend".
struct MaybeSuspend {
  Event* e;  // when it suspends, it waits on this
  bool suspend;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    if (!suspend) return false;
    Event::Awaiter{e}.await_suspend(h);
    return true;
  }
  int await_resume() const noexcept { return suspend ? 1 : 2; }
};

// Resumes its handle inline, inside await_suspend.
struct InlineResume {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) const { h.resume(); }
  int await_resume() const noexcept { return 5; }
};

// Refuses in await_suspend, by throwing.
struct Throwing {
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<>) const { throw std::runtime_error("refused"); }
  void await_resume() const noexcept {}
};

// A lazily started coroutine of another library: awaiting it hands over to it (await_suspend
// returns its handle); at its end it transfers back to the awaiter (symmetric transfer).
template <class T>
class Lazy {
 public:
  struct promise_type {
    std::coroutine_handle<> continuation;
    T value{};
    Lazy get_return_object() { return Lazy(std::coroutine_handle<promise_type>::from_promise(*this)); }
    std::suspend_always initial_suspend() noexcept { return {}; }
    struct Final {
      bool await_ready() noexcept { return false; }
      std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
        return h.promise().continuation ? h.promise().continuation : std::noop_coroutine();
      }
      void await_resume() noexcept {}
    };
    Final final_suspend() noexcept { return {}; }
    void return_value(T v) { value = std::move(v); }
    void unhandled_exception() { std::terminate(); }
  };
  explicit Lazy(std::coroutine_handle<promise_type> h) : h_(h) {}
  Lazy(Lazy&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  ~Lazy() {
    if (h_) h_.destroy();
  }
  struct Awaiter {
    std::coroutine_handle<promise_type> h;
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<promise_type> await_suspend(std::coroutine_handle<> c) noexcept {
      h.promise().continuation = c;
      return h;
    }
    T await_resume() { return std::move(h.promise().value); }
  };
  Awaiter operator co_await() && { return Awaiter{h_}; }

 private:
  std::coroutine_handle<promise_type> h_;
};

inline Lazy<int> plus_one(Event& e) {
  int v = co_await e;
  co_return v + 1;
}
inline Lazy<int> seven() { co_return 7; }

// Move-only result.
struct Boxed {
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  std::unique_ptr<int> await_resume() const { return std::make_unique<int>(9); }
};

}  // namespace foreign

namespace {

using namespace bgtasks;
using bgtasks::testing::manager_with_store;

// An awaiter built on bgtasks' plumbing but not marked native (as a user might have written one).
struct UnmarkedListAwaiter {
  explicit UnmarkedListAwaiter(WaitList& l) noexcept : list(&l) {}  // not an aggregate: see ThreadOp
  WaitList* list;
  Waiter waiter;
  WaitNode node;
  bool await_ready() const noexcept { return false; }
  void await_suspend(coro::coroutine_handle<> h) noexcept {
    waiter.arm(suspend_current(h));
    list->push(node, waiter);
  }
  void await_resume() noexcept { node.unlink(); }
};

static_assert(native_awaitable<SleepAwaiter>);
static_assert(native_awaitable<YieldAwaiter>);
static_assert(native_awaitable<Notify::Awaiter>);
static_assert(native_awaitable<CancellationToken::Awaiter>);
static_assert(native_awaitable<CancellableSleepAwaiter>);
static_assert(native_awaitable<InboxReceiver::RecvAwaiter>);
static_assert(native_awaitable<BackgroundTaskManager::WaitAwaiter>);
static_assert(native_awaitable<Co<TaskResult>>);
static_assert(native_awaitable<Co<void>>);
static_assert(!native_awaitable<foreign::Event>);
static_assert(!native_awaitable<foreign::RemoteOp>);
static_assert(!native_awaitable<std::suspend_always>);
static_assert(!native_awaitable<UnmarkedListAwaiter>);
// bgtasks' own awaiters pass through await_transform as they are (behind a pointer, see NativeRef).
static_assert(std::is_same_v<decltype(std::declval<detail::Promise<void>&>().await_transform(yield_now())),
                             detail::NativeRef<YieldAwaiter>>);
static_assert(sizeof(detail::NativeRef<SleepAwaiter>) == sizeof(void*));
static_assert(
    std::is_same_v<decltype(std::declval<detail::Promise<void>&>().await_transform(std::declval<foreign::Event&>())),
                   detail::ForeignAwaiter<foreign::Event&>>);

// Spins poll() until `done` or the bound; a cross-thread completion lands within a few polls.
template <class Pred>
bool poll_until(Executor& exec, Pred done, std::size_t bound = 50'000'000) {
  for (std::size_t i = 0; i < bound && !done(); ++i) {
    exec.poll();
    if (i % 64 == 63) std::this_thread::yield();
  }
  return done();
}

TEST(ForeignAwait, CompletionFromAnotherThreadResumesTheBodyFromPoll) {
  auto h = manager_with_store();
  foreign::RemoteOp op;
  std::thread::id resumed_on;
  int got = 0;
  bool after_sleep = false;
  auto id = h->manager->spawn("t", "io", std::nullopt, "remote", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    got = co_await op;
    resumed_on = std::this_thread::get_id();
    // The await that used to run outside a fiber (assertion, or SIGSEGV without asserts).
    bool slept = co_await ctx.sleep(10);
    after_sleep = slept;
    co_return TaskResult::success(got);
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  ASSERT_TRUE(op.waiting());
  std::thread t([&] { op.complete(42); });
  t.join();
  EXPECT_EQ(got, 0) << "the body resumed on the completing thread";
  EXPECT_TRUE(h->exec.has_ready());  // the reschedule is posted
  h->run_until_idle();
  EXPECT_EQ(got, 42);
  EXPECT_EQ(resumed_on, std::this_thread::get_id());
  h->run_for(10);
  EXPECT_TRUE(after_sleep);
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Completed);
}

TEST(ForeignAwait, CompletionRacingAConcurrentPollLoop) {
  auto h = manager_with_store();
  constexpr int kTasks = 32;
  std::vector<foreign::RemoteOp> ops(kTasks);
  std::atomic<int> sum{0};
  int finished = 0;
  for (int i = 0; i < kTasks; ++i) {
    auto id = h->manager->spawn("t", "io", std::nullopt, "remote", {}, [&, i](TaskContext) -> Co<TaskResult> {
      int v = co_await ops[static_cast<std::size_t>(i)];
      co_await yield_now();
      sum += v;
      ++finished;
      co_return TaskResult::success(nullptr);
    });
    ASSERT_TRUE(id.ok());
  }
  h->run_until_idle();
  for (auto& op : ops) ASSERT_TRUE(op.waiting());
  // The completions land while this thread keeps polling.
  std::thread t([&] {
    for (int i = 0; i < kTasks; ++i) ops[static_cast<std::size_t>(i)].complete(i);
  });
  EXPECT_TRUE(poll_until(h->exec, [&] { return finished == kTasks; }));
  t.join();
  h->run_until_idle();  // the bodies' holder frames record the ends on the next poll
  EXPECT_EQ(sum.load(), kTasks * (kTasks - 1) / 2);
  EXPECT_EQ(h->manager->stats().completed, static_cast<std::size_t>(kTasks));
}

TEST(ForeignAwait, ThreadStartedInAwaitSuspendMayCompleteBeforeItReturns) {
  auto h = manager_with_store();
  std::thread worker;
  int got = 0;
  auto id = h->manager->spawn("t", "io", std::nullopt, "thread", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    got = co_await foreign::ThreadOp(&worker, 21);
    co_await ctx.sleep(1);
    co_return TaskResult::success(got);
  });
  ASSERT_TRUE(id.ok());
  h->exec.poll();  // the body suspends; the worker thread starts
  worker.join();
  h->run_for(1);
  EXPECT_EQ(got, 42);
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Completed);
}

TEST(ForeignAwait, ResumedInlineByHostCodeContinuesOnlyOnTheNextPoll) {
  auto h = manager_with_store();
  foreign::Event ev;
  std::vector<std::string> log;
  auto id = h->manager->spawn("t", "io", std::nullopt, "event", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    log.push_back("wait");
    int v = co_await ev;
    log.push_back("got " + std::to_string(v));
    co_await ctx.sleep(5);
    log.push_back("slept");
    co_return TaskResult::success(v);
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  ASSERT_TRUE(ev.has_waiter());
  ev.set(3);  // resumes the relay here, outside any poll
  EXPECT_EQ(log, (std::vector<std::string>{"wait"}));
  h->run_for(5);
  EXPECT_EQ(log, (std::vector<std::string>{"wait", "got 3", "slept"}));
  EXPECT_EQ(h->manager->get(*id)->result, json(3));
}

TEST(ForeignAwait, ResumedFromAnotherBodysStep) {
  auto h = manager_with_store();
  foreign::Event ev;
  int got = 0;
  ASSERT_TRUE(h->manager
                  ->spawn("t", "io", std::nullopt, "waiter", {},
                          [&](TaskContext) -> Co<TaskResult> {
                            got = co_await ev;
                            co_return TaskResult::success(nullptr);
                          })
                  .ok());
  ASSERT_TRUE(h->manager
                  ->spawn("t", "io", std::nullopt, "setter", {},
                          [&](TaskContext) -> Co<TaskResult> {
                            co_await yield_now();
                            ev.set(8);  // inside a poll, in another fiber's step
                            co_return TaskResult::success(nullptr);
                          })
                  .ok());
  h->run_until_idle();
  EXPECT_EQ(got, 8);
  EXPECT_EQ(h->manager->stats().completed, 2u);
}

TEST(ForeignAwait, ReadyBoolAndInlineForms) {
  auto h = manager_with_store();
  foreign::Event ev;
  std::vector<int> got;
  auto id = h->manager->spawn("t", "io", std::nullopt, "forms", {}, [&](TaskContext) -> Co<TaskResult> {
    got.push_back(co_await foreign::Ready{4});                  // await_ready: no suspension
    got.push_back(co_await foreign::MaybeSuspend{&ev, false});  // bool false: no suspension
    got.push_back(co_await foreign::InlineResume{});            // resumed inside await_suspend
    got.push_back(co_await foreign::MaybeSuspend{&ev, true});   // bool true: waits for ev
    std::unique_ptr<int> boxed = co_await foreign::Boxed{};
    got.push_back(*boxed);
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_EQ(got, (std::vector<int>{4, 2, 5}));
  ASSERT_TRUE(ev.has_waiter());
  ev.set(0);
  h->run_until_idle();
  EXPECT_EQ(got, (std::vector<int>{4, 2, 5, 1, 9}));
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Completed);
}

TEST(ForeignAwait, AwaitSuspendReturningAHandleRunsTheForeignCoroutine) {
  auto h = manager_with_store();
  foreign::Event ev;
  std::vector<int> got;
  auto id = h->manager->spawn("t", "io", std::nullopt, "lazy", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    got.push_back(co_await foreign::seven());       // finishes inside the hand-over
    got.push_back(co_await foreign::plus_one(ev));  // suspends inside, on ev
    co_await ctx.sleep(1);
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_EQ(got, (std::vector<int>{7}));
  ASSERT_TRUE(ev.has_waiter());
  ev.set(41);  // resumes the foreign coroutine, which transfers to the relay
  EXPECT_EQ(got, (std::vector<int>{7}));
  h->run_for(1);
  EXPECT_EQ(got, (std::vector<int>{7, 42}));
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Completed);
}

TEST(ForeignAwait, ExceptionFromAwaitSuspendReachesTheBody) {
  auto h = manager_with_store();
  std::string caught;
  auto id = h->manager->spawn("t", "io", std::nullopt, "throws", {}, [&](TaskContext) -> Co<TaskResult> {
    try {
      co_await foreign::Throwing{};
    } catch (const std::exception& e) {
      caught = e.what();
    }
    co_await foreign::Throwing{};  // uncaught: the task fails
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_EQ(caught, "refused");
  auto s = h->manager->get(*id);
  EXPECT_EQ(s->status, TaskStatus::Failed);
  EXPECT_EQ(s->error, std::optional<std::string>("refused"));
}

TEST(ForeignAwait, InAChildCoroutineAndLvalueAwaitables) {
  auto h = manager_with_store();
  foreign::Event ev;
  foreign::RemoteOp op;
  auto child = [](foreign::Event* e, foreign::RemoteOp* o) -> Co<int> {
    int a = co_await *e;  // an lvalue with operator co_await
    auto aw = o->operator co_await();
    int b = co_await aw;  // an lvalue awaiter
    co_return a + b;
  };
  int got = 0;
  auto id = h->manager->spawn("t", "io", std::nullopt, "child", {}, [&](TaskContext) -> Co<TaskResult> {
    got = co_await child(&ev, &op);
    co_return TaskResult::success(got);
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  ev.set(10);
  h->run_until_idle();
  ASSERT_TRUE(op.waiting());
  std::thread t([&] { op.complete(5); });
  t.join();
  h->run_until_idle();
  EXPECT_EQ(got, 15);
}

TEST(ForeignAwait, DetachedCoroutineOnTheExecutor) {
  ManualClock clock;
  Executor exec(clock);
  foreign::RemoteOp op;
  int got = 0;
  exec.spawn([](foreign::RemoteOp* o, int* out, Executor* ex) -> Co<void> {
    *out = co_await *o;
    co_await sleep_for(*ex, 1);
    *out += 1;
  }(&op, &got, &exec));
  exec.run_until_idle();
  std::thread t([&] { op.complete(1); });
  t.join();
  exec.run_until_idle();
  exec.advance(1);
  exec.run_until_idle();
  EXPECT_EQ(got, 2);
}

TEST(ForeignAwait, UnmarkedPlumbingAwaiterStillWorks) {
  auto h = manager_with_store();
  WaitList list;
  bool done = false;
  ASSERT_TRUE(h->manager
                  ->spawn("t", "io", std::nullopt, "unmarked", {},
                          [&](TaskContext ctx) -> Co<TaskResult> {
                            co_await UnmarkedListAwaiter(list);
                            co_await ctx.sleep(1);
                            done = true;
                            co_return TaskResult::success(nullptr);
                          })
                  .ok());
  h->run_until_idle();
  EXPECT_TRUE(list.wake_one(WakeReason::Signal));
  h->run_for(1);
  EXPECT_TRUE(done);
}

// ---- cancellation and the ends of the frame, the manager, the executor ---------------------------

TEST(ForeignAwait, CancelDoesNotInterruptAForeignAwait) {
  auto h = manager_with_store();
  foreign::Event ev;
  bool saw_cancel = false;
  auto id = h->manager->spawn("t", "io", std::nullopt, "cancelled", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    co_await ev;
    saw_cancel = ctx.is_cancelled();
    if (saw_cancel) co_return TaskResult::cancelled();
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_TRUE(h->manager->cancel(*id));
  h->run_until_idle();
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Running);  // still in its await
  EXPECT_TRUE(ev.has_waiter());
  ev.set(1);
  h->run_until_idle();
  EXPECT_TRUE(saw_cancel);
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Cancelled);
}

TEST(ForeignAwait, ForcedEndThenCompletionRunsTheBodyOnAndDiscardsIt) {
  auto h = manager_with_store();
  foreign::RemoteOp op;
  bool continued = false;
  SpawnOptions o{"t", "io", std::nullopt, "deadline", {}, 10};
  auto id = h->manager->spawn(o, [&](TaskContext) -> Co<TaskResult> {
    co_await op;
    continued = true;
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  h->run_for(10);  // the deadline ends the task; its body still waits
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Failed);
  ASSERT_TRUE(op.waiting());
  std::thread t([&] { op.complete(1); });
  t.join();
  h->run_until_idle();
  EXPECT_TRUE(continued);
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Failed);
  EXPECT_EQ(h->manager->stats().live_bodies, 0u);
}

TEST(ForeignAwait, CompletionAfterTheFrameWasDestroyedIsIgnored) {
  auto h = manager_with_store();
  foreign::RemoteOp op;
  int frames = 0;
  struct Live {
    int* n;
    ~Live() { --*n; }
  };
  SpawnOptions o{"t", "io", std::nullopt, "deadline", {}, 10};
  auto id = h->manager->spawn(o, [&](TaskContext) -> Co<TaskResult> {
    ++frames;
    Live live{&frames};
    co_await op;
    ADD_FAILURE() << "resumed after its frame was destroyed";
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  h->run_for(10);  // forced end: the body runs on, waiting
  ASSERT_TRUE(op.waiting());
  EXPECT_EQ(frames, 1);
  h->manager.reset();  // the manager's end destroys the frame
  EXPECT_EQ(frames, 0);
  std::promise<void> go;
  std::thread t([&, f = go.get_future()]() mutable {
    f.wait();
    op.complete(1);  // resumes the relay: posts to the (live) executor
  });
  go.set_value();
  t.join();
  EXPECT_TRUE(h->exec.has_ready());
  h->exec.run_until_idle();  // the delivery finds the frame gone
  EXPECT_FALSE(h->exec.has_ready());
}

TEST(ForeignAwait, CompletionDuringAConcurrentManagerEnd) {
  // The completing thread and the manager's end race; either order is safe.
  for (int round = 0; round < 20; ++round) {
    auto h = manager_with_store();
    foreign::RemoteOp op;
    ASSERT_TRUE(h->manager
                    ->spawn("t", "io", std::nullopt, "race", {},
                            [&](TaskContext) -> Co<TaskResult> {
                              co_await op;
                              co_return TaskResult::success(nullptr);
                            })
                    .ok());
    h->run_until_idle();
    ASSERT_TRUE(op.waiting());
    std::promise<void> go;
    std::thread t([&, f = go.get_future()]() mutable {
      f.wait();
      op.complete(1);
    });
    go.set_value();
    h->manager.reset();
    t.join();
    h->exec.run_until_idle();
  }
}

TEST(ForeignAwait, CompletionAfterTheExecutorWasDestroyedIsIgnored) {
  foreign::RemoteOp by_task, by_detached;
  {
    auto h = manager_with_store();
    ASSERT_TRUE(h->manager
                    ->spawn("t", "io", std::nullopt, "task", {},
                            [&](TaskContext) -> Co<TaskResult> {
                              co_await by_task;
                              ADD_FAILURE() << "resumed after its executor was destroyed";
                              co_return TaskResult::success(nullptr);
                            })
                    .ok());
    h->exec.spawn([](foreign::RemoteOp* o) -> Co<void> {
      co_await *o;
      ADD_FAILURE() << "resumed after its executor was destroyed";
    }(&by_detached));
    h->run_until_idle();
    ASSERT_TRUE(by_task.waiting());
    ASSERT_TRUE(by_detached.waiting());
  }  // the manager, then the executor (with its detached coroutine) go
  std::thread t([&] {
    by_task.complete(1);
    by_detached.complete(2);
  });
  t.join();
}

TEST(ForeignAwait, CompletionQueuedWhenTheExecutorGoesIsDropped) {
  foreign::RemoteOp op;
  {
    ManualClock clock;
    Executor exec(clock);
    exec.spawn([](foreign::RemoteOp* o) -> Co<void> {
      co_await *o;
      ADD_FAILURE() << "resumed after its executor was destroyed";
    }(&op));
    exec.run_until_idle();
    std::thread t([&] { op.complete(1); });
    t.join();
    EXPECT_TRUE(exec.has_ready());  // the delivery is queued, never run
  }
}

TEST(ForeignAwait, AwaitableThatDestroysItsHandleLeavesTheBodyWaiting) {
  auto h = manager_with_store();
  foreign::Event ev;
  bool resumed = false;
  auto id = h->manager->spawn("t", "io", std::nullopt, "abandoned", {}, [&](TaskContext) -> Co<TaskResult> {
    co_await ev;
    resumed = true;
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  ev.abandon();  // the relay goes, unrun
  h->run_until_idle();
  EXPECT_FALSE(resumed);
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Running);
  EXPECT_TRUE(h->manager->cancel(*id));
}

}  // namespace
