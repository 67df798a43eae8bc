// awaken seed tests, part A: the first 50 test functions of
// awaken's background-task tests (crates/awaken-runtime/src/extensions/background/), in file order.
//
// awaken test name → our test (TEST(AwakenSeed, <same name>)); a line under a name says why ours
// differs. Common to all: `tokio::time::sleep(N)` in a test is `h->run_for(N)` on the manual clock;
// `serde_json::to_string`/`from_str` is `dump(to_json(x))` / `meta_from_json`/`summary_from_json`
// (codec.hpp); `persisted_snapshot().len()` is `.tasks.size()`; Rust asserts inside a body are
// EXPECTs inside the coroutine plus a flag checked afterwards (a body must have run).
//
//  1 task_status_terminal_check → task_status_terminal_check
//  2 task_status_as_str → task_status_as_str
//  3 task_result_status → task_result_status
//  4 manager_spawn_and_list → manager_spawn_and_list
//  5 manager_task_completes → manager_task_completes
//  6 manager_task_fails → manager_task_fails
//  7 manager_cancel → manager_cancel
//      cancel comes before the body's first poll (spawn never runs the body); a
//      not-yet-started body is live, so cancel says true (docs/behaviour.md).
//  8 manager_cancel_nonexistent → manager_cancel_nonexistent
//  9 manager_cancel_tree_cascades_to_descendants → manager_cancel_tree_cascades_to_descendants
// 10 spawn_agent_with_context_exposes_task_id → spawn_agent_with_context_exposes_task_id
// 11 plugin_registers_key → plugin_registers_key
//      registry read through StateStore::registry() (awaken locks store.registry).
// 12 plugin_registers_cancel_task_tool → plugin_registers_cancel_task_tool
// 13 run_start_restores_persisted_metadata_into_manager → (same)
//      PhaseRuntime::create is awaken's PhaseRuntime::new.
// 14 persisted_task_meta_from_summary → persisted_task_meta_from_summary
// 15 persisted_task_meta_serde_roundtrip → persisted_task_meta_serde_roundtrip
// 16 background_task_state_snapshot_reduce_upsert → (same); free reduce(snapshot, action).
// 17 background_task_state_snapshot_reduce_replace_all → (same)
// 18 background_task_view_reduce_replace → background_task_view_reduce_replace
//      TaskViewEntry::status is the status string (as_str) in types.hpp, not the enum.
// 19 background_task_view_reduce_clear → background_task_view_reduce_clear (same note as 18)
// 20 cancellation_token_check → cancellation_token_check
// 21 manager_multiple_concurrent_tasks → manager_multiple_concurrent_tasks
// 22 manager_get_nonexistent_returns_none → manager_get_nonexistent_returns_none
// 23 manager_cancel_already_completed_returns_false → (same)
// 24 manager_task_result_retrieval_after_success → (same)
// 25 manager_persisted_snapshot_includes_all_tasks → (same)
// 26 manager_restore_skips_existing_live_tasks → (same)
// 27 manager_task_ids_are_sequential → manager_task_ids_are_sequential
// 28 run_end_persists_task_state → run_end_persists_task_state
// 29 manager_task_status_transitions_correctly → (same)
// 30 manager_concurrent_spawn_and_cancel → manager_concurrent_spawn_and_cancel
// 31 persisted_snapshot_excludes_running_tasks → (same; running task included, as in awaken)
// 32 restore_updates_counter_correctly → restore_updates_counter_correctly
// 33 task_summary_serde_roundtrip → task_summary_serde_roundtrip
// 34 spawn_with_parent_context_preserves_lineage → (same)
// 35 spawn_with_default_parent_context_inherits_ambient_tool_lineage → (same)
//      scope_tool_lineage_context(lineage, fut) is a ToolLineageScope around the spawn.
// 36 nested_spawn_inherits_parent_task_id_from_ambient_task_context → (same)
//      the body holds a raw manager pointer, not an Arc clone (no manager→body→manager cycle).
// 37 persisted_task_meta_with_parent_context_serde_roundtrip → (same)
// 38 persisted_task_meta_without_parent_context_deserializes_default → (same)
// 39 persisted_task_meta_result_field_roundtrip → (same)
// 40 persisted_task_meta_result_none_omitted_in_json → (same)
// 41 task_parent_context_is_empty → task_parent_context_is_empty
// 42 task_summary_with_empty_parent_context_omits_field_in_json → (same)
// 43 task_summary_with_parent_context_includes_field_in_json → (same)
// 44 persisted_snapshot_includes_result_value → persisted_snapshot_includes_result_value
// 45 task_context_provides_inbox_sender → task_context_provides_inbox_sender
// 46 task_context_inbox_is_none_by_default → task_context_inbox_is_none_by_default
// 47 task_completion_sends_terminal_event_to_inbox → (same)
// 48 on_closed_fires_when_inbox_receiver_dropped → (same)
//      OnInboxClosed is a std::function (inbox.hpp), not a trait object; drop(rx) is rx's destructor.
// 49 custom_and_terminal_events_arrive_in_inbox → (same)
// 50 task_context_emit_delivers_structured_custom_event → (same)

#include <algorithm>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <unordered_map>
#include <vector>

#include <gtest/gtest.h>

#include "bgtasks/bgtasks.hpp"
#include "support.hpp"

namespace bgtasks {
// Readable gtest output for statuses (internal linkage: no clash with other test files).
static void PrintTo(TaskStatus s, std::ostream* os) { *os << as_str(s); }
}  // namespace bgtasks

namespace {

using namespace bgtasks;
using bgtasks::testing::Harness;
using bgtasks::testing::manager_with_store;
using bgtasks::testing::manager_with_store_and_inbox;
using bgtasks::testing::wait_cancelled;


PersistedTaskMeta meta_of(std::string id, std::string owner, std::string task_type, std::string description,
                          TaskStatus status, std::uint64_t created, std::optional<std::uint64_t> completed) {
  PersistedTaskMeta m;
  m.task_id = std::move(id);
  m.owner_thread_id = std::move(owner);
  m.task_type = std::move(task_type);
  m.description = std::move(description);
  m.status = status;
  m.created_at_ms = created;
  m.completed_at_ms = completed;
  return m;
}

// A harness like awaken's hand-built setups (no fixture keys registered yet).
std::unique_ptr<Harness> bare_harness() {
  auto h = std::make_unique<Harness>();
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  return h;
}

std::optional<std::string> kind_of(const json& m) {
  if (!m.is_object()) return std::nullopt;
  auto it = m.find("kind");
  if (it == m.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

bool any_kind(const std::vector<json>& msgs, const std::string& kind) {
  return std::any_of(msgs.begin(), msgs.end(), [&](const json& m) { return kind_of(m) == kind; });
}

std::string dump_all(const std::vector<json>& msgs) { return json(msgs).dump(); }

}  // namespace

// 1
TEST(AwakenSeed, task_status_terminal_check) {
  EXPECT_FALSE(is_terminal(TaskStatus::Running));
  EXPECT_TRUE(is_terminal(TaskStatus::Completed));
  EXPECT_TRUE(is_terminal(TaskStatus::Failed));
  EXPECT_TRUE(is_terminal(TaskStatus::Cancelled));
}

// 2
TEST(AwakenSeed, task_status_as_str) {
  EXPECT_STREQ(as_str(TaskStatus::Running), "running");
  EXPECT_STREQ(as_str(TaskStatus::Completed), "completed");
  EXPECT_STREQ(as_str(TaskStatus::Failed), "failed");
  EXPECT_STREQ(as_str(TaskStatus::Cancelled), "cancelled");
}

// 3
TEST(AwakenSeed, task_result_status) {
  EXPECT_EQ(TaskResult::success(nullptr).status(), TaskStatus::Completed);
  EXPECT_EQ(TaskResult::failed("err").status(), TaskStatus::Failed);
  EXPECT_EQ(TaskResult::cancelled().status(), TaskStatus::Cancelled);
}

// 4
TEST(AwakenSeed, manager_spawn_and_list) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "my task", TaskParentContext{}, wait_cancelled);
  ASSERT_TRUE(id.ok());

  auto tasks = h->manager->list("thread-1");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].task_type, "test");
  EXPECT_EQ(tasks[0].description, "my task");
  EXPECT_EQ(tasks[0].status, TaskStatus::Running);

  EXPECT_TRUE(h->manager->list("thread-2").empty());
}

// 5
TEST(AwakenSeed, manager_task_completes) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "fast task", TaskParentContext{},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json{{"answer", 42}}); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto summary = h->manager->get(*id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Completed);
  EXPECT_TRUE(summary->completed_at_ms.has_value());
  ASSERT_TRUE(summary->result.has_value());
  EXPECT_EQ(summary->result->at("answer"), 42);
}

// 6
TEST(AwakenSeed, manager_task_fails) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "failing task", TaskParentContext{},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::failed("oops"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto summary = h->manager->get(*id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Failed);
  EXPECT_EQ(summary->error, std::optional<std::string>("oops"));
}

// 7
TEST(AwakenSeed, manager_cancel) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "cancellable", TaskParentContext{}, wait_cancelled);
  ASSERT_TRUE(id.ok());

  EXPECT_TRUE(h->manager->cancel(*id));
  h->run_for(50);

  auto summary = h->manager->get(*id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Cancelled);
}

// 8
TEST(AwakenSeed, manager_cancel_nonexistent) {
  auto h = manager_with_store();
  EXPECT_FALSE(h->manager->cancel("nonexistent"));
}

// 9
TEST(AwakenSeed, manager_cancel_tree_cascades_to_descendants) {
  auto h = manager_with_store();
  auto parent_id = h->manager->spawn("thread-1", "root_task", "root-task", "parent task", TaskParentContext{},
                                     wait_cancelled);
  ASSERT_TRUE(parent_id.ok());

  TaskParentContext child_parent;
  child_parent.task_id = *parent_id;
  auto child_id = h->manager->spawn("thread-1", "child", "child", "child task", child_parent, wait_cancelled);
  ASSERT_TRUE(child_id.ok());

  TaskParentContext grandchild_parent;
  grandchild_parent.task_id = *child_id;
  auto grandchild_id =
      h->manager->spawn("thread-1", "grandchild", "grandchild", "grandchild task", grandchild_parent, wait_cancelled);
  ASSERT_TRUE(grandchild_id.ok());

  EXPECT_EQ(h->manager->cancel_tree(*parent_id), 3u);
  h->run_for(50);

  for (const auto& id : {*parent_id, *child_id, *grandchild_id}) {
    auto s = h->manager->get(id);
    ASSERT_TRUE(s.has_value()) << id;
    EXPECT_EQ(s->status, TaskStatus::Cancelled) << id;
  }
}

// 10
TEST(AwakenSeed, spawn_agent_with_context_exposes_task_id) {
  auto h = manager_with_store();
  auto seen = std::make_shared<std::optional<std::string>>();
  auto task_id = h->manager->spawn_agent_with_context(
      "thread-1", "worker", "worker", TaskParentContext{}, [seen](AgentTaskContext ctx) -> Co<TaskResult> {
        *seen = ctx.task_id();
        ctx.cancel_token().cancel();
        co_return TaskResult::cancelled();
      });
  ASSERT_TRUE(task_id.ok());
  h->run_for(50);

  EXPECT_EQ(*seen, std::optional<std::string>(*task_id));
}

// 11
TEST(AwakenSeed, plugin_registers_key) {
  auto h = bare_harness();
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  auto installed = h->store->install_plugin(BackgroundTaskPlugin(h->manager));
  ASSERT_TRUE(installed.ok()) << installed.error().message;

  const auto& registry = h->store->registry();
  EXPECT_TRUE(registry.keys_by_name.count("background_tasks") != 0);
  EXPECT_TRUE(registry.keys_by_name.count("background_task_state") != 0);
}

// 12
TEST(AwakenSeed, plugin_registers_cancel_task_tool) {
  auto h = bare_harness();
  std::shared_ptr<Plugin> plugin = std::make_shared<BackgroundTaskPlugin>(h->manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  ASSERT_TRUE(env.ok()) << env.error().message;
  EXPECT_TRUE(env->tools.count("cancel_task") != 0);
}

// 13
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
  persisted.emplace("bg_restored", meta_of("bg_restored", "thread-restore", "shell", "restored",
                                           TaskStatus::Completed, 100, 200));
  auto patch = h->store->begin_mutation();
  patch.update<BackgroundTaskStateKey>(BackgroundTaskStateAction::replace_all(std::move(persisted)));
  ASSERT_TRUE(h->store->commit(std::move(patch)).ok());

  auto ctx = PhaseContext(Phase::RunStart, h->store->snapshot())
                 .with_run_identity(RunIdentity::for_thread("thread-restore"));
  auto ran = runtime->run_phase_with_context(*env, ctx);
  ASSERT_TRUE(ran.ok()) << ran.error().message;

  auto restored = h->manager->list("thread-restore");
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_EQ(restored[0].task_id, "bg_restored");
  EXPECT_EQ(restored[0].status, TaskStatus::Completed);
}

// 14
TEST(AwakenSeed, persisted_task_meta_from_summary) {
  TaskSummary summary;
  summary.task_id = "bg_0";
  summary.task_type = "shell";
  summary.description = "build project";
  summary.status = TaskStatus::Completed;
  summary.result = json{{"ok", true}};
  summary.created_at_ms = 1000;
  summary.completed_at_ms = 2000;

  auto meta = PersistedTaskMeta::from_summary(summary, "thread-1");
  EXPECT_EQ(meta.task_id, "bg_0");
  EXPECT_EQ(meta.owner_thread_id, "thread-1");
  EXPECT_EQ(meta.task_type, "shell");
  EXPECT_EQ(meta.status, TaskStatus::Completed);
  EXPECT_EQ(meta.completed_at_ms, std::optional<std::uint64_t>(2000));
  EXPECT_EQ(meta.result, std::optional<json>(json{{"ok", true}}));
}

// 15
TEST(AwakenSeed, persisted_task_meta_serde_roundtrip) {
  auto meta = meta_of("bg_1", "t", "http", "fetch data", TaskStatus::Failed, 100, 200);
  meta.error = "timeout";

  const std::string text = dump(to_json(meta));
  auto decoded = meta_from_json(json::parse(text));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded.value(), meta);
}

// 16
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

// 17
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

// 18
TEST(AwakenSeed, background_task_view_reduce_replace) {
  BackgroundTaskView view;
  std::unordered_map<TaskId, TaskViewEntry> tasks;
  tasks.emplace("t1", TaskViewEntry{"shell", "build", as_str(TaskStatus::Running)});
  reduce(view, BackgroundTaskViewAction::replace(std::move(tasks)));

  ASSERT_EQ(view.tasks.size(), 1u);
  EXPECT_EQ(view.tasks.at("t1").task_type, "shell");
}

// 19
TEST(AwakenSeed, background_task_view_reduce_clear) {
  BackgroundTaskView view;
  view.tasks.emplace("t1", TaskViewEntry{"shell", "build", as_str(TaskStatus::Running)});
  reduce(view, BackgroundTaskViewAction::clear());
  EXPECT_TRUE(view.tasks.empty());
}

// 20
TEST(AwakenSeed, cancellation_token_check) {
  auto [handle, token] = CancellationToken::new_pair();
  EXPECT_FALSE(token.is_cancelled());
  handle.cancel();
  EXPECT_TRUE(token.is_cancelled());
}

// 21
TEST(AwakenSeed, manager_multiple_concurrent_tasks) {
  auto h = manager_with_store();
  auto id1 = h->manager->spawn("thread-1", "shell", std::nullopt, "task A", TaskParentContext{}, wait_cancelled);
  ASSERT_TRUE(id1.ok());
  auto id2 = h->manager->spawn("thread-1", "http", std::nullopt, "task B", TaskParentContext{}, wait_cancelled);
  ASSERT_TRUE(id2.ok());
  auto id3 = h->manager->spawn("thread-1", "shell", std::nullopt, "task C", TaskParentContext{},
                               [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success("done"); });
  ASSERT_TRUE(id3.ok());
  h->run_for(50);

  EXPECT_EQ(h->manager->list("thread-1").size(), 3u);
  auto s1 = h->manager->get(*id1);
  ASSERT_TRUE(s1.has_value());
  EXPECT_EQ(s1->status, TaskStatus::Running);
  auto s2 = h->manager->get(*id2);
  ASSERT_TRUE(s2.has_value());
  EXPECT_EQ(s2->status, TaskStatus::Running);
  auto s3 = h->manager->get(*id3);
  ASSERT_TRUE(s3.has_value());
  EXPECT_EQ(s3->status, TaskStatus::Completed);

  EXPECT_TRUE(h->manager->cancel(*id1));
  EXPECT_TRUE(h->manager->cancel(*id2));
}

// 22
TEST(AwakenSeed, manager_get_nonexistent_returns_none) {
  auto h = manager_with_store();
  EXPECT_FALSE(h->manager->get("does_not_exist").has_value());
}

// 23
TEST(AwakenSeed, manager_cancel_already_completed_returns_false) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "fast", TaskParentContext{},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(true); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto s = h->manager->get(*id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->status, TaskStatus::Completed);
  EXPECT_FALSE(h->manager->cancel(*id));
}

// 24
TEST(AwakenSeed, manager_task_result_retrieval_after_success) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "result task", TaskParentContext{},
                              [](TaskContext) -> Co<TaskResult> {
                                co_return TaskResult::success(json::parse(R"({"key":"value","nested":[1,2,3]})"));
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto summary = h->manager->get(*id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Completed);
  ASSERT_TRUE(summary->result.has_value());
  const json& result = *summary->result;
  EXPECT_EQ(result.at("key"), "value");
  EXPECT_EQ(result.at("nested").at(0), 1);
  EXPECT_EQ(result.at("nested").at(2), 3);
}

// 25
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

// 26
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

// 27
TEST(AwakenSeed, manager_task_ids_are_sequential) {
  auto h = manager_with_store();
  auto body = [](TaskContext) -> Co<TaskResult> { co_return TaskResult::cancelled(); };
  auto id1 = h->manager->spawn("t", "test", std::nullopt, "a", TaskParentContext{}, body);
  auto id2 = h->manager->spawn("t", "test", std::nullopt, "b", TaskParentContext{}, body);
  auto id3 = h->manager->spawn("t", "test", std::nullopt, "c", TaskParentContext{}, body);
  ASSERT_TRUE(id1.ok());
  ASSERT_TRUE(id2.ok());
  ASSERT_TRUE(id3.ok());
  EXPECT_EQ(*id1, "bg_0");
  EXPECT_EQ(*id2, "bg_1");
  EXPECT_EQ(*id3, "bg_2");
}

// 28
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
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json{{"status", "ok"}}); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto ctx = PhaseContext(Phase::RunEnd, h->store->snapshot())
                 .with_run_identity(RunIdentity::for_thread("thread-persist"));
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

// 29
TEST(AwakenSeed, manager_task_status_transitions_correctly) {
  auto h = manager_with_store();
  auto running_id = h->manager->spawn("t", "test", std::nullopt, "blocks", TaskParentContext{}, wait_cancelled);
  ASSERT_TRUE(running_id.ok());
  auto summary = h->manager->get(*running_id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Running);

  auto success_id = h->manager->spawn("t", "test", std::nullopt, "succeeds", TaskParentContext{},
                                      [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success("ok"); });
  ASSERT_TRUE(success_id.ok());
  h->run_for(50);
  summary = h->manager->get(*success_id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Completed);
  EXPECT_TRUE(summary->completed_at_ms.has_value());

  auto fail_id = h->manager->spawn("t", "test", std::nullopt, "fails", TaskParentContext{},
                                   [](TaskContext) -> Co<TaskResult> { co_return TaskResult::failed("boom"); });
  ASSERT_TRUE(fail_id.ok());
  h->run_for(50);
  summary = h->manager->get(*fail_id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Failed);
  EXPECT_EQ(summary->error, std::optional<std::string>("boom"));
  EXPECT_TRUE(summary->completed_at_ms.has_value());

  summary = h->manager->get(*running_id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Running);

  h->manager->cancel(*running_id);
}

// 30
TEST(AwakenSeed, manager_concurrent_spawn_and_cancel) {
  auto h = manager_with_store();
  std::vector<TaskId> blocking_ids;
  for (int i = 0; i < 3; ++i) {
    auto id = h->manager->spawn("t", "test", std::nullopt, "blocking-" + std::to_string(i), TaskParentContext{},
                                wait_cancelled);
    ASSERT_TRUE(id.ok());
    blocking_ids.push_back(*id);
  }
  std::vector<TaskId> completing_ids;
  for (int i = 0; i < 2; ++i) {
    auto id = h->manager->spawn("t", "test", std::nullopt, "completing-" + std::to_string(i), TaskParentContext{},
                                [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success("done"); });
    ASSERT_TRUE(id.ok());
    completing_ids.push_back(*id);
  }
  h->run_for(50);

  for (const auto& id : blocking_ids) EXPECT_TRUE(h->manager->cancel(id)) << id;
  h->run_for(50);

  for (const auto& id : completing_ids) {
    auto s = h->manager->get(id);
    ASSERT_TRUE(s.has_value()) << id;
    EXPECT_EQ(s->status, TaskStatus::Completed) << id;
  }
  for (const auto& id : blocking_ids) {
    auto s = h->manager->get(id);
    ASSERT_TRUE(s.has_value()) << id;
    EXPECT_EQ(s->status, TaskStatus::Cancelled) << id;
  }

  auto all = h->manager->list("t");
  EXPECT_EQ(all.size(), 5u);
  EXPECT_EQ(std::count_if(all.begin(), all.end(), [](const TaskSummary& t) { return t.status == TaskStatus::Completed; }),
            2);
  EXPECT_EQ(std::count_if(all.begin(), all.end(), [](const TaskSummary& t) { return t.status == TaskStatus::Cancelled; }),
            3);
}

// 31
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

// 32
TEST(AwakenSeed, restore_updates_counter_correctly) {
  auto h = manager_with_store();
  BackgroundTaskStateSnapshot snapshot;
  for (int n : {5, 10}) {
    const std::string id = "bg_" + std::to_string(n);
    snapshot.tasks.emplace(id, meta_of(id, "t", "shell", "restored-" + std::to_string(n), TaskStatus::Completed, 100,
                                       200));
  }
  h->manager->restore_for_thread("t", snapshot);

  auto new_id = h->manager->spawn("t", "test", std::nullopt, "new-after-restore", TaskParentContext{},
                                  [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_TRUE(new_id.ok());
  EXPECT_EQ(*new_id, "bg_11");
  EXPECT_EQ(h->manager->list("t").size(), 3u);
}

// 33
TEST(AwakenSeed, task_summary_serde_roundtrip) {
  TaskSummary summary;
  summary.task_id = "bg_42";
  summary.task_type = "http";
  summary.description = "fetch API data";
  summary.status = TaskStatus::Failed;
  summary.error = "connection refused";
  summary.created_at_ms = 1000;
  summary.completed_at_ms = 2000;

  const std::string text = dump(to_json(summary));
  auto decoded = summary_from_json(json::parse(text));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->task_id, "bg_42");
  EXPECT_EQ(decoded->status, TaskStatus::Failed);
  EXPECT_EQ(decoded->error, std::optional<std::string>("connection refused"));
  EXPECT_FALSE(decoded->result.has_value());
  EXPECT_EQ(decoded->completed_at_ms, std::optional<std::uint64_t>(2000));
}

// 34
TEST(AwakenSeed, spawn_with_parent_context_preserves_lineage) {
  auto h = manager_with_store();
  TaskParentContext ctx;
  ctx.run_id = "run-abc";
  ctx.call_id = "call-xyz";
  ctx.agent_id = "agent-007";
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "lineage task", ctx,
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json{{"ok", true}}); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto summary = h->manager->get(*id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Completed);
  EXPECT_EQ(summary->parent_context.run_id, std::optional<std::string>("run-abc"));
  EXPECT_EQ(summary->parent_context.call_id, std::optional<std::string>("call-xyz"));
  EXPECT_EQ(summary->parent_context.agent_id, std::optional<std::string>("agent-007"));

  auto tasks = h->manager->list("thread-1");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_TRUE(tasks[0].parent_context == ctx);

  auto snapshot = h->manager->persisted_snapshot();
  auto it = snapshot.tasks.find(*id);
  ASSERT_NE(it, snapshot.tasks.end());
  EXPECT_EQ(it->second.parent_context.run_id, std::optional<std::string>("run-abc"));
  EXPECT_EQ(it->second.parent_context.call_id, std::optional<std::string>("call-xyz"));
  EXPECT_EQ(it->second.parent_context.agent_id, std::optional<std::string>("agent-007"));
}

// 35
TEST(AwakenSeed, spawn_with_default_parent_context_inherits_ambient_tool_lineage) {
  auto h = manager_with_store();
  std::optional<TaskId> task_id;
  {
    ToolLineageScope scope(ToolLineageContext{"run-ambient", "call-ambient", "agent-ambient"});
    auto id = h->manager->spawn("thread-1", "test", std::nullopt, "ambient lineage task", TaskParentContext{},
                                [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json{{"ok", true}}); });
    ASSERT_TRUE(id.ok());
    task_id = *id;
  }
  h->run_for(50);

  auto summary = h->manager->get(*task_id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->parent_context.run_id, std::optional<std::string>("run-ambient"));
  EXPECT_EQ(summary->parent_context.call_id, std::optional<std::string>("call-ambient"));
  EXPECT_EQ(summary->parent_context.agent_id, std::optional<std::string>("agent-ambient"));
}

// 36
TEST(AwakenSeed, nested_spawn_inherits_parent_task_id_from_ambient_task_context) {
  auto h = manager_with_store();
  auto child_task_id = std::make_shared<std::optional<std::string>>();
  BackgroundTaskManager* manager = h->manager.get();
  auto root_id = h->manager->spawn(
      "thread-1", "root", "root", "root task", TaskParentContext{},
      [manager, child_task_id](TaskContext ctx) -> Co<TaskResult> {
        auto current = current_background_task_context();
        EXPECT_TRUE(current.has_value()) << "plain background task should expose current task context";
        if (current) {
          EXPECT_EQ(current->task_id, ctx.task_id());
        }
        auto child_id = manager->spawn("thread-1", "child", "child", "child task", TaskParentContext{}, wait_cancelled);
        EXPECT_TRUE(child_id.ok());
        if (child_id.ok()) {
          *child_task_id = *child_id;
        }
        co_await ctx.cancelled();
        co_return TaskResult::cancelled();
      });
  ASSERT_TRUE(root_id.ok());
  h->run_for(50);

  ASSERT_TRUE(child_task_id->has_value()) << "child task id should be recorded";
  const std::string child_id = **child_task_id;
  auto child_summary = h->manager->get(child_id);
  ASSERT_TRUE(child_summary.has_value()) << "child task should be queryable";
  EXPECT_EQ(child_summary->parent_context.task_id, std::optional<std::string>(*root_id));

  EXPECT_EQ(h->manager->cancel_tree(*root_id), 2u);
  h->run_for(50);

  auto root = h->manager->get(*root_id);
  ASSERT_TRUE(root.has_value());
  EXPECT_EQ(root->status, TaskStatus::Cancelled);
  auto child = h->manager->get(child_id);
  ASSERT_TRUE(child.has_value());
  EXPECT_EQ(child->status, TaskStatus::Cancelled);
}

// 37
TEST(AwakenSeed, persisted_task_meta_with_parent_context_serde_roundtrip) {
  auto meta = meta_of("bg_99", "t", "delegation", "delegated work", TaskStatus::Completed, 500, 600);
  meta.parent_context.run_id = "run-123";
  meta.parent_context.agent_id = "agent-a";

  const std::string text = dump(to_json(meta));
  auto decoded = meta_from_json(json::parse(text));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded.value(), meta);
  EXPECT_EQ(decoded->parent_context.run_id, std::optional<std::string>("run-123"));
  EXPECT_FALSE(decoded->parent_context.call_id.has_value());
  EXPECT_EQ(decoded->parent_context.agent_id, std::optional<std::string>("agent-a"));
}

// 38
TEST(AwakenSeed, persisted_task_meta_without_parent_context_deserializes_default) {
  const char* text = R"({
    "task_id": "bg_old",
    "task_type": "shell",
    "description": "legacy task",
    "status": "completed",
    "created_at_ms": 100,
    "completed_at_ms": 200
  })";
  auto decoded = meta_from_json(json::parse(text));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  EXPECT_EQ(decoded->task_id, "bg_old");
  EXPECT_TRUE(decoded->parent_context.is_empty());
  EXPECT_FALSE(decoded->result.has_value());
}

// 39
TEST(AwakenSeed, persisted_task_meta_result_field_roundtrip) {
  auto meta = meta_of("bg_r", "t", "shell", "result test", TaskStatus::Completed, 100, 200);
  meta.result = json{{"output", "built ok"}, {"lines", 42}};

  const std::string text = dump(to_json(meta));
  EXPECT_NE(text.find("\"result\""), std::string::npos) << text;
  auto decoded = meta_from_json(json::parse(text));
  ASSERT_TRUE(decoded.ok()) << decoded.error().message;
  ASSERT_TRUE(decoded->result.has_value());
  EXPECT_EQ(decoded->result->at("output"), "built ok");
  EXPECT_EQ(decoded->result->at("lines"), 42);
}

// 40
TEST(AwakenSeed, persisted_task_meta_result_none_omitted_in_json) {
  auto meta = meta_of("bg_n", "t", "shell", "no result", TaskStatus::Running, 100, std::nullopt);
  const std::string text = dump(to_json(meta));
  EXPECT_EQ(text.find("\"result\""), std::string::npos) << text;
}

// 41
TEST(AwakenSeed, task_parent_context_is_empty) {
  EXPECT_TRUE(TaskParentContext{}.is_empty());
  TaskParentContext t;
  t.task_id = "t";
  EXPECT_FALSE(t.is_empty());
  TaskParentContext r;
  r.run_id = "r";
  EXPECT_FALSE(r.is_empty());
  TaskParentContext c;
  c.call_id = "c";
  EXPECT_FALSE(c.is_empty());
  TaskParentContext a;
  a.agent_id = "a";
  EXPECT_FALSE(a.is_empty());
}

// 42
TEST(AwakenSeed, task_summary_with_empty_parent_context_omits_field_in_json) {
  TaskSummary summary;
  summary.task_id = "bg_0";
  summary.task_type = "test";
  summary.description = "no parent";
  summary.status = TaskStatus::Running;
  summary.created_at_ms = 100;
  const std::string text = dump(to_json(summary));
  EXPECT_EQ(text.find("parent_context"), std::string::npos) << text;
}

// 43
TEST(AwakenSeed, task_summary_with_parent_context_includes_field_in_json) {
  TaskSummary summary;
  summary.task_id = "bg_0";
  summary.task_type = "test";
  summary.description = "with parent";
  summary.status = TaskStatus::Running;
  summary.created_at_ms = 100;
  summary.parent_context.run_id = "run-1";
  const std::string text = dump(to_json(summary));
  EXPECT_NE(text.find("parent_context"), std::string::npos) << text;
  EXPECT_NE(text.find("run-1"), std::string::npos) << text;
}

// 44
TEST(AwakenSeed, persisted_snapshot_includes_result_value) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("t", "shell", std::nullopt, "build", TaskParentContext{},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json{{"exit_code", 0}}); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto snapshot = h->manager->persisted_snapshot();
  auto it = snapshot.tasks.find(*id);
  ASSERT_NE(it, snapshot.tasks.end());
  EXPECT_EQ(it->second.status, TaskStatus::Completed);
  ASSERT_TRUE(it->second.result.has_value());
  EXPECT_EQ(it->second.result->at("exit_code"), 0);
}

// 45
TEST(AwakenSeed, task_context_provides_inbox_sender) {
  auto h = manager_with_store_and_inbox();
  auto had_inbox = std::make_shared<std::optional<bool>>();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "inbox task", TaskParentContext{},
                              [had_inbox](TaskContext ctx) -> Co<TaskResult> {
                                *had_inbox = ctx.inbox() != nullptr;
                                EXPECT_NE(ctx.inbox(), nullptr) << "inbox should be Some";
                                if (ctx.inbox()) {
                                  ctx.inbox()->send(json{{"progress", 50}});
                                  ctx.inbox()->send(json{{"progress", 100}});
                                }
                                co_return TaskResult::success("done");
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  ASSERT_EQ(*had_inbox, std::optional<bool>(true));
  auto msgs = h->drain();
  ASSERT_GE(msgs.size(), 2u) << "expected at least 2 messages, got " << msgs.size() << ": " << dump_all(msgs);
  EXPECT_EQ(msgs[0].at("progress"), 50) << dump_all(msgs);
  EXPECT_EQ(msgs[1].at("progress"), 100) << dump_all(msgs);
}

// 46
TEST(AwakenSeed, task_context_inbox_is_none_by_default) {
  auto h = manager_with_store();
  auto had_inbox = std::make_shared<std::optional<bool>>();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "no inbox", TaskParentContext{},
                              [had_inbox](TaskContext ctx) -> Co<TaskResult> {
                                *had_inbox = ctx.inbox() != nullptr;
                                EXPECT_EQ(ctx.inbox(), nullptr);
                                co_return TaskResult::success(nullptr);
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  EXPECT_EQ(*had_inbox, std::optional<bool>(false));
  auto summary = h->manager->get(*id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Completed);
}

// 47
TEST(AwakenSeed, task_completion_sends_terminal_event_to_inbox) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "completes", TaskParentContext{},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success("ok"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto msgs = h->drain();
  EXPECT_TRUE(any_kind(msgs, "completed")) << "inbox should receive terminal Completed event, got: " << dump_all(msgs);
}

// 48
TEST(AwakenSeed, on_closed_fires_when_inbox_receiver_dropped) {
  auto h = std::make_unique<Harness>();
  auto counter = std::make_shared<std::size_t>(0);
  auto [inbox_tx, inbox_rx] = inbox_channel_with_fallback([counter](const json&) { ++*counter; });
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec);
  h->manager->set_owner_inbox(std::move(inbox_tx));
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  std::shared_ptr<Plugin> plugin = std::make_shared<BackgroundTaskPlugin>(h->manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  ASSERT_TRUE(env.ok()) << env.error().message;
  ASSERT_TRUE(h->store->register_keys(env->key_registrations).ok());

  { InboxReceiver dropped = std::move(inbox_rx); }  // drop(inbox_rx)

  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "late completion", TaskParentContext{},
                              [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success("ok"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  EXPECT_GT(*counter, 0u) << "on_closed should fire when receiver is dropped";
}

// 49
TEST(AwakenSeed, custom_and_terminal_events_arrive_in_inbox) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "crawl", std::nullopt, "fetch pages", TaskParentContext{},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                ctx.emit("progress", json{{"percent", 50}});
                                ctx.emit("data_ready", json{{"rows", 10}});
                                co_return TaskResult::success("done");
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(100);

  auto msgs = h->drain();
  EXPECT_TRUE(any_kind(msgs, "custom")) << "should have custom events, got: " << dump_all(msgs);
  EXPECT_TRUE(any_kind(msgs, "completed")) << "should have Completed event, got: " << dump_all(msgs);
}

// 50
TEST(AwakenSeed, task_context_emit_delivers_structured_custom_event) {
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "emitter", TaskParentContext{},
                              [](TaskContext ctx) -> Co<TaskResult> {
                                ctx.emit("progress", json{{"percent", 75}});
                                co_return TaskResult::success("ok");
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(100);

  auto messages = h->drain();
  auto progress = std::find_if(messages.begin(), messages.end(), [](const json& m) {
    if (kind_of(m) != std::optional<std::string>("custom")) return false;
    auto it = m.find("event_type");
    return it != m.end() && it->is_string() && it->get<std::string>() == "progress";
  });
  ASSERT_NE(progress, messages.end()) << "inbox should contain a custom progress event, got: " << dump_all(messages);
  ASSERT_TRUE(progress->contains("payload")) << progress->dump();
  EXPECT_EQ(progress->at("payload").at("percent"), 75);
}
