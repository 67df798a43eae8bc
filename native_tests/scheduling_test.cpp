// Scheduling beyond awaken (docs/scheduling.md): concurrency limits, deadlines, the cancel grace,
// shutdown, cancel reasons, fan-out to listeners, and no event after a task's terminal one. Every
// test runs on the manual clock.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bgtasks/codec.hpp"
#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::testing::Harness;

std::unique_ptr<Harness> harness_with(ManagerOptions options, bool with_inbox = true, InboxOptions inbox = {}) {
  auto h = std::make_unique<Harness>();
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec, std::move(options));
  if (with_inbox) {
    auto [tx, rx] = inbox_channel(inbox);
    h->inbox.emplace(std::move(rx));
    h->manager->set_owner_inbox(std::move(tx));
  }
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  auto plugin = std::make_shared<BackgroundTaskPlugin>(h->manager);
  auto env = ExecutionEnv::from_plugins({plugin});
  EXPECT_TRUE(env.ok());
  EXPECT_TRUE(h->store->register_keys(env->key_registrations).ok());
  return h;
}

ManagerOptions limits(std::optional<std::size_t> per_thread,
                      std::map<std::string, std::size_t, std::less<>> per_type = {}) {
  ManagerOptions o;
  o.concurrency.per_thread = per_thread;
  o.concurrency.per_type = std::move(per_type);
  return o;
}

ManagerOptions grace(std::uint64_t ms) {
  ManagerOptions o;
  o.cancel_grace_ms = ms;
  return o;
}

// What the bodies of a test did, shared with them.
struct Log {
  std::vector<std::string> started;
  int running = 0;
  int max_running = 0;
  int built = 0;      // body frames made
  int destroyed = 0;  // callables (captures) destroyed
};

// A capture that runs `on_destroy` whenever a copy of it is destroyed (copies only, so a moved-from
// one runs it too): what user code in a task callable's captures sees as the manager drops it.
class DestructorProbe {
 public:
  explicit DestructorProbe(std::function<void()> on_destroy)
      : on_destroy_(std::make_shared<std::function<void()>>(std::move(on_destroy))) {}
  DestructorProbe(const DestructorProbe&) = default;
  ~DestructorProbe() { (*on_destroy_)(); }

 private:
  std::shared_ptr<std::function<void()>> on_destroy_;
};

// A body that records its start, sleeps `ms` (ignoring cancel when `stubborn`) and completes.
auto sleeper(std::shared_ptr<Log> log, std::string name, std::uint64_t ms, bool stubborn = false) {
  return [log, name, ms, stubborn](TaskContext ctx) -> Co<TaskResult> {
    log->started.push_back(name);
    log->max_running = std::max(log->max_running, ++log->running);
    if (stubborn)
      co_await sleep_for(ctx.executor(), ms);
    else
      co_await ctx.sleep(ms);
    --log->running;
    co_return TaskResult::success(name);
  };
}

TaskId must(Result<TaskId> r) {
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : TaskId();
}

TaskStatus status_of(BackgroundTaskManager& m, const TaskId& id) { return m.get(id)->status; }

std::string error_of(BackgroundTaskManager& m, const TaskId& id) {
  auto s = m.get(id);
  return s && s->error ? std::string(*s->error) : std::string();
}

// ============================================================================ error codes and options

TEST(SchedulingErrors, DisposedAndShuttingDownFollowStaleOwner) {
  EXPECT_EQ(static_cast<int>(Errc::Disposed), static_cast<int>(Errc::StaleOwner) + 1);
  EXPECT_EQ(static_cast<int>(Errc::ShuttingDown), static_cast<int>(Errc::StaleOwner) + 2);
  EXPECT_STREQ(errc_name(Errc::Disposed), "Disposed");
  EXPECT_STREQ(errc_name(Errc::ShuttingDown), "ShuttingDown");
  EXPECT_EQ(errors::shutting_down().message, "spawn refused: the manager is shutting down");
}

TEST(SpawnOptionsForm, SpawnsAsThePositionalFormDoes) {
  auto h = harness_with({});
  auto& m = *h->manager;
  SpawnOptions o;
  o.thread = "t1";
  o.type = "shell";
  o.name = "build";
  o.description = "by options";
  o.parent_context.run_id = "run-1";
  const TaskId a = must(m.spawn(o, bgtasks::testing::finish_at_once));
  o.name = "build-host";  // the first is still running: its name is taken
  const TaskId b = must(m.spawn_host(o));
  EXPECT_EQ(m.get(b)->task_type, "shell");
  o.name = "agent";
  const TaskId c = must(m.spawn_agent(
      o, [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> { co_return TaskResult::success(1); }));
  o.name = std::nullopt;
  const TaskId d = must(m.spawn_host(o, /*sub_agent=*/true));
  h->run_until_idle();
  EXPECT_EQ(status_of(m, a), TaskStatus::Completed);
  EXPECT_EQ(m.get(a)->description, "by options");
  EXPECT_EQ(*m.get(a)->parent_context.run_id, "run-1");
  EXPECT_EQ(m.get(c)->task_type, "sub_agent");
  EXPECT_EQ(m.get(d)->task_type, "sub_agent");
  EXPECT_TRUE(m.send_task_inbox_message(d, "t1", "me", "hi").ok()) << "a host sub-agent has its inbox";
}

// ============================================================================ concurrency limits

TEST(Limits, NeverMoreThanNBodiesRunAndQueuedOnesStartInSpawnOrder) {
  auto h = harness_with(limits(2));
  auto& m = *h->manager;
  auto log = std::make_shared<Log>();
  std::vector<TaskId> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(must(m.spawn("t1", "job", std::nullopt, "d", {}, sleeper(log, "w" + std::to_string(i), 10))));
  EXPECT_FALSE(m.is_queued(ids[0]));
  EXPECT_FALSE(m.is_queued(ids[1]));
  for (int i = 2; i < 5; ++i) EXPECT_TRUE(m.is_queued(ids[i])) << i;
  // A queued task has its stored entry at once, `running` as awaken would write it.
  EXPECT_EQ(status_of(m, ids[4]), TaskStatus::Running);
  EXPECT_EQ(m.stats().queued, 3u);
  EXPECT_EQ(m.stats().running, 5u);
  EXPECT_EQ(m.stats().live_bodies, 2u);
  h->run_for(100);
  EXPECT_LE(log->max_running, 2);
  EXPECT_EQ(log->started, (std::vector<std::string>{"w0", "w1", "w2", "w3", "w4"}));
  for (const auto& id : ids) EXPECT_EQ(status_of(m, id), TaskStatus::Completed);
  EXPECT_EQ(m.stats().queued, 0u);
}

TEST(Limits, AQueuedTaskStartsWhenASlotFreesNotBefore) {
  auto h = harness_with(limits(1));
  auto& m = *h->manager;
  auto log = std::make_shared<Log>();
  const TaskId a = must(m.spawn("t1", "job", std::nullopt, "d", {}, sleeper(log, "a", 10)));
  const TaskId b = must(m.spawn("t1", "job", std::nullopt, "d", {}, sleeper(log, "b", 10)));
  h->run_until_idle();
  EXPECT_EQ(log->started, (std::vector<std::string>{"a"}));
  h->exec.advance(9);
  h->run_until_idle();
  EXPECT_TRUE(m.is_queued(b));
  h->exec.advance(1);  // a ends at 10: b starts
  h->run_until_idle();
  EXPECT_EQ(status_of(m, a), TaskStatus::Completed);
  EXPECT_FALSE(m.is_queued(b));
  EXPECT_EQ(log->started, (std::vector<std::string>{"a", "b"}));
}

TEST(Limits, PerTypeAndPerThreadTogetherAndABlockedTaskHoldsBackNoOtherThreadOrType) {
  // Two per thread, one "shell" at a time.
  auto h = harness_with(limits(2, {{"shell", 1}}));
  auto& m = *h->manager;
  auto log = std::make_shared<Log>();
  must(m.spawn("t1", "shell", std::nullopt, "d", {}, sleeper(log, "t1-shell-a", 10)));                    // starts
  const TaskId s2 = must(m.spawn("t1", "shell", std::nullopt, "d", {}, sleeper(log, "t1-shell-b", 10)));  // type full
  const TaskId j1 = must(m.spawn("t1", "job", std::nullopt, "d", {}, sleeper(log, "t1-job-a", 10)));      // t1 has room
  const TaskId j2 = must(m.spawn("t1", "job", std::nullopt, "d", {}, sleeper(log, "t1-job-b", 10)));      // t1 full
  const TaskId s3 = must(m.spawn("t2", "shell", std::nullopt, "d", {}, sleeper(log, "t2-shell", 10)));    // type full
  const TaskId j3 = must(m.spawn("t2", "job", std::nullopt, "d", {}, sleeper(log, "t2-job", 10)));        // t2 has room
  EXPECT_TRUE(m.is_queued(s2));
  EXPECT_FALSE(m.is_queued(j1));
  EXPECT_TRUE(m.is_queued(j2));
  EXPECT_TRUE(m.is_queued(s3));
  EXPECT_FALSE(m.is_queued(j3)) << "a blocked shell task does not hold back a later task of another type";
  h->run_until_idle();
  EXPECT_EQ(log->started, (std::vector<std::string>{"t1-shell-a", "t1-job-a", "t2-job"}));
  EXPECT_EQ(log->max_running, 3);
  // At 10 all three end: the queue is scanned in order. t1-shell-b takes the shell slot and one
  // of t1's; t1-job-b takes t1's other; t2-shell finds the shell type full again.
  h->run_for(10);
  EXPECT_EQ(log->started, (std::vector<std::string>{"t1-shell-a", "t1-job-a", "t2-job", "t1-shell-b", "t1-job-b"}));
  EXPECT_TRUE(m.is_queued(s3));
  h->run_for(10);
  EXPECT_EQ(log->started.back(), "t2-shell");
  h->run_for(10);
  EXPECT_EQ(m.stats().completed, 6u);
}

TEST(Limits, CancellingAQueuedTaskEndsItAtOnceWithoutEverBuildingItsBody) {
  auto h = harness_with(limits(1));
  auto& m = *h->manager;
  auto log = std::make_shared<Log>();
  must(m.spawn("t1", "job", std::nullopt, "d", {}, sleeper(log, "a", 10)));
  const TaskId b =
      must(m.spawn("t1", "job", std::nullopt, "d", {},
                   [log, probe = DestructorProbe([log] { ++log->destroyed; })](TaskContext) -> Co<TaskResult> {
                     ++log->built;
                     co_return TaskResult::success(nullptr);
                   }));
  ASSERT_TRUE(m.is_queued(b));
  const int destroyed_before = log->destroyed;
  std::optional<TaskSummary> waited;
  bool resumed = false;
  h->exec.spawn([](BackgroundTaskManager* m, TaskId id, std::optional<TaskSummary>* out, bool* done) -> Co<void> {
    *out = co_await m->wait(id);
    *done = true;
  }(&m, b, &waited, &resumed));
  h->run_until_idle();
  EXPECT_FALSE(resumed);
  h->drain();
  EXPECT_TRUE(m.cancel(b));
  EXPECT_EQ(status_of(m, b), TaskStatus::Cancelled) << "at once";
  EXPECT_FALSE(m.is_queued(b));
  EXPECT_EQ(h->drain(), (std::vector<json>{json{{"kind", "cancelled"}, {"task_id", b}}}));
  EXPECT_GT(log->destroyed, destroyed_before) << "the queued callable is dropped";
  EXPECT_EQ(m.cancel_reason(b), CancelReason::Cancel);
  h->run_for(50);
  EXPECT_TRUE(resumed);
  EXPECT_EQ(waited->status, TaskStatus::Cancelled);
  EXPECT_EQ(log->built, 0) << "the body never ran";
  EXPECT_FALSE(m.cancel(b)) << "ended";
}

// The never-started callable of a queued task is destroyed once the end is recorded and reported:
// code in its destructor finds the task ended, and a cancel from there says false.
TEST(Limits, AQueuedTasksCallableIsDestroyedAfterItsEndIsRecorded) {
  for (const bool by_shutdown : {false, true}) {
    SCOPED_TRACE(by_shutdown ? "ended by a shutdown" : "ended by a cancel");
    auto h = harness_with(limits(1));
    auto& m = *h->manager;
    auto log = std::make_shared<Log>();
    must(m.spawn("t1", "job", std::nullopt, "d", {}, sleeper(log, "a", 10)));
    struct Seen {
      std::optional<TaskStatus> status;
      bool cancel_answer = true;
      std::size_t events_before = 0;
    };
    auto seen = std::make_shared<Seen>();
    auto target = std::make_shared<TaskId>();
    auto look = [&m, seen, target, harness = h.get()] {
      if (target->empty() || seen->status) return;  // a copy made during the spawn; seen once
      if (auto s = m.get(*target); s && is_terminal(s->status)) seen->status = s->status;
      if (seen->status) {
        seen->cancel_answer = m.cancel(*target);
        seen->events_before = harness->drain().size();
      }
    };
    *target = must(m.spawn(
        "t1", "job", std::nullopt, "d", {},
        [probe = DestructorProbe(look)](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); }));
    ASSERT_TRUE(m.is_queued(*target));
    h->drain();
    if (by_shutdown)
      m.begin_shutdown();
    else
      EXPECT_TRUE(m.cancel(*target));
    ASSERT_TRUE(seen->status.has_value()) << "the destructor ran and found the task ended";
    EXPECT_EQ(*seen->status, by_shutdown ? TaskStatus::Failed : TaskStatus::Cancelled);
    EXPECT_FALSE(seen->cancel_answer) << "an ended task takes no cancel";
    EXPECT_EQ(seen->events_before, 1u) << "its terminal event was already queued";
  }
}

TEST(Limits, AQueuedTasksCancelIsReportedBeforeItsEndAndItsHookMaySettleIt) {
  auto h = harness_with(limits(1));
  auto& m = *h->manager;
  std::vector<std::string> seen;
  must(m.spawn_host("t1", "job", std::nullopt, "holds the slot", {}));
  const TaskId b = must(m.spawn_host("t1", "job", std::nullopt, "queued", {}));
  const TaskId c = must(m.spawn_host("t1", "job", std::nullopt, "queued, settled by the hook", {}));
  m.set_hooks(ManagerHooks{[&](const TaskId& id) {
                             seen.push_back("cancel " + id +
                                            (m.get(id)->status == TaskStatus::Running ? " running" : " ended"));
                             if (id == c) {
                               EXPECT_TRUE(m.complete(c, json("late")).ok());
                             }
                           },
                           [&](const TaskSummary& s) { seen.push_back("end " + s.task_id + " " + as_str(s.status)); },
                           nullptr, [&](const TaskId& id, TaskStatus) { seen.push_back("forced " + id); }});
  EXPECT_TRUE(m.cancel(b));
  EXPECT_TRUE(m.cancel(c));
  EXPECT_EQ(seen, (std::vector<std::string>{"cancel " + b + " running", "end " + b + " cancelled", "forced " + b,
                                            "cancel " + c + " running", "end " + c + " cancelled"}))
      << "a queued task settled by the hook ends as its cancel says, and was not ended by force";
}

TEST(Limits, QueuedShowsInSummariesTreeAndJsonOnlyWhileQueued) {
  auto h = harness_with(limits(1));
  auto& m = *h->manager;
  const TaskId a = must(m.spawn_host("t1", "job", std::nullopt, "a", {}));
  const TaskId b = must(m.spawn_host("t1", "job", std::nullopt, "b", {}));
  EXPECT_FALSE(m.get(a)->queued);
  EXPECT_TRUE(m.get(b)->queued);
  EXPECT_EQ(dump(*m.get(a)).find("queued"), std::string::npos);
  EXPECT_NE(dump(*m.get(b)).find("\"queued\":true"), std::string::npos);
  EXPECT_TRUE(to_json(*m.get(b)).at("queued").get<bool>());
  auto listed = m.list("t1");
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_FALSE(listed[0].queued);
  EXPECT_TRUE(listed[1].queued);
  const json tree = m.task_tree("t1");
  EXPECT_FALSE(tree[0].contains("queued"));
  EXPECT_TRUE(tree[1].at("queued").get<bool>());
  EXPECT_EQ(m.stats().to_json().at("queued"), 1);
  // Snapshots never carry it: awaken can read them.
  EXPECT_EQ(m.snapshot_json().find("queued"), std::string::npos);
  // A summary decoded with it keeps it.
  auto decoded = summary_from_json(json::parse(dump(*m.get(b))));
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(decoded->queued);
  ASSERT_TRUE(m.complete(a, json(1)).ok());
  EXPECT_FALSE(m.get(b)->queued) << "started when a ended";
}

TEST(Limits, ARestoreTreatsAQueuedTaskAsAnyRunningOne) {
  auto h = harness_with(limits(1));
  auto& m = *h->manager;
  must(m.spawn_host("t1", "job", std::nullopt, "a", {}));
  const TaskId b = must(m.spawn_host("t1", "job", std::nullopt, "b", {}));
  ASSERT_TRUE(m.is_queued(b));
  const std::string snap = m.snapshot_json("t1");
  auto other = harness_with(limits(1));
  auto report = other->manager->restore_json("t1", snap);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->added, 2u);
  EXPECT_EQ(status_of(*other->manager, b), TaskStatus::Failed);
  EXPECT_EQ(error_of(*other->manager, b), kOrphanedError);
  EXPECT_FALSE(other->manager->get(b)->queued);
  // In its own manager the entry is live: skipped, as any live task's.
  auto again = m.restore_json("t1", snap);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->skipped.size(), 2u);
  EXPECT_TRUE(m.is_queued(b));
}

TEST(Limits, ZeroIsRefusedAndChangesNothing) {
  auto h = harness_with(limits(2));
  auto& m = *h->manager;
  ConcurrencyLimits zero;
  zero.per_thread = 0;
  auto r = m.set_concurrency(zero);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::InvalidArgument);
  EXPECT_EQ(m.concurrency().per_thread, 2u);
  ConcurrencyLimits zero_type;
  zero_type.per_type["shell"] = 0;
  EXPECT_EQ(m.set_concurrency(zero_type).error().code, Errc::InvalidArgument);
  // Given to the constructor, such limits refuse every spawn until valid ones are set.
  auto bad = harness_with(limits(0));
  auto s = bad->manager->spawn_host("t1", "job", std::nullopt, "d", {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, Errc::InvalidArgument);
  ConcurrencyLimits one;
  one.per_thread = 1;
  ASSERT_TRUE(bad->manager->set_concurrency(one).ok());
  EXPECT_TRUE(bad->manager->spawn_host("t1", "job", std::nullopt, "d", {}).ok());
}

TEST(Limits, RaisingOrLiftingLimitsStartsQueuedTasksAndCountsTasksStartedBefore) {
  auto h = harness_with({});
  auto& m = *h->manager;
  std::vector<TaskId> started_hook;
  m.set_hooks(ManagerHooks{nullptr, nullptr, [&](const TaskId& id) { started_hook.push_back(id); }});
  const TaskId a = must(m.spawn_host("t1", "job", std::nullopt, "before limits", {}));
  ConcurrencyLimits one;
  one.per_thread = 1;
  ASSERT_TRUE(m.set_concurrency(one).ok());
  const TaskId b = must(m.spawn_host("t1", "job", std::nullopt, "b", {}));
  const TaskId c = must(m.spawn_host("t1", "job", std::nullopt, "c", {}));
  EXPECT_TRUE(m.is_queued(b)) << "the task started before the limits holds the slot";
  EXPECT_TRUE(m.is_queued(c));
  ConcurrencyLimits two;
  two.per_thread = 2;
  ASSERT_TRUE(m.set_concurrency(two).ok());
  EXPECT_FALSE(m.is_queued(b));
  EXPECT_TRUE(m.is_queued(c));
  EXPECT_EQ(started_hook, (std::vector<TaskId>{b}));
  ASSERT_TRUE(m.set_concurrency({}).ok());
  EXPECT_FALSE(m.is_queued(c));
  EXPECT_EQ(started_hook, (std::vector<TaskId>{b, c}));
  (void)a;
}

TEST(Limits, AQueuedSubAgentTakesMessagesBeforeItsBodyStarts) {
  auto h = harness_with(limits(1));
  auto& m = *h->manager;
  must(m.spawn_host("t1", "job", std::nullopt, "holds the slot", {}));
  auto got = std::make_shared<std::vector<json>>();
  const TaskId agent = must(m.spawn_agent("t1", std::nullopt, "queued agent", {},
                                          [got](CancellationToken, InboxSender, InboxReceiver rx) -> Co<TaskResult> {
                                            while (auto msg = rx.try_recv()) got->push_back(*msg);
                                            co_return TaskResult::success(nullptr);
                                          }));
  ASSERT_TRUE(m.is_queued(agent));
  EXPECT_TRUE(m.send_task_inbox_message(agent, "t1", "parent", "early").ok());
  EXPECT_TRUE(m.take_agent_messages(agent).empty()) << "the receiving end is the body's";
  EXPECT_EQ(m.cancel_all("t1"), 2u) << "the slot holder and the queued agent";
  h->run_until_idle();
  EXPECT_EQ(status_of(m, agent), TaskStatus::Cancelled) << "cancel_all reached the queued agent too";
}

TEST(Limits, AQueuedSubAgentsBodyReadsWhatCameWhileItWaited) {
  auto h = harness_with(limits(1));
  auto& m = *h->manager;
  const TaskId holder = must(m.spawn_host("t1", "job", std::nullopt, "holds the slot", {}));
  auto got = std::make_shared<std::vector<json>>();
  const TaskId agent = must(m.spawn_agent("t1", std::nullopt, "queued agent", {},
                                          [got](CancellationToken, InboxSender, InboxReceiver rx) -> Co<TaskResult> {
                                            while (auto msg = rx.try_recv()) got->push_back(*msg);
                                            co_return TaskResult::success(nullptr);
                                          }));
  ASSERT_TRUE(m.send_task_inbox_message(agent, "t1", "parent", "early").ok());
  ASSERT_TRUE(m.complete(holder, json(1)).ok());
  h->run_until_idle();
  EXPECT_EQ(status_of(m, agent), TaskStatus::Completed);
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0]["payload"]["content"], "early");
}

TEST(Limits, AHostTasksStartIsReportedThroughTheHook) {
  auto h = harness_with(limits(std::nullopt, {{"shell", 1}}));
  auto& m = *h->manager;
  std::vector<TaskId> started;
  m.set_hooks(ManagerHooks{nullptr, nullptr, [&](const TaskId& id) { started.push_back(id); }});
  const TaskId a = must(m.spawn_host("t1", "shell", std::nullopt, "a", {}));
  const TaskId b = must(m.spawn_host("t2", "shell", std::nullopt, "b", {}));
  EXPECT_TRUE(started.empty()) << "a task that starts at spawn is not reported";
  EXPECT_TRUE(m.is_queued(b));
  ASSERT_TRUE(m.fail(a, "boom").ok());
  EXPECT_EQ(started, (std::vector<TaskId>{b}));
  EXPECT_FALSE(m.is_queued(b));
}

// ============================================================================ deadlines

TEST(Deadlines, ATimeoutFiresExactlyAtSpawnPlusTimeoutNotAMillisecondBefore) {
  auto h = harness_with({});
  auto& m = *h->manager;
  auto log = std::make_shared<Log>();
  SpawnOptions o{"t1", "job", std::nullopt, "slow", {}, 100};
  std::optional<CancelReason> seen_reason;
  bool body_returned = false;
  const TaskId id = must(m.spawn(o, [&](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.sleep(1000);  // returns early: the timeout requests the cancel
    seen_reason = ctx.cancel_reason();
    EXPECT_FALSE(ctx.emit("late", 1)) << "no event after the terminal one";
    body_returned = true;
    co_return TaskResult::success("too late");
  }));
  h->exec.advance(99);
  h->run_until_idle();
  EXPECT_EQ(status_of(m, id), TaskStatus::Running);
  h->drain();
  h->exec.advance(1);
  h->run_until_idle();
  EXPECT_EQ(status_of(m, id), TaskStatus::Failed);
  EXPECT_EQ(error_of(m, id), "task timed out after 100 ms");
  EXPECT_EQ(m.get(id)->completed_at_ms, 1'000'100u);
  EXPECT_TRUE(body_returned);
  EXPECT_EQ(seen_reason, CancelReason::Timeout);
  EXPECT_EQ(m.cancel_reason(id), CancelReason::Timeout);
  EXPECT_EQ(h->drain(),
            (std::vector<json>{json{{"kind", "failed"}, {"task_id", id}, {"error", "task timed out after 100 ms"}}}))
      << "one terminal event; the body's own end is discarded";
  EXPECT_EQ(status_of(m, id), TaskStatus::Failed);
  EXPECT_FALSE(h->exec.next_deadline());
}

TEST(Deadlines, ATaskThatEndsFirstDisarmsItsDeadline) {
  auto h = harness_with({});
  auto& m = *h->manager;
  const TaskId id = must(m.spawn_host(SpawnOptions{"t1", "job", std::nullopt, "quick", {}, 100}));
  EXPECT_EQ(h->exec.next_deadline(), 1'000'100u);
  ASSERT_TRUE(m.complete(id, json(1)).ok());
  EXPECT_FALSE(h->exec.next_deadline()) << "disarmed";
  h->run_for(500);
  EXPECT_EQ(status_of(m, id), TaskStatus::Completed);
}

TEST(Deadlines, AHostTaskTimesOutAndItsLaterSettleIsRefusedAndRecordsNothing) {
  auto h = harness_with({});
  auto& m = *h->manager;
  std::vector<std::pair<TaskId, TaskStatus>> forced;
  std::vector<TaskId> cancel_requests;
  m.set_hooks(ManagerHooks{[&](const TaskId& id) { cancel_requests.push_back(id); }, nullptr, nullptr,
                           [&](const TaskId& id, TaskStatus s) { forced.emplace_back(id, s); }});
  const TaskId id = must(m.spawn_host(SpawnOptions{"t1", "job", std::nullopt, "host", {}, 30}));
  h->run_for(30);
  EXPECT_EQ(status_of(m, id), TaskStatus::Failed);
  EXPECT_EQ(forced, (std::vector<std::pair<TaskId, TaskStatus>>{{id, TaskStatus::Failed}}));
  EXPECT_EQ(cancel_requests, (std::vector<TaskId>{id})) << "so the host body can stop";
  h->drain();
  auto late = m.complete(id, json("late"));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, Errc::TaskTerminated);
  EXPECT_FALSE(m.emit(id, "progress", 1));
  EXPECT_TRUE(h->drain().empty());
  EXPECT_EQ(error_of(m, id), "task timed out after 30 ms");
}

TEST(Deadlines, AQueuedTasksDeadlineCountsFromItsSpawn) {
  auto h = harness_with(limits(1));
  auto& m = *h->manager;
  const TaskId a = must(m.spawn_host("t1", "job", std::nullopt, "holds the slot", {}));
  const TaskId b = must(m.spawn_host(SpawnOptions{"t1", "job", std::nullopt, "queued", {}, 50}));
  ASSERT_TRUE(m.is_queued(b));
  h->run_for(49);
  EXPECT_EQ(status_of(m, b), TaskStatus::Running);
  h->run_for(1);
  EXPECT_EQ(status_of(m, b), TaskStatus::Failed);
  EXPECT_EQ(error_of(m, b), "task timed out after 50 ms");
  EXPECT_FALSE(m.is_queued(b));
  EXPECT_EQ(m.stats().queued, 0u);
  ASSERT_TRUE(m.complete(a, json(1)).ok());
  EXPECT_EQ(status_of(m, b), TaskStatus::Failed) << "a timed-out queued task never starts";
}

TEST(Deadlines, ATimeoutOnATaskWhoseCancelWasRequestedEndsItCancelled) {
  auto h = harness_with({});
  auto& m = *h->manager;
  const TaskId id = must(m.spawn_host(SpawnOptions{"t1", "job", std::nullopt, "host", {}, 20}));
  EXPECT_TRUE(m.cancel(id));
  h->run_for(20);
  EXPECT_EQ(status_of(m, id), TaskStatus::Cancelled) << "cancel(id) == true promised `cancelled`";
  EXPECT_EQ(m.cancel_reason(id), CancelReason::Cancel);
}

TEST(Deadlines, WithGraceAStubbornBodyIsEndedByItsTimeoutAndDiscarded) {
  auto h = harness_with(grace(10));
  auto& m = *h->manager;
  auto log = std::make_shared<Log>();
  const TaskId id =
      must(m.spawn(SpawnOptions{"t1", "job", std::nullopt, "stubborn", {}, 40}, sleeper(log, "s", 500, true)));
  h->run_for(40);
  EXPECT_EQ(status_of(m, id), TaskStatus::Failed) << "the timeout ends the task itself; no grace needed";
  EXPECT_EQ(m.stats().live_bodies, 1u) << "its body still runs";
  h->drain();
  h->run_for(1000);
  EXPECT_TRUE(h->drain().empty()) << "its end is discarded";
  EXPECT_EQ(m.stats().live_bodies, 0u);
  EXPECT_EQ(error_of(m, id), "task timed out after 40 ms");
}

TEST(Deadlines, AForcedEndCanBeForgottenWhileItsBodyRuns) {
  auto h = harness_with({});
  auto& m = *h->manager;
  auto log = std::make_shared<Log>();
  const TaskId id =
      must(m.spawn(SpawnOptions{"t1", "job", std::nullopt, "stubborn", {}, 5}, sleeper(log, "s", 100, true)));
  h->run_for(5);
  EXPECT_TRUE(m.forget(id));
  EXPECT_FALSE(m.get(id));
  EXPECT_EQ(m.stats().live_bodies, 1u);
  h->run_for(200);
  EXPECT_EQ(m.stats().live_bodies, 0u);
  EXPECT_FALSE(m.get(id)) << "its return records nothing";
}

TEST(Deadlines, DestroyingTheManagerWithARunningForcedBodyFreesIt) {
  auto h = harness_with({});
  auto log = std::make_shared<Log>();
  const TaskId id =
      must(h->manager->spawn(SpawnOptions{"t1", "job", std::nullopt, "stubborn", {}, 5}, sleeper(log, "s", 100, true)));
  h->run_for(5);
  EXPECT_TRUE(h->manager->forget(id));
  h->manager.reset();  // ASan: the frame and the core are freed
  h->run_for(200);
}

// ============================================================================ grace

TEST(Grace, AStubbornBodyIsEndedCancelledOnceTheGraceHasPassed) {
  auto h = harness_with(grace(50));
  auto& m = *h->manager;
  auto log = std::make_shared<Log>();
  const TaskId id = must(m.spawn("t1", "job", std::nullopt, "stubborn", {}, sleeper(log, "s", 1000, true)));
  h->run_for(10);
  EXPECT_TRUE(m.cancel(id));
  h->run_for(49);
  EXPECT_EQ(status_of(m, id), TaskStatus::Running);
  h->drain();
  h->run_for(1);
  EXPECT_EQ(status_of(m, id), TaskStatus::Cancelled);
  EXPECT_EQ(m.get(id)->completed_at_ms, 1'000'060u);
  EXPECT_EQ(h->drain(), (std::vector<json>{json{{"kind", "cancelled"}, {"task_id", id}}}));
  h->run_for(2000);
  EXPECT_TRUE(h->drain().empty());
}

TEST(Grace, AHonouringBodyEndsByItselfWithinTheGrace) {
  auto h = harness_with(grace(50));
  auto& m = *h->manager;
  const TaskId id = must(m.spawn("t1", "job", std::nullopt, "honours", {}, bgtasks::testing::wait_cancelled));
  h->run_until_idle();
  EXPECT_TRUE(m.cancel(id));
  h->run_until_idle();
  EXPECT_EQ(status_of(m, id), TaskStatus::Cancelled);
  EXPECT_FALSE(h->exec.next_deadline()) << "its grace timer went with it";
}

TEST(Grace, WithoutGraceAStubbornBodyKeepsItsTaskRunningAsInAwaken) {
  auto h = harness_with({});
  auto& m = *h->manager;
  auto log = std::make_shared<Log>();
  const TaskId id = must(m.spawn("t1", "job", std::nullopt, "stubborn", {}, sleeper(log, "s", 1000, true)));
  h->run_until_idle();
  EXPECT_TRUE(m.cancel(id));
  h->run_for(999);
  EXPECT_EQ(status_of(m, id), TaskStatus::Running);
  h->run_for(1);
  EXPECT_EQ(status_of(m, id), TaskStatus::Cancelled) << "ends when its body returns";
}

TEST(Grace, ASetGraceAppliesToLaterCancels) {
  auto h = harness_with({});
  auto& m = *h->manager;
  const TaskId id = must(m.spawn_host("t1", "job", std::nullopt, "host", {}));
  m.set_cancel_grace_ms(5);
  EXPECT_TRUE(m.cancel(id));
  h->run_for(5);
  EXPECT_EQ(status_of(m, id), TaskStatus::Cancelled);
  EXPECT_EQ(m.complete(id, json(1)).error().code, Errc::TaskTerminated);
}

// ============================================================================ shutdown

TEST(Shutdown, RefusesSpawnsAndEndsEveryLiveTaskAsInterrupted) {
  auto h = harness_with(limits(3));
  auto& m = *h->manager;
  auto log = std::make_shared<Log>();
  const TaskId user_cancelled = must(m.spawn("t1", "job", std::nullopt, "user", {}, sleeper(log, "u", 1000, true)));
  const TaskId honours = must(m.spawn("t1", "job", std::nullopt, "honours", {}, bgtasks::testing::wait_cancelled));
  const TaskId ignores = must(m.spawn("t1", "job", std::nullopt, "ignores", {}, sleeper(log, "i", 1000, true)));
  const TaskId queued = must(m.spawn("t1", "job", std::nullopt, "queued", {}, sleeper(log, "q", 1)));
  const TaskId host = must(m.spawn_host("t2", "job", std::nullopt, "host", {}));
  h->run_until_idle();
  ASSERT_TRUE(m.is_queued(queued));
  EXPECT_TRUE(m.cancel(user_cancelled));
  h->drain();
  EXPECT_FALSE(m.shutting_down());
  EXPECT_EQ(m.begin_shutdown(), 4u) << "honours, ignores, queued, host";
  EXPECT_TRUE(m.shutting_down());
  auto refused = m.spawn_host("t1", "job", std::nullopt, "late", {});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::ShuttingDown);
  EXPECT_EQ(refused.error().message, "spawn refused: the manager is shutting down");
  EXPECT_EQ(status_of(m, queued), TaskStatus::Failed) << "a queued task ends at once";
  EXPECT_EQ(error_of(m, queued), kInterruptedError);
  EXPECT_EQ(m.cancel_reason(honours), CancelReason::Shutdown);
  EXPECT_EQ(m.cancel_reason(user_cancelled), CancelReason::Cancel);
  h->run_until_idle();
  EXPECT_EQ(status_of(m, honours), TaskStatus::Failed) << "whatever its body returned";
  EXPECT_EQ(error_of(m, honours), "interrupted: host shutdown");
  EXPECT_EQ(status_of(m, ignores), TaskStatus::Running);
  ASSERT_TRUE(m.complete(host, json("done")).ok());
  EXPECT_EQ(status_of(m, host), TaskStatus::Failed) << "a host settle during shutdown is interrupted too";
  EXPECT_EQ(m.begin_shutdown(), 0u) << "once";
  EXPECT_EQ(m.finish_shutdown(), 2u) << "user_cancelled and ignores were still live";
  EXPECT_EQ(status_of(m, ignores), TaskStatus::Failed);
  EXPECT_EQ(error_of(m, ignores), kInterruptedError);
  EXPECT_EQ(status_of(m, user_cancelled), TaskStatus::Cancelled) << "a user's cancel stays a cancel";
  EXPECT_EQ(log->started, (std::vector<std::string>{"u", "i"})) << "the queued body never started";
  h->run_for(2000);
  EXPECT_EQ(status_of(m, ignores), TaskStatus::Failed);
  EXPECT_EQ(m.stats().live_bodies, 0u);
  EXPECT_EQ(m.finish_shutdown(), 0u);
}

TEST(Shutdown, FinishWithoutBeginBeginsFirst) {
  auto h = harness_with({});
  auto& m = *h->manager;
  std::vector<TaskId> requests;
  m.set_hooks(ManagerHooks{[&](const TaskId& id) { requests.push_back(id); }});
  const TaskId a = must(m.spawn_host("t1", "job", std::nullopt, "a", {}));
  EXPECT_EQ(m.finish_shutdown(), 1u);
  EXPECT_TRUE(m.shutting_down());
  EXPECT_EQ(requests, (std::vector<TaskId>{a}));
  EXPECT_EQ(error_of(m, a), kInterruptedError);
}

// ============================================================================ cancel reasons

TEST(CancelReasons, TheFirstRequestOfATaskRecordsItsReason) {
  auto h = harness_with({});
  auto& m = *h->manager;
  const TaskId root = must(m.spawn_host("t1", "job", std::nullopt, "root", {}));
  TaskParentContext under_root;
  under_root.task_id = root;
  const TaskId child = must(m.spawn_host("t1", "job", std::nullopt, "child", under_root));
  const TaskId other = must(m.spawn_host("t2", "job", std::nullopt, "other", {}));
  TaskParentContext run;
  run.run_id = "run-7";
  const TaskId by_run = must(m.spawn_host("t3", "job", std::nullopt, "run", run));
  const TaskId plain = must(m.spawn_host("t4", "job", std::nullopt, "plain", {}));
  EXPECT_FALSE(m.cancel_reason(plain));
  EXPECT_EQ(m.cancel_tree(root), 2u);
  EXPECT_EQ(m.cancel_all("t2"), 1u);
  EXPECT_EQ(m.cancel_descendants_for_run("run-7"), 1u);
  EXPECT_TRUE(m.cancel(plain));
  EXPECT_EQ(m.cancel_reason(root), CancelReason::CancelTree);
  EXPECT_EQ(m.cancel_reason(child), CancelReason::CancelTree);
  EXPECT_EQ(m.cancel_reason(other), CancelReason::CancelAll);
  EXPECT_EQ(m.cancel_reason(by_run), CancelReason::Run);
  EXPECT_EQ(m.cancel_reason(plain), CancelReason::Cancel);
  EXPECT_TRUE(m.cancel(root));
  EXPECT_EQ(m.cancel_reason(root), CancelReason::CancelTree) << "the first request wins";
  EXPECT_FALSE(m.cancel_reason("bg_999"));
  EXPECT_STREQ(as_str(CancelReason::Shutdown), "shutdown");
}

TEST(CancelReasons, ABodySeesItsReasonAndATokenCancelReadsAsCancel) {
  auto h = harness_with({});
  auto& m = *h->manager;
  std::optional<CancelReason> seen;
  const TaskId a = must(m.spawn("t1", "job", std::nullopt, "a", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.cancelled();
    seen = ctx.cancel_reason();
    co_return TaskResult::cancelled();
  }));
  h->run_until_idle();
  EXPECT_EQ(m.cancel_all("t1"), 1u);
  h->run_until_idle();
  EXPECT_EQ(seen, CancelReason::CancelAll);
  std::optional<CancelReason> before, after;
  must(m.spawn("t1", "job", std::nullopt, "b", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    before = ctx.cancel_reason();
    ctx.cancel_token().cancel();
    after = ctx.cancel_reason();
    co_return TaskResult::cancelled();
  }));
  h->run_until_idle();
  EXPECT_FALSE(before);
  EXPECT_EQ(after, CancelReason::Cancel);
  (void)a;
}

// ============================================================================ fan-out

TEST(FanOut, TwoListenersSeeEveryEventInOrderAndTheInboxStillDrainsThemAll) {
  auto h = harness_with({});
  auto& m = *h->manager;
  std::vector<json> first, second;
  const SubscriptionId s1 = m.subscribe([&](const Event& e) { first.push_back(e.to_json()); });
  const SubscriptionId s2 = m.subscribe([&](const Event& e) { second.push_back(e.to_json()); });
  EXPECT_NE(s1, s2);
  const TaskId a = must(m.spawn("t1", "job", std::nullopt, "a", {}, [](TaskContext ctx) -> Co<TaskResult> {
    ctx.emit("progress", 1);
    ctx.emit("progress", 2);
    co_return TaskResult::success("ok");
  }));
  const TaskId b = must(m.spawn_host("t2", "job", std::nullopt, "b", {}));
  h->run_until_idle();
  EXPECT_TRUE(m.emit(b, "note", "x"));
  ASSERT_TRUE(m.fail(b, "boom").ok());
  const std::vector<json> expected{
      json{{"kind", "custom"}, {"task_id", a}, {"event_type", "progress"}, {"payload", 1}},
      json{{"kind", "custom"}, {"task_id", a}, {"event_type", "progress"}, {"payload", 2}},
      json{{"kind", "completed"}, {"task_id", a}, {"result", "ok"}},
      json{{"kind", "custom"}, {"task_id", b}, {"event_type", "note"}, {"payload", "x"}},
      json{{"kind", "failed"}, {"task_id", b}, {"error", "boom"}},
  };
  EXPECT_EQ(first, expected);
  EXPECT_EQ(second, expected);
  EXPECT_EQ(h->drain(), expected) << "listeners never consume the inbox";
  EXPECT_TRUE(m.unsubscribe(s1));
  EXPECT_FALSE(m.unsubscribe(s1));
  const TaskId c = must(m.spawn_host("t1", "job", std::nullopt, "c", {}));
  ASSERT_TRUE(m.complete(c, json(3)).ok());
  EXPECT_EQ(first.size(), 5u) << "nothing after unsubscribe";
  EXPECT_EQ(second.size(), 6u);
}

TEST(FanOut, AThreadFilterAndNoOwnerInboxAndARefusingBoundedInbox) {
  auto h = harness_with({}, /*with_inbox=*/false);
  auto& m = *h->manager;
  std::vector<std::string> seen;
  m.subscribe(
      [&](const Event& e) {
        seen.push_back(std::string(e.thread.view()) + ":" + e.to_json().at("kind").get<std::string>());
      },
      std::string("t2"));
  const TaskId a = must(m.spawn_host("t1", "job", std::nullopt, "a", {}));
  const TaskId b = must(m.spawn_host("t2", "job", std::nullopt, "b", {}));
  EXPECT_FALSE(m.emit(b, "x", 1)) << "no owner inbox: emit answers false, as awaken's";
  ASSERT_TRUE(m.complete(a, json(1)).ok());
  ASSERT_TRUE(m.complete(b, json(2)).ok());
  EXPECT_EQ(seen, (std::vector<std::string>{"t2:custom", "t2:completed"}));

  auto bounded = harness_with({}, true, InboxOptions{1, OverflowPolicy::Reject});
  std::size_t heard = 0;
  bounded->manager->subscribe([&](const Event&) { ++heard; });
  const TaskId c = must(bounded->manager->spawn_host("t1", "job", std::nullopt, "c", {}));
  EXPECT_TRUE(bounded->manager->emit(c, "x", 1));
  EXPECT_FALSE(bounded->manager->emit(c, "x", 2)) << "the inbox is full";
  EXPECT_EQ(heard, 2u) << "the listener sees it anyway";
}

TEST(FanOut, AThrowingListenerIsCountedAndReachesNeitherOthersNorTheProducer) {
  auto h = harness_with({});
  auto& m = *h->manager;
  int after = 0;
  m.subscribe([](const Event&) { throw std::runtime_error("listener bug"); });
  m.subscribe([&](const Event&) { ++after; });
  const TaskId a = must(m.spawn_host("t1", "job", std::nullopt, "a", {}));
  EXPECT_TRUE(m.emit(a, "x", 1));
  ASSERT_TRUE(m.complete(a, json(1)).ok());
  EXPECT_EQ(after, 2);
  EXPECT_EQ(m.stats().listener_errors, 2u);
  EXPECT_EQ(m.stats().to_json().at("listener_errors"), 2);
  EXPECT_EQ(status_of(m, a), TaskStatus::Completed);
}

TEST(FanOut, UnsubscribingInsideAListenerAndEventsProducedByAListener) {
  auto h = harness_with({});
  auto& m = *h->manager;
  std::vector<std::string> order;
  SubscriptionId self = 0;
  const TaskId a = must(m.spawn_host("t1", "job", std::nullopt, "a", {}));
  self = m.subscribe([&](const Event& e) {
    order.push_back("once:" + e.event_type);
    EXPECT_TRUE(m.unsubscribe(self));
  });
  m.subscribe([&](const Event& e) {
    order.push_back("echo:" + e.event_type);
    if (e.event_type == "ping") m.emit(a, "pong", 0);  // delivered after "ping" reached everyone
  });
  m.subscribe([&](const Event& e) { order.push_back("last:" + e.event_type); });
  EXPECT_TRUE(m.emit(a, "ping", 0));
  EXPECT_EQ(order, (std::vector<std::string>{"once:ping", "echo:ping", "last:ping", "echo:pong", "last:pong"}));
}

TEST(FanOut, AListenerThatDestroysTheManagerStopsTheDelivery) {
  auto h = harness_with({});
  auto& m = *h->manager;
  int later = 0;
  const TaskId a = must(m.spawn_host("t1", "job", std::nullopt, "a", {}));
  m.subscribe([&](const Event&) { h->manager.reset(); });
  m.subscribe([&](const Event&) { ++later; });
  BackgroundTaskManager* raw = h->manager.get();
  EXPECT_TRUE(raw->complete(a, json(1)).ok());
  EXPECT_FALSE(h->manager);
  EXPECT_EQ(later, 0);
}

// ============================================================================ no event after the terminal one

TEST(Terminal, AKeptContextOfAnEndedTaskEmitsNothing) {
  auto h = harness_with({});
  auto& m = *h->manager;
  std::optional<TaskContext> kept;
  const TaskId a = must(m.spawn("t1", "job", std::nullopt, "a", {}, [&](TaskContext ctx) -> Co<TaskResult> {
    kept.emplace(ctx);
    EXPECT_TRUE(ctx.emit("during", 1));
    co_return TaskResult::success(nullptr);
  }));
  h->run_until_idle();
  h->drain();
  EXPECT_FALSE(kept->emit("after", 2));
  EXPECT_FALSE(m.emit(a, "after", 3));
  EXPECT_TRUE(h->drain().empty());
  h->manager.reset();
  EXPECT_FALSE(kept->emit("after the manager", 4));
}

}  // namespace
