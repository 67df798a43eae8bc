// awaken's tests of sub-agents: send_task_inbox_message and its errors, agents that spawn their
// own tasks, nested spawns, and the lineage (parent context) a spawn records.
//
// These are awaken's tests by name: each is TEST(AwakenSeed, <awaken's test name>), its body a
// translation of awaken's (awaken_seed_support.hpp lists the translations common to all);
// docs/awaken-differences.md explains where bgtasks and awaken differ.

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "awaken_seed_support.hpp"

namespace {
using namespace bgtasks;
using namespace bgtasks::testing;
}  // namespace

TEST(AwakenSeed, spawn_with_parent_context_preserves_lineage) {
  auto h = manager_with_store();
  TaskParentContext ctx;
  ctx.run_id = "run-abc";
  ctx.call_id = "call-xyz";
  ctx.agent_id = "agent-007";
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "lineage task", ctx, [](TaskContext) -> Co<TaskResult> {
    co_return TaskResult::success(json{{"ok", true}});
  });
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

// scope_tool_lineage_context(lineage, fut) is a ToolLineageScope around the spawn.
TEST(AwakenSeed, spawn_with_default_parent_context_inherits_ambient_tool_lineage) {
  auto h = manager_with_store();
  std::optional<TaskId> task_id;
  {
    ToolLineageScope scope(ToolLineageContext{"run-ambient", "call-ambient", "agent-ambient"});
    auto id = h->manager->spawn("thread-1", "test", std::nullopt, "ambient lineage task", TaskParentContext{},
                                [](TaskContext) -> Co<TaskResult> {
                                  co_return TaskResult::success(json{{"ok", true}});
                                });
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

// The body holds a raw manager pointer, not an Arc clone (no manager→body→manager cycle).
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

// spawn_agent bodies get no executor: it is captured.
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

TEST(AwakenSeed, send_message_rejects_completed_task) {
  auto h = manager_with_store();
  auto id = h->manager->spawn_agent(
      "thread-1", std::nullopt, "fast agent", {},
      [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> { co_return TaskResult::success("done"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto result = h->manager->send_task_inbox_message(*id, "thread-1", "parent", "too late");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::TaskTerminated));
  ASSERT_TRUE(result.error().status.has_value());
  EXPECT_EQ(S(*result.error().status), S(TaskStatus::Completed));
}

TEST(AwakenSeed, send_message_rejects_nonexistent_task) {
  auto h = manager_with_store();
  auto result = h->manager->send_task_inbox_message("bg_999", "thread-1", "parent", "hello");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::TaskNotFound));
}

TEST(AwakenSeed, send_message_rejects_regular_task) {
  auto h = manager_with_store();
  auto id = h->manager->spawn("thread-1", "test", std::nullopt, "regular task", {}, wait_cancelled);
  ASSERT_TRUE(id.ok());
  auto result = h->manager->send_task_inbox_message(*id, "thread-1", "parent", "hello");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::NoInbox));
  h->manager->cancel(*id);
}

// The child manager runs on the same executor, captured.
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

TEST(AwakenSeed, send_to_completed_task_returns_error) {
  auto h = manager_with_store();
  auto id = h->manager->spawn_agent(
      "thread-1", std::optional<std::string_view>("fast-worker"), "instant agent", {},
      [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> { co_return TaskResult::success("done"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto result = h->manager->send_task_inbox_message(*id, "thread-1", "parent", "too late");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::TaskTerminated));
  ASSERT_TRUE(result.error().status.has_value());
  EXPECT_EQ(S(*result.error().status), S(TaskStatus::Completed));
}

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
  auto id_a =
      h->manager->spawn_agent("thread-1", std::optional<std::string_view>("agent-a"), "agent A", {}, make_body("a"));
  ASSERT_TRUE(id_a.ok());
  auto id_b =
      h->manager->spawn_agent("thread-1", std::optional<std::string_view>("agent-b"), "agent B", {}, make_body("b"));
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

TEST(AwakenSeed, inbox_closed_after_agent_completes) {
  auto h = manager_with_store();
  auto id = h->manager->spawn_agent(
      "thread-1", std::optional<std::string_view>("ephemeral"), "short-lived", {},
      [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> { co_return TaskResult::success("bye"); });
  ASSERT_TRUE(id.ok());
  h->run_for(50);
  auto result = h->manager->send_task_inbox_message(*id, "thread-1", "parent", "hello?");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(E(result.error().code), E(Errc::TaskTerminated));
}

// The inner manager runs on the captured executor.
TEST(AwakenSeed, nested_spawn_agent_events_flow) {
  auto h = manager_with_store_and_inbox();
  Executor* exec = &h->exec;
  auto id =
      h->manager->spawn_agent("thread-1", std::optional<std::string_view>("outer"), "outer agent", {},
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

TEST(AwakenSeed, unnamed_task_addressable_by_id_only) {
  auto h = manager_with_store();
  Executor* exec = &h->exec;
  auto id = h->manager->spawn_agent("thread-1", std::nullopt, "unnamed worker", {},
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
