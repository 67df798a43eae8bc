// awaken's background-task seed tests, second half (awaken's tests 51–101), as GoogleTests.
// Source: awaken's crates/awaken-runtime/src/extensions/background/ tests. Each awaken test keeps its name:
// awaken test name → TEST(AwakenSeed, <same name>). Common translations, valid for every test:
// tokio::time::sleep in the test → Harness::run_for (manual clock); tokio sleeps inside bodies →
// co_await sleep_for(executor, ms); Arc<Mutex/Atomic> → std::shared_ptr; SpawnError/SendError
// variants → Errc codes (docs/behaviour.md); `.await.unwrap()` on spawn → ASSERT_TRUE(ok()).
// Asserts inside Rust bodies (a panic there leaves the task unfinished) → EXPECT_* in the body
// plus a Failed result, so the outer status assert fails as well.
//
//  51 plugin_descriptor_returns_correct_name                  → same
//  52 plugin_on_activate_is_noop                               → same
//  53 plugin_registers_phase_hooks                             → same
//  54 restore_degrades_orphaned_running_tasks_to_failed        → same
//  55 restore_preserves_terminal_task_status                   → same
//  56 restore_does_not_degrade_live_running_tasks              → same
//  57 send_message_delivers_to_sub_agent                       → same (spawn_agent bodies get no
//                                                                 executor: it is captured)
//  58 send_message_rejects_wrong_thread                        → same
//  59 send_message_rejects_completed_task                      → same
//  60 send_message_rejects_nonexistent_task                    → same
//  61 send_message_rejects_regular_task                        → same
//  62 has_running_tracks_lifecycle                             → same
//  63 full_lifecycle_sub_agent_with_child_tasks                → same (child manager on the same
//                                                                 executor, captured)
//  64 pattern_one_shot_completes_with_result                   → same
//  65 pattern_long_running_with_progress_events                → same
//  66 pattern_spawn_notify_wait_for_kill                       → same
//  67 pattern_cancel_all_stops_all_tasks                       → same
//  68 pattern_cancel_all_thread_isolation                      → same
//  69 pattern_task_fails_with_error                            → same
//  70 pattern_all_events_arrive_in_inbox                       → same
//  71 pattern_cancel_completed_is_noop                         → same
//  72 inbox_events_accumulate_until_drained                    → same
//  73 inbox_drain_empty_when_no_events                         → same
//  74 multiple_tasks_share_same_inbox                          → same
//  75 on_closed_fires_for_late_task_completion                 → same (receiver .close() = drop)
//  76 task_events_carry_task_id                                → same
//  77 long_running_task_with_events_and_cancel                 → same
//  78 spawn_rejects_reserved_name                              → same
//  79 spawn_rejects_duplicate_name                             → same
//  80 spawn_fails_when_background_store_is_not_configured      → same
//  81 spawn_agent_fails_when_background_keys_are_not_registered → same (State(UnknownKey) →
//                                                                 Errc::UnknownKey)
//  82 owner_inbox_lock_recovers_after_panicking_holder         → same name, analogous guarantee
//     (no lock here; an exception thrown from an inbox-closed callback and a
//     throwing body leave the owner inbox and the manager usable)
//  83 completion_metadata_commit_failure_leaves_store_stuck_at_running → same (the 2 s wall-clock
//     wait loop → at most 200 steps of run_for(10) on the manual clock)
//  84 completion_metadata_commit_failure_increments_observability_metric → same
//     (metrics::with_local_recorder + DebuggingRecorder → metrics::LocalRecorderScope + Recorder;
//     no separate tokio runtime: the harness executor is single-threaded already)
//  85 spawn_allows_same_name_after_completion                  → same
//  86 spawn_allows_same_name_on_different_threads              → same
//  87 send_to_completed_task_returns_error                     → same
//  88 events_do_not_change_task_result                         → same
//  89 rapid_sequential_emits_no_loss                           → same
//  90 cancel_during_emit_loop                                  → same
//  91 emit_after_cancel_still_delivers                         → same
//  92 multiple_children_route_correctly                        → same
//  93 terminal_event_contains_correct_data                     → same
//  94 failed_terminal_event_contains_error                     → same
//  95 inbox_closed_after_agent_completes                       → same
//  96 cancel_all_during_concurrent_emits                       → same
//  97 nested_spawn_agent_events_flow                           → same (inner manager on the
//                                                                 captured executor)
//  98 get_reads_from_state_store                               → same
//  99 unnamed_task_addressable_by_id_only                      → same
// 100 empty_message_delivers                                   → same
// 101 result_persists_after_handle_dropped                     → same

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bgtasks/bgtasks.hpp"
#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::testing::Harness;
using bgtasks::testing::manager_with_store;
using bgtasks::testing::manager_with_store_and_inbox;

// Readable failure output for enums.
std::string S(TaskStatus s) { return as_str(s); }
std::string E(Errc c) { return errc_name(c); }

// m.get(key).and_then(as_str), as the Rust tests read events.
std::optional<std::string> str_field(const json& m, const char* key) {
  if (!m.is_object()) return std::nullopt;
  auto it = m.find(key);
  if (it == m.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}
std::size_t count_kind(const std::vector<json>& msgs, const char* kind) {
  std::size_t n = 0;
  for (const auto& m : msgs)
    if (str_field(m, "kind") == kind) ++n;
  return n;
}
bool any_kind(const std::vector<json>& msgs, const char* kind) { return count_kind(msgs, kind) > 0; }

// A harness with a manager and nothing else (no store, no inbox).
std::unique_ptr<Harness> bare_harness() {
  auto h = std::make_unique<Harness>();
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  return h;
}

// The plugin's keys registered in `store` (the tail of awaken's manager_with_store).
void register_plugin_keys(const std::shared_ptr<BackgroundTaskManager>& manager, StateStore& store) {
  auto plugin = std::make_shared<BackgroundTaskPlugin>(manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  ASSERT_TRUE(env.ok());
  ASSERT_TRUE(store.register_keys(env->key_registrations).ok());
}

Co<TaskResult> wait_cancelled(TaskContext ctx) {
  co_await ctx.cancelled();
  co_return TaskResult::cancelled();
}

}  // namespace

// ---- 51 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, plugin_descriptor_returns_correct_name) {
  ManualClock clock;
  Executor exec(clock);
  auto manager = std::make_shared<BackgroundTaskManager>(exec);
  BackgroundTaskPlugin plugin(manager);
  auto desc = plugin.descriptor();
  EXPECT_EQ(desc.name, "background_tasks");
}

// ---- 52 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, plugin_on_activate_is_noop) {
  ManualClock clock;
  Executor exec(clock);
  auto manager = std::make_shared<BackgroundTaskManager>(exec);
  BackgroundTaskPlugin plugin(manager);
  AgentSpec spec;
  MutationBatch patch;
  auto result = plugin.on_activate(spec, patch);
  EXPECT_TRUE(result.ok());
  EXPECT_TRUE(patch.is_empty());
}

// ---- 53 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, plugin_registers_phase_hooks) {
  ManualClock clock;
  Executor exec(clock);
  auto store = std::make_shared<StateStore>();
  auto manager = std::make_shared<BackgroundTaskManager>(exec);
  std::shared_ptr<Plugin> plugin = std::make_shared<BackgroundTaskPlugin>(manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  ASSERT_TRUE(env.ok());
  ASSERT_TRUE(store->register_keys(env->key_registrations).ok());
  EXPECT_FALSE(env->phase_hooks.empty());
  EXPECT_TRUE(env->phase_hooks.count(Phase::RunStart) != 0) << "RunStart hook must be registered";
  EXPECT_TRUE(env->phase_hooks.count(Phase::RunEnd) != 0) << "RunEnd hook must be registered";
}

// ---- 54 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, restore_degrades_orphaned_running_tasks_to_failed) {
  auto h = manager_with_store();
  BackgroundTaskStateSnapshot snapshot;
  PersistedTaskMeta m;
  m.task_id = "bg_orphan";
  m.owner_thread_id = "thread-1";
  m.task_type = "shell";
  m.description = "was running when runtime died";
  m.status = TaskStatus::Running;
  m.created_at_ms = 100;
  snapshot.tasks.emplace("bg_orphan", m);

  h->manager->restore_for_thread("thread-1", snapshot);

  auto summary = h->manager->get("bg_orphan");
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(S(summary->status), S(TaskStatus::Failed));
  ASSERT_TRUE(summary->error.has_value());
  EXPECT_NE(summary->error->view().find("orphaned"), std::string::npos)
      << "error should mention orphaned: " << *summary->error;
}

// ---- 55 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, restore_preserves_terminal_task_status) {
  auto h = manager_with_store();
  BackgroundTaskStateSnapshot snapshot;
  PersistedTaskMeta done;
  done.task_id = "bg_done";
  done.owner_thread_id = "thread-1";
  done.task_type = "shell";
  done.description = "completed before restart";
  done.status = TaskStatus::Completed;
  done.result = json{{"ok", true}};
  done.created_at_ms = 100;
  done.completed_at_ms = 200;
  snapshot.tasks.emplace("bg_done", done);
  PersistedTaskMeta failed;
  failed.task_id = "bg_failed";
  failed.owner_thread_id = "thread-1";
  failed.task_type = "http";
  failed.description = "failed before restart";
  failed.status = TaskStatus::Failed;
  failed.error = "timeout";
  failed.created_at_ms = 100;
  failed.completed_at_ms = 150;
  snapshot.tasks.emplace("bg_failed", failed);

  h->manager->restore_for_thread("thread-1", snapshot);

  auto d = h->manager->get("bg_done");
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(S(d->status), S(TaskStatus::Completed));
  EXPECT_FALSE(d->error.has_value());
  auto f = h->manager->get("bg_failed");
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(S(f->status), S(TaskStatus::Failed));
  EXPECT_EQ(f->error, std::optional<std::string>("timeout"));
}

// ---- 56 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, restore_does_not_degrade_live_running_tasks) {
  auto h = manager_with_store();
  auto live = h->manager->spawn("thread-1", "shell", std::nullopt, "live running task", {}, wait_cancelled);
  ASSERT_TRUE(live.ok());
  const TaskId live_id = *live;

  BackgroundTaskStateSnapshot snapshot;
  PersistedTaskMeta m;
  m.task_id = live_id;
  m.owner_thread_id = "thread-1";
  m.task_type = "shell";
  m.description = "stale";
  m.status = TaskStatus::Running;
  m.created_at_ms = 1;
  snapshot.tasks.emplace(live_id, m);

  h->manager->restore_for_thread("thread-1", snapshot);

  auto summary = h->manager->get(live_id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(S(summary->status), S(TaskStatus::Running));
  EXPECT_FALSE(summary->error.has_value());
  h->manager->cancel(live_id);
}

// ---- 57 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, send_message_delivers_to_sub_agent) {
  auto h = manager_with_store();
  Executor* exec = &h->exec;
  auto id = h->manager->spawn_agent(
      "thread-1", std::nullopt, "sub-agent worker", {},
      [exec](CancellationToken, InboxSender, InboxReceiver inbox_receiver) -> Co<TaskResult> {
        co_await sleep_for(*exec, 100);
        auto msg = inbox_receiver.try_recv();
        if (!msg) co_return TaskResult::failed("no message received");
        const json& m = *msg;
        bool ok = true;
        ok &= str_field(m, "kind") == "custom";
        ok &= str_field(m, "event_type") == "agent_message";
        const json payload = m.is_object() && m.contains("payload") ? m.at("payload") : json::object();
        ok &= str_field(payload, "content") == "hello from parent";
        ok &= str_field(payload, "from") == "parent-agent";
        EXPECT_TRUE(ok) << "unexpected agent_message: " << m.dump();
        if (!ok) co_return TaskResult::failed("wrong message");
        co_return TaskResult::success(json{{"received", true}});
      });
  ASSERT_TRUE(id.ok());

  h->run_for(10);
  auto result = h->manager->send_task_inbox_message(*id, "thread-1", "parent-agent", "hello from parent");
  EXPECT_TRUE(result.ok()) << result.error().message;

  h->run_for(200);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Completed));
}

// ---- 58 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, send_message_rejects_wrong_thread) {
  auto h = manager_with_store();
  auto id = h->manager->spawn_agent("thread-1", std::nullopt, "agent", {},
                                    [](CancellationToken cancel, InboxSender, InboxReceiver) -> Co<TaskResult> {
                                      co_await cancel.cancelled();
                                      co_return TaskResult::cancelled();
                                    });
  ASSERT_TRUE(id.ok());
  auto result = h->manager->send_task_inbox_message(*id, "thread-WRONG", "attacker", "evil message");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::NotOwner));
  h->manager->cancel(*id);
}

// ---- 59 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, send_message_rejects_completed_task) {
  auto h = manager_with_store();
  auto id = h->manager->spawn_agent("thread-1", std::nullopt, "fast agent", {},
                                    [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> {
                                      co_return TaskResult::success("done");
                                    });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto result = h->manager->send_task_inbox_message(*id, "thread-1", "parent", "too late");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::TaskTerminated));
  ASSERT_TRUE(result.error().status.has_value());
  EXPECT_EQ(S(*result.error().status), S(TaskStatus::Completed));
}

// ---- 60 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, send_message_rejects_nonexistent_task) {
  auto h = manager_with_store();
  auto result = h->manager->send_task_inbox_message("bg_999", "thread-1", "parent", "hello");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::TaskNotFound));
}

// ---- 61 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, send_message_rejects_regular_task) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "regular task", {}, wait_cancelled);
  ASSERT_TRUE(id.ok());
  auto result = h->manager->send_task_inbox_message(*id, "thread-1", "parent", "hello");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::NoInbox));
  h->manager->cancel(*id);
}

// ---- 62 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, has_running_tracks_lifecycle) {
  auto h = manager_with_store();
  EXPECT_FALSE(h->manager->has_running("thread-1"));
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "long", {}, wait_cancelled);
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(h->manager->has_running("thread-1"));
  EXPECT_FALSE(h->manager->has_running("thread-2"));
  h->manager->cancel(*id);
  h->run_for(50);
  EXPECT_FALSE(h->manager->has_running("thread-1"));
}

// ---- 63 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, full_lifecycle_sub_agent_with_child_tasks) {
  auto h = manager_with_store();
  Executor* exec = &h->exec;
  TaskParentContext parent;
  parent.run_id = "run-1";
  parent.agent_id = "parent";
  auto agent_task_id = h->manager->spawn_agent(
      "thread-1", std::nullopt, "worker-agent", parent,
      [exec](CancellationToken, InboxSender child_inbox_sender, InboxReceiver child_inbox_receiver) -> Co<TaskResult> {
        auto child_store = std::make_shared<StateStore>();
        auto child_manager = std::make_shared<BackgroundTaskManager>(*exec);
        child_manager->set_owner_inbox(child_inbox_sender);
        EXPECT_TRUE(child_manager->set_store(child_store).ok());
        {
          std::shared_ptr<Plugin> plugin = std::make_shared<BackgroundTaskPlugin>(child_manager);
          auto env = ExecutionEnv::from_plugins({plugin});
          EXPECT_TRUE(env.ok());
          if (!env.ok()) co_return TaskResult::failed("env");
          auto reg = child_store->register_keys(env->key_registrations);
          EXPECT_TRUE(reg.ok());
          if (!reg.ok()) co_return TaskResult::failed("register_keys");
        }
        auto child = child_manager->spawn("sub-thread", "crawl", std::nullopt, "fetch data", {},
                                          [](TaskContext ctx) -> Co<TaskResult> {
                                            ctx.emit("data_ready", json{{"url", "example.com"}});
                                            co_return TaskResult::success(json{{"fetched", true}});
                                          });
        EXPECT_TRUE(child.ok());
        if (!child.ok()) co_return TaskResult::failed("child spawn");
        co_await sleep_for(*exec, 50);
        auto events = child_inbox_receiver.drain();
        EXPECT_FALSE(events.empty()) << "should receive child task event";
        if (events.empty()) co_return TaskResult::failed("no child events");
        co_return TaskResult::success(json{{"processed", true}});
      });
  ASSERT_TRUE(agent_task_id.ok());

  h->run_for(200);
  auto task = h->manager->get(*agent_task_id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Completed));
  EXPECT_FALSE(h->manager->has_running("thread-1"));
}

// ---- 64 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, pattern_one_shot_completes_with_result) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "compute", std::nullopt, "calculate sum", {},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json{{"sum", 42}}); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Completed));
  ASSERT_TRUE(task->result.has_value());
  EXPECT_EQ((*task->result)["sum"], 42);
}

// ---- 65 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, pattern_long_running_with_progress_events) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "crawl", std::nullopt, "crawl pages", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
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

// ---- 66 ---------------------------------------------------------------------------------------
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

// ---- 67 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, pattern_cancel_all_stops_all_tasks) {
  auto h = manager_with_store();
  for (int i = 0; i < 3; ++i) {
    auto id = h->manager->spawn("thread-1", "worker", std::nullopt, "worker " + std::to_string(i), {},
                                wait_cancelled);
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

// ---- 68 ---------------------------------------------------------------------------------------
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

// ---- 69 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, pattern_task_fails_with_error) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "download", std::nullopt, "fetch file", {},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::failed("connection refused"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Failed));
  EXPECT_EQ(task->error, std::optional<std::string>("connection refused"));
}

// ---- 70 ---------------------------------------------------------------------------------------
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

// ---- 71 ---------------------------------------------------------------------------------------
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

// ---- 72 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, inbox_events_accumulate_until_drained) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "producer", std::nullopt, "emit many", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                for (int i = 0; i < 5; ++i) {
                                  ctx.emit("tick", json{{"n", i}});
                                  co_await sleep_for(ctx.executor(), 5);
                                }
                                co_return TaskResult::success("done");
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(100);
  auto msgs = h->drain();
  EXPECT_EQ(msgs.size(), 6u) << "should have 6 messages, got: " << json(msgs).dump();
  EXPECT_FALSE(h->inbox->try_recv().has_value());
}

// ---- 73 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, inbox_drain_empty_when_no_events) {
  auto h = manager_with_store_and_inbox();
  auto msgs = h->drain();
  EXPECT_TRUE(msgs.empty());
}

// ---- 74 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, multiple_tasks_share_same_inbox) {
  auto h = manager_with_store_and_inbox();
  for (int i = 0; i < 3; ++i) {
    auto id = h->manager->spawn("thread-1", "worker", std::nullopt, "worker-" + std::to_string(i), {},
                                [i](TaskContext ctx) -> Co<TaskResult> {
                                  ctx.emit("result", json{{"worker", i}});
                                  co_return TaskResult::success(i);
                                });
    ASSERT_TRUE(id.ok());
  }
  h->run_for(100);
  auto msgs = h->drain();
  EXPECT_EQ(msgs.size(), 6u) << "3 workers should produce 6 events";
}

// ---- 75 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, on_closed_fires_for_late_task_completion) {
  auto h = std::make_unique<Harness>();
  auto counter = std::make_shared<std::size_t>(0);
  auto [tx, rx] = inbox_channel_with_fallback([counter](const json&) { ++*counter; });
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  h->manager->set_owner_inbox(tx);
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  register_plugin_keys(h->manager, *h->store);

  auto id = h->manager->spawn("thread-1", "slow", std::nullopt, "slow work", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                co_await sleep_for(ctx.executor(), 50);
                                ctx.emit("done", "result");
                                co_return TaskResult::success("ok");
                              });
  ASSERT_TRUE(id.ok());
  rx.close();  // drop(rx)
  h->run_for(100);
  EXPECT_GE(*counter, 1u) << "on_closed should fire at least once";
}

// ---- 76 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, task_events_carry_task_id) {
  auto h = manager_with_store_and_inbox();
  auto task_id = h->manager->spawn("thread-1", "tagged", std::nullopt, "id check", {},
                                   [](TaskContext ctx) -> Co<TaskResult> {
                                     ctx.emit("ping", nullptr);
                                     co_return TaskResult::success("pong");
                                   });
  ASSERT_TRUE(task_id.ok());
  h->run_for(50);
  auto msgs = h->drain();
  for (const auto& msg : msgs) {
    EXPECT_EQ(str_field(msg, "task_id"), std::optional<std::string>(*task_id))
        << "event should carry correct task_id: " << msg.dump();
  }
}

// ---- 77 ---------------------------------------------------------------------------------------
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

// ---- 78 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, spawn_rejects_reserved_name) {
  auto h = manager_with_store();
  for (const char* reserved : {"parent", "self", "all", "broadcast"}) {
    auto result = h->manager->spawn("thread-1", "test", std::optional<std::string_view>(reserved), "desc", {},
                                    [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
    ASSERT_FALSE(result.ok()) << "'" << reserved << "' should be rejected as reserved";
    EXPECT_EQ(E(result.error().code), E(Errc::ReservedName)) << "'" << reserved << "' should be rejected as reserved";
  }
}

// ---- 79 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, spawn_rejects_duplicate_name) {
  auto h = manager_with_store();
  auto first = h->manager->spawn("thread-1", "worker", std::optional<std::string_view>("researcher"),
                                 "first researcher", {}, wait_cancelled);
  ASSERT_TRUE(first.ok());
  auto result = h->manager->spawn("thread-1", "worker", std::optional<std::string_view>("researcher"),
                                  "second researcher", {},
                                  [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::DuplicateName));
  h->manager->cancel(*first);
}

// ---- 80 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, spawn_fails_when_background_store_is_not_configured) {
  auto h = bare_harness();
  auto result = h->manager->spawn("thread-1", "test", std::nullopt, "desc", {},
                                  [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::StoreNotConfigured));
}

// ---- 81 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, spawn_agent_fails_when_background_keys_are_not_registered) {
  auto h = bare_harness();
  EXPECT_TRUE(h->manager->set_store(std::make_shared<StateStore>()).ok());
  auto result = h->manager->spawn_agent("thread-1", std::optional<std::string_view>("worker"), "desc", {},
                                        [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> {
                                          co_return TaskResult::success(nullptr);
                                        });
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::UnknownKey));
}

// ---- 82 ---------------------------------------------------------------------------------------
// No owner-inbox lock exists here. The analogous guarantee: an exception thrown from
// an inbox-closed callback, and a body that throws, leave the owner inbox and the manager usable.
TEST(AwakenSeed, owner_inbox_lock_recovers_after_panicking_holder) {
  auto h = std::make_unique<Harness>();
  auto closed_calls = std::make_shared<std::size_t>(0);
  auto [tx, rx] = inbox_channel_with_fallback([closed_calls](const json&) {
    ++*closed_calls;
    throw std::runtime_error("panic in on_closed");
  });
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  h->manager->set_owner_inbox(tx);
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  register_plugin_keys(h->manager, *h->store);
  rx.close();

  // 1. The terminal event of this task hits the closed inbox: the callback throws.
  auto a = h->manager->spawn("thread-1", "test", std::nullopt, "callback throws", {},
                             [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success("a"); });
  ASSERT_TRUE(a.ok());
  try {
    h->run_for(10);
  } catch (...) {
    // Whether the exception crosses poll() is not pinned; what follows must hold either way.
  }
  EXPECT_GE(*closed_calls, 1u) << "the terminal event must have reached the closed inbox";
  // The completion commit comes before the terminal event, so it is recorded.
  auto a_sum = h->manager->get(*a);
  ASSERT_TRUE(a_sum.has_value());
  EXPECT_EQ(S(a_sum->status), S(TaskStatus::Completed));

  // 2. A body that throws.
  auto should_throw = std::make_shared<bool>(true);
  auto b = h->manager->spawn("thread-1", "test", std::nullopt, "body throws", {},
                             [should_throw](TaskContext) -> Co<TaskResult> {
                               if (*should_throw) throw std::runtime_error("panic in body");
                               co_return TaskResult::success("b");
                             });
  ASSERT_TRUE(b.ok());
  try {
    h->run_for(10);
  } catch (...) {
  }

  // 3. The owner inbox can be replaced and is reported present; the manager still works.
  auto [tx2, rx2] = inbox_channel();
  h->manager->set_owner_inbox(tx2);
  EXPECT_TRUE(h->manager->has_owner_inbox_for_test());
  auto c = h->manager->spawn("thread-1", "test", std::nullopt, "after the panics", {},
                             [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json{{"ok", true}}); });
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_NO_THROW(h->run_for(10));
  auto c_sum = h->manager->get(*c);
  ASSERT_TRUE(c_sum.has_value());
  EXPECT_EQ(S(c_sum->status), S(TaskStatus::Completed));
  auto msgs = rx2.drain();
  bool got = false;
  for (const auto& m : msgs) got |= str_field(m, "kind") == "completed" && str_field(m, "task_id") == *c;
  EXPECT_TRUE(got) << "the later task's completed event must arrive: " << json(msgs).dump();
}

// ---- 83 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, completion_metadata_commit_failure_leaves_store_stuck_at_running) {
  auto h = std::make_unique<Harness>();
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  ASSERT_TRUE(h->store->install_plugin(BackgroundTaskPlugin(h->manager)).ok());

  auto gate = std::make_shared<Notify>();
  auto ran = std::make_shared<bool>(false);
  auto task_id = h->manager->spawn("thread-zombie", "worker", std::nullopt, "desc", {},
                                   [gate, ran](TaskContext) -> Co<TaskResult> {
                                     co_await gate->notified();
                                     *ran = true;
                                     co_return TaskResult::success("done");
                                   });
  ASSERT_TRUE(task_id.ok()) << "spawn succeeds while the store is healthy";

  auto running_snap = h->store->read<BackgroundTaskStateKey>();
  ASSERT_TRUE(running_snap.has_value()) << "spawn commit must have populated the key";
  auto it = running_snap->tasks.find(*task_id);
  ASSERT_NE(it, running_snap->tasks.end()) << "spawn-time metadata must be visible";
  EXPECT_EQ(S(it->second.status), S(TaskStatus::Running));
  EXPECT_FALSE(it->second.completed_at_ms.has_value());

  ASSERT_TRUE(h->store->uninstall_plugin<BackgroundTaskPlugin>().ok())
      << "uninstall clears registration and snapshot state";
  gate->notify_one();

  for (int i = 0; !*ran; ++i) {
    ASSERT_LT(i, 200) << "task body never ran";
    h->run_for(10);
  }
  h->run_for(75);
  EXPECT_TRUE(*ran) << "task ran to completion";

  bool still_running_or_absent = true;
  if (auto snap = h->store->read<BackgroundTaskStateKey>()) {
    auto m = snap->tasks.find(*task_id);
    if (m != snap->tasks.end()) still_running_or_absent = m->second.status == TaskStatus::Running;
  }
  EXPECT_TRUE(still_running_or_absent)
      << "completion-time commit failure is silent: store does not reflect the task's real outcome";
}

// ---- 84 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, completion_metadata_commit_failure_increments_observability_metric) {
  metrics::Recorder rec;
  {
    metrics::LocalRecorderScope scope(rec);
    auto h = std::make_unique<Harness>();
    h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
    EXPECT_TRUE(h->manager->set_store(h->store).ok());
    ASSERT_TRUE(h->store->install_plugin(BackgroundTaskPlugin(h->manager)).ok());

    auto gate = std::make_shared<Notify>();
    auto ran = std::make_shared<bool>(false);
    auto id = h->manager->spawn("thread-metric", "worker", std::nullopt, "desc", {},
                                [gate, ran](TaskContext) -> Co<TaskResult> {
                                  co_await gate->notified();
                                  *ran = true;
                                  co_return TaskResult::success(nullptr);
                                });
    ASSERT_TRUE(id.ok()) << "spawn";
    ASSERT_TRUE(h->store->uninstall_plugin<BackgroundTaskPlugin>().ok());
    gate->notify_one();
    for (int i = 0; !*ran; ++i) {
      ASSERT_LT(i, 200) << "task body never ran";
      h->run_for(10);
    }
    h->run_for(75);
  }
  const auto n = rec.counter(metrics::kCommitFailuresTotal, {{"operation", "task_completion"}});
  EXPECT_GE(n, 1u) << "counter awaken_background_task_state_commit_failures_total{operation=task_completion} "
                      "should have incremented at least once, got "
                   << n;
}

// ---- 85 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, spawn_allows_same_name_after_completion) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "worker", std::optional<std::string_view>("researcher"), "first", {},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Completed));
  auto id2 = h->manager->spawn("thread-1", "worker", std::optional<std::string_view>("researcher"), "second", {},
                               [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_TRUE(id2.ok()) << id2.error().message;
  EXPECT_NE(*id, *id2);
}

// ---- 86 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, spawn_allows_same_name_on_different_threads) {
  auto h = manager_with_store();
  auto id1 = h->manager->spawn("thread-1", "worker", std::optional<std::string_view>("researcher"), "t1 researcher",
                               {}, wait_cancelled);
  ASSERT_TRUE(id1.ok()) << id1.error().message;
  auto id2 = h->manager->spawn("thread-2", "worker", std::optional<std::string_view>("researcher"), "t2 researcher",
                               {}, wait_cancelled);
  ASSERT_TRUE(id2.ok()) << id2.error().message;
  h->manager->cancel_all("thread-1");
  h->manager->cancel_all("thread-2");
}

// ---- 87 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, send_to_completed_task_returns_error) {
  auto h = manager_with_store();
  auto id = h->manager->spawn_agent("thread-1", std::optional<std::string_view>("fast-worker"), "instant agent", {},
                                    [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> {
                                      co_return TaskResult::success("done");
                                    });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto result = h->manager->send_task_inbox_message(*id, "thread-1", "parent", "too late");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::TaskTerminated));
  ASSERT_TRUE(result.error().status.has_value());
  EXPECT_EQ(S(*result.error().status), S(TaskStatus::Completed));
}

// ---- 88 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, events_do_not_change_task_result) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "pipeline", std::nullopt, "multi-step work", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                ctx.emit("step", json{{"n", 1}});
                                ctx.emit("step", json{{"n", 2}});
                                ctx.emit("step", json{{"n", 3}});
                                co_return TaskResult::success(json{{"final", "answer"}});
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(100);
  (void)h->drain();
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Completed));
  ASSERT_TRUE(task->result.has_value());
  EXPECT_EQ((*task->result)["final"], "answer");
}

// ---- 89 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, rapid_sequential_emits_no_loss) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "burst", std::nullopt, "rapid emitter", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                for (int i = 0; i < 100; ++i) ctx.emit("tick", json{{"n", i}});
                                co_return TaskResult::success("done");
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(100);
  auto msgs = h->drain();
  const auto custom_count = count_kind(msgs, "custom");
  EXPECT_EQ(custom_count, 100u) << "all 100 emits must arrive, got " << custom_count;
}

// ---- 90 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, cancel_during_emit_loop) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "emitter", std::nullopt, "cancel me", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                for (int i = 0; i < 1000; ++i) {
                                  if (ctx.is_cancelled()) co_return TaskResult::cancelled();
                                  ctx.emit("tick", json{{"n", i}});
                                  co_await sleep_for(ctx.executor(), 1);
                                }
                                co_return TaskResult::success("finished");
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(20);
  h->manager->cancel(*id);
  h->run_for(50);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(S(task->status), S(TaskStatus::Cancelled));
  auto msgs = h->drain();
  EXPECT_TRUE(any_kind(msgs, "cancelled"));
  const auto tick_count = count_kind(msgs, "custom");
  EXPECT_TRUE(tick_count > 0 && tick_count < 1000) << "partial delivery: got " << tick_count;
}

// ---- 91 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, emit_after_cancel_still_delivers) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "post-cancel emit", {},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                co_await ctx.cancelled();
                                ctx.emit("final_words", json{{"last", true}});
                                co_return TaskResult::cancelled();
                              });
  ASSERT_TRUE(id.ok());
  h->manager->cancel(*id);
  h->run_for(50);
  auto msgs = h->drain();
  bool found = false;
  for (const auto& m : msgs) found |= str_field(m, "event_type") == "final_words";
  EXPECT_TRUE(found) << "post-cancel emit should deliver if channel alive: " << json(msgs).dump();
}

// ---- 92 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, multiple_children_route_correctly) {
  auto h = manager_with_store();
  Executor* exec = &h->exec;
  auto make_body = [exec](const char* name) {
    return [exec, name](CancellationToken cancel, InboxSender, InboxReceiver r) -> Co<TaskResult> {
      co_await sleep_for(*exec, 200);
      const bool got = r.try_recv().has_value();
      if (!got) co_await cancel.cancelled();
      co_return TaskResult::success(json{{"name", name}, {"got", got}});
    };
  };
  auto id_a = h->manager->spawn_agent("thread-1", std::optional<std::string_view>("agent-a"), "agent A", {},
                                      make_body("a"));
  ASSERT_TRUE(id_a.ok());
  auto id_b = h->manager->spawn_agent("thread-1", std::optional<std::string_view>("agent-b"), "agent B", {},
                                      make_body("b"));
  ASSERT_TRUE(id_b.ok());
  auto sent = h->manager->send_task_inbox_message(*id_a, "thread-1", "parent", "for-a-only");
  ASSERT_TRUE(sent.ok()) << sent.error().message;
  h->run_for(300);
  auto task_a = h->manager->get(*id_a);
  auto task_b = h->manager->get(*id_b);
  ASSERT_TRUE(task_a.has_value());
  ASSERT_TRUE(task_b.has_value());
  EXPECT_EQ(S(task_a->status), S(TaskStatus::Completed));
  ASSERT_TRUE(task_a->result.has_value());
  EXPECT_EQ((*task_a->result)["got"], true) << "agent-a should have received the message";
  if (task_b->result.has_value()) {
    EXPECT_EQ((*task_b->result)["got"], false) << "agent-b should not have received agent-a's message";
  }
}

// ---- 93 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, terminal_event_contains_correct_data) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "compute", std::nullopt, "calc", {},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json{{"score", 3.125}}); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto msgs = h->drain();
  const json* completed = nullptr;
  for (const auto& m : msgs)
    if (!completed && str_field(m, "kind") == "completed") completed = &m;
  ASSERT_NE(completed, nullptr) << "must have Completed event";
  EXPECT_EQ(str_field(*completed, "task_id"), std::optional<std::string>(*id));
  ASSERT_TRUE(completed->contains("result"));
  ASSERT_TRUE(completed->at("result").is_object());
  ASSERT_TRUE(completed->at("result").contains("score"));
  EXPECT_EQ(completed->at("result").at("score"), 3.125);
}

// ---- 94 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, failed_terminal_event_contains_error) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "fail", {},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::failed("disk full"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto msgs = h->drain();
  const json* failed = nullptr;
  for (const auto& m : msgs)
    if (!failed && str_field(m, "kind") == "failed") failed = &m;
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(str_field(*failed, "error"), std::optional<std::string>("disk full"));
}

// ---- 95 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, inbox_closed_after_agent_completes) {
  auto h = manager_with_store();
  auto id = h->manager->spawn_agent("thread-1", std::optional<std::string_view>("ephemeral"), "short-lived", {},
                                    [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> {
                                      co_return TaskResult::success("bye");
                                    });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto result = h->manager->send_task_inbox_message(*id, "thread-1", "parent", "hello?");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::TaskTerminated));
}

// ---- 96 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, cancel_all_during_concurrent_emits) {
  auto h = manager_with_store_and_inbox();
  for (int i = 0; i < 5; ++i) {
    auto id = h->manager->spawn("thread-1", "worker", std::nullopt, "worker-" + std::to_string(i), {},
                                [i](TaskContext ctx) -> Co<TaskResult> {
                                  for (;;) {
                                    if (ctx.is_cancelled()) co_return TaskResult::cancelled();
                                    ctx.emit("heartbeat", json{{"worker", i}});
                                    co_await sleep_for(ctx.executor(), 5);
                                  }
                                });
    ASSERT_TRUE(id.ok());
  }
  h->run_for(30);
  EXPECT_EQ(h->manager->cancel_all("thread-1"), 5u);
  h->run_for(50);
  EXPECT_FALSE(h->manager->has_running("thread-1"));
  auto msgs = h->drain();
  EXPECT_EQ(count_kind(msgs, "cancelled"), 5u) << "each task should emit Cancelled";
}

// ---- 97 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, nested_spawn_agent_events_flow) {
  auto h = manager_with_store_and_inbox();
  Executor* exec = &h->exec;
  auto id = h->manager->spawn_agent(
      "thread-1", std::optional<std::string_view>("outer"), "outer agent", {},
      [exec](CancellationToken, InboxSender child_inbox, InboxReceiver) -> Co<TaskResult> {
        auto inner_manager = std::make_shared<BackgroundTaskManager>(*exec);
        EXPECT_TRUE(inner_manager->set_store(std::make_shared<StateStore>()).ok());
        child_inbox.send(json{{"from", "outer"}, {"status", "working"}});
        co_await sleep_for(*exec, 20);
        co_return TaskResult::success(json{{"outer", "done"}});
      });
  ASSERT_TRUE(id.ok());
  h->run_for(100);
  auto msgs = h->drain();
  EXPECT_TRUE(any_kind(msgs, "completed")) << "parent should receive outer agent completion";
}

// ---- 98 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, get_reads_from_state_store) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "store check", {},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json{{"x", 1}}); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto summary = h->manager->get(*id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(S(summary->status), S(TaskStatus::Completed));
  ASSERT_TRUE(summary->result.has_value());
  EXPECT_EQ((*summary->result)["x"], 1);
  auto list = h->manager->list("thread-1");
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].task_id, *id);
}

// ---- 99 ---------------------------------------------------------------------------------------
TEST(AwakenSeed, unnamed_task_addressable_by_id_only) {
  auto h = manager_with_store();
  Executor* exec = &h->exec;
  auto id = h->manager->spawn_agent(
      "thread-1", std::nullopt, "unnamed worker", {},
      [exec](CancellationToken cancel, InboxSender, InboxReceiver r) -> Co<TaskResult> {
        co_await sleep_for(*exec, 100);
        if (r.try_recv().has_value()) co_return TaskResult::success(true);
        co_await cancel.cancelled();
        co_return TaskResult::cancelled();
      });
  ASSERT_TRUE(id.ok());
  auto r1 = h->manager->send_task_inbox_message(*id, "thread-1", "parent", "by-id");
  EXPECT_TRUE(r1.ok()) << r1.error().message;
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->description, "unnamed worker");
  h->run_for(200);
}

// ---- 100 --------------------------------------------------------------------------------------
TEST(AwakenSeed, empty_message_delivers) {
  auto h = manager_with_store();
  auto id = h->manager->spawn_agent("thread-1", std::optional<std::string_view>("worker"), "w", {},
                                    [](CancellationToken cancel, InboxSender, InboxReceiver) -> Co<TaskResult> {
                                      co_await cancel.cancelled();
                                      co_return TaskResult::cancelled();
                                    });
  ASSERT_TRUE(id.ok());
  auto r = h->manager->send_task_inbox_message(*id, "thread-1", "parent", "");
  EXPECT_TRUE(r.ok()) << "empty message should deliver";
  h->manager->cancel(*id);
}

// ---- 101 --------------------------------------------------------------------------------------
TEST(AwakenSeed, result_persists_after_handle_dropped) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "compute", std::nullopt, "ephemeral", {},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json{{"answer", 42}}); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  ASSERT_TRUE(task->result.has_value());
  EXPECT_EQ((*task->result)["answer"], 42);
  EXPECT_TRUE(task->completed_at_ms.has_value());
}
