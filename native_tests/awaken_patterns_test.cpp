// awaken's usage-pattern tests (pattern_*) and a long-running lifecycle scenario: one-shot,
// progress events, wait-for-kill, cancel_all, failures.
//
// These are awaken's tests by name: each is TEST(AwakenSeed, <awaken's test name>), its body a
// translation of awaken's (awaken_seed_support.hpp lists the translations common to all);
// docs/awaken-differences.md explains where bgtasks and awaken differ.

#include <gtest/gtest.h>

#include <string>

#include "awaken_seed_support.hpp"

namespace {
using namespace bgtasks;
using namespace bgtasks::testing;
}  // namespace

TEST(AwakenSeed, pattern_one_shot_completes_with_result) {
  auto h = manager_with_store();
  auto id =
      h->manager->spawn("thread-1", "compute", std::nullopt, "calculate sum", {}, [](TaskContext) -> Co<TaskResult> {
        co_return TaskResult::success(json{{"sum", 42}});
      });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Completed));
  ASSERT_TRUE(task->result.has_value());
  EXPECT_EQ((*task->result)["sum"], 42);
}

TEST(AwakenSeed, pattern_long_running_with_progress_events) {
  auto h = manager_with_store_and_inbox();
  auto id =
      h->manager->spawn("thread-1", "crawl", std::nullopt, "crawl pages", {}, [](TaskContext ctx) -> Co<TaskResult> {
        for (int i = 1; i <= 3; ++i) {
          ctx.emit("progress", json{{"page", i}});
          co_await sleep_for(ctx.executor(), 10);
        }
        co_return TaskResult::success(json{{"pages_crawled", 3}});
      });
  ASSERT_TRUE(id.ok());
  h->run_for(100);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Completed));
  auto events = h->drain();
  EXPECT_EQ(count_kind(events, "custom"), 3u) << "should have 3 progress events";
}

TEST(AwakenSeed, pattern_spawn_notify_wait_for_kill) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "server", std::nullopt, "start http server", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                ctx.emit("ready", json{{"port", 8080}});
                                co_await ctx.cancelled();
                                co_return TaskResult::cancelled();
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto events = h->drain();
  bool ready = false;
  for (const auto& e : events) ready |= str_field(e, "event_type") == "ready";
  EXPECT_TRUE(ready) << "should receive ready event";
  EXPECT_TRUE(h->manager->has_running("thread-1"));
  auto running = h->manager->get(*id);
  ASSERT_TRUE(running.has_value());
  EXPECT_EQ(S(running->status), S(TaskStatus::Running));
  EXPECT_TRUE(h->manager->cancel(*id));
  h->run_for(50);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Cancelled));
  EXPECT_FALSE(h->manager->has_running("thread-1"));
}

TEST(AwakenSeed, pattern_cancel_all_stops_all_tasks) {
  auto h = manager_with_store();
  for (int i = 0; i < 3; ++i) {
    auto id = h->manager->spawn("thread-1", "worker", std::nullopt, "worker " + std::to_string(i), {}, wait_cancelled);
    ASSERT_TRUE(id.ok());
  }
  EXPECT_TRUE(h->manager->has_running("thread-1"));
  EXPECT_EQ(h->manager->cancel_all("thread-1"), 3u);
  h->run_for(50);
  EXPECT_FALSE(h->manager->has_running("thread-1"));
  for (const auto& t : h->manager->list("thread-1")) {
    EXPECT_EQ(S(t.status), S(TaskStatus::Cancelled)) << t.task_id;
  }
}

TEST(AwakenSeed, pattern_cancel_all_thread_isolation) {
  auto h = manager_with_store();
  auto t1 = h->manager->spawn("thread-1", "worker", std::nullopt, "t1 task", {}, wait_cancelled);
  ASSERT_TRUE(t1.ok());
  auto t2 = h->manager->spawn("thread-2", "worker", std::nullopt, "t2 task", {}, wait_cancelled);
  ASSERT_TRUE(t2.ok());
  h->manager->cancel_all("thread-1");
  h->run_for(50);
  EXPECT_FALSE(h->manager->has_running("thread-1"));
  EXPECT_TRUE(h->manager->has_running("thread-2")) << "thread-2 tasks should not be affected";
  h->manager->cancel(*t2);
}

TEST(AwakenSeed, pattern_task_fails_with_error) {
  auto h = manager_with_store();
  auto id =
      h->manager->spawn("thread-1", "download", std::nullopt, "fetch file", {},
                        [](TaskContext) -> Co<TaskResult> { co_return TaskResult::failed("connection refused"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Failed));
  EXPECT_EQ(task->error, std::optional<std::string>("connection refused"));
}

TEST(AwakenSeed, pattern_all_events_arrive_in_inbox) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "pipeline", std::nullopt, "data pipeline", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                ctx.emit("stage", json{{"name", "extract"}});
                                ctx.emit("stage", json{{"name", "transform"}});
                                co_return TaskResult::success(json{{"loaded", true}});
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(100);
  auto msgs = h->drain();
  EXPECT_EQ(count_kind(msgs, "custom"), 2u) << "should have 2 custom events";
  EXPECT_TRUE(any_kind(msgs, "completed")) << "should have terminal Completed event";
}

TEST(AwakenSeed, pattern_cancel_completed_is_noop) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "fast", std::nullopt, "instant task", {},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success("done"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  EXPECT_FALSE(h->manager->cancel(*id));
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Completed));
}

TEST(AwakenSeed, long_running_task_with_events_and_cancel) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "monitor", std::nullopt, "system monitor", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                int ticks = 0;
                                for (;;) {
                                  if (ctx.is_cancelled()) co_return TaskResult::cancelled();
                                  ++ticks;
                                  ctx.emit("heartbeat", json{{"tick", ticks}});
                                  co_await sleep_for(ctx.executor(), 10);
                                }
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto initial_events = h->drain();
  EXPECT_FALSE(initial_events.empty()) << "should have heartbeat events";
  h->manager->cancel(*id);
  h->run_for(30);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Cancelled));
  auto final_events = h->drain();
  EXPECT_TRUE(any_kind(final_events, "cancelled")) << "should have terminal Cancelled event";
}
