// The executor destroyed before the managers that use it (docs/lifetime.md, "When the executor
// goes first"): nothing crashes, nothing leaks (run under the native-asan preset: ASan + LSan), the
// manager stays readable and refuses what needs an executor.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "bgtasks/manager_internals.hpp"
#include "support.hpp"

namespace {
using namespace bgtasks;
using bgtasks::testing::wait_cancelled;

template <class T>
T must(Result<T> r) {
  EXPECT_TRUE(r.ok()) << (r.ok() ? std::string() : r.error().message);
  return std::move(r).value();
}

Co<TaskResult> sleep_a_minute(TaskContext ctx) {
  bool slept = co_await ctx.sleep(60'000);
  co_return slept ? TaskResult::success(1) : TaskResult::cancelled();
}

// A manager with a store, the plugin's keys and an owner inbox.
std::shared_ptr<BackgroundTaskManager> make_manager(Executor& exec, std::shared_ptr<StateStore>& store,
                                                    std::optional<InboxReceiver>& events, ManagerOptions options = {}) {
  store = std::make_shared<StateStore>();
  auto m = std::make_shared<BackgroundTaskManager>(exec, std::move(options));
  EXPECT_TRUE(m->set_store(store).ok());
  auto [tx, rx] = inbox_channel();
  m->set_owner_inbox(std::move(tx));
  events.emplace(std::move(rx));
  EXPECT_TRUE(store->install_plugin(BackgroundTaskPlugin(m)).ok());
  return m;
}

// Live tasks of every kind: running, sleeping on a timer, queued behind a limit, host-driven with
// a deadline (the manager's timer fiber) and a host timer (a coroutine the executor owns), a
// sub-agent reading its inbox. Returns their ids, in that order.
std::vector<TaskId> spawn_every_kind(BackgroundTaskManager& m, Executor& exec) {
  std::vector<TaskId> ids;
  ids.push_back(must(m.spawn({.thread = "t1", .type = "job", .description = "running"}, wait_cancelled)));
  ids.push_back(must(m.spawn({.thread = "t2", .type = "job", .description = "sleeping"}, sleep_a_minute)));
  // Per thread, one at a time: t1's second task queues behind the first.
  ids.push_back(must(m.spawn({.thread = "t1", .type = "job", .description = "queued"}, wait_cancelled)));
  ids.push_back(must(m.spawn_host({.thread = "t3", .type = "host", .description = "host", .timeout_ms = 5'000})));
  ids.push_back(must(
      m.spawn_agent_with_context({.thread = "t4", .description = "agent"}, [](AgentTaskContext ctx) -> Co<TaskResult> {
        auto msg = co_await ctx.inbox_receiver.recv();
        co_return TaskResult::success(msg ? *msg : json());
      })));
  EXPECT_TRUE(bgtasks::detail::ManagerInternals::arm_host_timer(m, ids[3], 1'000).ok());
  exec.run_until_idle();
  EXPECT_TRUE(m.is_queued(ids[2]));
  EXPECT_EQ(m.stats().live_bodies, 4u);  // running, sleeping, host, agent (not the queued one)
  return ids;
}

ManagerOptions one_per_thread() {
  ManagerOptions o;
  o.concurrency.per_thread = 1;
  return o;
}

// What a manager whose executor is gone answers.
void expect_detached(BackgroundTaskManager& m, const std::vector<TaskId>& ids) {
  EXPECT_TRUE(m.executor_gone());
  auto spawned = m.spawn({.thread = "t1", .type = "job", .description = "late"}, wait_cancelled);
  ASSERT_FALSE(spawned.ok());
  EXPECT_EQ(spawned.error().code, Errc::Disposed);
  EXPECT_EQ(spawned.error().message, "the executor this manager ran on was destroyed");
  EXPECT_EQ(spawned.error_code(), Errc::Disposed);
  auto host = m.spawn_host({.thread = "t1", .type = "host"});
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.error().code, Errc::Disposed);
  for (const auto& id : ids) {
    EXPECT_FALSE(m.cancel(id)) << id;
    EXPECT_FALSE(m.emit(id, "late", 1)) << id;
    EXPECT_FALSE(m.is_queued(id)) << id;
    // Reads: the stored entries as they were, as a crash would leave them.
    auto s = m.get(id);
    ASSERT_TRUE(s.has_value()) << id;
    EXPECT_EQ(s->status, TaskStatus::Running) << id;
  }
  auto settled = m.complete(ids[3], 1);
  ASSERT_FALSE(settled.ok());
  EXPECT_EQ(settled.error().code, Errc::TaskNotFound);
  EXPECT_FALSE(bgtasks::detail::ManagerInternals::arm_host_timer(m, ids[3], 10).ok());
  EXPECT_EQ(m.cancel_all("t1"), 0u);
  EXPECT_EQ(m.cancel_tree(ids[0]), 0u);
  EXPECT_EQ(m.begin_shutdown(), 0u);
  EXPECT_EQ(m.finish_shutdown(), 0u);
  EXPECT_TRUE(m.set_concurrency({}).ok());
  const ManagerStats st = m.stats();
  EXPECT_EQ(st.live_bodies, 0u);
  EXPECT_EQ(st.queued, 0u);
  EXPECT_EQ(m.list("t1").size(), 2u);
  EXPECT_NE(m.snapshot_json().find(ids[0]), std::string::npos);
  EXPECT_TRUE(m.has_running("t1"));
}

// A restore on another runtime reports what ran on the dead executor as orphaned.
void expect_orphaned_elsewhere(const std::string& snapshot, const std::vector<TaskId>& ids) {
  ManualClock clock{5'000};
  Executor exec{clock};
  auto rt = make_runtime(exec);
  auto report = rt.manager->restore_json("t1", snapshot);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->added, ids.size());
  for (const auto& id : ids) {
    auto s = rt.manager->get(id);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->status, TaskStatus::Failed);
    EXPECT_EQ(s->error, kOrphanedError);
  }
}

TEST(ExecutorFirst, StackObjectsDeclaredInTheWrongOrder) {
  ManualClock clock{1'000};
  std::vector<TaskId> ids;
  std::string snapshot;
  {
    // The manager is declared first, so it is destroyed last: after the executor.
    std::optional<BackgroundTaskManager> m;
    auto store = std::make_shared<StateStore>();
    Executor exec{clock};
    m.emplace(exec, one_per_thread());
    ASSERT_TRUE(m->set_store(store).ok());
    ASSERT_TRUE(
        store->install_plugin(BackgroundTaskPlugin(std::shared_ptr<BackgroundTaskManager>(&*m, [](auto*) {}))).ok());
    ids = spawn_every_kind(*m, exec);
    snapshot = m->snapshot_json();
  }  // exec goes, then store, then m
  expect_orphaned_elsewhere(snapshot, ids);
}

TEST(ExecutorFirst, ManagerKeepsAnswering) {
  ManualClock clock{1'000};
  auto exec = std::make_unique<Executor>(clock);
  std::shared_ptr<StateStore> store;
  std::optional<InboxReceiver> events;
  auto m = make_manager(*exec, store, events, one_per_thread());
  const auto ids = spawn_every_kind(*m, *exec);
  exec.reset();
  expect_detached(*m, ids);
  // Nothing was reported: the tasks did not end, as after a crash.
  EXPECT_TRUE(events->drain().empty());
  const std::string snapshot = m->snapshot_json();
  m.reset();
  expect_orphaned_elsewhere(snapshot, ids);
}

TEST(ExecutorFirst, PluginAndToolHoldTheManager) {
  ManualClock clock{1'000};
  auto exec = std::make_unique<Executor>(clock);
  std::shared_ptr<StateStore> store;
  std::optional<InboxReceiver> events;
  auto m = make_manager(*exec, store, events, one_per_thread());
  auto plugin = std::make_shared<BackgroundTaskPlugin>(m);
  auto tool = std::make_shared<CancelTaskTool>(m);
  auto env = ExecutionEnv::from_plugins({plugin});
  ASSERT_TRUE(env.ok());
  const auto ids = spawn_every_kind(*m, *exec);
  std::weak_ptr<BackgroundTaskManager> weak = m;
  m.reset();  // the plugin, its hooks and the tool hold it now
  exec.reset();
  ASSERT_FALSE(weak.expired());
  // The tool still answers: nothing is live to cancel.
  ToolCallContext call{"call-1", RunIdentity::for_thread("t1"), std::nullopt};
  ToolResult r;
  {
    auto scope = weak.lock()->enter_task(ids[0]);  // as a call made from inside the task
    r = execute_tool(*tool, json{{"target", {{"relation", "self"}}}}, call);
  }
  EXPECT_EQ(r.status, "success");
  EXPECT_EQ(r.data["cancelled_count"], 0);
  // The plugin's hooks still read the store.
  auto phases = PhaseRuntime::create(store);
  ASSERT_TRUE(phases.ok());
  EXPECT_TRUE(
      phases
          ->run_phase_with_context(
              *env, PhaseContext(Phase::StepEnd, store->snapshot()).with_run_identity(RunIdentity::for_thread("t1")))
          .ok());
  expect_detached(*weak.lock(), ids);
  tool.reset();
  env = Error{Errc::InvalidArgument, "dropped", std::nullopt};
  plugin.reset();
  EXPECT_TRUE(weak.expired());
}

TEST(ExecutorFirst, ManagerGoesBeforeTheExecutorAsBefore) {
  ManualClock clock{1'000};
  Executor exec{clock};
  std::shared_ptr<StateStore> store;
  std::optional<InboxReceiver> events;
  auto m = make_manager(exec, store, events, one_per_thread());
  spawn_every_kind(*m, exec);
  m.reset();  // detaches: the executor's end no longer reaches it
  exec.run_until_idle();
  EXPECT_EQ(exec.timer_count(), 1u);  // the host timer's coroutine, the executor's own
}

// A body that never ends and holds the last owner of its manager: manager -> frame -> manager.
// Destroying the executor breaks the cycle (LSan reports the leak otherwise).
TEST(ExecutorFirst, BodyHoldingItsManagerIsFreed) {
  ManualClock clock{1'000};
  auto exec = std::make_unique<Executor>(clock);
  std::weak_ptr<BackgroundTaskManager> weak;
  std::weak_ptr<StateStore> weak_store;
  {
    std::shared_ptr<StateStore> store;
    std::optional<InboxReceiver> events;
    auto m = make_manager(*exec, store, events, one_per_thread());
    weak = m;
    weak_store = store;
    // Running, forever: a timer loop.
    must(m->spawn({.thread = "t1", .type = "loop", .description = "holds its manager"},
                  [m](TaskContext ctx) -> Co<TaskResult> {
                    for (;;) co_await sleep_for(ctx.executor(), 1'000);  // never ends, ignores cancels
                  }));
    // Queued (one per thread): its callable holds the manager too.
    must(m->spawn({.thread = "t1", .type = "loop", .description = "queued, holds its manager"},
                  [m](TaskContext ctx) -> Co<TaskResult> {
                    co_await ctx.cancelled();
                    co_return TaskResult::cancelled();
                  }));
    exec->run_until_idle();
    exec->advance(3'000);
    exec->run_until_idle();
  }
  ASSERT_FALSE(weak.expired());  // the cycle keeps it
  exec.reset();
  EXPECT_TRUE(weak.expired());
  EXPECT_TRUE(weak_store.expired());
}

// Two managers whose bodies hold each other: ending the newer one frees the older one from inside
// that end, which frees the newer one from inside its own executor_ending().
TEST(ExecutorFirst, ManagersHoldingEachOtherAreFreed) {
  ManualClock clock{1'000};
  auto exec = std::make_unique<Executor>(clock);
  std::weak_ptr<BackgroundTaskManager> weak_a, weak_b;
  {
    std::shared_ptr<StateStore> sa, sb;
    std::optional<InboxReceiver> ea, eb;
    auto a = make_manager(*exec, sa, ea);
    auto b = make_manager(*exec, sb, eb);
    weak_a = a;
    weak_b = b;
    const TaskId in_b = must(
        b->spawn({.thread = "t", .type = "hold", .description = "holds a"}, [a](TaskContext ctx) -> Co<TaskResult> {
          co_await ctx.cancelled();
          co_return TaskResult::cancelled();
        }));
    // a's body holds b, and waits for b's task.
    must(a->spawn({.thread = "t", .type = "hold", .description = "holds b"}, [b, in_b](TaskContext) -> Co<TaskResult> {
      auto s = co_await b->wait(in_b);
      co_return TaskResult::success(s ? 1 : 0);
    }));
    exec->run_until_idle();
  }
  ASSERT_FALSE(weak_a.expired());
  ASSERT_FALSE(weak_b.expired());
  exec.reset();
  EXPECT_TRUE(weak_a.expired());
  EXPECT_TRUE(weak_b.expired());
}

// A context or token kept past the executor: no event, no child, no crash.
TEST(ExecutorFirst, KeptContextAndTokenAreInert) {
  ManualClock clock{1'000};
  auto exec = std::make_unique<Executor>(clock);
  std::shared_ptr<StateStore> store;
  std::optional<InboxReceiver> events;
  auto m = make_manager(*exec, store, events);
  std::optional<TaskContext> kept;
  const TaskId id =
      must(m->spawn({.thread = "t1", .type = "job", .description = "d"}, [&kept](TaskContext ctx) -> Co<TaskResult> {
        kept = ctx;
        co_await ctx.cancelled();
        co_return TaskResult::cancelled();
      }));
  exec->run_until_idle();
  ASSERT_TRUE(kept.has_value());
  CancellationToken token = kept->cancel_token();
  exec.reset();
  EXPECT_FALSE(kept->emit("late", 1));
  auto child = kept->spawn({.type = "child"}, wait_cancelled);
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.error().code, Errc::TaskTerminated);
  token.cancel();
  EXPECT_TRUE(kept->is_cancelled());
  EXPECT_TRUE(events->drain().empty());
  EXPECT_EQ(m->get(id)->status, TaskStatus::Running);
  m.reset();
  kept.reset();  // the core goes with the last of them
}

// A runtime (make_runtime) declared before its executor: the usual order in a host's class.
TEST(ExecutorFirst, RuntimeOutlivesItsExecutor) {
  ManualClock clock{1'000};
  std::optional<Runtime> rt;
  std::vector<TaskId> ids;
  {
    Executor exec{clock};
    rt = make_runtime(exec, {.concurrency = {.per_thread = 1}});
    ids = spawn_every_kind(*rt->manager, exec);
  }
  expect_detached(*rt->manager, ids);
  rt.reset();
}

}  // namespace
