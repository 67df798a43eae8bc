// Fault injection: failing state-store commits, a dropped owner-inbox receiver, a
// throwing fallback, a sub-agent that closes its inbox, bounded inboxes under both overflow
// policies, bodies that never resume, restores after a "crash" and into live managers. Each test
// checks that the task records stay consistent, nothing crashes, and the manager keeps working.
#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::testing::Harness;
using bgtasks::testing::manager_with_store_and_inbox;

constexpr std::string_view kStateKey = BackgroundTaskStateKey::name;

// A manager whose owner inbox has the given options and fallback; plugin keys installed.
std::unique_ptr<Harness> harness(InboxOptions owner = {}, OnInboxClosed fallback = nullptr,
                                 ManagerOptions options = {}) {
  auto h = std::make_unique<Harness>();
  auto [tx, rx] = inbox_channel_with_fallback(std::move(fallback), owner);
  h->inbox.emplace(std::move(rx));
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec, std::move(options));
  h->manager->set_owner_inbox(std::move(tx));
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  EXPECT_TRUE(h->store->install_plugin(BackgroundTaskPlugin(h->manager)).ok());
  return h;
}

// A commit hook that fails every commit touching the task-state key while `*on` is true.
StateStore::CommitHook failing_hook(std::shared_ptr<bool> on, std::shared_ptr<int> calls = nullptr) {
  return [on, calls](const std::vector<std::string_view>& keys) -> Result<void> {
    for (auto k : keys) {
      if (k == kStateKey && *on) {
        if (calls) ++*calls;
        return errors::invalid_argument("injected commit failure");
      }
    }
    return {};
  };
}

std::string kind_of(const json& ev) { return ev.value("kind", ""); }

// Counts live coroutine frames: a local of each body.
struct FrameGuard {
  explicit FrameGuard(std::shared_ptr<int> n) : n_(std::move(n)) { ++*n_; }
  FrameGuard(const FrameGuard&) = delete;
  FrameGuard& operator=(const FrameGuard&) = delete;
  ~FrameGuard() { --*n_; }
  std::shared_ptr<int> n_;
};

// ============================================================================ state-store commits

// awaken labels a failed completion commit by how the task was spawned: spawn_agent (and, here,
// a host sub-agent) is a sub-agent's completion; a plain spawn is a task's, whatever its type.
TEST(Fault, CompletionCommitFailureIsLabelledByHowTheTaskWasSpawnedNotByItsType) {
  metrics::Recorder rec;
  metrics::LocalRecorderScope scope(rec);
  auto h = harness();
  auto& m = *h->manager;
  auto done = [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(json(1)); };
  auto agent_done = [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> {
    co_return TaskResult::success(json(1));
  };
  ASSERT_TRUE(m.spawn("t", "sub_agent", std::nullopt, "plain spawn, agent's type", {}, done).ok());
  ASSERT_TRUE(m.spawn_agent("t", std::nullopt, "an agent", {}, agent_done).ok());
  auto host_plain = m.spawn_host("t", "sub_agent", std::nullopt, "host task, agent's type", {}, false);
  auto host_agent = m.spawn_host("t", "ignored", std::nullopt, "host sub-agent", {}, true);
  auto fail_commits = std::make_shared<bool>(true);
  h->store->set_commit_hook(failing_hook(fail_commits));
  h->run_until_idle();
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "task_completion"}}), 1u);
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "sub_agent_completion"}}), 1u);
  ASSERT_TRUE(m.complete(*host_plain, json(1)).ok());
  ASSERT_TRUE(m.complete(*host_agent, json(1)).ok());
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "task_completion"}}), 2u);
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "sub_agent_completion"}}), 2u);
}

TEST(Fault, CompletionCommitFailureLeavesRunningZombieCountsMetricAndManagerRecovers) {
  metrics::Recorder rec;
  metrics::LocalRecorderScope scope(rec);
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  Notify gate;
  auto id = m.spawn("t1", "worker", "zombie", "completes while the store fails", {},
                    [&gate](TaskContext ctx) -> Co<TaskResult> {
                      co_await gate.notified();
                      ctx.emit("about_to_finish", 1);
                      co_return TaskResult::success(json{{"real", "outcome"}});
                    });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  const auto meta_before = m.persisted_snapshot().tasks.at(*id);

  auto failing = std::make_shared<bool>(true);
  auto calls = std::make_shared<int>(0);
  h->store->set_commit_hook(failing_hook(failing, calls));
  gate.notify_one();
  EXPECT_NO_THROW(h->run_until_idle());

  // awaken's zombie: the stored meta is exactly what spawn wrote, still running.
  EXPECT_EQ(*calls, 1) << "one completion commit attempted";
  EXPECT_EQ(m.persisted_snapshot().tasks.at(*id), meta_before);
  auto s = m.get(*id);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->status, TaskStatus::Running);
  EXPECT_FALSE(s->completed_at_ms.has_value());
  EXPECT_FALSE(s->result.has_value());
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "task_completion"}}), 1u);
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "sub_agent_completion"}}), 0u);

  // The body has ended: no live body, nothing to cancel or forget, and the events were not lost.
  auto st = m.stats();
  EXPECT_EQ(st.running, 1u);
  EXPECT_EQ(st.live_bodies, 0u);
  EXPECT_EQ(st.cancel_requested_running, 0u);
  EXPECT_FALSE(m.cancel(*id));
  // The counts follow awaken: a handle whose stored status is still running is counted, though
  // its ended body has nothing left to signal.
  EXPECT_EQ(m.cancel_tree(*id), 1u);
  EXPECT_EQ(m.cancel_all("t1"), 1u);
  EXPECT_EQ(m.stats().cancel_requested_running, 0u);
  EXPECT_FALSE(m.forget(*id)) << "a running record is not forgettable";
  EXPECT_TRUE(m.has_running("t1")) << "the zombie counts as running (awaken)";
  auto events = h->drain();
  ASSERT_EQ(events.size(), 2u) << json(events).dump();
  EXPECT_EQ(kind_of(events[0]), "custom");
  EXPECT_EQ(kind_of(events[1]), "completed");
  EXPECT_EQ(events[1]["result"], (json{{"real", "outcome"}}));

  // While the store fails, spawns fail too (and change nothing); once it heals, everything works.
  const auto snap = m.snapshot_json();
  auto refused = m.spawn("t1", "worker", std::nullopt, "refused", {},
                         [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(m.snapshot_json(), snap);

  *failing = false;
  auto later = m.spawn("t1", "worker", "zombie", "same name as the zombie", {},
                       [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(2); });
  EXPECT_FALSE(later.ok()) << "the zombie still holds its name (running)";
  EXPECT_EQ(later.ok() ? Errc::InvalidArgument : later.error().code, Errc::DuplicateName);
  auto fresh = m.spawn("t1", "worker", "fresh", "after recovery", {},
                       [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(3); });
  ASSERT_TRUE(fresh.ok()) << fresh.error().message;
  h->run_until_idle();
  EXPECT_EQ(m.get(*fresh)->status, TaskStatus::Completed);
  EXPECT_EQ(m.get(*fresh)->result, json(3));
  EXPECT_TRUE(m.forget(*fresh));
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "task_completion"}}), 1u);
}

TEST(Fault, SubAgentCompletionCommitFailureCountsItsOwnLabelAndLaterSendsAreInboxClosed) {
  metrics::Recorder rec;
  metrics::LocalRecorderScope scope(rec);
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto failing = std::make_shared<bool>(false);
  h->store->set_commit_hook(failing_hook(failing));
  auto id = m.spawn_agent("t1", "helper", "ends while the store fails", {},
                          [](CancellationToken token, InboxSender, InboxReceiver rx) -> Co<TaskResult> {
                            auto first = co_await rx.recv_or_cancel(token);
                            co_return TaskResult::success(first ? (*first)["payload"]["content"] : json());
                          });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  *failing = true;
  ASSERT_TRUE(m.send_task_inbox_message(*id, "t1", "parent", "finish").ok());
  h->run_until_idle();
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "sub_agent_completion"}}), 1u);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Running);
  *failing = false;
  // The record says running, but the receiver went with the body: awaken's InboxClosed.
  auto r = m.send_task_inbox_message(*id, "t1", "parent", "anyone there?");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::InboxClosed);
  EXPECT_EQ(r.error().message, "sub-agent inbox closed");
  auto events = h->drain();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["result"], "finish");
}

TEST(Fault, SpawnCommitFailureReturnsTheErrorConsumesTheIdAndChangesNothingElse) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto a = m.spawn("t1", "worker", "a", "before", {}, [](TaskContext ctx) -> Co<TaskResult> {
    co_await ctx.cancelled();
    co_return TaskResult::cancelled();
  });
  ASSERT_TRUE(a.ok());
  h->run_until_idle();
  const std::string snap = m.snapshot_json();
  const std::string stats = dump(m.stats().to_json());
  const auto version = h->store->version();
  ASSERT_EQ(m.next_task_number(), 1u);

  auto failing = std::make_shared<bool>(true);
  h->store->set_commit_hook(failing_hook(failing));
  auto ran = std::make_shared<bool>(false);
  auto r = m.spawn("t1", "worker", "b", "refused by the store", {}, [ran](TaskContext) -> Co<TaskResult> {
    *ran = true;
    co_return TaskResult::success(nullptr);
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::InvalidArgument) << "the store's error is returned as is";
  EXPECT_EQ(r.error().message, "injected commit failure");
  auto agent = m.spawn_agent(
      "t1", "c", "refused too", {},
      [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_FALSE(agent.ok());
  auto host = m.spawn_host("t1", "host", std::nullopt, "refused too", {}, false);
  ASSERT_FALSE(host.ok());
  h->run_until_idle();

  EXPECT_FALSE(*ran) << "no body runs for a refused spawn";
  EXPECT_EQ(m.next_task_number(), 4u) << "each refused spawn consumed its id (awaken takes the id before the commit)";
  EXPECT_EQ(m.snapshot_json(), snap);
  EXPECT_EQ(dump(m.stats().to_json()), stats);
  EXPECT_EQ(h->store->version(), version);
  for (const char* gone : {"bg_1", "bg_2", "bg_3"}) {
    EXPECT_FALSE(m.get(gone).has_value()) << gone;
    EXPECT_FALSE(m.cancel(gone)) << gone;
    EXPECT_FALSE(m.forget(gone)) << gone;
    EXPECT_EQ(m.send_task_inbox_message(gone, "t1", "p", "x").error().code, Errc::TaskNotFound) << gone;
  }
  EXPECT_TRUE(h->drain().empty());
  EXPECT_TRUE(m.cancel(*a)) << "the live task is unaffected";

  *failing = false;
  auto d = m.spawn("t1", "worker", "b", "after recovery (the refused name is free)", {},
                   [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success("d"); });
  ASSERT_TRUE(d.ok()) << d.error().message;
  EXPECT_EQ(*d, "bg_4");
  h->run_until_idle();
  EXPECT_EQ(m.get(*d)->status, TaskStatus::Completed);
  EXPECT_EQ(m.get(*a)->status, TaskStatus::Cancelled);
}

// ============================================================================ owner inbox faults

TEST(Fault, OwnerInboxReceiverDroppedMidStreamFiresFallbackOncePerFailedSend) {
  auto fallen = std::make_shared<std::vector<json>>();
  auto h = harness({}, [fallen](const json& msg) { fallen->push_back(msg); });
  auto& m = *h->manager;
  auto sent = std::make_shared<std::vector<bool>>();
  auto id =
      m.spawn("t1", "stream", std::nullopt, "emits across the drop", {}, [sent](TaskContext ctx) -> Co<TaskResult> {
        sent->push_back(ctx.emit("e", 1));
        co_await ctx.sleep(10);
        sent->push_back(ctx.emit("e", 2));
        sent->push_back(ctx.emit("e", 3));
        co_return TaskResult::success("done");
      });
  ASSERT_TRUE(id.ok());
  auto host = m.spawn_host("t1", "host", std::nullopt, "host task", {}, false);
  ASSERT_TRUE(host.ok());
  h->run_until_idle();
  auto first = h->drain();
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0]["payload"], 1);

  h->inbox->close();  // the receiver is dropped mid-stream
  EXPECT_NO_THROW(h->run_for(10));
  EXPECT_FALSE(m.emit(*host, "h", 4));
  ASSERT_TRUE(m.complete(*host, "host done").ok());

  EXPECT_EQ(*sent, (std::vector<bool>{true, false, false}));
  // e2, e3, the stream's terminal event, h4, the host's terminal event: one call each, in order.
  ASSERT_EQ(fallen->size(), 5u) << json(*fallen).dump();
  EXPECT_EQ((*fallen)[0]["payload"], 2);
  EXPECT_EQ((*fallen)[1]["payload"], 3);
  EXPECT_EQ(kind_of((*fallen)[2]), "completed");
  EXPECT_EQ((*fallen)[2]["task_id"], *id);
  EXPECT_EQ((*fallen)[3]["payload"], 4);
  EXPECT_EQ(kind_of((*fallen)[4]), "completed");
  EXPECT_EQ((*fallen)[4]["task_id"], *host);
  // The records are right regardless.
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Completed);
  EXPECT_EQ(m.get(*host)->status, TaskStatus::Completed);
  EXPECT_EQ(m.stats().owner_inbox_depth, 0u);

  // A new owner inbox reaches tasks spawned from now on.
  auto [tx, rx] = inbox_channel();
  m.set_owner_inbox(tx);
  auto next = m.spawn("t1", "after", std::nullopt, "after the drop", {}, [](TaskContext ctx) -> Co<TaskResult> {
    ctx.emit("fresh", true);
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(next.ok());
  h->run_until_idle();
  EXPECT_EQ(rx.drain().size(), 2u);
  EXPECT_EQ(fallen->size(), 5u);
}

TEST(Fault, ThrowingFallbackIsContainedAndTheManagerKeepsWorking) {
  auto calls = std::make_shared<int>(0);
  auto h = harness({}, [calls](const json&) {
    ++*calls;
    throw std::runtime_error("fallback blew up");
  });
  auto& m = *h->manager;
  h->inbox->close();
  auto results = std::make_shared<std::vector<bool>>();
  for (int i = 0; i < 3; ++i) {
    auto id = m.spawn("t1", "w", std::nullopt, "emits into a closed inbox", {},
                      [results, i](TaskContext ctx) -> Co<TaskResult> {
                        results->push_back(ctx.emit("e", i));
                        co_return TaskResult::success(i);
                      });
    ASSERT_TRUE(id.ok());
  }
  EXPECT_NO_THROW(h->run_until_idle());
  EXPECT_EQ(*calls, 6) << "3 emits + 3 terminal events";
  EXPECT_EQ(*results, (std::vector<bool>{false, false, false}));
  for (const char* id : {"bg_0", "bg_1", "bg_2"}) EXPECT_EQ(m.get(id)->status, TaskStatus::Completed) << id;
  auto host = m.spawn_host("t1", "h", std::nullopt, "host", {}, false);
  ASSERT_TRUE(host.ok());
  EXPECT_NO_THROW(EXPECT_FALSE(m.emit(*host, "x", 1)));
  EXPECT_NO_THROW(EXPECT_TRUE(m.fail(*host, "late").ok()));
  EXPECT_EQ(m.get(*host)->status, TaskStatus::Failed);
  EXPECT_EQ(*calls, 8);
}

// ============================================================================ sub-agent inbox closed

TEST(Fault, SubAgentThatClosesItsInboxEarlyAnswersInboxClosed) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id =
      m.spawn_agent_with_context("t1", "early", "closes its inbox", {}, [](AgentTaskContext ctx) -> Co<TaskResult> {
        ctx.inbox_receiver.close();
        co_await ctx.cancelled();
        co_return TaskResult::success("unreachable value");
      });
  ASSERT_TRUE(id.ok());
  // Before the body ran the inbox is open.
  EXPECT_TRUE(m.send_task_inbox_message(*id, "t1", "parent", "early bird").ok());
  h->run_until_idle();
  for (int i = 0; i < 2; ++i) {
    auto r = m.send_task_inbox_message(*id, "t1", "parent", "hello?");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::InboxClosed);
    EXPECT_EQ(r.error().message, "sub-agent inbox closed");
  }
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Running);
  EXPECT_EQ(m.stats().agent_inbox_dropped, 0u) << "closed is not dropped";
  EXPECT_TRUE(m.cancel(*id));
  h->run_until_idle();
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Cancelled);
  auto r = m.send_task_inbox_message(*id, "t1", "parent", "after the end");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::TaskTerminated);
  // Its siblings are unaffected.
  auto other = m.spawn_agent("t1", "other", "reads", {},
                             [](CancellationToken t, InboxSender, InboxReceiver rx) -> Co<TaskResult> {
                               auto msg = co_await rx.recv_or_cancel(t);
                               co_return TaskResult::success(msg ? (*msg)["payload"]["content"] : json());
                             });
  ASSERT_TRUE(other.ok());
  h->run_until_idle();
  ASSERT_TRUE(m.send_task_inbox_message(*other, "t1", "parent", "ping").ok());
  h->run_until_idle();
  EXPECT_EQ(m.get(*other)->result, json("ping"));
}

// ============================================================================ bounded inboxes

TEST(Fault, BoundedOwnerInboxRejectRefusesNewEventsAndCountsThem) {
  auto h = harness({2, OverflowPolicy::Reject});
  auto& m = *h->manager;
  auto sent = std::make_shared<std::vector<bool>>();
  auto id = m.spawn("t1", "w", std::nullopt, "emits 3 into capacity 2", {}, [sent](TaskContext ctx) -> Co<TaskResult> {
    for (int i = 1; i <= 3; ++i) sent->push_back(ctx.emit("e", i));
    co_return TaskResult::success("done");
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_EQ(*sent, (std::vector<bool>{true, true, false}));
  auto st = m.stats();
  EXPECT_EQ(st.owner_inbox_depth, 2u);
  EXPECT_EQ(st.owner_inbox_dropped, 2u) << "e3 and the terminal event were refused";
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Completed) << "a refused event does not change the record";
  auto events = h->drain();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0]["payload"], 1);
  EXPECT_EQ(events[1]["payload"], 2);

  // Room again: host emits go through until full, then emit answers false.
  auto host = m.spawn_host("t1", "h", std::nullopt, "host", {}, false);
  ASSERT_TRUE(host.ok());
  EXPECT_TRUE(m.emit(*host, "x", 1));
  EXPECT_TRUE(m.emit(*host, "x", 2));
  EXPECT_FALSE(m.emit(*host, "x", 3));
  EXPECT_EQ(m.stats().owner_inbox_dropped, 3u);
  EXPECT_EQ(h->drain().size(), 2u);
  ASSERT_TRUE(m.complete(*host, nullptr).ok());
  auto last = h->drain();
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(kind_of(last[0]), "completed");
  EXPECT_EQ(m.stats().owner_inbox_dropped, 3u);
  EXPECT_EQ(m.persisted_snapshot().tasks.size(), 2u) << "the snapshot shape is untouched by drops";
}

TEST(Fault, BoundedOwnerInboxDropOldestKeepsTheNewestAndCountsEvictions) {
  auto h = harness({2, OverflowPolicy::DropOldest});
  auto& m = *h->manager;
  auto sent = std::make_shared<std::vector<bool>>();
  auto id = m.spawn("t1", "w", std::nullopt, "emits 3 into capacity 2", {}, [sent](TaskContext ctx) -> Co<TaskResult> {
    for (int i = 1; i <= 3; ++i) sent->push_back(ctx.emit("e", i));
    co_return TaskResult::success("done");
  });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_EQ(*sent, (std::vector<bool>{true, true, true})) << "drop-oldest always delivers the new event";
  EXPECT_EQ(m.stats().owner_inbox_dropped, 2u) << "e1 and e2 were evicted";
  auto events = h->drain();
  ASSERT_EQ(events.size(), 2u) << json(events).dump();
  EXPECT_EQ(events[0]["payload"], 3);
  EXPECT_EQ(kind_of(events[1]), "completed");
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Completed);
}

TEST(Fault, BoundedAgentInboxRejectAnswersInboxFullAndCountsIt) {
  ManagerOptions options;
  options.agent_inbox = {2, OverflowPolicy::Reject};
  auto h = harness({}, nullptr, options);
  auto& m = *h->manager;
  auto got = std::make_shared<std::vector<json>>();
  auto id = m.spawn_agent("t1", "slow", "does not read until cancelled", {},
                          [got](CancellationToken t, InboxSender, InboxReceiver rx) -> Co<TaskResult> {
                            co_await t.cancelled();
                            for (auto& msg : rx.drain()) got->push_back(msg["payload"]["content"]);
                            co_return TaskResult::cancelled();
                          });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_TRUE(m.send_task_inbox_message(*id, "t1", "p", "1").ok());
  EXPECT_TRUE(m.send_task_inbox_message(*id, "t1", "p", "2").ok());
  for (int i = 0; i < 2; ++i) {
    auto r = m.send_task_inbox_message(*id, "t1", "p", "3");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, Errc::InboxFull);
    EXPECT_EQ(r.error().message, "sub-agent inbox full");
  }
  EXPECT_EQ(m.stats().agent_inbox_dropped, 2u);
  EXPECT_EQ(m.stats().owner_inbox_dropped, 0u);
  EXPECT_TRUE(m.cancel(*id));
  h->run_until_idle();
  EXPECT_EQ(*got, (std::vector<json>{"1", "2"}));
  EXPECT_EQ(m.stats().agent_inbox_dropped, 2u) << "the count survives the agent's end";
  // Each sub-agent has its own bounded inbox.
  auto b = m.spawn_host("t1", "sub_agent", std::nullopt, "host agent", {}, true);
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(m.send_task_inbox_message(*b, "t1", "p", "a").ok());
  EXPECT_TRUE(m.send_task_inbox_message(*b, "t1", "p", "b").ok());
  EXPECT_EQ(m.send_task_inbox_message(*b, "t1", "p", "c").error().code, Errc::InboxFull);
  EXPECT_EQ(m.stats().agent_inbox_dropped, 3u);
  EXPECT_EQ(m.take_agent_messages(*b).size(), 2u);
  EXPECT_TRUE(m.send_task_inbox_message(*b, "t1", "p", "d").ok());
}

TEST(Fault, BoundedAgentInboxDropOldestEvictsAndCounts) {
  ManagerOptions options;
  options.agent_inbox = {2, OverflowPolicy::DropOldest};
  auto h = harness({}, nullptr, options);
  auto& m = *h->manager;
  auto got = std::make_shared<std::vector<json>>();
  auto id = m.spawn_agent("t1", "slow", "reads after cancel", {},
                          [got](CancellationToken t, InboxSender, InboxReceiver rx) -> Co<TaskResult> {
                            co_await t.cancelled();
                            for (auto& msg : rx.drain()) got->push_back(msg["payload"]["content"]);
                            co_return TaskResult::cancelled();
                          });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  for (const char* c : {"1", "2", "3", "4"}) EXPECT_TRUE(m.send_task_inbox_message(*id, "t1", "p", c).ok()) << c;
  EXPECT_EQ(m.stats().agent_inbox_dropped, 2u);
  EXPECT_TRUE(m.cancel(*id));
  h->run_until_idle();
  EXPECT_EQ(*got, (std::vector<json>{"3", "4"}));
  EXPECT_EQ(m.stats().agent_inbox_dropped, 2u);
  EXPECT_EQ(m.get(*id)->status, TaskStatus::Cancelled);
}

// ============================================================================ bodies that never resume

TEST(Fault, NeverResumingBodyCancelledStaysRunningIsCountedAndIsFreedWithTheManager) {
  auto frames = std::make_shared<int>(0);
  Notify nobody;  // outlives the manager; never notified
  auto h = manager_with_store_and_inbox();
  {
    auto& m = *h->manager;
    std::vector<TaskId> ids;
    for (int i = 0; i < 3; ++i) {
      auto id = m.spawn("t1", "stuck", std::nullopt, "awaits a Notify nobody notifies", {},
                        [frames, &nobody](TaskContext) -> Co<TaskResult> {
                          FrameGuard guard(frames);
                          co_await nobody.notified();
                          co_return TaskResult::success("never");
                        });
      ASSERT_TRUE(id.ok());
      ids.push_back(*id);
    }
    // A child coroutine frame inside a body is counted too.
    auto nested = m.spawn("t1", "stuck", std::nullopt, "stuck in a nested frame", {},
                          [frames, &nobody](TaskContext) -> Co<TaskResult> {
                            FrameGuard outer(frames);
                            auto inner = [](std::shared_ptr<int> f, Notify& n) -> Co<int> {
                              FrameGuard g(f);
                              co_await n.notified();
                              co_return 1;
                            };
                            co_return TaskResult::success(co_await inner(frames, nobody));
                          });
    ASSERT_TRUE(nested.ok());
    ids.push_back(*nested);
    h->run_until_idle();
    EXPECT_EQ(*frames, 5);

    for (const auto& id : ids) EXPECT_TRUE(m.cancel(id)) << id;
    h->run_for(1000);
    for (const auto& id : ids) {
      EXPECT_EQ(m.get(id)->status, TaskStatus::Running) << id;
      EXPECT_TRUE(m.is_cancel_requested(id)) << id;
      EXPECT_TRUE(m.cancel(id)) << "cancel answers true again while the body is live";
    }
    auto st = m.stats();
    EXPECT_EQ(st.running, 4u);
    EXPECT_EQ(st.live_bodies, 4u);
    EXPECT_EQ(st.cancel_requested_running, 4u);
    EXPECT_TRUE(h->drain().empty()) << "no terminal event for a body that never ended";
    EXPECT_EQ(*frames, 5);
    // Other work is not blocked by them.
    auto ok = m.spawn("t1", "fine", std::nullopt, "fine", {},
                      [](TaskContext) -> Co<TaskResult> { co_return TaskResult::success(1); });
    ASSERT_TRUE(ok.ok());
    h->run_until_idle();
    EXPECT_EQ(m.get(*ok)->status, TaskStatus::Completed);
  }
  h->manager.reset();  // destroying the manager destroys every suspended frame
  EXPECT_EQ(*frames, 0);
  EXPECT_NO_THROW(h->exec.run_until_idle());
  nobody.notify_all();  // nobody is waiting any more
  EXPECT_NO_THROW(h->exec.run_until_idle());
}

TEST(Fault, BodyThatThrowsFailsWithItsMessageAndFreesItsFrame) {
  auto frames = std::make_shared<int>(0);
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto id =
      m.spawn("t1", "boom", std::nullopt, "throws after a sleep", {}, [frames](TaskContext ctx) -> Co<TaskResult> {
        FrameGuard g(frames);
        co_await ctx.sleep(5);
        throw std::runtime_error("body exploded");
      });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  EXPECT_EQ(*frames, 1);
  EXPECT_NO_THROW(h->run_for(5));
  EXPECT_EQ(*frames, 0);
  auto s = m.get(*id);
  EXPECT_EQ(s->status, TaskStatus::Failed);
  EXPECT_EQ(s->error, std::optional<std::string>("body exploded"));
  auto events = h->drain();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0], (json{{"kind", "failed"}, {"task_id", *id}, {"error", "body exploded"}}));
}

// ============================================================================ restore after a crash

TEST(Fault, RestoreAfterACrashOrphansRunningDescendantsAndKeepsTerminalOnesUntouched) {
  // Manager A runs a tree: root → {child (running) → grandchild (running), done (completed),
  // failed (failed), cancelled (cancelled)}; plus a running task whose parent is terminal.
  std::string saved;
  {
    auto a = manager_with_store_and_inbox();
    auto& m = *a->manager;
    auto root = m.spawn_host("t1", "root", "root", "root", {}, false);
    ASSERT_TRUE(root.ok());
    std::string child, grandchild, done, failed, cancelled, under_done;
    {
      auto scope = m.enter_task(*root);
      child = *m.spawn_host("t1", "child", std::nullopt, "child", {}, false);
      done = *m.spawn_host("t1", "child", std::nullopt, "done", {}, false);
      failed = *m.spawn_host("t1", "child", std::nullopt, "failed", {}, false);
      cancelled = *m.spawn_host("t1", "sub_agent", std::nullopt, "cancelled", {}, true);
    }
    {
      auto scope = m.enter_task(child);
      grandchild = *m.spawn_host("t1", "grandchild", std::nullopt, "grandchild", {}, false);
    }
    {
      auto scope = m.enter_task(done);
      under_done = *m.spawn_host("t1", "grandchild", std::nullopt, "running under a finished parent", {}, false);
    }
    a->exec.advance(50);
    ASSERT_TRUE(m.complete(done, json{{"ok", true}}).ok());
    ASSERT_TRUE(m.fail(failed, "boom").ok());
    ASSERT_TRUE(m.cancel(cancelled));
    ASSERT_TRUE(m.settle(cancelled, TaskResult::success("late")).ok());
    a->run_until_idle();
    saved = m.snapshot_json("t1");
  }  // the "crash": manager A and its live bodies are gone

  auto before = json::parse(saved)["tasks"];
  ASSERT_EQ(before.size(), 7u);
  auto b = manager_with_store_and_inbox();
  auto& m = *b->manager;
  auto r = m.restore_json("t2", saved);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->added, 7u);
  auto after = json::parse(m.snapshot_json())["tasks"];
  std::size_t orphans = 0;
  for (auto it = before.begin(); it != before.end(); ++it) {
    json want = it.value();
    want["owner_thread_id"] = "t2";
    if (want["status"] == "running") {
      ++orphans;
      want["status"] = "failed";
      want["error"] = kOrphanedError;
    }
    EXPECT_EQ(after[it.key()], want) << it.key();
  }
  EXPECT_EQ(orphans, 4u) << "root, child, grandchild and the task under a finished parent";
  EXPECT_EQ(after["bg_1"]["parent_context"]["task_id"], "bg_0") << "lineage survives the restore";
  EXPECT_EQ(after["bg_5"]["parent_context"]["task_id"], "bg_1");
  EXPECT_FALSE(m.has_running("t2"));
  EXPECT_EQ(m.cancel_tree("bg_0"), 0u) << "orphans have no body to cancel";
  EXPECT_EQ(m.stats().live_bodies, 0u);
  EXPECT_EQ(m.next_task_number(), 7u);
  EXPECT_TRUE(b->drain().empty()) << "orphaning emits no events";
  // The tree is intact and reports the new statuses.
  auto tree = m.task_tree("t2");
  ASSERT_EQ(tree.size(), 1u) << tree.dump();
  EXPECT_EQ(tree[0]["status"], "failed");
  EXPECT_EQ(tree[0]["children"].size(), 4u);
  // Restoring the same snapshot again adds nothing and changes nothing.
  const auto snap = m.snapshot_json();
  auto again = m.restore_json("t2", saved);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->added, 0u);
  EXPECT_EQ(again->skipped.size(), 7u);
  EXPECT_EQ(m.snapshot_json(), snap);
  auto next = m.spawn_host("t2", "after", std::nullopt, "after the restore", {}, false);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, "bg_7");
}

TEST(Fault, RestoreIntoAManagerWithLiveTasksOfTheSameIdsSkipsThemAndLeavesThemRunning) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  auto worker = m.spawn("t1", "worker", "w", "live worker", {}, [](TaskContext ctx) -> Co<TaskResult> {
    const bool slept = co_await ctx.sleep(100);
    co_return TaskResult::success(json{{"live", slept}});
  });
  auto agent = m.spawn_agent("t1", "a", "live agent", {},
                             [](CancellationToken t, InboxSender, InboxReceiver rx) -> Co<TaskResult> {
                               auto msg = co_await rx.recv_or_cancel(t);
                               co_return TaskResult::success(msg ? (*msg)["payload"]["content"] : json());
                             });
  ASSERT_TRUE(worker.ok() && agent.ok());
  ASSERT_EQ(*worker, "bg_0");
  ASSERT_EQ(*agent, "bg_1");
  h->run_until_idle();
  const auto worker_meta = m.persisted_snapshot().tasks.at("bg_0");
  const auto agent_meta = m.persisted_snapshot().tasks.at("bg_1");

  const std::string foreign = R"({"tasks":{
    "bg_0":{"task_id":"bg_0","owner_thread_id":"x","task_type":"shell","description":"impostor","status":"completed","result":"fake","created_at_ms":1,"completed_at_ms":2},
    "bg_1":{"task_id":"bg_1","owner_thread_id":"x","task_type":"sub_agent","description":"impostor agent","status":"running","created_at_ms":1},
    "bg_5":{"task_id":"bg_5","owner_thread_id":"x","task_type":"shell","description":"new","status":"running","created_at_ms":1}}})";
  // The owning thread: its live tasks are kept over the snapshot's copies (skipped).
  auto r = m.restore_json("t1", foreign);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->added, 1u);
  EXPECT_EQ(r->skipped, (std::vector<TaskId>{"bg_0", "bg_1"}));
  // Another thread: refused whole (the ids are t1's), nothing changes.
  const std::string held = m.snapshot_json();
  auto refused = m.restore_json("t2", foreign);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, Errc::IdConflict);
  EXPECT_EQ(refused.error().message,
            "restore refused: ids held by tasks of another thread: bg_0 (thread 't1'), bg_1 (thread 't1'), bg_5 "
            "(thread 't1')");
  EXPECT_EQ(m.snapshot_json(), held);
  EXPECT_EQ(m.persisted_snapshot().tasks.at("bg_0"), worker_meta);
  EXPECT_EQ(m.persisted_snapshot().tasks.at("bg_1"), agent_meta);
  EXPECT_EQ(m.get("bg_5")->status, TaskStatus::Failed) << "a new running entry without a body is orphaned";
  EXPECT_EQ(m.next_task_number(), 6u);
  EXPECT_EQ(m.stats().live_bodies, 2u);

  // The live ones are unaffected: they take messages, end normally, and keep their own results.
  ASSERT_TRUE(m.send_task_inbox_message("bg_1", "t1", "p", "still me").ok());
  h->run_for(100);
  EXPECT_EQ(m.get("bg_0")->status, TaskStatus::Completed);
  EXPECT_EQ(m.get("bg_0")->result, (json{{"live", true}}));
  EXPECT_EQ(m.get("bg_0")->description, "live worker");
  EXPECT_EQ(m.get("bg_1")->status, TaskStatus::Completed);
  EXPECT_EQ(m.get("bg_1")->result, json("still me"));
  auto next = m.spawn_host("t1", "after", std::nullopt, "after", {}, false);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, "bg_6");
}

}  // namespace
