// Executor::set_wake_callback: a host loop that sleeps while there is nothing to do is woken when
// work arrives from outside a poll (a post from any thread; a cancel, message, completion or spawn
// from host code; a sooner timer), and not for what happens during a poll.
// Manual clock: counts checked exactly. System clock: a real host loop on a condition variable,
// whose waits end on a wake-up or the next deadline (a generous bound only turns a hang into a
// failure).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::testing::manager_with_store;

// The callback's side: counts wake-ups and lets a host thread sleep until one.
class Wakeups {
 public:
  void notify() {
    {
      std::lock_guard lock(m_);
      ++count_;
      pending_ = true;
      last_thread_ = std::this_thread::get_id();
    }
    cv_.notify_all();
  }
  int count() {
    std::lock_guard lock(m_);
    return count_;
  }
  void reset() {
    std::lock_guard lock(m_);
    count_ = 0;
    pending_ = false;
  }
  std::thread::id last_thread() {
    std::lock_guard lock(m_);
    return last_thread_;
  }
  // Sleeps until a wake-up or `deadline_ms` on exec's clock (none: only a wake-up, bounded).
  void wait(const Executor& exec, std::optional<std::uint64_t> deadline_ms) {
    std::unique_lock lock(m_);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);  // a hang fails instead
    if (deadline_ms) {
      const std::uint64_t now = exec.now_ms();
      until = std::min(until, std::chrono::steady_clock::now() +
                                  std::chrono::milliseconds(*deadline_ms > now ? *deadline_ms - now : 0));
    }
    cv_.wait_until(lock, until, [&] { return pending_; });
    pending_ = false;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int count_ = 0;
  bool pending_ = false;
  std::thread::id last_thread_;
};

void install(Executor& exec, Wakeups& w) {
  exec.set_wake_callback([&w] { w.notify(); });
}

TEST(ExecutorWake, PostWakesOncePerDrain) {
  ManualClock clock;
  Executor exec(clock);
  Wakeups w;
  install(exec, w);
  int ran = 0;
  exec.post([&] { ++ran; });
  EXPECT_EQ(w.count(), 1);
  exec.post([&] { ++ran; });  // already reported: the host has not polled yet
  EXPECT_EQ(w.count(), 1);
  exec.run_until_idle();
  EXPECT_EQ(ran, 2);
  exec.post([&] { ++ran; });
  EXPECT_EQ(w.count(), 2);
  exec.run_until_idle();
}

TEST(ExecutorWake, PostFromAnotherThreadWakesOnThatThread) {
  ManualClock clock;
  Executor exec(clock);
  Wakeups w;
  install(exec, w);
  std::thread::id poster;
  std::thread t([&] {
    poster = std::this_thread::get_id();
    exec.post([] {});
  });
  t.join();
  EXPECT_EQ(w.count(), 1);
  EXPECT_EQ(w.last_thread(), poster);
  EXPECT_EQ(exec.run_until_idle(), 1u);
}

TEST(ExecutorWake, NothingDuringAPoll) {
  auto h = manager_with_store();
  Wakeups w;
  install(h->exec, w);
  // A body that yields, sleeps, posts and spawns: all inside polls.
  BackgroundTaskManager* m = h->manager.get();
  Executor* ex = &h->exec;
  ASSERT_TRUE(m->spawn("t", "busy", std::nullopt, "busy", {}, [m, ex](TaskContext ctx) -> Co<TaskResult> {
                 co_await yield_now();
                 co_await ctx.sleep(10);
                 ex->post([] {});
                 (void)m->spawn("t", "child", std::nullopt, "child", {}, bgtasks::testing::finish_at_once);
                 co_await yield_now();
                 co_return TaskResult::success(nullptr);
               }).ok());
  EXPECT_EQ(w.count(), 1);  // the spawn, from host code
  w.reset();
  h->run_for(10);  // advancing the manual clock makes the sleeper ready: outside a poll
  EXPECT_EQ(w.count(), 1);
  EXPECT_EQ(h->manager->stats().completed, 2u);
}

TEST(ExecutorWake, HostCallsThatMakeABodyReadyWakeTheHost) {
  auto h = manager_with_store();
  Wakeups w;
  install(h->exec, w);
  BackgroundTaskManager& m = *h->manager;

  // cancel
  const TaskId waiting = bgtasks::testing::spawn_waiting(*h, std::nullopt, {}, "t");
  // send_task_inbox_message: a sub-agent waiting on its inbox
  auto agent = m.spawn_agent("t", "agent", "listens", {},
                             [](CancellationToken, InboxSender, InboxReceiver rx) -> Co<TaskResult> {
                               std::optional<json> msg = co_await rx.recv();
                               co_return TaskResult::success(msg ? *msg : json());
                             });
  ASSERT_TRUE(agent.ok());
  // complete / settle: bodies waiting for host tasks' ends
  auto host_a = m.spawn_host("t", "host", std::nullopt, "a", {});
  auto host_b = m.spawn_host("t", "host", std::nullopt, "b", {});
  ASSERT_TRUE(host_a.ok() && host_b.ok());
  for (const TaskId& id : {*host_a, *host_b}) {
    ASSERT_TRUE(m.spawn("t", "waiter", std::nullopt, "waits", {}, [&m, id](TaskContext) -> Co<TaskResult> {
                   std::optional<TaskSummary> s = co_await m.wait(id);
                   co_return TaskResult::success(s ? json(as_str(s->status)) : json());
                 }).ok());
  }
  h->run_until_idle();
  ASSERT_FALSE(h->exec.has_ready());

  w.reset();
  EXPECT_TRUE(m.cancel(waiting));
  EXPECT_EQ(w.count(), 1) << "cancel";
  h->run_until_idle();

  w.reset();
  EXPECT_TRUE(m.send_task_inbox_message(*agent, "t", "parent", "hello").ok());
  EXPECT_EQ(w.count(), 1) << "send_task_inbox_message";
  h->run_until_idle();

  w.reset();
  EXPECT_TRUE(m.complete(*host_a, json{{"ok", true}}).ok());
  EXPECT_EQ(w.count(), 1) << "complete";
  h->run_until_idle();

  w.reset();
  EXPECT_TRUE(m.settle(*host_b, TaskResult::failed("no")).ok());
  EXPECT_EQ(w.count(), 1) << "settle";
  h->run_until_idle();

  EXPECT_EQ(m.stats().running, 0u);
  EXPECT_EQ(m.get(*agent)->status, TaskStatus::Completed);
}

TEST(ExecutorWake, SoonerTimerWakesLaterDoesNot) {
  ManualClock clock{1000};
  Executor exec(clock);
  Wakeups w;
  install(exec, w);
  Waiter waiter;  // never fired here: the nodes are disarmed before they are due
  TimerNode a, b, c, never;
  a.waiter = b.waiter = c.waiter = never.waiter = &waiter;
  exec.arm(a, 1100);
  EXPECT_EQ(w.count(), 1);  // the first deadline
  exec.arm(b, 1200);
  EXPECT_EQ(w.count(), 1);  // later than the earliest
  exec.arm(never, kNever);
  EXPECT_EQ(w.count(), 1);  // not a deadline
  exec.arm(c, 1050);
  EXPECT_EQ(w.count(), 2);  // sooner
  exec.arm(b, 1010);        // re-armed sooner
  EXPECT_EQ(w.count(), 3);
  EXPECT_EQ(exec.next_deadline(), std::optional<std::uint64_t>(1010));
  for (TimerNode* n : {&a, &b, &c, &never}) exec.disarm(*n);
}

TEST(ExecutorWake, SpawnWithADeadlineFromHostCodeWakes) {
  auto h = manager_with_store();
  Wakeups w;
  install(h->exec, w);
  SpawnOptions o{"t", "job", std::nullopt, "deadline", {}, 50};
  ASSERT_TRUE(h->manager->spawn(o, bgtasks::testing::wait_cancelled).ok());
  EXPECT_GE(w.count(), 1);
  h->run_until_idle();
  EXPECT_EQ(h->exec.next_deadline(), std::optional<std::uint64_t>(h->clock.now_ms() + 50));
  w.reset();
  // A sooner deadline, armed from host code while the host would sleep until the first one.
  SpawnOptions sooner{"t", "job", std::nullopt, "sooner", {}, 10};
  ASSERT_TRUE(h->manager->spawn(sooner, bgtasks::testing::wait_cancelled).ok());
  EXPECT_GE(w.count(), 1);
  h->run_for(50);
  EXPECT_EQ(h->manager->stats().failed, 2u);  // both timed out
}

TEST(ExecutorWake, RemovedOrReplacedCallbackIsNotCalled) {
  ManualClock clock;
  Executor exec(clock);
  Wakeups first, second;
  install(exec, first);
  install(exec, second);
  exec.post([] {});
  EXPECT_EQ(first.count(), 0);
  EXPECT_EQ(second.count(), 1);
  exec.run_until_idle();
  exec.set_wake_callback(nullptr);
  exec.post([] {});
  EXPECT_EQ(second.count(), 1);
  exec.run_until_idle();
}

TEST(ExecutorWake, CallbackMayPost) {
  ManualClock clock;
  Executor exec(clock);
  int calls = 0, ran = 0;
  exec.set_wake_callback([&] {
    ++calls;
    exec.post([&] { ++ran; });  // the nested wake-up is skipped, not deadlocked
  });
  exec.post([&] { ++ran; });
  EXPECT_EQ(calls, 1);
  exec.run_until_idle();
  EXPECT_EQ(ran, 2);
}

TEST(ExecutorWake, ForeignCompletionWakesTheHost) {
  auto h = manager_with_store();
  Wakeups w;
  install(h->exec, w);
  struct Op {
    std::coroutine_handle<> handle;
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> c) noexcept { handle = c; }
    void await_resume() const noexcept {}
  } op;
  ASSERT_TRUE(h->manager
                  ->spawn("t", "io", std::nullopt, "io", {},
                          [&op](TaskContext) -> Co<TaskResult> {
                            co_await op;
                            co_return TaskResult::success(nullptr);
                          })
                  .ok());
  h->run_until_idle();
  w.reset();
  std::thread t([&] { op.handle.resume(); });
  t.join();
  EXPECT_EQ(w.count(), 1);
  h->run_until_idle();
  EXPECT_EQ(h->manager->stats().completed, 1u);
}

// ---- a real host loop on the system clock ---------------------------------------------------------

TEST(ExecutorWakeSystemClock, HostSleepsUntilTimerOrPostWithoutSpinning) {
  SystemClock clock;
  Executor exec(clock);
  Wakeups w;
  install(exec, w);
  auto store = std::make_shared<StateStore>();
  auto m = std::make_shared<BackgroundTaskManager>(exec);
  (void)m->set_store(store);  // a new manager's first store: never refused
  ASSERT_TRUE(store->install_plugin(BackgroundTaskPlugin(m)).ok());

  // A body that sleeps for a minute: the host would sleep that long, unless woken.
  auto sleeper = m->spawn("t", "sleep", std::nullopt, "long", {}, [](TaskContext ctx) -> Co<TaskResult> {
    bool slept = co_await ctx.sleep(60'000);
    co_return slept ? TaskResult::success(nullptr) : TaskResult::cancelled();
  });
  ASSERT_TRUE(sleeper.ok());
  std::atomic<bool> short_done{false};

  std::thread host([&] {
    for (int loops = 0; loops < 1000; ++loops) {
      exec.run_until_idle();
      if (short_done.load() && m->stats().running == 0) return;
      if (exec.has_ready()) continue;
      w.wait(exec, exec.next_deadline());
    }
  });
  // From another thread: a spawn with a 20 ms sleep (a sooner timer), then the long one's cancel
  // once the short one finished. Each reaches the sleeping host through post.
  std::promise<void> spawned_short;
  exec.post([&] {
    (void)m->spawn("t", "sleep", std::nullopt, "short", {}, [&short_done](TaskContext ctx) -> Co<TaskResult> {
      co_await ctx.sleep(20);
      short_done = true;
      co_return TaskResult::success(nullptr);
    });
    spawned_short.set_value();
  });
  spawned_short.get_future().wait();
  const auto started = std::chrono::steady_clock::now();
  while (!short_done.load()) std::this_thread::yield();
  std::promise<void> cancelled;
  exec.post([&] {
    m->cancel(*sleeper);
    cancelled.set_value();
  });
  cancelled.get_future().wait();
  host.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));
  EXPECT_EQ(m->stats().completed, 1u);
  EXPECT_EQ(m->stats().cancelled, 1u);
  // Woken a handful of times (the posts, the timer), not spinning.
  EXPECT_LE(w.count(), 20);
  m.reset();
}

}  // namespace
