// The cooperative executor and cooperative cancellation (docs/behaviour.md).
// Time only moves through ManualClock / Executor::advance / set_time; never the wall clock.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "bgtasks/manager_internals.hpp"
#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::testing::manager_with_store;
using bgtasks::testing::manager_with_store_and_inbox;

using Log = std::vector<std::string>;

// Counts live frames: constructed in a body, destroyed with the frame.
struct LiveGuard {
  int* count;
  explicit LiveGuard(int& c) : count(&c) { ++*count; }
  LiveGuard(const LiveGuard&) = delete;
  LiveGuard& operator=(const LiveGuard&) = delete;
  ~LiveGuard() { --*count; }
};

// Detached coroutines are free functions: their parameters are copied into the frame.
Co<void> yielder(Log* log, std::string name, int yields) {
  for (int i = 0; i <= yields; ++i) {
    log->push_back(name + std::to_string(i));
    if (i < yields) co_await yield_now();
  }
}

Co<void> sleeper(Executor* ex, Log* log, std::string name, std::uint64_t ms) {
  co_await sleep_for(*ex, ms);
  log->push_back(name);
}

Co<void> yield_then_sleeper(Executor* ex, Log* log, std::string name, std::uint64_t ms) {
  co_await yield_now();
  co_await sleep_for(*ex, ms);
  log->push_back(name);
}

Co<void> notify_waiter(Notify* n, Log* log, std::string name, int times) {
  log->push_back(name + ":wait");
  for (int i = 1; i <= times; ++i) {
    co_await n->notified();
    log->push_back(name + ":" + std::to_string(i));
  }
}

Co<void> notifier(Notify* n, Log* log) {
  log->push_back("n:notify");
  n->notify_one();
  log->push_back("n:done");
  co_return;
}

Co<void> child_logger(Log* log) {
  log->push_back("child");
  co_return;
}

Co<void> spawner(Executor* ex, Log* log) {
  log->push_back("spawner");
  ex->spawn(child_logger(log));
  log->push_back("spawner:after");
  co_return;
}

Co<int> sleepy_value(Executor* ex, int v, std::uint64_t ms) {
  co_await sleep_for(*ex, ms);
  co_return v;
}

Co<void> nest_body(Executor* ex, Log* log, std::optional<int>* out) {
  log->push_back("start");
  int a = co_await sleepy_value(ex, 7, 50);
  log->push_back("a=" + std::to_string(a));
  int b = co_await sleepy_value(ex, 5, 20);
  log->push_back("b=" + std::to_string(b));
  *out = a * 10 + b;
}

Co<int> one() { co_return 1; }

Co<void> sequential_chain(int n, long* out) {
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await one();
  *out = sum;
}

Co<int> one_after_yield() {
  co_await yield_now();
  co_return 1;
}

Co<void> sequential_suspending_chain(int n, long* out) {
  long sum = 0;
  for (int i = 0; i < n; ++i) sum += co_await one_after_yield();
  *out = sum;
}

Co<int> nested_depth(Executor* ex, int n) {
  if (n == 0) {
    co_await sleep_for(*ex, 10);
    co_return 0;
  }
  int below = co_await nested_depth(ex, n - 1);
  co_return below + 1;
}

Co<void> nested_root(Executor* ex, int n, std::optional<int>* out) { *out = co_await nested_depth(ex, n); }

Co<int> throw_sync(bool really) {
  if (really) throw std::logic_error("sync inner");
  co_return 0;
}

Co<int> throw_after_sleep(Executor* ex, bool really) {
  co_await sleep_for(*ex, 10);
  if (really) throw std::runtime_error("async inner");
  co_return 0;
}

Co<void> catcher(Executor* ex, Log* log) {
  try {
    (void)co_await throw_sync(true);
    log->push_back("no sync throw");
  } catch (const std::logic_error& e) {
    log->push_back(e.what());
  }
  try {
    (void)co_await throw_after_sleep(ex, true);
    log->push_back("no async throw");
  } catch (const std::runtime_error& e) {
    log->push_back(e.what());
  }
  log->push_back("done");
}

Co<void> guarded_sleeper(Executor* ex, int* live, bool* done, std::uint64_t ms) {
  LiveGuard g(*live);
  co_await sleep_for(*ex, ms);
  *done = true;
}

// ---------------------------------------------------------------------------------------------
// Executor
// ---------------------------------------------------------------------------------------------

TEST(Executor, PollReturnsStepsAndResumesEachReadyFiberOnceFirstComeFirstServed) {
  ManualClock clock{0};
  Executor exec{clock};
  Log log;
  exec.spawn(yielder(&log, "a", 2));
  exec.spawn(yielder(&log, "b", 1));
  exec.spawn(yielder(&log, "c", 0));
  EXPECT_TRUE(log.empty()) << "Executor::spawn must not run the coroutine";
  EXPECT_TRUE(exec.has_ready());
  EXPECT_EQ(exec.ready_count(), 3u);

  EXPECT_EQ(exec.poll(), 3u);
  EXPECT_EQ(log, (Log{"a0", "b0", "c0"}));
  // a and b yielded: each runs once more on the next poll, in order; c finished.
  EXPECT_EQ(exec.poll(), 2u);
  EXPECT_EQ(log, (Log{"a0", "b0", "c0", "a1", "b1"}));
  EXPECT_EQ(exec.poll(), 1u);
  EXPECT_EQ(log, (Log{"a0", "b0", "c0", "a1", "b1", "a2"}));
  EXPECT_EQ(exec.poll(), 0u);
  EXPECT_FALSE(exec.has_ready());
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, ManagerSpawnNeverRunsTheBodyItStartsAtTheNextPoll) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  bool started = false;
  auto id = m.spawn("thread-1", "shell", std::nullopt, "lazy", {}, [&](TaskContext) -> Co<TaskResult> {
    started = true;
    co_return TaskResult::success(json(1));
  });
  ASSERT_TRUE(id.ok());
  EXPECT_FALSE(started);
  ASSERT_TRUE(m.get(*id).has_value());
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Running);
  EXPECT_TRUE(h->exec.has_ready());
  EXPECT_GE(h->exec.poll(), 1u);
  EXPECT_TRUE(started);
  h->run_until_idle();
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Completed);
}

TEST(Executor, SpawnFromInsideABodyRunsTheChildOnTheNextPoll) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  Log log;
  std::optional<TaskId> child;
  auto parent = m.spawn("thread-1", "shell", std::nullopt, "parent", {}, [&](TaskContext) -> Co<TaskResult> {
    log.push_back("parent");
    auto c = m.spawn("thread-1", "shell", std::nullopt, "child", {}, [&](TaskContext) -> Co<TaskResult> {
      log.push_back("child");
      co_return TaskResult::success(nullptr);
    });
    if (c.ok()) child = *c;
    log.push_back("parent:after-spawn");
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(parent.ok());
  h->exec.poll();
  EXPECT_EQ(log, (Log{"parent", "parent:after-spawn"}));
  ASSERT_TRUE(child.has_value());
  h->run_until_idle();
  EXPECT_EQ(log, (Log{"parent", "parent:after-spawn", "child"}));
  EXPECT_EQ(m.get(*child)->status, TaskStatus::Completed);
  EXPECT_EQ(m.get(*child)->parent_context.task_id, std::optional<std::string>(*parent));
}

TEST(Executor, DetachedSpawnDuringAPollRunsOnTheNextPoll) {
  ManualClock clock{0};
  Executor exec{clock};
  Log log;
  exec.spawn(spawner(&exec, &log));
  EXPECT_EQ(exec.poll(), 1u);
  EXPECT_EQ(log, (Log{"spawner", "spawner:after"}));
  EXPECT_TRUE(exec.has_ready());
  EXPECT_EQ(exec.poll(), 1u);
  EXPECT_EQ(log, (Log{"spawner", "spawner:after", "child"}));
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, FiberWokenDuringAPollRunsOnTheNextPoll) {
  Notify n;
  ManualClock clock{0};
  Executor exec{clock};
  Log log;
  exec.spawn(notify_waiter(&n, &log, "w", 1));
  exec.spawn(notifier(&n, &log));
  EXPECT_EQ(exec.poll(), 2u);
  EXPECT_EQ(log, (Log{"w:wait", "n:notify", "n:done"}));
  EXPECT_TRUE(exec.has_ready());
  EXPECT_EQ(exec.poll(), 1u);
  EXPECT_EQ(log, (Log{"w:wait", "n:notify", "n:done", "w:1"}));
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, AdvanceMakesDueTimersReadyInDeadlineOrderTiesInArmingOrderAndRunsNothing) {
  ManualClock clock{1000};
  Executor exec{clock};
  Log log;
  // p is spawned first but arms its 10 ms timer one poll later than y and w (same deadline).
  exec.spawn(yield_then_sleeper(&exec, &log, "p", 10));
  exec.spawn(sleeper(&exec, &log, "x", 30));
  exec.spawn(sleeper(&exec, &log, "y", 10));
  exec.spawn(sleeper(&exec, &log, "z", 20));
  exec.spawn(sleeper(&exec, &log, "w", 10));
  EXPECT_EQ(exec.poll(), 5u);
  EXPECT_EQ(exec.poll(), 1u);  // p arms now, still at t=1000
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(exec.timer_count(), 5u);
  EXPECT_EQ(exec.next_deadline(), std::optional<std::uint64_t>(1010));
  EXPECT_FALSE(exec.has_ready());
  EXPECT_FALSE(exec.idle()) << "armed timers: not idle";

  EXPECT_TRUE(exec.advance(9));
  EXPECT_EQ(clock.now_ms(), 1009u);
  EXPECT_FALSE(exec.has_ready());
  EXPECT_EQ(exec.poll(), 0u);

  EXPECT_TRUE(exec.advance(21));  // t=1030: every timer is due
  EXPECT_EQ(clock.now_ms(), 1030u);
  EXPECT_TRUE(log.empty()) << "advance must run nothing itself";
  EXPECT_TRUE(exec.has_ready());
  EXPECT_EQ(exec.poll(), 5u);
  EXPECT_EQ(log, (Log{"y", "w", "p", "z", "x"}));
  EXPECT_EQ(exec.next_deadline(), std::nullopt);
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, TimerExactlyAtDeadlineIsDueAndPollCollectsTimersMadeDueByTheClock) {
  ManualClock clock{0};
  Executor exec{clock};
  Log log;
  exec.spawn(sleeper(&exec, &log, "a", 10));
  exec.spawn(sleeper(&exec, &log, "b", 20));
  exec.poll();
  EXPECT_TRUE(exec.advance(10));
  EXPECT_TRUE(exec.has_ready());
  EXPECT_EQ(exec.poll(), 1u);
  EXPECT_EQ(log, (Log{"a"}));
  EXPECT_EQ(exec.next_deadline(), std::optional<std::uint64_t>(20));
  // Moving the clock alone (not through the executor) makes b due; has_ready and poll see it.
  clock.advance(10);
  EXPECT_TRUE(exec.has_ready());
  EXPECT_TRUE(log.size() == 1u);
  EXPECT_EQ(exec.poll(), 1u);
  EXPECT_EQ(log, (Log{"a", "b"}));
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, SetTimeMovesForwardOnlyAndMakesDueTimersReady) {
  ManualClock clock{500};
  Executor exec{clock};
  Log log;
  exec.spawn(sleeper(&exec, &log, "a", 100));
  exec.run_until_idle();
  EXPECT_TRUE(exec.set_time(599));
  EXPECT_FALSE(exec.has_ready());
  EXPECT_TRUE(exec.set_time(600));
  EXPECT_TRUE(exec.has_ready());
  EXPECT_TRUE(log.empty());
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"a"}));
  exec.set_time(100);  // backwards: ignored
  EXPECT_EQ(clock.now_ms(), 600u);
}

// A sleep that would end past the clock's range never fires (kNever): a huge sleep does not fire
// early, the manual clock stops at its end instead of wrapping backwards, and even there a short
// sleep does not return at once (found by fuzz_api).
TEST(Executor, SleepsPastTheEndOfTimeNeverFireAndTheClockSaturates) {
  ManualClock clock{1'000};
  Executor exec{clock};
  Log log;
  exec.spawn(sleeper(&exec, &log, "huge", UINT64_MAX));
  exec.spawn(sleeper(&exec, &log, "short", 10));
  exec.run_until_idle();
  EXPECT_EQ(exec.next_deadline(), std::optional<std::uint64_t>(1'010));
  exec.advance(UINT64_MAX - 2'000);
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"short"}));
  EXPECT_EQ(clock.now_ms(), UINT64_MAX - 1'000);
  EXPECT_FALSE(exec.next_deadline().has_value());  // only the never-firing sleep is armed
  EXPECT_TRUE(exec.idle());
  EXPECT_EQ(exec.timer_count(), 1u);
  exec.advance(5'000);  // would wrap to 3'999
  EXPECT_EQ(clock.now_ms(), UINT64_MAX);
  exec.spawn(sleeper(&exec, &log, "at the end", 114));
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"short"}));
  EXPECT_EQ(exec.timer_count(), 2u);
}

TEST(Cancel, HugeTaskSleepAndHostTimerDoNotFireEarly) {
  auto h = manager_with_store();
  std::optional<bool> slept;
  auto id = h->manager->spawn("t", "shell", std::nullopt, "sleeps forever", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    const bool ok = co_await ctx.sleep(UINT64_MAX);
    slept = ok;
    co_return TaskResult::success(json(ok));
  });
  auto host = h->manager->spawn_host("t", "shell", std::nullopt, "host", {});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(host.ok());
  auto timer = bgtasks::detail::ManagerInternals::arm_host_timer(*h->manager, *host, UINT64_MAX - 1);
  ASSERT_TRUE(timer.ok());
  h->run_for(1'000'000);
  EXPECT_FALSE(slept.has_value());
  EXPECT_TRUE(bgtasks::detail::ManagerInternals::take_fired_host_timers(*h->manager).empty());
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Running);
  EXPECT_TRUE(h->manager->cancel(*id));
  h->run_until_idle();
  EXPECT_EQ(slept, std::optional<bool>(false));
}

TEST(Executor, IdleHasReadyAndNextDeadlineTrackState) {
  ManualClock clock{0};
  Executor exec{clock};
  Log log;
  EXPECT_TRUE(exec.idle());
  EXPECT_FALSE(exec.has_ready());
  EXPECT_EQ(exec.next_deadline(), std::nullopt);
  EXPECT_EQ(exec.poll(), 0u);
  EXPECT_EQ(exec.run_until_idle(), 0u);

  exec.spawn(sleeper(&exec, &log, "s", 5));
  EXPECT_TRUE(exec.has_ready());
  EXPECT_FALSE(exec.idle());
  EXPECT_EQ(exec.next_deadline(), std::nullopt);  // not armed until the body runs
  exec.poll();
  EXPECT_FALSE(exec.has_ready());
  EXPECT_FALSE(exec.idle());
  EXPECT_EQ(exec.next_deadline(), std::optional<std::uint64_t>(5));
  exec.advance(5);
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"s"}));
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, RunUntilIdleNeverMovesTime) {
  ManualClock clock{42};
  Executor exec{clock};
  Log log;
  exec.spawn(sleeper(&exec, &log, "late", 1000));
  exec.spawn(yielder(&log, "y", 3));
  EXPECT_GE(exec.run_until_idle(), 5u);  // 1 sleeper step + 4 yielder steps
  EXPECT_EQ(clock.now_ms(), 42u);
  EXPECT_EQ(log, (Log{"y0", "y1", "y2", "y3"}));
  EXPECT_FALSE(exec.has_ready());
  EXPECT_EQ(exec.timer_count(), 1u);
  EXPECT_EQ(exec.run_until_idle(), 0u);
  EXPECT_EQ(clock.now_ms(), 42u);
}

TEST(Executor, AdvanceAndSetTimeAreRefusedOnASystemClock) {
  SystemClock clock;
  Executor exec{clock};
  const std::uint64_t before = clock.now_ms();
  EXPECT_GT(before, 1'600'000'000'000u) << "system clock is unix milliseconds";
  EXPECT_FALSE(exec.advance(10));
  EXPECT_FALSE(exec.set_time(before + 1'000'000));
  EXPECT_LT(clock.now_ms(), before + 1'000'000);
}

TEST(Executor, NestedCoAwaitsASleepingHelper) {
  ManualClock clock{0};
  Executor exec{clock};
  Log log;
  std::optional<int> out;
  exec.spawn(nest_body(&exec, &log, &out));
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"start"}));
  exec.advance(49);
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"start"}));
  exec.advance(1);
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"start", "a=7"}));
  EXPECT_EQ(exec.next_deadline(), std::optional<std::uint64_t>(70));
  exec.advance(20);
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"start", "a=7", "b=5"}));
  EXPECT_EQ(out, std::optional<int>(75));
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, TaskBodyCoAwaitsACoIntHelperThatSleeps) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto helper = [](TaskContext* ctx, int v) -> Co<int> {
    bool ok = co_await ctx->sleep(100);
    co_return ok ? v : -1;
  };
  auto id = m.spawn("thread-1", "shell", std::nullopt, "nested", {}, [helper](TaskContext ctx) -> Co<TaskResult> {
    int a = co_await helper(&ctx, 40);
    int b = co_await helper(&ctx, 2);
    co_return TaskResult::success(json(a + b));
  });
  ASSERT_TRUE(id.ok());
  h->run_for(199);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Running);
  h->run_for(1);
  auto s = m.get(*id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->status, TaskStatus::Completed);
  ASSERT_TRUE(s->result.has_value());
  EXPECT_EQ(*s->result, json(42));
}

TEST(Executor, TenThousandSequentialSynchronousCoAwaitsDoNotOverflow) {
  ManualClock clock{0};
  Executor exec{clock};
  long sum = -1;
  exec.spawn(sequential_chain(10000, &sum));
  EXPECT_EQ(exec.poll(), 1u) << "synchronously completing children never suspend the parent";
  EXPECT_EQ(sum, 10000);
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, TenThousandSequentialSuspendingCoAwaitsAreTrampolined) {
  ManualClock clock{0};
  Executor exec{clock};
  long sum = -1;
  exec.spawn(sequential_suspending_chain(10000, &sum));
  EXPECT_GE(exec.run_until_idle(), 10000u);
  EXPECT_EQ(sum, 10000);
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, DeeplyNestedChainUnwindsThroughTheRunQueue) {
  ManualClock clock{0};
  Executor exec{clock};
  std::optional<int> out;
  exec.spawn(nested_root(&exec, 1000, &out));
  exec.run_until_idle();
  EXPECT_FALSE(out.has_value());
  exec.advance(10);
  exec.run_until_idle();
  EXPECT_EQ(out, std::optional<int>(1000));
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, ExceptionInNestedCoPropagatesToTheAwaitingBody) {
  ManualClock clock{0};
  Executor exec{clock};
  Log log;
  exec.spawn(catcher(&exec, &log));
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"sync inner"}));
  exec.advance(10);
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"sync inner", "async inner", "done"}));
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, ExceptionInNestedCoFailsTheTaskWhenUncaught) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn("thread-1", "shell", std::nullopt, "nested-throw", {}, [](TaskContext ctx) -> Co<TaskResult> {
    (void)co_await throw_after_sleep(&ctx.executor(), true);
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  h->run_for(10);
  auto s = m.get(*id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->status, TaskStatus::Failed);
  EXPECT_EQ(s->error, std::optional<std::string>("async inner"));
}

TEST(Executor, NotifyOneStoresASinglePermit) {
  Notify n;
  ManualClock clock{0};
  Executor exec{clock};
  Log log;
  n.notify_one();
  n.notify_one();  // permits do not accumulate
  exec.spawn(notify_waiter(&n, &log, "w", 2));
  EXPECT_EQ(exec.poll(), 1u);
  EXPECT_EQ(log, (Log{"w:wait", "w:1"}));
  EXPECT_FALSE(exec.has_ready());
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"w:wait", "w:1"}));
  n.notify_one();
  EXPECT_TRUE(exec.has_ready());
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"w:wait", "w:1", "w:2"}));
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, NotifyOneWakesTheOldestWaiterNotifyAllWakesEveryoneAndStoresNoPermit) {
  Notify n;
  ManualClock clock{0};
  Executor exec{clock};
  Log log;
  exec.spawn(notify_waiter(&n, &log, "a", 1));
  exec.spawn(notify_waiter(&n, &log, "b", 1));
  exec.spawn(notify_waiter(&n, &log, "c", 1));
  EXPECT_EQ(exec.poll(), 3u);
  n.notify_one();
  EXPECT_EQ(exec.poll(), 1u);
  EXPECT_EQ(log, (Log{"a:wait", "b:wait", "c:wait", "a:1"}));
  n.notify_all();
  EXPECT_EQ(exec.poll(), 2u);
  EXPECT_EQ(log, (Log{"a:wait", "b:wait", "c:wait", "a:1", "b:1", "c:1"}));
  n.notify_all();  // nobody waiting: nothing stored
  exec.spawn(notify_waiter(&n, &log, "d", 1));
  exec.run_until_idle();
  EXPECT_EQ(log.back(), "d:wait");
  n.notify_one();
  exec.run_until_idle();
  EXPECT_EQ(log.back(), "d:1");
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, WaitListKeepsFifoOrderWhenNodesLeaveFromAnyPlaceAndDetachesThemWhenDestroyed) {
  // The list is circular around a sentinel; a node has no pointer back to its list. Nodes leave
  // from the front, the middle and the back; a pushed node that is already linked moves to the
  // back; a destroyed list leaves its nodes unlinked (their own destruction is then a no-op).
  Waiter w[5];
  std::vector<int> order;
  // The waiters in the list, oldest first (the order wake_one and wake_all go in).
  auto list_order = [&](WaitList& list, std::size_t expected) {
    order.clear();
    list.for_each([&](WaitNode& node) { order.push_back(static_cast<int>(node.waiter - w)); });
    EXPECT_EQ(order.size(), expected);
  };
  WaitNode n[5];
  {
    WaitList list;
    EXPECT_TRUE(list.empty());
    for (int i = 0; i < 5; ++i) list.push(n[i], w[i]);
    n[0].unlink();  // front
    n[2].unlink();  // middle
    n[4].unlink();  // back
    n[2].unlink();  // twice: no-op
    list_order(list, 2);
    EXPECT_EQ(order, (std::vector<int>{1, 3}));
    list.push(n[1], w[1]);  // already linked: moves behind 3
    list.push(n[4], w[4]);
    list_order(list, 3);
    EXPECT_EQ(order, (std::vector<int>{3, 1, 4}));
    EXPECT_TRUE(n[3].linked() && !n[0].linked());
  }
  for (auto& node : n) EXPECT_FALSE(node.linked()) << "a destroyed list detaches its nodes";
  {
    // A node may move to another list; each list then holds only its own.
    WaitList a, b;
    a.push(n[0], w[0]);
    a.push(n[1], w[1]);
    b.push(n[0], w[0]);
    list_order(a, 1);
    EXPECT_EQ(order, (std::vector<int>{1}));
    list_order(b, 1);
    EXPECT_EQ(order, (std::vector<int>{0}));
    a.push(n[2], w[2]);
    n[1].unlink();
    n[2].unlink();
    EXPECT_TRUE(a.empty());
    EXPECT_FALSE(b.empty());
  }
  {
    // for_each's callback may unlink the node it is given (the walk goes on to the next).
    WaitList list;
    for (int i = 0; i < 4; ++i) list.push(n[i], w[i]);
    std::vector<int> seen;
    list.for_each([&](WaitNode& node) {
      seen.push_back(static_cast<int>(node.waiter - w));
      if (seen.back() % 2 == 0) node.unlink();
    });
    EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3}));
    list_order(list, 2);
    EXPECT_EQ(order, (std::vector<int>{1, 3}));
  }
}

TEST(Executor, YieldNowGoesBehindEveryoneAlreadyQueued) {
  ManualClock clock{0};
  Executor exec{clock};
  Log log;
  exec.spawn(yielder(&log, "a", 1));
  exec.spawn(yielder(&log, "b", 1));
  EXPECT_EQ(exec.poll(), 2u);
  exec.spawn(yielder(&log, "c", 0));  // queued after a and b re-queued themselves
  EXPECT_EQ(exec.poll(), 3u);
  EXPECT_EQ(log, (Log{"a0", "b0", "a1", "b1", "c0"}));
}

// Counts its live instances (a Co<T>'s promise keeps its value in raw storage).
struct CountedValue {
  static inline int live = 0;
  int v;
  explicit CountedValue(int x) : v(x) { ++live; }
  CountedValue(CountedValue&& o) noexcept : v(o.v) { ++live; }
  CountedValue& operator=(CountedValue&&) = delete;
  ~CountedValue() { --live; }
};

Co<CountedValue> counted_after_a_yield(int x) {
  co_await yield_now();
  co_return CountedValue(x);
}

Co<void> take_counted(int* out) {
  CountedValue c = co_await counted_after_a_yield(7);
  *out = c.v;
}

TEST(Executor, ACoValueIsDestroyedOnceWhetherItsParentTakesItOrIsDestroyedFirst) {
  ManualClock clock{0};
  {
    Executor exec{clock};
    int out = 0;
    exec.spawn(take_counted(&out));
    exec.run_until_idle();
    EXPECT_EQ(out, 7);
    EXPECT_EQ(CountedValue::live, 0) << "taken: moved out, and the promise's copy destroyed";
  }
  {
    // Two polls: the child returns its value (held in its promise) and schedules its parent, which
    // never runs: destroying the executor destroys the parent's frame, the child's, and the value.
    auto exec = std::make_unique<Executor>(clock);
    int out = 0;
    exec->spawn(take_counted(&out));
    exec->poll();
    exec->poll();
    EXPECT_EQ(CountedValue::live, 1);
    EXPECT_EQ(out, 0);
    exec.reset();
    EXPECT_EQ(CountedValue::live, 0) << "never taken: destroyed with the child's frame";
  }
}

TEST(Executor, AWaiterKeepsItsFiberAndTheReasonThatFiredItInOneWord) {
  static_assert(sizeof(Waiter) == sizeof(void*));
  alignas(Fiber) static unsigned char storage[sizeof(void*) * 8];
  Fiber* f = reinterpret_cast<Fiber*>(storage);  // never dereferenced here
  for (WakeReason r : {WakeReason::Timer, WakeReason::Signal, WakeReason::Cancel}) {
    Waiter w;
    w.arm(f);
    EXPECT_EQ(w.fiber(), f);
    EXPECT_EQ(w.fired(), WakeReason::None);
    w.set_fired(r);
    EXPECT_EQ(w.fiber(), f);
    EXPECT_EQ(w.fired(), r);
    w.arm(f);  // re-armed: not fired
    EXPECT_EQ(w.fired(), WakeReason::None);
  }
}

TEST(Executor, DetachedCoroutineRunsToCompletionAndIsFreed) {
  int live = 0;
  bool done = false;
  ManualClock clock{0};
  Executor exec{clock};
  exec.spawn(guarded_sleeper(&exec, &live, &done, 30));
  EXPECT_EQ(live, 0);
  exec.run_until_idle();
  EXPECT_EQ(live, 1);
  EXPECT_FALSE(done);
  exec.advance(30);
  exec.run_until_idle();
  EXPECT_TRUE(done);
  EXPECT_EQ(live, 0) << "a finished detached frame must be destroyed";
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, DestroyingTheExecutorFreesSuspendedDetachedCoroutines) {
  int live = 0;
  bool done = false;
  {
    ManualClock clock{0};
    Executor exec{clock};
    exec.spawn(guarded_sleeper(&exec, &live, &done, 1'000'000));
    exec.spawn(guarded_sleeper(&exec, &live, &done, 5));
    exec.run_until_idle();
    EXPECT_EQ(live, 2);
  }
  EXPECT_EQ(live, 0);
  EXPECT_FALSE(done);
}

TEST(Executor, PostFromAnotherThreadRunsOnTheNextPoll) {
  ManualClock clock{0};
  Executor exec{clock};
  std::vector<int> ran;
  std::thread t([&] {
    exec.post([&] { ran.push_back(1); });
    exec.post([&] { ran.push_back(2); });
  });
  t.join();
  EXPECT_TRUE(ran.empty()) << "post must not run anything itself";
  EXPECT_TRUE(exec.has_ready());
  EXPECT_FALSE(exec.idle());
  exec.poll();
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  EXPECT_FALSE(exec.has_ready());
  EXPECT_TRUE(exec.idle());
}

TEST(Executor, PostedWorkCanWakeAFiber) {
  Notify n;
  ManualClock clock{0};
  Executor exec{clock};
  Log log;
  exec.spawn(notify_waiter(&n, &log, "w", 1));
  exec.run_until_idle();
  std::thread t([&] { exec.post([&n] { n.notify_one(); }); });
  t.join();
  EXPECT_EQ(log, (Log{"w:wait"}));
  exec.run_until_idle();
  EXPECT_EQ(log, (Log{"w:wait", "w:1"}));
}

// ---------------------------------------------------------------------------------------------
// Cancel
// ---------------------------------------------------------------------------------------------

json cancelled_event(const TaskId& id) { return json{{"kind", "cancelled"}, {"task_id", id}}; }

TEST(Cancel, CancelWakesASleepingBodyEarlyAndSleepReturnsFalse) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  std::optional<bool> slept;
  std::optional<bool> control;
  auto id = m.spawn("thread-1", "shell", std::nullopt, "sleeper", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    bool ok = co_await ctx.sleep(10'000);
    slept = ok;
    co_return ok ? TaskResult::success(json("slept")) : TaskResult::cancelled();
  });
  auto other = m.spawn("thread-1", "shell", std::nullopt, "control", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    bool ok = co_await ctx.sleep(10'000);
    control = ok;
    co_return TaskResult::success(json(ok));
  });
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(other.ok());
  h->run_until_idle();
  EXPECT_FALSE(slept.has_value());
  const auto t0 = h->clock.now_ms();
  EXPECT_TRUE(m.cancel(*id));
  h->run_until_idle();
  EXPECT_EQ(h->clock.now_ms(), t0);
  EXPECT_EQ(slept, std::optional<bool>(false));
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Cancelled);
  EXPECT_EQ(h->drain(), (std::vector<json>{cancelled_event(*id)}));
  // The uncancelled sleep returns true after exactly its duration.
  EXPECT_FALSE(control.has_value());
  h->run_for(9'999);
  EXPECT_FALSE(control.has_value());
  h->run_for(1);
  EXPECT_EQ(control, std::optional<bool>(true));
  EXPECT_EQ(m.get(*other)->status, TaskStatus::Completed);
}

TEST(Cancel, CancelWakesCoAwaitCancelled) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  bool woke = false;
  auto id = m.spawn("thread-1", "shell", std::nullopt, "waiter", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.cancelled();
    woke = ctx.is_cancelled();
    co_return TaskResult::cancelled();
  });
  ASSERT_TRUE(id.ok());
  h->run_for(1'000'000);
  EXPECT_FALSE(woke);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Running);
  EXPECT_TRUE(m.cancel(*id));
  EXPECT_TRUE(m.is_cancel_requested(*id));
  EXPECT_TRUE(h->exec.has_ready());
  h->run_until_idle();
  EXPECT_TRUE(woke);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Cancelled);
  EXPECT_EQ(h->drain(), (std::vector<json>{cancelled_event(*id)}));
}

// A context is one shared pointer to the task's state: a copy kept past the body's end, the
// task's forget and the manager's end still reads the task's id and cancel state.
TEST(Cancel, ContextCopyOutlivesTheBodyTheRecordAndTheManager) {
  static_assert(sizeof(TaskContext) == sizeof(std::shared_ptr<int>), "a context is one shared pointer");
  // Only the manager makes task states (a context's executor() reads the task core around it).
  static_assert(!std::is_constructible_v<detail::TaskState, BackgroundTaskManager&, TaskId&&>);
  auto h = manager_with_store_and_inbox();
  std::optional<TaskContext> kept;
  auto id = h->manager->spawn("thread-1", "shell", std::nullopt, "keeps its context", {},
                              [&kept](TaskContext ctx) -> Co<TaskResult> {
                                kept.emplace(ctx);
                                co_return TaskResult::success(nullptr);
                              });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Completed);
  ASSERT_TRUE(h->manager->forget(*id));
  EXPECT_FALSE(h->manager->get(*id).has_value());
  EXPECT_EQ(kept->task_id(), *id);
  EXPECT_NE(kept->inbox(), nullptr);
  CancellationToken token = kept->cancel_token();
  h->manager.reset();  // the manager ends; the kept context still owns the task's state
  EXPECT_FALSE(kept->is_cancelled());
  token.cancel();  // reaches the same state and wakes nobody
  EXPECT_TRUE(kept->is_cancelled());
  EXPECT_EQ(kept->task_id(), *id);
  EXPECT_EQ(&kept->executor(), &h->exec);  // the executor outlives the manager
}

TEST(Cancel, CancelTwiceIsTrueBothTimesWhileLiveThenFalse) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn("thread-1", "shell", std::nullopt, "sleeper", {}, [](TaskContext ctx) -> Co<TaskResult> {
    bool ok = co_await ctx.sleep(10'000);
    co_return ok ? TaskResult::success(nullptr) : TaskResult::cancelled();
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_TRUE(m.cancel(*id));
  EXPECT_TRUE(m.cancel(*id));
  h->run_until_idle();
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Cancelled);
  EXPECT_FALSE(m.cancel(*id));
  EXPECT_FALSE(m.cancel("bg_999"));
  EXPECT_FALSE(m.cancel("no-such-task"));
  EXPECT_EQ(h->drain().size(), 1u) << "one terminal event, however often cancel was called";
}

TEST(Cancel, CancelDuringCleanupStillEndsCancelled) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  int cleanup = 0;
  auto id = m.spawn("thread-1", "shell", std::nullopt, "cleaner", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    bool ok = co_await ctx.sleep(100'000);
    if (ok) co_return TaskResult::success(json("normal"));
    ++cleanup;
    co_await sleep_for(ctx.executor(), 50);
    ++cleanup;
    co_await sleep_for(ctx.executor(), 50);
    ++cleanup;
    co_return TaskResult::success(json("cleaned"));
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_TRUE(m.cancel(*id));
  h->run_until_idle();
  EXPECT_EQ(cleanup, 1);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Running) << "the body is still cleaning up";
  EXPECT_TRUE(m.cancel(*id)) << "true on every repeat while the body is live";
  EXPECT_EQ(m.stats().cancel_requested_running, 1u);
  h->run_for(50);
  EXPECT_EQ(cleanup, 2);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Running);
  EXPECT_TRUE(h->drain().empty());
  h->run_for(50);
  EXPECT_EQ(cleanup, 3);
  auto s = m.get(*id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->status, TaskStatus::Cancelled);
  EXPECT_EQ(s->result, std::nullopt);
  EXPECT_EQ(h->drain(), (std::vector<json>{cancelled_event(*id)}));
  EXPECT_FALSE(m.cancel(*id));
}

TEST(Cancel, SuccessAfterCancelEndsCancelledAndTheValueIsDiscarded) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn("thread-1", "shell", std::nullopt, "late-success", {}, [](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.cancelled();
    co_return TaskResult::success(json{{"late", 1}});
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_TRUE(m.cancel(*id));
  h->run_until_idle();
  auto s = m.get(*id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->status, TaskStatus::Cancelled);
  EXPECT_EQ(s->result, std::nullopt);
  EXPECT_EQ(s->error, std::nullopt);
  EXPECT_TRUE(s->completed_at_ms.has_value());
  EXPECT_EQ(h->drain(), (std::vector<json>{cancelled_event(*id)}));
  auto snap = m.persisted_snapshot();
  ASSERT_EQ(snap.tasks.count(*id), 1u);
  EXPECT_EQ(snap.tasks.at(*id).status, TaskStatus::Cancelled);
  EXPECT_EQ(snap.tasks.at(*id).result, std::nullopt);
}

TEST(Cancel, FailureAfterCancelEndsCancelledAndTheErrorIsDiscarded) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn("thread-1", "shell", std::nullopt, "late-failure", {}, [](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.cancelled();
    co_return TaskResult::failed("late error");
  });
  auto thrower = m.spawn("thread-1", "shell", std::nullopt, "late-throw", {}, [](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.cancelled();
    if (ctx.is_cancelled()) throw std::runtime_error("late throw");
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(thrower.ok());
  h->run_until_idle();
  EXPECT_TRUE(m.cancel(*id));
  EXPECT_TRUE(m.cancel(*thrower));
  h->run_until_idle();
  for (const auto& t : {*id, *thrower}) {
    auto s = m.get(t);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->status, TaskStatus::Cancelled) << t;
    EXPECT_EQ(s->error, std::nullopt) << t;
  }
  EXPECT_EQ(h->drain(), (std::vector<json>{cancelled_event(*id), cancelled_event(*thrower)}));
}

TEST(Cancel, BodyThrowingEndsFailedWithTheMessageAndTheManagerStaysUsable) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn("thread-1", "shell", std::nullopt, "boom", {}, [](TaskContext ctx) -> Co<TaskResult> {
    if (!ctx.is_cancelled()) throw std::runtime_error("boom");
    co_return TaskResult::success(nullptr);
  });
  auto later = m.spawn("thread-1", "shell", std::nullopt, "boom-later", {}, [](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.sleep(10);
    if (!ctx.is_cancelled()) throw std::runtime_error("boom later");
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(later.ok());
  h->run_for(10);
  auto s = m.get(*id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->status, TaskStatus::Failed);
  EXPECT_EQ(s->error, std::optional<std::string>("boom"));
  EXPECT_EQ(s->result, std::nullopt);
  EXPECT_EQ(m.get(*later)->status, TaskStatus::Failed);
  EXPECT_EQ(m.get(*later)->error, std::optional<std::string>("boom later"));
  EXPECT_EQ(h->drain(), (std::vector<json>{json{{"kind", "failed"}, {"task_id", *id}, {"error", "boom"}},
                                           json{{"kind", "failed"}, {"task_id", *later}, {"error", "boom later"}}}));
  // The manager and its owner inbox keep working.
  auto next = m.spawn("thread-1", "shell", std::nullopt, "after", {},
                      [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json(7)); });
  ASSERT_TRUE(next.ok());
  h->run_until_idle();
  EXPECT_EQ(m.get(*next)->status, TaskStatus::Completed);
  EXPECT_EQ(h->drain(), (std::vector<json>{json{{"kind", "completed"}, {"task_id", *next}, {"result", 7}}}));
}

TEST(Cancel, BodyIgnoringCancelStaysRunningAndIsCounted) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  bool finished = false;
  auto id = m.spawn("thread-1", "shell", std::nullopt, "stubborn", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    co_await sleep_for(ctx.executor(), 1000);  // not cancellation-aware
    finished = true;
    co_return TaskResult::success(json("done anyway"));
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_EQ(m.stats().cancel_requested_running, 0u);
  EXPECT_FALSE(m.is_cancel_requested(*id));
  EXPECT_TRUE(m.cancel(*id));
  h->run_for(999);
  EXPECT_FALSE(finished);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Running);
  EXPECT_TRUE(m.is_cancel_requested(*id));
  auto st = m.stats();
  EXPECT_EQ(st.running, 1u);
  EXPECT_EQ(st.cancel_requested_running, 1u);
  EXPECT_EQ(st.live_bodies, 1u);
  EXPECT_TRUE(m.cancel(*id));
  EXPECT_TRUE(h->drain().empty());
  h->run_for(1);
  EXPECT_TRUE(finished);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Cancelled) << "a cancel that said true ends cancelled";
  st = m.stats();
  EXPECT_EQ(st.cancel_requested_running, 0u);
  EXPECT_EQ(st.running, 0u);
  EXPECT_EQ(st.cancelled, 1u);
  EXPECT_EQ(st.live_bodies, 0u);
  EXPECT_EQ(h->drain(), (std::vector<json>{cancelled_event(*id)}));
}

TEST(Cancel, DestroyingTheManagerFreesEverySuspendedFrame) {
  int live = 0;
  bool resumed = false;
  Notify never;  // outlives the manager: suspended frames unlink from it when destroyed
  {
    auto h = manager_with_store_and_inbox();
    auto& m = *h->manager;
    auto nested_helper = [&live](TaskContext* ctx) -> Co<int> {
      LiveGuard g(live);
      co_await ctx->sleep(1'000'000'000);
      co_return 1;
    };
    ASSERT_TRUE(m.spawn("thread-1", "shell", std::nullopt, "sleeping", {}, [&](TaskContext ctx) -> Co<TaskResult> {
                   LiveGuard g(live);
                   co_await ctx.sleep(1'000'000'000);
                   resumed = true;
                   co_return TaskResult::success(nullptr);
                 }).ok());
    ASSERT_TRUE(m.spawn("thread-1", "shell", std::nullopt, "cancel-wait", {}, [&](TaskContext ctx) -> Co<TaskResult> {
                   LiveGuard g(live);
                   co_await ctx.cancelled();
                   resumed = true;
                   co_return TaskResult::cancelled();
                 }).ok());
    ASSERT_TRUE(m.spawn("thread-1", "shell", std::nullopt, "notify-wait", {}, [&](TaskContext) -> Co<TaskResult> {
                   LiveGuard g(live);
                   co_await never.notified();
                   resumed = true;
                   co_return TaskResult::success(nullptr);
                 }).ok());
    ASSERT_TRUE(m.spawn_agent("thread-1", std::string_view("agent"), "recv-wait", {},
                              [&](CancellationToken, InboxSender, InboxReceiver rx) -> Co<TaskResult> {
                                LiveGuard g(live);
                                auto msg = co_await rx.recv();
                                resumed = true;
                                co_return TaskResult::success(msg ? *msg : json(nullptr));
                              })
                    .ok());
    ASSERT_TRUE(
        m.spawn("thread-1", "shell", std::nullopt, "nested", {}, [&, nested_helper](TaskContext ctx) -> Co<TaskResult> {
           LiveGuard g(live);
           int v = co_await nested_helper(&ctx);
           resumed = true;
           co_return TaskResult::success(json(v));
         }).ok());
    ASSERT_TRUE(m.spawn("thread-1", "shell", std::nullopt, "sleeping-2", {}, [&](TaskContext ctx) -> Co<TaskResult> {
                   LiveGuard g(live);
                   co_await ctx.sleep(1'000'000'000);
                   resumed = true;
                   co_return TaskResult::success(nullptr);
                 }).ok());
    h->run_until_idle();
    // Spawned but never polled: its frame exists and must be freed too.
    ASSERT_TRUE(m.spawn("thread-1", "shell", std::nullopt, "never-started", {}, [&](TaskContext) -> Co<TaskResult> {
                   LiveGuard g(live);
                   resumed = true;
                   co_return TaskResult::success(nullptr);
                 }).ok());
    EXPECT_EQ(live, 7);                    // six started bodies + the nested helper frame
    EXPECT_EQ(m.stats().live_bodies, 7u);  // seven bodies, one not started yet
    h->manager.reset();
    EXPECT_EQ(live, 0) << "every suspended frame must be destroyed with the manager";
    EXPECT_FALSE(resumed) << "destruction runs no body";
  }
  EXPECT_EQ(live, 0);
}

TEST(Executor, HundredThousandTasksCompleteThroughRunUntilIdle) {
  constexpr std::size_t kTasks = 100'000;
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  TaskId last;
  for (std::size_t i = 0; i < kTasks; ++i) {
    auto r = m.spawn("thread-1", "shell", std::nullopt, "bulk", {},
                     [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json(1)); });
    ASSERT_TRUE(r.ok()) << i;
    last = *r;
  }
  EXPECT_EQ(last, "bg_99999");
  EXPECT_EQ(m.stats().running, kTasks);
  h->run_until_idle();
  auto st = m.stats();
  EXPECT_EQ(st.completed, kTasks);
  EXPECT_EQ(st.running, 0u);
  EXPECT_EQ(st.live_bodies, 0u);
  EXPECT_EQ(st.owner_inbox_depth, kTasks);
  ASSERT_TRUE(h->inbox.has_value());
  EXPECT_EQ(h->inbox->len(), kTasks);
  auto events = h->inbox->drain_events();
  ASSERT_EQ(events.size(), kTasks);
  std::size_t completed = 0;
  for (const auto& e : events) completed += e.kind == EventKind::Completed ? 1 : 0;
  EXPECT_EQ(completed, kTasks);
  EXPECT_EQ(events.front().task_id, "bg_0");
  EXPECT_EQ(events.back().task_id, "bg_99999");
  EXPECT_TRUE(h->exec.idle());
}

}  // namespace
