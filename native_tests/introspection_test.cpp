// stats(), task_tree(), list() order, forget() and retention.
#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::testing::Harness;
using bgtasks::testing::make_meta;
using bgtasks::testing::manager_with_store_and_inbox;

constexpr const char* kIntrospectedThread = "thread-1";

std::vector<TaskId> ids_of(const std::vector<TaskSummary>& list) {
  std::vector<TaskId> out;
  for (const auto& s : list) out.push_back(s.task_id);
  return out;
}

std::vector<TaskId> bg_range(int from, int to_inclusive) {
  std::vector<TaskId> out;
  for (int i = from; i <= to_inclusive; ++i) out.push_back("bg_" + std::to_string(i));
  return out;
}

// manager_with_store_and_inbox, with manager options.
std::unique_ptr<Harness> harness_with(ManagerOptions options) {
  auto h = std::make_unique<Harness>();
  auto [tx, rx] = inbox_channel();
  h->inbox.emplace(std::move(rx));
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec, options);
  h->manager->set_owner_inbox(std::move(tx));
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  auto plugin = std::make_shared<BackgroundTaskPlugin>(h->manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  EXPECT_TRUE(env.ok());
  EXPECT_TRUE(h->store->register_keys(env->key_registrations).ok());
  return h;
}

TaskId host(BackgroundTaskManager& m, std::string_view thread, std::string_view desc,
            std::optional<TaskId> parent = std::nullopt, std::optional<std::string_view> name = std::nullopt,
            std::string_view type = "shell") {
  TaskParentContext pc;
  pc.task_id = parent;
  auto r = m.spawn_host(thread, type, name, desc, pc);
  EXPECT_TRUE(r.ok());
  return r.ok() ? *r : TaskId();
}

json node(const TaskId& id, const std::string& type, const std::string& desc, const std::string& status,
          json children = json::array(), std::optional<std::string> name = std::nullopt) {
  json n{{"task_id", id}, {"task_type", type}, {"description", desc}, {"status", status}, {"children", children}};
  if (name) n["name"] = *name;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------------------------

TEST(Introspection, StatsCountByStatusInboxDepthAndLiveBodies) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto st0 = m.stats();
  EXPECT_EQ(st0.running + st0.completed + st0.failed + st0.cancelled, 0u);
  EXPECT_EQ(st0.live_bodies, 0u);
  EXPECT_EQ(st0.owner_inbox_depth, 0u);

  auto ok = m.spawn(kIntrospectedThread, "shell", std::nullopt, "ok", {},
                    [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json(1)); });
  auto bad = m.spawn(kIntrospectedThread, "shell", std::nullopt, "bad", {},
                     [](TaskContext) -> Co<TaskResult> { co_return TaskResult::failed("nope"); });
  auto cancelled =
      m.spawn(kIntrospectedThread, "shell", std::nullopt, "cancelled", {}, [](TaskContext ctx) -> Co<TaskResult> {
        co_await ctx.cancelled();
        co_return TaskResult::cancelled();
      });
  auto sleeping =
      m.spawn(kIntrospectedThread, "shell", std::nullopt, "sleeping", {}, [](TaskContext ctx) -> Co<TaskResult> {
        ctx.emit("started", json{{"n", 1}});
        bool slept = co_await ctx.sleep(1'000'000);
        co_return slept ? TaskResult::success(nullptr) : TaskResult::cancelled();
      });
  auto stubborn = m.spawn("thread-2", "shell", std::nullopt, "stubborn", {}, [](TaskContext ctx) -> Co<TaskResult> {
    co_await sleep_for(ctx.executor(), 1'000'000);
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(ok.ok() && bad.ok() && cancelled.ok() && sleeping.ok() && stubborn.ok());
  EXPECT_EQ(m.stats().running, 5u);
  h->run_until_idle();
  EXPECT_TRUE(m.cancel(*cancelled));
  EXPECT_TRUE(m.cancel(*stubborn));
  h->run_until_idle();

  auto st = m.stats();
  EXPECT_EQ(st.running, 2u);
  EXPECT_EQ(st.completed, 1u);
  EXPECT_EQ(st.failed, 1u);
  EXPECT_EQ(st.cancelled, 1u);
  EXPECT_EQ(st.cancel_requested_running, 1u);
  EXPECT_EQ(st.live_bodies, 2u);
  EXPECT_EQ(st.owner_inbox_depth, 4u);  // "started" + three terminal events
  EXPECT_EQ(h->drain().size(), 4u);
  EXPECT_EQ(m.stats().owner_inbox_depth, 0u);

  // A host task counts by status like any other.
  auto hosted = host(m, kIntrospectedThread, "hosted");
  EXPECT_EQ(m.stats().running, 3u);
  ASSERT_TRUE(m.fail(hosted, "x").ok());
  st = m.stats();
  EXPECT_EQ(st.running, 2u);
  EXPECT_EQ(st.failed, 2u);
  EXPECT_EQ(st.owner_inbox_depth, 1u);
}

TEST(Introspection, TaskTreeNestsChildrenUnderParentsInIdOrder) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto b0 = host(m, kIntrospectedThread, "root task", std::nullopt, std::string_view("alpha"));
  auto b1 = host(m, kIntrospectedThread, "child one", b0, std::nullopt, "http");
  auto b2 = host(m, kIntrospectedThread, "other root");
  auto b3 = host(m, kIntrospectedThread, "grandchild", b1);
  auto b4 = host(m, kIntrospectedThread, "child two", b0, std::string_view("beta"), "sub_agent");
  auto b5 = host(m, "thread-2", "elsewhere");
  ASSERT_EQ(b5, "bg_5");
  ASSERT_TRUE(m.complete(b4, json(1)).ok());
  ASSERT_TRUE(m.fail(b2, "oops").ok());

  json expected = json::array({
      node(b0, "shell", "root task", "running",
           json::array(
               {node(b1, "http", "child one", "running", json::array({node(b3, "shell", "grandchild", "running")})),
                node(b4, "sub_agent", "child two", "completed", json::array(), "beta")}),
           "alpha"),
      node(b2, "shell", "other root", "failed"),
  });
  EXPECT_EQ(m.task_tree(kIntrospectedThread), expected);

  json all = expected;
  all.push_back(node(b5, "shell", "elsewhere", "running"));
  EXPECT_EQ(m.task_tree(), all);
  EXPECT_EQ(m.task_tree("thread-2"), json::array({node(b5, "shell", "elsewhere", "running")}));
  EXPECT_EQ(m.task_tree("nobody"), json::array());
}

TEST(Introspection, TaskTreeOrdersByIdNumerically) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto root = host(m, kIntrospectedThread, "root");
  for (int i = 1; i <= 11; ++i) host(m, kIntrospectedThread, "child", root);
  for (int i = 12; i <= 13; ++i) host(m, kIntrospectedThread, "root");
  auto tree = m.task_tree(kIntrospectedThread);
  ASSERT_TRUE(tree.is_array());
  ASSERT_EQ(tree.size(), 3u);
  EXPECT_EQ(tree[0]["task_id"], "bg_0");
  EXPECT_EQ(tree[1]["task_id"], "bg_12");
  EXPECT_EQ(tree[2]["task_id"], "bg_13");
  std::vector<TaskId> children;
  for (const auto& c : tree[0]["children"]) children.push_back(c["task_id"].get<std::string>());
  EXPECT_EQ(children, bg_range(1, 11));
}

TEST(Introspection, ListReturnsIdOrder) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  for (int i = 0; i < 12; ++i) host(m, kIntrospectedThread, "t");
  host(m, "thread-2", "not mine");
  EXPECT_EQ(ids_of(m.list(kIntrospectedThread)), bg_range(0, 11));

  BackgroundTaskStateSnapshot snap;
  for (const char* id : {"zeta", "bg_20", "alpha"}) {
    snap.tasks[id] = make_meta(id, kIntrospectedThread, TaskStatus::Completed);
  }
  EXPECT_EQ(m.restore_for_thread(kIntrospectedThread, snap), 3u);
  auto ids = ids_of(m.list(kIntrospectedThread));
  ASSERT_EQ(ids.size(), 15u);
  auto numeric = bg_range(0, 11);
  numeric.push_back("bg_20");
  EXPECT_EQ(std::vector<TaskId>(ids.begin(), ids.begin() + 13), numeric) << "bg_N numerically first";
  EXPECT_EQ(std::set<TaskId>(ids.begin() + 13, ids.end()), (std::set<TaskId>{"alpha", "zeta"})) << "then the other ids";
  EXPECT_EQ(ids_of(m.list("thread-2")), (std::vector<TaskId>{"bg_12"}));
  EXPECT_EQ(host(m, kIntrospectedThread, "after restore"), "bg_21") << "restored bg_20 moves the counter";
}

TEST(Introspection, ForgetOnlyTerminalTasks) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto a = host(m, kIntrospectedThread, "a");
  auto b = host(m, kIntrospectedThread, "b");
  auto stubborn =
      m.spawn(kIntrospectedThread, "shell", std::nullopt, "stubborn", {}, [](TaskContext ctx) -> Co<TaskResult> {
        co_await sleep_for(ctx.executor(), 100);
        co_return TaskResult::success(nullptr);
      });
  ASSERT_TRUE(stubborn.ok());
  h->run_until_idle();
  EXPECT_EQ(m.list(kIntrospectedThread).size(), 3u);

  EXPECT_FALSE(m.forget(a)) << "running";
  EXPECT_FALSE(m.forget("bg_999")) << "unknown";
  EXPECT_FALSE(m.forget("nope")) << "unknown";
  EXPECT_TRUE(m.get(a).has_value());

  ASSERT_TRUE(m.complete(a, json(1)).ok());
  EXPECT_TRUE(m.forget(a));
  EXPECT_FALSE(m.forget(a)) << "true once";
  EXPECT_EQ(m.get(a), std::nullopt);
  EXPECT_EQ(ids_of(m.list(kIntrospectedThread)), (std::vector<TaskId>{b, *stubborn}));
  EXPECT_EQ(m.persisted_snapshot().tasks.count(a), 0u);
  EXPECT_FALSE(m.cancel(a));

  // Cancel requested but the body ignores it: still running, not forgettable.
  EXPECT_TRUE(m.cancel(*stubborn));
  h->run_until_idle();
  EXPECT_FALSE(m.forget(*stubborn));
  h->run_for(100);
  EXPECT_EQ(m.get(*stubborn)->status, TaskStatus::Cancelled);
  EXPECT_TRUE(m.forget(*stubborn));
  EXPECT_EQ(ids_of(m.list(kIntrospectedThread)), (std::vector<TaskId>{b}));

  // Ids are never reused after forget.
  EXPECT_EQ(host(m, kIntrospectedThread, "c"), "bg_3");
  EXPECT_EQ(m.stats().completed + m.stats().cancelled, 0u) << "forgotten tasks are not counted";
}

// ---------------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------------

TEST(Retention, RetainFinishedKeepsTheNewestTerminalTasksPerThread) {
  auto h =
      harness_with(ManagerOptions{.retain_finished = 2, .agent_inbox = {}, .concurrency = {}, .cancel_grace_ms = {}});
  auto& m = *h->manager;
  std::vector<TaskId> t1;
  for (int i = 0; i < 5; ++i) t1.push_back(host(m, kIntrospectedThread, "t1"));  // bg_0..bg_4
  auto o1 = host(m, "thread-2", "t2");                                           // bg_5
  auto o2 = host(m, "thread-2", "t2");                                           // bg_6
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(m.complete(t1[i], json(i)).ok());
  ASSERT_TRUE(m.complete(o1, json("o1")).ok());
  ASSERT_TRUE(m.fail(o2, "o2").ok());

  EXPECT_EQ(ids_of(m.list(kIntrospectedThread)), (std::vector<TaskId>{"bg_2", "bg_3", "bg_4"}));
  EXPECT_EQ(m.get("bg_0"), std::nullopt);
  EXPECT_EQ(m.get("bg_1"), std::nullopt);
  EXPECT_EQ(m.get("bg_4")->status, TaskStatus::Running);
  EXPECT_EQ(ids_of(m.list("thread-2")), (std::vector<TaskId>{o1, o2})) << "per thread";
  EXPECT_EQ(h->drain().size(), 6u) << "retention drops records, not events";

  ASSERT_TRUE(m.complete(t1[4], json(4)).ok());
  EXPECT_EQ(ids_of(m.list(kIntrospectedThread)), (std::vector<TaskId>{"bg_3", "bg_4"}));
  EXPECT_EQ(m.persisted_snapshot(kIntrospectedThread).tasks.size(), 2u);
}

TEST(Retention, RetentionAppliesToCoroutineBodiesAndKeepsRunningOnes) {
  auto h =
      harness_with(ManagerOptions{.retain_finished = 2, .agent_inbox = {}, .concurrency = {}, .cancel_grace_ms = {}});
  auto& m = *h->manager;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(m.spawn(kIntrospectedThread, "shell", std::nullopt, "quick", {}, [](TaskContext) -> Co<TaskResult> {
                   co_return TaskResult::success(nullptr);
                 }).ok());
  }
  auto slow = m.spawn(kIntrospectedThread, "shell", std::nullopt, "slow", {}, [](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.sleep(100);
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(slow.ok());
  h->run_until_idle();
  EXPECT_EQ(ids_of(m.list(kIntrospectedThread)), (std::vector<TaskId>{"bg_2", "bg_3", "bg_4"}));
  EXPECT_EQ(m.stats().completed, 2u);
  EXPECT_EQ(m.stats().running, 1u);
  h->run_for(100);
  EXPECT_EQ(ids_of(m.list(kIntrospectedThread)), (std::vector<TaskId>{"bg_3", "bg_4"}));
  EXPECT_EQ(h->drain().size(), 5u);
}

TEST(Retention, ATaskForgottenByHandDoesNotCostARetentionSlot) {
  auto h =
      harness_with(ManagerOptions{.retain_finished = 2, .agent_inbox = {}, .concurrency = {}, .cancel_grace_ms = {}});
  auto& m = *h->manager;
  auto a = host(m, kIntrospectedThread, "a");
  auto b = host(m, kIntrospectedThread, "b");
  auto c = host(m, kIntrospectedThread, "c");
  ASSERT_TRUE(m.complete(a, json(1)).ok());
  ASSERT_TRUE(m.complete(b, json(2)).ok());
  EXPECT_TRUE(m.forget(b));
  ASSERT_TRUE(m.complete(c, json(3)).ok());
  // Terminal tasks left: a and c, which is within the limit of 2.
  EXPECT_EQ(ids_of(m.list(kIntrospectedThread)), (std::vector<TaskId>{a, c}));
}

TEST(Retention, SetRetainFinishedAtRuntime) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  std::vector<TaskId> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(host(m, kIntrospectedThread, "t"));  // bg_0..bg_4
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(m.complete(ids[i], json(i)).ok());
  EXPECT_EQ(m.list(kIntrospectedThread).size(), 5u) << "unlimited by default";

  m.set_retain_finished(2);
  ASSERT_TRUE(m.complete(ids[3], json(3)).ok());
  EXPECT_EQ(ids_of(m.list(kIntrospectedThread)), (std::vector<TaskId>{"bg_2", "bg_3", "bg_4"}));

  m.set_retain_finished(std::nullopt);
  ASSERT_TRUE(m.complete(ids[4], json(4)).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(m.complete(host(m, kIntrospectedThread, "more"), json(i)).ok());
  EXPECT_EQ(ids_of(m.list(kIntrospectedThread)), (std::vector<TaskId>{"bg_2", "bg_3", "bg_4", "bg_5", "bg_6", "bg_7"}));
}

}  // namespace
