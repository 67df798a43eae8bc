// awaken's tests of the manager itself: spawn, list, get, cancel and cancel_tree, task ids and
// names, has_running, several tasks at once, and the spawn errors.
//
// These are awaken's tests by name: each is TEST(AwakenSeed, <awaken's test name>), its body a
// translation of awaken's (awaken_seed_support.hpp lists the translations common to all);
// docs/awaken-differences.md explains where bgtasks and awaken differ.

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "awaken_seed_support.hpp"

namespace {
using namespace bgtasks;
using namespace bgtasks::testing;
}  // namespace

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

TEST(AwakenSeed, manager_task_completes) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "fast task", TaskParentContext{},
                              [](TaskContext) -> Co<TaskResult> {
                                co_return TaskResult::success(json{{"answer", 42}});
                              });
  ASSERT_TRUE(id.ok());
  h->run_for(50);

  auto summary = h->manager->get(*id);
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->status, TaskStatus::Completed);
  EXPECT_TRUE(summary->completed_at_ms.has_value());
  ASSERT_TRUE(summary->result.has_value());
  EXPECT_EQ(summary->result->at("answer"), 42);
}

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

// Cancel comes before the body's first poll (spawn never runs the body); a not-yet-started body
// is live, so cancel says true (docs/behaviour.md).
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

TEST(AwakenSeed, manager_cancel_nonexistent) {
  auto h = manager_with_store();
  EXPECT_FALSE(h->manager->cancel("nonexistent"));
}

TEST(AwakenSeed, manager_cancel_tree_cascades_to_descendants) {
  auto h = manager_with_store();
  auto parent_id =
      h->manager->spawn("thread-1", "root_task", "root-task", "parent task", TaskParentContext{}, wait_cancelled);
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

TEST(AwakenSeed, spawn_agent_with_context_exposes_task_id) {
  auto h = manager_with_store();
  auto seen = std::make_shared<std::optional<std::string>>();
  auto task_id = h->manager->spawn_agent_with_context("thread-1", "worker", "worker", TaskParentContext{},
                                                      [seen](AgentTaskContext ctx) -> Co<TaskResult> {
                                                        *seen = ctx.task_id();
                                                        ctx.cancel_token().cancel();
                                                        co_return TaskResult::cancelled();
                                                      });
  ASSERT_TRUE(task_id.ok());
  h->run_for(50);

  EXPECT_EQ(*seen, std::optional<std::string>(*task_id));
}

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

TEST(AwakenSeed, manager_get_nonexistent_returns_none) {
  auto h = manager_with_store();
  EXPECT_FALSE(h->manager->get("does_not_exist").has_value());
}

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
  EXPECT_EQ(
      std::count_if(all.begin(), all.end(), [](const TaskSummary& t) { return t.status == TaskStatus::Completed; }), 2);
  EXPECT_EQ(
      std::count_if(all.begin(), all.end(), [](const TaskSummary& t) { return t.status == TaskStatus::Cancelled; }), 3);
}

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

TEST(AwakenSeed, spawn_rejects_reserved_name) {
  auto h = manager_with_store();
  for (const char* reserved : {"parent", "self", "all", "broadcast"}) {
    auto result = h->manager->spawn("thread-1", "test", std::optional<std::string_view>(reserved), "desc", {},
                                    [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
    ASSERT_FALSE(result.ok()) << "'" << reserved << "' should be rejected as reserved";
    EXPECT_EQ(E(result.error().code), E(Errc::ReservedName)) << "'" << reserved << "' should be rejected as reserved";
  }
}

TEST(AwakenSeed, spawn_rejects_duplicate_name) {
  auto h = manager_with_store();
  auto first = h->manager->spawn("thread-1", "worker", std::optional<std::string_view>("researcher"),
                                 "first researcher", {}, wait_cancelled);
  ASSERT_TRUE(first.ok());
  auto result =
      h->manager->spawn("thread-1", "worker", std::optional<std::string_view>("researcher"), "second researcher", {},
                        [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::DuplicateName));
  h->manager->cancel(*first);
}

TEST(AwakenSeed, spawn_fails_when_background_store_is_not_configured) {
  auto h = bare_harness();
  auto result = h->manager->spawn("thread-1", "test", std::nullopt, "desc", {},
                                  [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::StoreNotConfigured));
}

// awaken's State(UnknownKey) is Errc::UnknownKey.
TEST(AwakenSeed, spawn_agent_fails_when_background_keys_are_not_registered) {
  auto h = bare_harness();
  EXPECT_TRUE(h->manager->set_store(std::make_shared<StateStore>()).ok());
  auto result = h->manager->spawn_agent(
      "thread-1", std::optional<std::string_view>("worker"), "desc", {},
      [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::UnknownKey));
}

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

TEST(AwakenSeed, spawn_allows_same_name_on_different_threads) {
  auto h = manager_with_store();
  auto id1 = h->manager->spawn("thread-1", "worker", std::optional<std::string_view>("researcher"), "t1 researcher", {},
                               wait_cancelled);
  ASSERT_TRUE(id1.ok()) << id1.error().message;
  auto id2 = h->manager->spawn("thread-2", "worker", std::optional<std::string_view>("researcher"), "t2 researcher", {},
                               wait_cancelled);
  ASSERT_TRUE(id2.ok()) << id2.error().message;
  h->manager->cancel_all("thread-1");
  h->manager->cancel_all("thread-2");
}

TEST(AwakenSeed, get_reads_from_state_store) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "store check", {}, [](TaskContext) -> Co<TaskResult> {
    co_return TaskResult::success(json{{"x", 1}});
  });
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

TEST(AwakenSeed, result_persists_after_handle_dropped) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "compute", std::nullopt, "ephemeral", {}, [](TaskContext) -> Co<TaskResult> {
    co_return TaskResult::success(json{{"answer", 42}});
  });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto task = h->manager->get(*id);
  ASSERT_TRUE(task.has_value());
  ASSERT_TRUE(task->result.has_value());
  EXPECT_EQ((*task->result)["answer"], 42);
  EXPECT_TRUE(task->completed_at_ms.has_value());
}
