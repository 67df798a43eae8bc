// Host-driven tasks: the body lives outside the manager (a JS promise); the host settles it.
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "bgtasks/manager_internals.hpp"
#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::detail::ManagerInternals;
using bgtasks::testing::manager_with_store;
using bgtasks::testing::manager_with_store_and_inbox;

constexpr const char* kThread = "thread-1";

Co<void> wait_for(BackgroundTaskManager* m, std::string id, std::optional<TaskSummary>* out, bool* resumed) {
  auto s = co_await m->wait(id);
  *out = std::move(s);
  *resumed = true;
}

json agent_message(const TaskId& id, const std::string& from, const std::string& content) {
  return json{{"kind", "custom"},
              {"task_id", id},
              {"event_type", "agent_message"},
              {"payload", json{{"from", from}, {"content", content}}}};
}

TEST(HostTask, SpawnHostGetsAnIdAndARunningRecordLikeACoroutineTask) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto coro = m.spawn(kThread, "shell", std::nullopt, "coroutine", {}, [](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.cancelled();
    co_return TaskResult::cancelled();
  });
  auto id = m.spawn_host(kThread, "http", std::string_view("fetcher"), "fetch data", {});
  ASSERT_TRUE(coro.ok());
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*coro, "bg_0");
  EXPECT_EQ(*id, "bg_1") << "host tasks share the manager's id counter";
  auto s = m.get(*id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->task_id, *id);
  EXPECT_EQ(s->task_type, "http");
  EXPECT_EQ(s->description, "fetch data");
  EXPECT_EQ(s->status, TaskStatus::Running);
  EXPECT_EQ(s->created_at_ms, h->clock.now_ms());
  EXPECT_EQ(s->completed_at_ms, std::nullopt);
  EXPECT_EQ(s->result, std::nullopt);
  EXPECT_EQ(s->error, std::nullopt);
  EXPECT_TRUE(s->parent_context.is_empty());
  EXPECT_TRUE(m.has_running(kThread));
  auto snap = m.persisted_snapshot(kThread);
  ASSERT_EQ(snap.tasks.count(*id), 1u);
  EXPECT_EQ(snap.tasks.at(*id).name, std::optional<std::string>("fetcher"));
  EXPECT_EQ(snap.tasks.at(*id).owner_thread_id, kThread);
  // A host task stays running however long the executor runs: only settle ends it.
  h->run_for(1'000'000);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Running);
  EXPECT_TRUE(h->drain().empty());
}

TEST(HostTask, CompleteEndsCompletedWithResultAndTerminalEvent) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn_host(kThread, "shell", std::nullopt, "build", {});
  ASSERT_TRUE(id.ok());
  h->clock.advance(250);
  auto r = m.complete(*id, json{{"exit_code", 0}});
  ASSERT_TRUE(r.ok()) << r.error().message;
  h->run_until_idle();
  auto s = m.get(*id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->status, TaskStatus::Completed);
  ASSERT_TRUE(s->result.has_value());
  EXPECT_EQ(*s->result, (json{{"exit_code", 0}}));
  EXPECT_EQ(s->error, std::nullopt);
  EXPECT_EQ(s->completed_at_ms, std::optional<std::uint64_t>(h->clock.now_ms()));
  EXPECT_EQ(h->drain(),
            (std::vector<json>{json{{"kind", "completed"}, {"task_id", *id}, {"result", json{{"exit_code", 0}}}}}));
  EXPECT_FALSE(m.has_running(kThread));
}

// settle(task, result, event_value): the stored meta gets the result, the completed event the
// host's own value (the JS binding's handle), which is taken only when that event was queued.
TEST(HostTask, SettleWithAnEventValueStoresTheResultAndQueuesTheValueTakingItOnlyWhenQueued) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  const json result = {{"exit_code", 0}, {"lines", json::array({"a", "b"})}};
  auto by_number = m.spawn_host(kThread, "shell", std::nullopt, "", {});
  auto by_id = m.spawn_host(kThread, "shell", std::nullopt, "", {});
  auto cancelled = m.spawn_host(kThread, "shell", std::nullopt, "", {});
  auto failed = m.spawn_host(kThread, "shell", std::nullopt, "", {});
  ASSERT_TRUE(by_number.ok() && by_id.ok() && cancelled.ok() && failed.ok());
  json value = 7;
  ASSERT_TRUE(ManagerInternals::settle(m, TaskNumber{0}, TaskResult::success(result), value).ok());
  EXPECT_TRUE(value.is_null()) << "taken: the completed event holds it";
  value = "by id";
  ASSERT_TRUE(ManagerInternals::settle(m, *by_id, TaskResult::success(result), value).ok());
  EXPECT_TRUE(value.is_null());
  ASSERT_TRUE(m.cancel(*cancelled));
  value = 9;
  ASSERT_TRUE(ManagerInternals::settle(m, *cancelled, TaskResult::success(result), value).ok());
  EXPECT_EQ(value, 9) << "a task that ends cancelled has no completed event";
  ASSERT_TRUE(ManagerInternals::settle(m, *failed, TaskResult::failed("no"), value).ok());
  EXPECT_EQ(value, 9);
  EXPECT_EQ(ManagerInternals::settle(m, *by_id, TaskResult::success(result), value).error().code, Errc::TaskTerminated);
  EXPECT_EQ(value, 9);
  EXPECT_EQ(m.get(*by_number)->result, std::optional<json>(result));
  EXPECT_EQ(m.get(*by_id)->result, std::optional<json>(result));
  EXPECT_EQ(m.get(*cancelled)->result, std::nullopt);
  EXPECT_EQ(h->drain(), (std::vector<json>{json{{"kind", "completed"}, {"task_id", *by_number}, {"result", 7}},
                                           json{{"kind", "completed"}, {"task_id", *by_id}, {"result", "by id"}},
                                           json{{"kind", "cancelled"}, {"task_id", *cancelled}},
                                           json{{"kind", "failed"}, {"task_id", *failed}, {"error", "no"}}}));
}

TEST(HostTask, AnEventValueARefusedEventOrNoInboxLeavesIsNotTaken) {
  auto h = manager_with_store_and_inbox();
  auto [tx, rx] = inbox_channel({1, OverflowPolicy::Reject});  // an owner inbox of one event
  h->manager->set_owner_inbox(std::move(tx));
  h->inbox.emplace(std::move(rx));
  auto& m = *h->manager;
  auto first = m.spawn_host(kThread, "x", std::nullopt, "", {});
  auto second = m.spawn_host(kThread, "x", std::nullopt, "", {});
  ASSERT_TRUE(first.ok() && second.ok());
  json value = 1;
  ASSERT_TRUE(ManagerInternals::settle(m, *first, TaskResult::success(json("one")), value).ok());
  EXPECT_TRUE(value.is_null());
  value = 2;
  ASSERT_TRUE(ManagerInternals::settle(m, *second, TaskResult::success(json("two")), value).ok())
      << "the inbox is full";
  EXPECT_EQ(value, 2) << "its event was refused: the value stays the caller's";
  EXPECT_EQ(m.get(*second)->result, std::optional<json>(json("two")));
  EXPECT_EQ(h->drain(), (std::vector<json>{json{{"kind", "completed"}, {"task_id", *first}, {"result", 1}}}));

  // DropOldest: a taken value goes where its event goes, evicted with it.
  auto evicting = manager_with_store_and_inbox();
  auto [tx1, rx1] = inbox_channel({1, OverflowPolicy::DropOldest});
  evicting->manager->set_owner_inbox(std::move(tx1));
  evicting->inbox.emplace(std::move(rx1));
  auto a = evicting->manager->spawn_host(kThread, "x", std::nullopt, "", {});
  auto b = evicting->manager->spawn_host(kThread, "x", std::nullopt, "", {});
  ASSERT_TRUE(a.ok() && b.ok());
  json va = "a", vb = "b";
  ASSERT_TRUE(ManagerInternals::settle(*evicting->manager, *a, TaskResult::success(json(1)), va).ok());
  ASSERT_TRUE(ManagerInternals::settle(*evicting->manager, *b, TaskResult::success(json(2)), vb).ok());
  EXPECT_TRUE(va.is_null() && vb.is_null()) << "both events were queued";
  EXPECT_EQ(evicting->drain(), (std::vector<json>{json{{"kind", "completed"}, {"task_id", *b}, {"result", "b"}}}));
  EXPECT_EQ(evicting->manager->get(*a)->result, std::optional<json>(json(1)));

  // A closed inbox: the fallback gets the event with the value, which stays the caller's.
  auto closed = manager_with_store_and_inbox();
  std::vector<json> fell_back;
  auto [tx2, rx2] = inbox_channel_with_fallback([&](const json& m) { fell_back.push_back(m); });
  closed->manager->set_owner_inbox(std::move(tx2));
  rx2.close();
  auto c = closed->manager->spawn_host(kThread, "x", std::nullopt, "", {});
  ASSERT_TRUE(c.ok());
  json vc = 5;
  ASSERT_TRUE(ManagerInternals::settle(*closed->manager, *c, TaskResult::success(json("stored")), vc).ok());
  EXPECT_EQ(vc, 5);
  EXPECT_EQ(fell_back, (std::vector<json>{json{{"kind", "completed"}, {"task_id", *c}, {"result", 5}}}));
  EXPECT_EQ(closed->manager->get(*c)->result, std::optional<json>(json("stored")));

  auto no_inbox = manager_with_store();
  auto lone = no_inbox->manager->spawn_host(kThread, "x", std::nullopt, "", {});
  ASSERT_TRUE(lone.ok());
  ASSERT_TRUE(ManagerInternals::settle(*no_inbox->manager, *lone, TaskResult::success(json("r")), value).ok());
  EXPECT_EQ(value, 2);
  EXPECT_EQ(no_inbox->manager->get(*lone)->result, std::optional<json>(json("r")));
}

TEST(HostTask, FailEndsFailedWithTheMessage) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn_host(kThread, "http", std::nullopt, "fetch", {});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(m.fail(*id, "disk full").ok());
  h->run_until_idle();
  auto s = m.get(*id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->status, TaskStatus::Failed);
  EXPECT_EQ(s->error, std::optional<std::string>("disk full"));
  EXPECT_EQ(s->result, std::nullopt);
  EXPECT_TRUE(s->completed_at_ms.has_value());
  EXPECT_EQ(h->drain(), (std::vector<json>{json{{"kind", "failed"}, {"task_id", *id}, {"error", "disk full"}}}));
}

TEST(HostTask, SettleWithCancelledEndsCancelled) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn_host(kThread, "shell", std::nullopt, "x", {});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(m.settle(*id, TaskResult::cancelled()).ok());
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Cancelled);
  EXPECT_EQ(h->drain(), (std::vector<json>{json{{"kind", "cancelled"}, {"task_id", *id}}}));
}

TEST(HostTask, CancelReturnsTrueAndCallsOnCancelRequested) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  std::vector<TaskId> requested;
  m.set_hooks(ManagerHooks{[&](const TaskId& id) { requested.push_back(id); }, nullptr});
  auto id = m.spawn_host(kThread, "shell", std::nullopt, "x", {});
  auto other = m.spawn_host(kThread, "shell", std::nullopt, "y", {});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(m.cancel(*id));
  EXPECT_EQ(requested, (std::vector<TaskId>{*id}));
  EXPECT_TRUE(m.is_cancel_requested(*id));
  EXPECT_FALSE(m.is_cancel_requested(*other));
  // Cancel only signals: the host body is still live until settled.
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Running);
  EXPECT_EQ(m.stats().cancel_requested_running, 1u);
  EXPECT_TRUE(m.cancel(*id)) << "true on every repeat while live";
  EXPECT_FALSE(requested.empty());
  for (const auto& r : requested) EXPECT_EQ(r, *id);
  EXPECT_FALSE(m.cancel("bg_404"));
  for (const auto& r : requested) EXPECT_EQ(r, *id) << "no hook for an unknown id";
}

TEST(HostTask, SettleAfterCancelEndsCancelledWhateverIsReported) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto a = m.spawn_host(kThread, "shell", std::nullopt, "a", {});
  auto b = m.spawn_host(kThread, "shell", std::nullopt, "b", {});
  auto c = m.spawn_host(kThread, "shell", std::nullopt, "c", {});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_TRUE(m.cancel(*a));
  EXPECT_TRUE(m.cancel(*b));
  EXPECT_TRUE(m.cancel(*c));
  EXPECT_TRUE(m.complete(*a, json{{"late", true}}).ok());
  EXPECT_TRUE(m.fail(*b, "late failure").ok());
  EXPECT_TRUE(m.settle(*c, TaskResult::cancelled()).ok());
  h->run_until_idle();
  for (const auto& id : {*a, *b, *c}) {
    auto s = m.get(id);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->status, TaskStatus::Cancelled) << id;
    EXPECT_EQ(s->result, std::nullopt) << id;
    EXPECT_EQ(s->error, std::nullopt) << id;
  }
  EXPECT_EQ(h->drain(), (std::vector<json>{json{{"kind", "cancelled"}, {"task_id", *a}},
                                           json{{"kind", "cancelled"}, {"task_id", *b}},
                                           json{{"kind", "cancelled"}, {"task_id", *c}}}));
  EXPECT_FALSE(m.cancel(*a)) << "finished: cancel is false";
  EXPECT_EQ(m.stats().cancel_requested_running, 0u);
}

TEST(HostTask, SettlingTwiceIsTaskTerminated) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn_host(kThread, "shell", std::nullopt, "x", {});
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(m.complete(*id, json(1)).ok());
  auto again = m.fail(*id, "second");
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, Errc::TaskTerminated);
  EXPECT_EQ(again.error().status, std::optional<TaskStatus>(TaskStatus::Completed));
  EXPECT_EQ(again.error().message, "task already completed");
  auto third = m.complete(*id, json(2));
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().code, Errc::TaskTerminated);
  // The first settlement stands; one terminal event only.
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Completed);
  EXPECT_EQ(*m.get(*id)->result, json(1));
  EXPECT_EQ(h->drain().size(), 1u);

  auto cancelled = m.spawn_host(kThread, "shell", std::nullopt, "y", {});
  ASSERT_TRUE(cancelled.ok());
  EXPECT_TRUE(m.cancel(*cancelled));
  ASSERT_TRUE(m.complete(*cancelled, json(3)).ok());
  auto late = m.complete(*cancelled, json(4));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, Errc::TaskTerminated);
  EXPECT_EQ(late.error().status, std::optional<TaskStatus>(TaskStatus::Cancelled));
}

TEST(HostTask, SettleOnACoroutineTaskIsNotHostTask) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn(kThread, "shell", std::nullopt, "coroutine", {}, [](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.sleep(1000);
    co_return TaskResult::success(json("own result"));
  });
  ASSERT_TRUE(id.ok());
  auto before_poll = m.complete(*id, json("host says"));
  ASSERT_FALSE(before_poll.ok());
  EXPECT_EQ(before_poll.error().code, Errc::NotHostTask);
  h->run_until_idle();
  auto r = m.settle(*id, TaskResult::failed("host says"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::NotHostTask);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Running);
  h->run_for(1000);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Completed);
  EXPECT_EQ(*m.get(*id)->result, json("own result"));
}

TEST(HostTask, SettleUnknownIdIsTaskNotFound) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  for (const char* id : {"bg_0", "bg_999", "nope"}) {
    auto r = m.complete(id, json(1));
    ASSERT_FALSE(r.ok()) << id;
    EXPECT_EQ(r.error().code, Errc::TaskNotFound) << id;
    EXPECT_EQ(r.error().message, "task not found");
    auto f = m.fail(id, "x");
    ASSERT_FALSE(f.ok()) << id;
    EXPECT_EQ(f.error().code, Errc::TaskNotFound) << id;
  }
  EXPECT_EQ(m.get("bg_0"), std::nullopt);
  EXPECT_EQ(m.next_task_number(), 0u);
  EXPECT_TRUE(h->drain().empty());
}

TEST(HostTask, EmitFromALiveHostTaskOnlyAndWithAnInboxOnly) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn_host(kThread, "shell", std::nullopt, "x", {});
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(m.emit(*id, "progress", json{{"percent", 50}}));
  EXPECT_FALSE(m.emit("bg_999", "progress", json{{"percent", 1}}));
  EXPECT_FALSE(m.emit("unknown", "progress", json{{"percent", 1}}));
  ASSERT_TRUE(m.complete(*id, json(nullptr)).ok());
  EXPECT_FALSE(m.emit(*id, "progress", json{{"percent", 100}})) << "finished task";
  EXPECT_EQ(
      h->drain(),
      (std::vector<json>{
          json{{"kind", "custom"}, {"task_id", *id}, {"event_type", "progress"}, {"payload", json{{"percent", 50}}}},
          json{{"kind", "completed"}, {"task_id", *id}, {"result", nullptr}}}));

  auto bare = manager_with_store();  // no owner inbox
  auto lonely = bare->manager->spawn_host(kThread, "shell", std::nullopt, "x", {});
  ASSERT_TRUE(lonely.ok());
  EXPECT_FALSE(bare->manager->emit(*lonely, "progress", json{{"percent", 1}}));
}

TEST(HostTask, SubAgentHostTaskReceivesMessagesInOrder) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn_host(kThread, "anything", std::string_view("researcher"), "research", {}, /*sub_agent=*/true);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(m.get(*id)->task_type, "sub_agent");
  EXPECT_EQ(m.agent_inbox_len(*id), 0u);
  EXPECT_TRUE(m.take_agent_messages(*id).empty());
  ASSERT_TRUE(m.send_task_inbox_message(*id, kThread, "agent-a", "first").ok());
  ASSERT_TRUE(m.send_task_inbox_message(*id, kThread, "agent-b", "second").ok());
  ASSERT_TRUE(m.send_task_inbox_message(*id, kThread, "agent-a", "").ok()) << "empty content is accepted";
  EXPECT_EQ(m.agent_inbox_len(*id), 3u);
  EXPECT_EQ(m.take_agent_messages(*id, 1), (std::vector<json>{agent_message(*id, "agent-a", "first")}));
  EXPECT_EQ(m.agent_inbox_len(*id), 2u);
  EXPECT_EQ(m.take_agent_messages(*id),
            (std::vector<json>{agent_message(*id, "agent-b", "second"), agent_message(*id, "agent-a", "")}));
  EXPECT_EQ(m.agent_inbox_len(*id), 0u);
  EXPECT_TRUE(m.take_agent_messages(*id).empty());
  EXPECT_TRUE(h->drain().empty()) << "agent messages go to the sub-agent's inbox, not the owner's";

  auto wrong_owner = m.send_task_inbox_message(*id, "thread-2", "agent-a", "x");
  ASSERT_FALSE(wrong_owner.ok());
  EXPECT_EQ(wrong_owner.error().code, Errc::NotOwner);
  auto missing = m.send_task_inbox_message("bg_999", kThread, "agent-a", "x");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, Errc::TaskNotFound);

  auto plain = m.spawn_host(kThread, "shell", std::nullopt, "plain", {});
  ASSERT_TRUE(plain.ok());
  auto no_inbox = m.send_task_inbox_message(*plain, kThread, "agent-a", "x");
  ASSERT_FALSE(no_inbox.ok());
  EXPECT_EQ(no_inbox.error().code, Errc::NoInbox);
  EXPECT_TRUE(m.take_agent_messages(*plain).empty());

  ASSERT_TRUE(m.complete(*id, json("done")).ok());
  auto terminated = m.send_task_inbox_message(*id, kThread, "agent-a", "too late");
  ASSERT_FALSE(terminated.ok());
  EXPECT_EQ(terminated.error().code, Errc::TaskTerminated);
}

TEST(HostTask, EnterTaskScopeMakesASpawnInheritTheParentTask) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto parent = m.spawn_host(kThread, "sub_agent", std::nullopt, "parent", {}, true);
  ASSERT_TRUE(parent.ok());
  std::optional<TaskId> host_child;
  std::optional<TaskId> coro_child;
  std::optional<TaskId> explicit_child;
  {
    auto scope = m.enter_task(*parent);
    auto ambient = current_background_task_context();
    ASSERT_TRUE(ambient.has_value());
    EXPECT_EQ(ambient->task_id, *parent);
    EXPECT_EQ(ambient->manager, &m);
    auto c1 = m.spawn_host(kThread, "shell", std::nullopt, "host child", {});
    auto c2 = m.spawn(kThread, "shell", std::nullopt, "coroutine child", {},
                      [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
    TaskParentContext explicit_parent;
    explicit_parent.task_id = "explicit-parent";
    auto c3 = m.spawn_host(kThread, "shell", std::nullopt, "explicit child", explicit_parent);
    ASSERT_TRUE(c1.ok() && c2.ok() && c3.ok());
    host_child = *c1;
    coro_child = *c2;
    explicit_child = *c3;
  }
  EXPECT_FALSE(current_background_task_context().has_value()) << "the scope restores the previous (none)";
  auto outside = m.spawn_host(kThread, "shell", std::nullopt, "outside", {});
  ASSERT_TRUE(outside.ok());

  TaskParentContext expected;
  expected.task_id = *parent;
  EXPECT_EQ(m.get(*host_child)->parent_context, expected);
  EXPECT_EQ(m.get(*coro_child)->parent_context, expected);
  EXPECT_EQ(m.get(*explicit_child)->parent_context.task_id, std::optional<std::string>("explicit-parent"));
  EXPECT_TRUE(m.get(*outside)->parent_context.is_empty());
  EXPECT_EQ(m.resolve_live_child_task(*parent, *host_child), std::optional<TaskId>(*host_child));
}

TEST(HostTask, OnTaskEndFiresOnceWithTheFinalStatus) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  std::vector<std::pair<TaskId, TaskStatus>> ended;
  m.set_hooks(ManagerHooks{nullptr, [&](const TaskSummary& s) { ended.emplace_back(s.task_id, s.status); }});
  auto done = m.spawn_host(kThread, "shell", std::nullopt, "done", {});
  auto failed = m.spawn_host(kThread, "shell", std::nullopt, "failed", {});
  auto cancelled = m.spawn_host(kThread, "shell", std::nullopt, "cancelled", {});
  auto coro = m.spawn(kThread, "shell", std::nullopt, "coroutine", {}, [](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.sleep(10);
    co_return TaskResult::failed("coroutine failed");
  });
  ASSERT_TRUE(done.ok() && failed.ok() && cancelled.ok() && coro.ok());
  EXPECT_TRUE(ended.empty());
  EXPECT_TRUE(m.complete(*done, json(1)).ok());
  EXPECT_FALSE(m.complete(*done, json(2)).ok());
  EXPECT_TRUE(m.fail(*failed, "bad").ok());
  EXPECT_TRUE(m.cancel(*cancelled));
  EXPECT_TRUE(m.cancel(*cancelled));
  EXPECT_TRUE(m.complete(*cancelled, json("ignored")).ok());
  EXPECT_FALSE(m.fail(*cancelled, "again").ok());
  h->run_for(10);
  h->run_for(100);
  using E = std::vector<std::pair<TaskId, TaskStatus>>;
  EXPECT_EQ(ended, (E{{*done, TaskStatus::Completed},
                      {*failed, TaskStatus::Failed},
                      {*cancelled, TaskStatus::Cancelled},
                      {*coro, TaskStatus::Failed}}));
}

TEST(HostTask, WaitFromADetachedCoroutineResolvesWithTheTerminalSummary) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn_host(kThread, "shell", std::nullopt, "awaited", {});
  ASSERT_TRUE(id.ok());
  std::optional<TaskSummary> out;
  bool resumed = false;
  h->exec.spawn(wait_for(&m, *id, &out, &resumed));
  h->run_for(5000);
  EXPECT_FALSE(resumed) << "a running task's wait must not resolve";
  ASSERT_TRUE(m.complete(*id, json{{"answer", 42}}).ok());
  h->run_until_idle();
  ASSERT_TRUE(resumed);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ(out->task_id, *id);
  EXPECT_EQ(out->status, TaskStatus::Completed);
  ASSERT_TRUE(out->result.has_value());
  EXPECT_EQ(*out->result, (json{{"answer", 42}}));
  EXPECT_EQ(*out, *m.get(*id));

  // Already finished: resolves at once with the summary. Unknown: nullopt.
  std::optional<TaskSummary> again;
  bool again_resumed = false;
  h->exec.spawn(wait_for(&m, *id, &again, &again_resumed));
  std::optional<TaskSummary> unknown = TaskSummary{};
  bool unknown_resumed = false;
  h->exec.spawn(wait_for(&m, "bg_999", &unknown, &unknown_resumed));
  h->exec.poll();
  EXPECT_TRUE(again_resumed);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->status, TaskStatus::Completed);
  EXPECT_TRUE(unknown_resumed);
  EXPECT_EQ(unknown, std::nullopt);
}

TEST(HostTask, WaitOnACancelledHostTaskResolvesCancelled) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn_host(kThread, "shell", std::nullopt, "awaited", {});
  ASSERT_TRUE(id.ok());
  std::optional<TaskSummary> a, b;
  bool ra = false, rb = false;
  h->exec.spawn(wait_for(&m, *id, &a, &ra));
  h->exec.spawn(wait_for(&m, *id, &b, &rb));
  h->run_until_idle();
  EXPECT_TRUE(m.cancel(*id));
  h->run_until_idle();
  EXPECT_FALSE(ra) << "cancel alone does not end a host task";
  ASSERT_TRUE(m.complete(*id, json("late")).ok());
  h->run_until_idle();
  ASSERT_TRUE(ra && rb) << "every waiter resolves";
  EXPECT_EQ(a->status, TaskStatus::Cancelled);
  EXPECT_EQ(b->status, TaskStatus::Cancelled);
  EXPECT_EQ(a->result, std::nullopt);
}

TEST(HostTask, AWaiterWhoseFrameIsDestroyedFirstLeavesTheOthersTheirSummaryAndWaitsCanStartAgain) {
  // The manager keeps the end-waiter lists, by task number: a waiting frame destroyed before the
  // task ends (its manager torn down) must leave the list, and the list must go at the end.
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id = m.spawn_host(kThread, "shell", std::nullopt, "awaited", {});
  ASSERT_TRUE(id.ok());
  std::optional<TaskSummary> first, doomed_out, last;
  bool first_resumed = false, doomed_resumed = false, last_resumed = false;
  h->exec.spawn(wait_for(&m, *id, &first, &first_resumed));
  {
    // A body of a second manager waits too; destroying that manager destroys its frame.
    auto other = std::make_shared<BackgroundTaskManager>(h->exec);
    EXPECT_TRUE(other->set_store(h->store).ok());
    auto waiter = other->spawn(kThread, "job", std::nullopt, "doomed waiter", {}, [&](TaskContext) -> Co<TaskResult> {
      doomed_out = co_await m.wait(*id);
      doomed_resumed = true;
      co_return TaskResult::success(nullptr);
    });
    ASSERT_TRUE(waiter.ok());
    h->exec.spawn(wait_for(&m, *id, &last, &last_resumed));
    h->run_until_idle();
    EXPECT_FALSE(first_resumed || doomed_resumed || last_resumed);
  }
  EXPECT_EQ(ManagerInternals::end_waiter_lists(m), 1u);
  ASSERT_TRUE(m.complete(*id, json("done")).ok());
  EXPECT_EQ(ManagerInternals::end_waiter_lists(m), 0u) << "the task's list goes when it ends";
  h->run_until_idle();
  EXPECT_FALSE(doomed_resumed);
  ASSERT_TRUE(first_resumed && last_resumed);
  EXPECT_EQ(first->result, json("done"));
  EXPECT_EQ(last->result, json("done"));

  // A second task's waiters get their own list, after the first's is gone.
  auto next = m.spawn_host(kThread, "shell", std::nullopt, "next", {});
  ASSERT_TRUE(next.ok());
  std::optional<TaskSummary> next_out;
  bool next_resumed = false;
  h->exec.spawn(wait_for(&m, *next, &next_out, &next_resumed));
  h->run_until_idle();
  EXPECT_FALSE(next_resumed);
  ASSERT_TRUE(m.fail(*next, "boom").ok());
  h->run_until_idle();
  ASSERT_TRUE(next_resumed);
  EXPECT_EQ(next_out->status, TaskStatus::Failed);
  EXPECT_EQ(next_out->task_id, *next);
}

TEST(HostTask, AWaiterStillWaitingWhenItsManagerIsDestroyedResumesWithNothing) {
  // The waiting frame belongs to the executor, which outlives the manager: it is woken by the
  // manager's destructor and reads nothing of the manager (ASan: no read of the freed manager).
  auto h = manager_with_store_and_inbox();
  auto id = h->manager->spawn_host(kThread, "shell", std::nullopt, "never ends", {});
  ASSERT_TRUE(id.ok());
  std::optional<TaskSummary> out;
  bool resumed = false;
  h->exec.spawn(wait_for(h->manager.get(), *id, &out, &resumed));
  h->run_until_idle();
  EXPECT_EQ(ManagerInternals::end_waiter_lists(*h->manager), 1u);
  h->manager.reset();
  EXPECT_FALSE(resumed) << "woken, not run inside the destructor";
  h->run_until_idle();
  EXPECT_TRUE(resumed);
  EXPECT_FALSE(out.has_value());
}

TEST(HostTask, CancelTreeOverAHostTaskTree) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  std::set<TaskId> requested;
  m.set_hooks(ManagerHooks{[&](const TaskId& id) { requested.insert(id); }, nullptr});
  auto under = [](const TaskId& p) {
    TaskParentContext c;
    c.task_id = p;
    return c;
  };
  auto root = m.spawn_host(kThread, "sub_agent", std::nullopt, "root", {}, true);
  ASSERT_TRUE(root.ok());
  auto c1 = m.spawn_host(kThread, "shell", std::nullopt, "c1", under(*root));
  auto c2 = m.spawn_host(kThread, "shell", std::nullopt, "c2", under(*root));
  ASSERT_TRUE(c1.ok() && c2.ok());
  auto g1 = m.spawn_host(kThread, "shell", std::nullopt, "g1", under(*c1));
  auto other_thread = m.spawn_host("thread-2", "shell", std::nullopt, "g2", under(*c2));
  auto unrelated = m.spawn_host(kThread, "shell", std::nullopt, "unrelated", {});
  ASSERT_TRUE(g1.ok() && other_thread.ok() && unrelated.ok());
  ASSERT_TRUE(m.complete(*c1, json("early")).ok());

  // root, c2, g1 (under the finished c1) and g2 (another thread): finished c1 is not counted.
  EXPECT_EQ(m.cancel_tree(*root), 4u);
  EXPECT_EQ(requested, (std::set<TaskId>{*root, *c2, *g1, *other_thread}));
  EXPECT_FALSE(m.is_cancel_requested(*unrelated));
  for (const auto& id : {*root, *c2, *g1, *other_thread}) {
    EXPECT_EQ(m.get(id)->status, TaskStatus::Running) << id;
    EXPECT_TRUE(m.is_cancel_requested(id)) << id;
  }
  for (const auto& id : {*root, *c2, *g1, *other_thread}) EXPECT_TRUE(m.complete(id, json("late")).ok()) << id;
  for (const auto& id : {*root, *c2, *g1, *other_thread}) EXPECT_EQ(m.get(id)->status, TaskStatus::Cancelled) << id;
  EXPECT_EQ(m.get(*c1)->status, TaskStatus::Completed);
  EXPECT_EQ(m.get(*unrelated)->status, TaskStatus::Running);
  EXPECT_EQ(m.cancel_tree(*root), 0u) << "nothing live left in the tree";
  EXPECT_EQ(m.cancel_tree("bg_999"), 0u);
}

}  // namespace
