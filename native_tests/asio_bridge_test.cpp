// The asio bridge (bgtasks/asio.hpp): bodies awaiting asio operations through use_fiber, and an
// executor driven by an io_context (asio_driver). Built only where asio is installed
// (native_tests/CMakeLists.txt). Real time appears only as short asio timers the io_context
// waits for; nothing sleeps a fixed time, and cross-thread tests wait on conditions.
#include <gtest/gtest.h>

#include <array>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/connect_pipe.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/read.hpp>
#include <asio/readable_pipe.hpp>
#include <asio/writable_pipe.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "bgtasks/asio.hpp"
#include "support.hpp"

namespace {

using namespace bgtasks;
using namespace std::chrono_literals;

static_assert(
    native_awaitable<std::remove_cvref_t<decltype(std::declval<asio::steady_timer&>().async_wait(use_fiber))>>);

// An io_context, an executor on the system clock and a manager, destroyed in that order's reverse.
struct AsioHarness {
  asio::io_context io;
  SystemClock clock;
  Executor exec{clock};
  std::shared_ptr<StateStore> store = std::make_shared<StateStore>();
  std::shared_ptr<BackgroundTaskManager> manager = std::make_shared<BackgroundTaskManager>(exec);
  AsioHarness() {
    (void)manager->set_store(store);
    EXPECT_TRUE(store->install_plugin(BackgroundTaskPlugin(manager)).ok());
  }
  BackgroundTaskManager& m() { return *manager; }
};

TEST(AsioBridge, BodyAwaitsASteadyTimerDrivenByTheIoContext) {
  AsioHarness h;
  asio_driver drv(h.io, h.exec);
  drv.start();
  std::thread::id resumed_on;
  auto id = h.m().spawn("t", "timer", std::nullopt, "waits 5 ms", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    asio::steady_timer timer(h.io, 5ms);
    asio::error_code ec = co_await timer.async_wait(use_fiber);
    resumed_on = std::this_thread::get_id();
    bool slept = co_await ctx.sleep(5);  // a bgtasks timer after the asio one: the driver's steady_timer
    co_return TaskResult::success({{"ec", ec.value()}, {"slept", slept}});
  });
  ASSERT_TRUE(id.ok());
  h.io.run();  // returns once nothing is left: no busy loop keeps it going
  EXPECT_EQ(resumed_on, std::this_thread::get_id());
  auto s = h.m().get(*id);
  EXPECT_EQ(s->status, TaskStatus::Completed);
  EXPECT_EQ(s->result, (json{{"ec", 0}, {"slept", true}}));
  EXPECT_LE(drv.polls(), 20u) << "the driver polled far more often than there was work";
}

TEST(AsioBridge, ResultsAsValuesAndTuples) {
  AsioHarness h;
  asio_driver drv(h.io, h.exec);
  drv.start();
  asio::readable_pipe rd(h.io);
  asio::writable_pipe wr(h.io);
  asio::connect_pipe(rd, wr);
  std::string got;
  std::size_t n = 0;
  asio::error_code read_ec, eof_ec;
  auto id = h.m().spawn("t", "pipe", std::nullopt, "reads", {}, [&](TaskContext) -> Co<TaskResult> {
    std::array<char, 5> buf{};
    auto [ec, len] = co_await asio::async_read(rd, asio::buffer(buf), use_fiber);
    read_ec = ec;
    n = len;
    got.assign(buf.data(), len);
    // The writer closed its end: end of file, as a value.
    auto [ec2, len2] = co_await rd.async_read_some(asio::buffer(buf), use_fiber);
    eof_ec = ec2;
    (void)len2;
    co_await asio::post(h.io, use_fiber);  // void(): nothing to return
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  std::thread writer([&] {
    asio::write(wr, asio::buffer(std::string("hello")));
    wr.close();
  });
  h.io.run();
  writer.join();
  EXPECT_EQ(h.m().get(*id)->status, TaskStatus::Completed);
  EXPECT_FALSE(read_ec);
  EXPECT_EQ(n, 5u);
  EXPECT_EQ(got, "hello");
  EXPECT_EQ(eof_ec, asio::error::eof);
}

TEST(AsioBridge, CompletionFromAStdThread) {
  AsioHarness h;
  asio_driver drv(h.io, h.exec);
  drv.start();
  std::thread worker;
  auto id = h.m().spawn("t", "thread", std::nullopt, "worker", {}, [&](TaskContext) -> Co<TaskResult> {
    // An operation of our own: its handler is called on a std::thread.
    int v = co_await asio::async_initiate<decltype(use_fiber), void(int)>(
        [&worker](auto handler) {
          worker = std::thread([handler = std::move(handler)]() mutable { std::move(handler)(42); });
        },
        use_fiber);
    co_return TaskResult::success(v);
  });
  ASSERT_TRUE(id.ok());
  // The worker's completion arrives through Executor::post, whose wake-up queues a driver turn;
  // the work guard keeps run_one() waiting for it.
  auto guard = asio::make_work_guard(h.io);
  while (h.m().get(*id)->status == TaskStatus::Running) h.io.run_one();
  guard.reset();
  worker.join();
  EXPECT_EQ(h.m().get(*id)->result, json(42));
}

TEST(AsioBridge, IoContextOnItsOwnThreadExecutorPolledHere) {
  ManualClock clock;
  Executor exec(clock);
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::thread io_thread([&] { io.run(); });
  asio::error_code got = asio::error::would_block;
  bool done = false;
  exec.spawn([](asio::io_context* io, asio::error_code* out, bool* done) -> Co<void> {
    asio::steady_timer t(*io, 1ms);
    *out = co_await t.async_wait(use_fiber);
    *done = true;
  }(&io, &got, &done));
  for (std::size_t i = 0; i < 100'000'000 && !done; ++i) {
    exec.poll();
    if (i % 64 == 63) std::this_thread::yield();
  }
  EXPECT_TRUE(done);
  EXPECT_FALSE(got);
  guard.reset();
  io_thread.join();
}

TEST(AsioBridge, CancelledTaskKeepsWaitingUntilTheOperationEnds) {
  AsioHarness h;
  asio_driver drv(h.io, h.exec);
  drv.start();
  asio::steady_timer timer(h.io, 60s);
  asio::error_code got;
  auto id = h.m().spawn("t", "timer", std::nullopt, "a minute", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    got = co_await timer.async_wait(use_fiber);
    if (ctx.is_cancelled()) co_return TaskResult::cancelled();
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  // The host cancels the task, then the timer (the asio way): the body resumes with
  // operation_aborted and reports itself cancelled.
  asio::post(h.io, [&] {
    EXPECT_TRUE(h.m().cancel(*id));
    asio::post(h.io, [&] {
      EXPECT_EQ(h.m().get(*id)->status, TaskStatus::Running);  // not interrupted by the cancel
      timer.cancel();
    });
  });
  h.io.run();
  EXPECT_EQ(got, asio::error::operation_aborted);
  EXPECT_EQ(h.m().get(*id)->status, TaskStatus::Cancelled);
}

TEST(AsioBridge, BoundCancellationSlotAbortsTheOperation) {
  AsioHarness h;
  asio_driver drv(h.io, h.exec);
  drv.start();
  asio::cancellation_signal signal;
  asio::error_code got;
  auto id = h.m().spawn("t", "timer", std::nullopt, "a minute", {}, [&](TaskContext) -> Co<TaskResult> {
    asio::steady_timer timer(h.io, 60s);
    got = co_await timer.async_wait(asio::bind_cancellation_slot(signal.slot(), use_fiber));
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  asio::post(h.io, [&] { signal.emit(asio::cancellation_type::terminal); });
  h.io.run();
  EXPECT_EQ(got, asio::error::operation_aborted);
  EXPECT_EQ(h.m().get(*id)->status, TaskStatus::Completed);
}

TEST(AsioBridge, ForcedEndThenManagerGoneWithATimerPending) {
  AsioHarness h;
  auto drv = std::make_unique<asio_driver>(h.io, h.exec);
  drv->start();
  asio::steady_timer outside(h.io, 30ms);  // not in the frame: still pending after the frame goes
  SpawnOptions o{"t", "timer", std::nullopt, "deadline", {}, 5};
  auto id = h.m().spawn(o, [&](TaskContext) -> Co<TaskResult> {
    co_await outside.async_wait(use_fiber);
    ADD_FAILURE() << "resumed after its frame was destroyed";
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(id.ok());
  // Run until the deadline ended the task, then destroy the manager (and with it the frame).
  while (h.m().get(*id)->status == TaskStatus::Running) h.io.run_one();
  EXPECT_EQ(h.m().get(*id)->status, TaskStatus::Failed);
  h.manager.reset();
  h.io.run();  // the timer fires; its completion finds the frame gone
  drv.reset();
}

TEST(AsioBridge, ExecutorGoneWithOperationsPending) {
  asio::io_context io;
  asio::steady_timer outside(io, 50ms);
  {
    SystemClock clock;
    Executor exec(clock);
    auto store = std::make_shared<StateStore>();
    auto m = std::make_shared<BackgroundTaskManager>(exec);
    (void)m->set_store(store);  // a new manager's first store: never refused
    ASSERT_TRUE(store->install_plugin(BackgroundTaskPlugin(m)).ok());
    asio_driver drv(io, exec);
    drv.start();
    // One timer in the frame (cancelled as the frame goes), one outside it (fires later).
    ASSERT_TRUE(m->spawn("t", "timer", std::nullopt, "inside", {}, [&io](TaskContext) -> Co<TaskResult> {
                   asio::steady_timer inside(io, 60s);
                   co_await inside.async_wait(use_fiber);
                   co_return TaskResult::success(nullptr);
                 }).ok());
    exec.spawn([](asio::steady_timer* t) -> Co<void> { co_await t->async_wait(use_fiber); }(&outside));
    while (io.poll() > 0) {
    }
    EXPECT_EQ(m->stats().running, 1u);
    drv.stop();
    m.reset();
  }          // the executor goes with its detached coroutine still waiting
  io.run();  // both completions run now: the executor's queue is closed
}

TEST(AsioBridge, IoContextGoneWithAnOperationPending) {
  AsioHarness h;
  auto io = std::make_unique<asio::io_context>();
  auto timer = std::make_unique<asio::steady_timer>(*io, 60s);
  bool resumed = false;
  ASSERT_TRUE(h.m()
                  .spawn("t", "timer", std::nullopt, "waits", {},
                         [&](TaskContext) -> Co<TaskResult> {
                           co_await timer->async_wait(use_fiber);
                           resumed = true;
                           co_return TaskResult::success(nullptr);
                         })
                  .ok());
  h.exec.run_until_idle();
  // The io_context goes with the operation pending: its handler is destroyed, never called, and
  // the body stays suspended until its frame goes.
  timer.reset();
  io.reset();
  h.exec.run_until_idle();
  EXPECT_FALSE(resumed);
  EXPECT_EQ(h.m().stats().running, 1u);
  h.manager.reset();
  EXPECT_FALSE(resumed);
}

TEST(AsioBridge, DriverFollowsSoonerDeadlinesArmedFromHostCode) {
  AsioHarness h;
  asio_driver drv(h.io, h.exec);
  drv.start();
  std::vector<std::string> order;
  ASSERT_TRUE(h.m()
                  .spawn("t", "sleep", std::nullopt, "slow", {},
                         [&](TaskContext ctx) -> Co<TaskResult> {
                           co_await ctx.sleep(200);
                           order.push_back("slow");
                           co_return TaskResult::success(nullptr);
                         })
                  .ok());
  // Once the driver waits for the 200 ms deadline, an asio handler spawns a 10 ms sleeper.
  asio::steady_timer later(h.io, 2ms);
  later.async_wait([&](const asio::error_code&) {
    (void)h.m().spawn("t", "sleep", std::nullopt, "fast", {}, [&](TaskContext ctx) -> Co<TaskResult> {
      co_await ctx.sleep(10);
      order.push_back("fast");
      co_return TaskResult::success(nullptr);
    });
  });
  const auto start = std::chrono::steady_clock::now();
  h.io.run();
  EXPECT_EQ(order, (std::vector<std::string>{"fast", "slow"}));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 190ms);
  EXPECT_LE(drv.polls(), 40u);
}

}  // namespace
