// awaken's tests of persistence: the plugin, its store keys and phase hooks, snapshots and their
// reducers, restore, run_start/run_end, and completion commits that fail.
//
// These are awaken's tests by name: each is TEST(AwakenSeed, <awaken's test name>), its body a
// translation of awaken's (awaken_seed_support.hpp lists the translations common to all);
// docs/awaken-differences.md explains where bgtasks and awaken differ.

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "awaken_seed_support.hpp"

namespace {
using namespace bgtasks;
using namespace bgtasks::testing;
}  // namespace

// The registry is read through StateStore::registry() (awaken locks store.registry).
TEST(AwakenSeed, plugin_registers_key) {
  auto h = bare_harness();
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  auto installed = h->store->install_plugin(BackgroundTaskPlugin(h->manager));
  ASSERT_TRUE(installed.ok()) << installed.error().message;

  const auto& registry = h->store->registry();
  EXPECT_TRUE(registry.keys_by_name.count("background_tasks") != 0);
  EXPECT_TRUE(registry.keys_by_name.count("background_task_state") != 0);
}

TEST(AwakenSeed, plugin_registers_cancel_task_tool) {
  auto h = bare_harness();
  std::shared_ptr<Plugin> plugin = std::make_shared<BackgroundTaskPlugin>(h->manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  ASSERT_TRUE(env.ok()) << env.error().message;
  EXPECT_TRUE(env->tools.count("cancel_task") != 0);
}

// PhaseRuntime::create is awaken's PhaseRuntime::new.
TEST(AwakenSeed, run_start_restores_persisted_metadata_into_manager) {
  auto h = std::make_unique<Harness>();
  auto runtime = PhaseRuntime::create(h->store);
  ASSERT_TRUE(runtime.ok()) << runtime.error().message;
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  std::shared_ptr<Plugin> plugin = std::make_shared<BackgroundTaskPlugin>(h->manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  ASSERT_TRUE(env.ok()) << env.error().message;
  ASSERT_TRUE(h->store->register_keys(env->key_registrations).ok());

  std::unordered_map<TaskId, PersistedTaskMeta> persisted;
  persisted.emplace("bg_restored",
                    meta_of("bg_restored", "thread-restore", "shell", "restored", TaskStatus::Completed, 100, 200));
  auto patch = h->store->begin_mutation();
  patch.update<BackgroundTaskStateKey>(BackgroundTaskStateAction::replace_all(std::move(persisted)));
  ASSERT_TRUE(h->store->commit(std::move(patch)).ok());

  auto ctx =
      PhaseContext(Phase::RunStart, h->store->snapshot()).with_run_identity(RunIdentity::for_thread("thread-restore"));
  auto ran = runtime->run_phase_with_context(*env, ctx);
  ASSERT_TRUE(ran.ok()) << ran.error().message;

  auto restored = h->manager->list("thread-restore");
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_EQ(restored[0].task_id, "bg_restored");
  EXPECT_EQ(restored[0].status, TaskStatus::Completed);
}

// reduce(snapshot, action) is a free function.
TEST(AwakenSeed, background_task_state_snapshot_reduce_upsert) {
  BackgroundTaskStateSnapshot snapshot;
  reduce(snapshot, BackgroundTaskStateAction::upsert(
                       meta_of("bg_0", "t", "shell", "build", TaskStatus::Running, 100, std::nullopt)));
  ASSERT_EQ(snapshot.tasks.size(), 1u);
  EXPECT_EQ(snapshot.tasks.at("bg_0").status, TaskStatus::Running);

  reduce(snapshot,
         BackgroundTaskStateAction::upsert(meta_of("bg_0", "t", "shell", "build", TaskStatus::Completed, 100, 200)));
  ASSERT_EQ(snapshot.tasks.size(), 1u);
  EXPECT_EQ(snapshot.tasks.at("bg_0").status, TaskStatus::Completed);
}

TEST(AwakenSeed, background_task_state_snapshot_reduce_replace_all) {
  BackgroundTaskStateSnapshot snapshot;
  reduce(snapshot,
         BackgroundTaskStateAction::upsert(meta_of("old", "t", "shell", "old task", TaskStatus::Cancelled, 50, 60)));

  std::unordered_map<TaskId, PersistedTaskMeta> new_tasks;
  new_tasks.emplace("new", meta_of("new", "t", "http", "new task", TaskStatus::Running, 100, std::nullopt));
  reduce(snapshot, BackgroundTaskStateAction::replace_all(std::move(new_tasks)));

  EXPECT_EQ(snapshot.tasks.size(), 1u);
  EXPECT_EQ(snapshot.tasks.count("old"), 0u);
  EXPECT_EQ(snapshot.tasks.count("new"), 1u);
}

// TaskViewEntry::status is the status string (as_str) in types.hpp, not the enum.
TEST(AwakenSeed, background_task_view_reduce_replace) {
  BackgroundTaskView view;
  std::unordered_map<TaskId, TaskViewEntry> tasks;
  tasks.emplace("t1", TaskViewEntry{"shell", "build", as_str(TaskStatus::Running)});
  reduce(view, BackgroundTaskViewAction::replace(std::move(tasks)));

  ASSERT_EQ(view.tasks.size(), 1u);
  EXPECT_EQ(view.tasks.at("t1").task_type, "shell");
}

// TaskViewEntry::status is the status string (as_str) in types.hpp, not the enum.
TEST(AwakenSeed, background_task_view_reduce_clear) {
  BackgroundTaskView view;
  view.tasks.emplace("t1", TaskViewEntry{"shell", "build", as_str(TaskStatus::Running)});
  reduce(view, BackgroundTaskViewAction::clear());
  EXPECT_TRUE(view.tasks.empty());
}

TEST(AwakenSeed, manager_persisted_snapshot_includes_all_tasks) {
  auto h = manager_with_store();
  auto id1 = h->manager->spawn("thread-1", "shell", std::nullopt, "build", TaskParentContext{},
                               [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_TRUE(id1.ok());
  auto id2 = h->manager->spawn("thread-2", "http", std::nullopt, "fetch", TaskParentContext{},
                               [](TaskContext) -> Co<TaskResult> { co_return TaskResult::failed("timeout"); });
  ASSERT_TRUE(id2.ok());
  h->run_for(50);

  auto snapshot = h->manager->persisted_snapshot();
  EXPECT_EQ(snapshot.tasks.size(), 2u);
  for (const auto& [id, meta] : snapshot.tasks) {
    EXPECT_TRUE(is_terminal(meta.status)) << id;
  }
}

TEST(AwakenSeed, manager_restore_skips_existing_live_tasks) {
  auto h = manager_with_store();
  auto live_id = h->manager->spawn("thread-1", "shell", std::nullopt, "live task", TaskParentContext{}, wait_cancelled);
  ASSERT_TRUE(live_id.ok());

  BackgroundTaskStateSnapshot snapshot;
  snapshot.tasks.emplace(*live_id,
                         meta_of(*live_id, "thread-1", "shell", "stale restore", TaskStatus::Completed, 1, 2));
  auto restored_only = meta_of("bg_999", "thread-1", "http", "restored only", TaskStatus::Failed, 10, 20);
  restored_only.error = "err";
  snapshot.tasks.emplace("bg_999", restored_only);

  h->manager->restore_for_thread("thread-1", snapshot);

  auto live = h->manager->get(*live_id);
  ASSERT_TRUE(live.has_value());
  EXPECT_EQ(live->status, TaskStatus::Running);
  EXPECT_EQ(live->description, "live task");

  auto restored = h->manager->get("bg_999");
  ASSERT_TRUE(restored.has_value());
  EXPECT_EQ(restored->status, TaskStatus::Failed);
  EXPECT_EQ(restored->error, std::optional<std::string>("err"));

  h->manager->cancel(*live_id);
}

TEST(AwakenSeed, run_end_persists_task_state) {
  auto h = std::make_unique<Harness>();
  auto runtime = PhaseRuntime::create(h->store);
  ASSERT_TRUE(runtime.ok()) << runtime.error().message;
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  std::shared_ptr<Plugin> plugin = std::make_shared<BackgroundTaskPlugin>(h->manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  ASSERT_TRUE(env.ok()) << env.error().message;
  ASSERT_TRUE(h->store->register_keys(env->key_registrations).ok());

  auto id = h->manager->spawn("thread-persist", "shell", std::nullopt, "compile", TaskParentContext{},
                              [](TaskContext) -> Co<TaskResult> {
                                co_return TaskResult::success(json{{"status", "ok"}});
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto ctx =
      PhaseContext(Phase::RunEnd, h->store->snapshot()).with_run_identity(RunIdentity::for_thread("thread-persist"));
  auto ran = runtime->run_phase_with_context(*env, ctx);
  ASSERT_TRUE(ran.ok()) << ran.error().message;

  auto snap = h->store->snapshot();
  const auto* bg_state = snap.get<BackgroundTaskStateKey>();
  ASSERT_NE(bg_state, nullptr);
  ASSERT_FALSE(bg_state->tasks.empty());
  const auto& meta = bg_state->tasks.begin()->second;
  EXPECT_EQ(meta.task_type, "shell");
  EXPECT_EQ(meta.status, TaskStatus::Completed);
}

// As in awaken despite the name, the running task is included in the snapshot.
TEST(AwakenSeed, persisted_snapshot_excludes_running_tasks) {
  auto h = manager_with_store();
  auto completed_id = h->manager->spawn("t", "shell", std::nullopt, "done-task", TaskParentContext{},
                                        [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_TRUE(completed_id.ok());
  auto running_id = h->manager->spawn("t", "http", std::nullopt, "running-task", TaskParentContext{}, wait_cancelled);
  ASSERT_TRUE(running_id.ok());
  h->run_for(50);

  auto snapshot = h->manager->persisted_snapshot();
  EXPECT_EQ(snapshot.tasks.size(), 2u);
  auto it = snapshot.tasks.find(*running_id);
  ASSERT_NE(it, snapshot.tasks.end());
  EXPECT_EQ(it->second.status, TaskStatus::Running);
  EXPECT_FALSE(it->second.completed_at_ms.has_value());
  auto terminal_count = std::count_if(snapshot.tasks.begin(), snapshot.tasks.end(),
                                      [](const auto& kv) { return is_terminal(kv.second.status); });
  EXPECT_EQ(terminal_count, 1);

  h->manager->cancel(*running_id);
}

TEST(AwakenSeed, restore_updates_counter_correctly) {
  auto h = manager_with_store();
  BackgroundTaskStateSnapshot snapshot;
  for (int n : {5, 10}) {
    const std::string id = "bg_" + std::to_string(n);
    snapshot.tasks.emplace(id,
                           meta_of(id, "t", "shell", "restored-" + std::to_string(n), TaskStatus::Completed, 100, 200));
  }
  h->manager->restore_for_thread("t", snapshot);

  auto new_id = h->manager->spawn("t", "test", std::nullopt, "new-after-restore", TaskParentContext{},
                                  [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_TRUE(new_id.ok());
  EXPECT_EQ(*new_id, "bg_11");
  EXPECT_EQ(h->manager->list("t").size(), 3u);
}

TEST(AwakenSeed, persisted_snapshot_includes_result_value) {
  auto h = manager_with_store();
  auto id =
      h->manager->spawn("t", "shell", std::nullopt, "build", TaskParentContext{}, [](TaskContext) -> Co<TaskResult> {
        co_return TaskResult::success(json{{"exit_code", 0}});
      });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto snapshot = h->manager->persisted_snapshot();
  auto it = snapshot.tasks.find(*id);
  ASSERT_NE(it, snapshot.tasks.end());
  EXPECT_EQ(it->second.status, TaskStatus::Completed);
  ASSERT_TRUE(it->second.result.has_value());
  EXPECT_EQ(it->second.result->at("exit_code"), 0);
}

TEST(AwakenSeed, plugin_descriptor_returns_correct_name) {
  ManualClock clock;
  Executor exec(clock);
  auto manager = std::make_shared<BackgroundTaskManager>(exec);
  BackgroundTaskPlugin plugin(manager);
  auto desc = plugin.descriptor();
  EXPECT_EQ(desc.name, "background_tasks");
}

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

// awaken's 2 s wall-clock wait loop is at most 200 steps of run_for(10) on the manual clock.
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

// metrics::with_local_recorder + DebuggingRecorder are metrics::LocalRecorderScope + Recorder; no
// separate tokio runtime: the harness executor is single-threaded already.
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
