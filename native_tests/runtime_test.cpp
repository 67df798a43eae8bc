// One-step setup (make_runtime) and the rule that a manager keeps its first store.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "support.hpp"

namespace {
using namespace bgtasks;
using bgtasks::testing::wait_cancelled;

Co<TaskResult> report_and_finish(TaskContext ctx) {
  ctx.emit("progress", 50);
  co_return TaskResult::success(json{{"ok", true}});
}

TEST(MakeRuntime, ReadyToSpawnWithoutMoreSetup) {
  ManualClock clock{1'000};
  Executor exec{clock};
  Runtime rt = make_runtime(exec);
  ASSERT_TRUE(rt.store && rt.manager && rt.plugin && rt.cancel_tool);
  EXPECT_EQ(rt.manager->store(), rt.store);
  EXPECT_TRUE(rt.manager->has_owner_inbox());
  EXPECT_TRUE(rt.store->is_registered(BackgroundTaskStateKey::name));
  EXPECT_TRUE(rt.store->is_registered(BackgroundTaskViewKey::name));
  const TaskId id =
      rt.manager->spawn({.thread = "t1", .type = "shell", .description = "build"}, report_and_finish).value();
  exec.run_until_idle();
  const auto events = rt.events.drain();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["kind"], "custom");
  EXPECT_EQ(events[1]["kind"], "completed");
  EXPECT_EQ(events[1]["task_id"], id);
  EXPECT_EQ(rt.manager->get(id)->status, TaskStatus::Completed);
  // The runtime's store is already bound: another is refused.
  auto again = rt.manager->set_store(std::make_shared<StateStore>());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::InvalidArgument);
}

TEST(MakeRuntime, OptionsReachTheManagerAndTheInbox) {
  ManualClock clock{1'000};
  Executor exec{clock};
  Runtime rt = make_runtime(
      exec,
      {.retain_finished = 1, .concurrency = {.per_thread = 1}, .cancel_grace_ms = 20, .owner_inbox = {.capacity = 2}});
  auto& m = *rt.manager;
  EXPECT_EQ(m.concurrency().per_thread, 1u);
  const TaskId a = m.spawn({.thread = "t1", .type = "job"}, report_and_finish).value();
  const TaskId b = m.spawn({.thread = "t1", .type = "job"}, report_and_finish).value();
  EXPECT_TRUE(m.is_queued(b));
  exec.run_until_idle();
  // retain_finished = 1: only the newest finished task of the thread stays.
  EXPECT_FALSE(m.get(a).has_value());
  EXPECT_EQ(m.get(b)->status, TaskStatus::Completed);
  // capacity 2, Reject: the first two of four events stay.
  EXPECT_EQ(rt.events.drain().size(), 2u);
  EXPECT_GT(m.stats().owner_inbox_dropped, 0u);
  // cancel_grace_ms: a body that ignores its cancel is ended 20 ms after the request.
  const TaskId stubborn = m.spawn({.thread = "t2", .type = "job"}, [](TaskContext ctx) -> Co<TaskResult> {
                             for (;;) co_await sleep_for(ctx.executor(), 1'000);  // not cancellable
                           }).value();
  exec.run_until_idle();
  EXPECT_TRUE(m.cancel(stubborn));
  exec.advance(20);
  exec.run_until_idle();
  EXPECT_EQ(m.get(stubborn)->status, TaskStatus::Cancelled);
}

TEST(MakeRuntime, PluginAndToolAreWired) {
  ManualClock clock{1'000};
  Executor exec{clock};
  Runtime rt = make_runtime(exec);
  const TaskId id = rt.manager->spawn({.thread = "t1", .type = "job"}, wait_cancelled).value();
  exec.run_until_idle();
  // awaken-style: the plugin's hooks through an ExecutionEnv and a PhaseRuntime.
  auto env = ExecutionEnv::from_plugins({rt.plugin});
  ASSERT_TRUE(env.ok());
  auto phases = PhaseRuntime::create(rt.store);
  ASSERT_TRUE(phases.ok());
  ASSERT_TRUE(
      phases
          ->run_phase_with_context(
              *env, PhaseContext(Phase::StepEnd, rt.store->snapshot()).with_run_identity(RunIdentity::for_thread("t1")))
          .ok());
  const auto snap = rt.store->snapshot();
  ASSERT_NE(snap.get<PendingWorkKey>(), nullptr);
  EXPECT_TRUE(*snap.get<PendingWorkKey>());  // StepEnd: t1 has a running task
  // The tool cancels through the runtime's manager.
  ToolCallContext call{"call-1", RunIdentity::for_thread("t1"), std::nullopt};
  ToolResult r;
  {
    auto scope = rt.manager->enter_task(id);  // as a tool call made from inside the task
    r = execute_tool(*rt.cancel_tool, json{{"target", {{"relation", "self"}}}}, call);
  }
  EXPECT_EQ(r.status, "success") << r.to_json().dump();
  EXPECT_EQ(r.data["cancelled_count"], 1);
  exec.run_until_idle();
  EXPECT_EQ(rt.manager->get(id)->status, TaskStatus::Cancelled);
}

TEST(MakeRuntime, OnAStoreOfTheCaller) {
  ManualClock clock{1'000};
  Executor exec{clock};
  auto store = std::make_shared<StateStore>();
  Runtime first = make_runtime(exec, store).value();
  // A second runtime on the same store finds the keys registered and leaves them.
  Runtime second = make_runtime(exec, store, {.retain_finished = 5}).value();
  EXPECT_EQ(first.store, store);
  EXPECT_EQ(second.store, store);
  first.manager->grant_ids(1, 100);  // managers sharing a store take ids from disjoint blocks
  second.manager->grant_ids(101, 100);
  const TaskId a = first.manager->spawn({.thread = "t1", .type = "job"}, wait_cancelled).value();
  const TaskId b = second.manager->spawn({.thread = "t2", .type = "job"}, wait_cancelled).value();
  EXPECT_NE(a, b);
  EXPECT_EQ(second.manager->get(a)->status, TaskStatus::Running);  // one store: both see both
  EXPECT_TRUE(first.manager->get(b).has_value());

  auto null_store = make_runtime(exec, nullptr);
  ASSERT_FALSE(null_store.ok());
  EXPECT_EQ(null_store.error().code, Errc::InvalidArgument);
  // A store holding one of the plugin's two keys is refused.
  auto half = std::make_shared<StateStore>();
  ASSERT_TRUE(half->register_keys({KeyRegistration::of<BackgroundTaskStateKey>()}).ok());
  auto refused = make_runtime(exec, half);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::InvalidArgument);
}

// ---- set_store: the first store stays -------------------------------------------------------------
TEST(SetStore, TheFirstStoreStays) {
  ManualClock clock{1'000};
  Executor exec{clock};
  auto m = std::make_shared<BackgroundTaskManager>(exec);
  auto first = std::make_shared<StateStore>();
  auto second = std::make_shared<StateStore>();
  auto null = m->set_store(nullptr);
  ASSERT_FALSE(null.ok());
  EXPECT_EQ(null.error().code, Errc::InvalidArgument);
  EXPECT_EQ(m->store(), nullptr);
  EXPECT_TRUE(m->set_store(first).ok());
  EXPECT_TRUE(m->set_store(first).ok());  // the same store again: ok
  auto other = m->set_store(second);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, Errc::InvalidArgument);
  EXPECT_EQ(other.error().message, "a store is already set; a manager keeps its first store");
  EXPECT_EQ(m->store(), first);
  EXPECT_FALSE(m->set_store(nullptr).ok());
  EXPECT_EQ(m->store(), first);
}

TEST(SetStore, PluginBindingsReportARefusedStore) {
  ManualClock clock{1'000};
  Executor exec{clock};
  auto m = std::make_shared<BackgroundTaskManager>(exec);
  auto first = std::make_shared<StateStore>();
  auto plugin = BackgroundTaskPlugin::with_store(m, first);
  ASSERT_TRUE(plugin.ok());
  EXPECT_EQ(plugin->manager(), m);
  auto again = BackgroundTaskPlugin::with_store(m, std::make_shared<StateStore>());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::InvalidArgument);
  // bind_runtime_context: the same store and an inbox bind; another store is refused, and its
  // inbox is not set either.
  auto [tx, rx] = inbox_channel();
  EXPECT_TRUE(plugin->bind_runtime_context(first, tx).ok());
  EXPECT_TRUE(m->has_owner_inbox());
  auto m2 = std::make_shared<BackgroundTaskManager>(exec);
  ASSERT_TRUE(m2->set_store(first).ok());
  BackgroundTaskPlugin p2(m2);
  auto [tx2, rx2] = inbox_channel();
  EXPECT_EQ(p2.bind_runtime_context(std::make_shared<StateStore>(), tx2).error_code(), Errc::InvalidArgument);
  EXPECT_FALSE(m2->has_owner_inbox());
}

}  // namespace
