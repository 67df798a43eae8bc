// Public surface that no scenario reaches on its own, each rule compared with awaken's source:
// cancel_descendants_for_run, resolve_live_child_run, the restore commit-failure metric,
// InboxSender::try_send, inbox_event_message; and rules a mutation run found unpinned: a failed
// commit applies nothing, a token's cancel() wakes its waiters, `bg_+N` ids, a sleep after cancel,
// and the order of send_task_inbox_message's errors.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::testing::child_of;
using bgtasks::testing::finish_at_once;
using bgtasks::testing::Harness;
using bgtasks::testing::make_meta;
using bgtasks::testing::manager_with_store;
using bgtasks::testing::manager_with_store_and_inbox;
using bgtasks::testing::of_run;
using bgtasks::testing::spawn_waiting;
using bgtasks::testing::wait_cancelled;

TaskId spawn_finished(Harness& h, std::optional<std::string_view> name, TaskParentContext parent) {
  auto id = h.manager->spawn("thread-1", "worker", name, "ends at once", std::move(parent), finish_at_once);
  EXPECT_TRUE(id.ok());
  return id.ok() ? *id : TaskId();
}

// ============================================================================ cancel_descendants_for_run

TEST(CancelDescendantsForRun, IsZeroWithoutStoredTasksOrForAnUnknownRun) {
  auto h = manager_with_store();
  EXPECT_EQ(h->manager->cancel_descendants_for_run("run-1"), 0u);
  spawn_waiting(*h, "a", of_run("run-1"));
  h->run_until_idle();
  EXPECT_EQ(h->manager->cancel_descendants_for_run("run-9"), 0u);
  EXPECT_EQ(h->manager->cancel_descendants_for_run("RUN-1"), 0u) << "run ids match exactly";
}

TEST(CancelDescendantsForRun, SumsTheTreesOfTheRunsLiveRootTasksAcrossThreads) {
  auto h = manager_with_store();
  auto a = spawn_waiting(*h, "a", of_run("run-1"));
  auto a_child = spawn_waiting(*h, "a-child", child_of(a));  // no run id: reached through its parent
  auto b = spawn_waiting(*h, "b", of_run("run-1"), "thread-2");
  auto other = spawn_waiting(*h, "other", of_run("run-2"));
  auto unparented = spawn_waiting(*h, "plain", {});
  h->run_until_idle();
  EXPECT_EQ(h->manager->cancel_descendants_for_run("run-1"), 3u);
  for (const auto& id : {a, a_child, b}) EXPECT_TRUE(h->manager->is_cancel_requested(id)) << id;
  EXPECT_FALSE(h->manager->is_cancel_requested(other));
  EXPECT_FALSE(h->manager->is_cancel_requested(unparented));
  // awaken counts again while the bodies are live (cancel is true on every repeat).
  EXPECT_EQ(h->manager->cancel_descendants_for_run("run-1"), 3u);
  h->run_until_idle();
  EXPECT_EQ(h->manager->cancel_descendants_for_run("run-1"), 0u) << "all ended cancelled";
}

TEST(CancelDescendantsForRun, ATaskWithAParentTaskIsNoRootEvenWithTheRunId) {
  auto h = manager_with_store();
  auto parent = spawn_waiting(*h, "lead", {});
  TaskParentContext nested = child_of(parent);
  nested.run_id = "run-1";
  auto child = spawn_waiting(*h, "nested", std::move(nested));
  TaskParentContext dangling = child_of("bg_404");  // its parent task is unknown
  dangling.run_id = "run-1";
  auto orphan = spawn_waiting(*h, "dangling", std::move(dangling));
  h->run_until_idle();
  EXPECT_EQ(h->manager->cancel_descendants_for_run("run-1"), 0u);
  EXPECT_FALSE(h->manager->is_cancel_requested(child));
  EXPECT_FALSE(h->manager->is_cancel_requested(orphan));
}

TEST(CancelDescendantsForRun, AFinishedRootIsSkippedWithItsStillLiveChildren) {
  // awaken filters the roots by status before walking their trees.
  auto h = manager_with_store();
  auto root = spawn_finished(*h, "root", of_run("run-1"));
  auto live_child = spawn_waiting(*h, "child", child_of(root));
  h->run_until_idle();
  ASSERT_EQ(h->manager->get(root)->status, TaskStatus::Completed);
  EXPECT_EQ(h->manager->cancel_descendants_for_run("run-1"), 0u);
  EXPECT_FALSE(h->manager->is_cancel_requested(live_child));
  EXPECT_EQ(h->manager->cancel_tree(root), 1u) << "cancel_tree from the finished root does reach it";
}

TEST(CancelDescendantsForRun, AnEmptyRunIdMatchesOnlyTasksWhoseRunIdIsEmpty) {
  // A spawn under a tool lineage takes its run id even when it is "" (awaken); no run id is another thing.
  auto h = manager_with_store();
  auto empty_run = spawn_waiting(*h, "empty", of_run(""));
  auto no_run = spawn_waiting(*h, "none", {});
  h->run_until_idle();
  EXPECT_EQ(h->manager->cancel_descendants_for_run(""), 1u);
  EXPECT_TRUE(h->manager->is_cancel_requested(empty_run));
  EXPECT_FALSE(h->manager->is_cancel_requested(no_run));
}

// ============================================================================ resolve_live_child_run

TEST(ResolveLiveChildRun, FindsALiveRootTaskOfTheRunByNameOrId) {
  auto h = manager_with_store();
  EXPECT_EQ(h->manager->resolve_live_child_run("run-1", "scout"), std::nullopt) << "no stored tasks";
  auto scout = spawn_waiting(*h, "scout", of_run("run-1"));
  auto unnamed = spawn_waiting(*h, std::nullopt, of_run("run-1"), "thread-2");
  h->run_until_idle();
  EXPECT_EQ(h->manager->resolve_live_child_run("run-1", "scout"), scout);
  EXPECT_EQ(h->manager->resolve_live_child_run("run-1", scout), scout);
  EXPECT_EQ(h->manager->resolve_live_child_run("run-1", unnamed), unnamed) << "any thread";
  EXPECT_EQ(h->manager->resolve_live_child_run("run-2", "scout"), std::nullopt);
  EXPECT_EQ(h->manager->resolve_live_child_run("run-1", "Scout"), std::nullopt);
  EXPECT_EQ(h->manager->resolve_live_child_run("run-1", ""), std::nullopt) << "an unnamed task has no name ''";
}

TEST(ResolveLiveChildRun, SkipsFinishedTasksAndTasksWithAParentTask) {
  auto h = manager_with_store();
  auto done = spawn_finished(*h, "done", of_run("run-1"));
  auto parent = spawn_waiting(*h, "lead", {});
  TaskParentContext nested = child_of(parent);
  nested.run_id = "run-1";
  spawn_waiting(*h, "nested", std::move(nested));
  h->run_until_idle();
  EXPECT_EQ(h->manager->resolve_live_child_run("run-1", "done"), std::nullopt);
  EXPECT_EQ(h->manager->resolve_live_child_run("run-1", done), std::nullopt);
  EXPECT_EQ(h->manager->resolve_live_child_run("run-1", "nested"), std::nullopt);
  // A name used again once its first task ended resolves to the live one.
  auto again = spawn_waiting(*h, "done", of_run("run-1"));
  h->run_until_idle();
  EXPECT_EQ(h->manager->resolve_live_child_run("run-1", "done"), again);
}

TEST(ResolveLiveChildRun, OfTwoLiveMatchesTheLowestIdWins) {
  // awaken returns the first match in HashMap order (unspecified); bgtasks fixes it to id order.
  auto h = manager_with_store();
  auto first = spawn_waiting(*h, "twin", of_run("run-1"), "thread-1");
  spawn_waiting(*h, "twin", of_run("run-1"), "thread-2");  // names are unique per thread only
  h->run_until_idle();
  EXPECT_EQ(h->manager->resolve_live_child_run("run-1", "twin"), first);
}

// ============================================================================ restore metric

StateStore::CommitHook fail_task_state(std::shared_ptr<int> calls) {
  return [calls](const std::vector<std::string_view>& keys) -> Result<void> {
    for (auto k : keys)
      if (k == BackgroundTaskStateKey::name) {
        ++*calls;
        return errors::invalid_argument("injected commit failure");
      }
    return {};
  };
}

TEST(RestoreMetric, EachFailedRestoreCommitCountsOnceUnderRestoreTaskMetadata) {
  metrics::Recorder rec;
  metrics::LocalRecorderScope scope(rec);
  auto h = manager_with_store();
  auto existing = spawn_finished(*h, std::nullopt, {});  // bg_0
  h->run_until_idle();
  const std::string before = h->manager->snapshot_json();
  auto calls = std::make_shared<int>(0);
  h->store->set_commit_hook(fail_task_state(calls));

  BackgroundTaskStateSnapshot snap;
  snap.tasks["bg_7"] = make_meta("bg_7", "old-thread", TaskStatus::Completed);
  snap.tasks["bg_3"] = make_meta("bg_3", "old-thread", TaskStatus::Running);
  snap.tasks["custom"] = make_meta("custom", "old-thread", TaskStatus::Failed);
  snap.tasks[existing] = make_meta(existing, "old-thread", TaskStatus::Failed);  // skipped: no commit
  EXPECT_EQ(h->manager->restore_for_thread("thread-1", snap), 0u);

  EXPECT_EQ(*calls, 3);
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "restore_task_metadata"}}), 3u);
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "task_completion"}}), 0u);
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "sub_agent_completion"}}), 0u);
  ASSERT_EQ(rec.snapshot().size(), 1u) << "nothing else is counted";
  EXPECT_EQ(h->manager->snapshot_json(), before) << "a failed restore writes nothing";

  // As in awaken, the counter moved before the commit was tried: the next id is bg_8.
  h->store->set_commit_hook(nullptr);
  auto next = h->manager->spawn("thread-1", "worker", std::nullopt, "after", {}, finish_at_once);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(*next, "bg_8");
}

TEST(RestoreMetric, RestoreJsonCountsItsFailedCommitsTooAndSucceedsOnceTheStoreHeals) {
  metrics::Recorder rec;
  metrics::LocalRecorderScope scope(rec);
  auto h = manager_with_store();
  auto calls = std::make_shared<int>(0);
  h->store->set_commit_hook(fail_task_state(calls));
  const std::string text = R"({"tasks":{"bg_1":{"task_id":"bg_1","owner_thread_id":"x","task_type":"shell",
    "description":"d","status":"completed","created_at_ms":1,"completed_at_ms":2}}})";
  auto r = h->manager->restore_json("thread-1", text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->added, 0u);
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "restore_task_metadata"}}), 1u);
  h->store->set_commit_hook(nullptr);
  r = h->manager->restore_json("thread-1", text);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->added, 1u);
  EXPECT_EQ(rec.counter(metrics::kCommitFailuresTotal, {{"operation", "restore_task_metadata"}}), 1u);
  EXPECT_EQ(h->manager->persisted_snapshot().tasks.at("bg_1").owner_thread_id, "thread-1");
}

// ============================================================================ InboxSender::try_send

TEST(InboxTrySend, DeliversTheMessageAsIsLikeSend) {
  auto [tx, rx] = inbox_channel();
  EXPECT_TRUE(tx.try_send(json{{"kind", "note"}, {"n", 1}}));
  EXPECT_TRUE(tx.try_send(json("second")));
  EXPECT_EQ(tx.len(), 2u);
  auto got = rx.drain();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], (json{{"kind", "note"}, {"n", 1}}));
  EXPECT_EQ(got[1], json("second"));
}

TEST(InboxTrySend, AfterTheReceiverIsGoneIsFalseWithoutCallingTheFallback) {
  auto fallback_calls = std::make_shared<std::vector<json>>();
  auto [tx, rx] = inbox_channel_with_fallback([fallback_calls](const json& m) { fallback_calls->push_back(m); });
  rx.close();
  EXPECT_TRUE(tx.is_closed());
  EXPECT_FALSE(tx.try_send(json("lost")));
  EXPECT_TRUE(fallback_calls->empty()) << "try_send leaves the fallback to its caller (awaken)";
  EXPECT_FALSE(tx.send(json("handed over")));
  ASSERT_EQ(fallback_calls->size(), 1u) << "send does call it";
  EXPECT_EQ((*fallback_calls)[0], json("handed over"));
}

TEST(InboxTrySend, ABoundedInboxRefusesOrEvictsAsSendDoes) {
  auto [tx, rx] = inbox_channel(InboxOptions{1, OverflowPolicy::Reject});
  EXPECT_TRUE(tx.try_send(1));
  EXPECT_FALSE(tx.try_send(2));
  EXPECT_EQ(tx.dropped(), 1u);
  auto [dtx, drx] = inbox_channel(InboxOptions{1, OverflowPolicy::DropOldest});
  EXPECT_TRUE(dtx.try_send(1));
  EXPECT_TRUE(dtx.try_send(2));
  EXPECT_EQ(drx.drain(), std::vector<json>{json(2)});
  EXPECT_EQ(rx.drain(), std::vector<json>{json(1)});
}

Co<void> receive_one(InboxReceiver* rx, std::optional<json>* out) { *out = co_await rx->recv(); }

TEST(InboxTrySend, WakesAReceiverWaitingInRecv) {
  ManualClock clock{0};
  Executor exec{clock};
  auto [tx, rx] = inbox_channel();
  std::optional<json> got;
  exec.spawn(receive_one(&rx, &got));
  exec.run_until_idle();
  ASSERT_FALSE(got.has_value());
  ASSERT_TRUE(tx.try_send(json("wake")));
  exec.run_until_idle();
  EXPECT_EQ(got, json("wake"));
}

// ============================================================================ inbox_event_message

TEST(InboxEventMessage, WrapsTheCompactSortedJsonInATagNamingKindAndTaskId) {
  const json ev = {{"kind", "custom"}, {"task_id", "bg_0"}, {"event_type", "progress"}, {"payload", {{"percent", 50}}}};
  EXPECT_EQ(inbox_event_message(ev),
            "<background-task-event kind=\"custom\" task_id=\"bg_0\">\n"
            R"({"event_type":"progress","kind":"custom","payload":{"percent":50},"task_id":"bg_0"})"
            "\n</background-task-event>");
  EXPECT_EQ(inbox_event_message({{"kind", "completed"}, {"task_id", "bg_12"}, {"result", nullptr}}),
            "<background-task-event kind=\"completed\" task_id=\"bg_12\">\n"
            R"({"kind":"completed","result":null,"task_id":"bg_12"})"
            "\n</background-task-event>");
}

TEST(InboxEventMessage, DefaultsToEventAndUnknownWhenKindOrTaskIdIsNotAString) {
  EXPECT_EQ(inbox_event_message(json::object()),
            "<background-task-event kind=\"event\" task_id=\"unknown\">\n{}\n</background-task-event>");
  EXPECT_EQ(inbox_event_message({{"kind", 3}, {"task_id", nullptr}}),
            "<background-task-event kind=\"event\" task_id=\"unknown\">\n"
            R"({"kind":3,"task_id":null})"
            "\n</background-task-event>");
  EXPECT_EQ(inbox_event_message({{"task_id", "bg_1"}}),
            "<background-task-event kind=\"event\" task_id=\"bg_1\">\n"
            R"({"task_id":"bg_1"})"
            "\n</background-task-event>");
  // Not an object: serde's Value::get finds nothing.
  EXPECT_EQ(inbox_event_message(json::array({"kind", "x"})),
            "<background-task-event kind=\"event\" task_id=\"unknown\">\n[\"kind\",\"x\"]\n</background-task-event>");
  EXPECT_EQ(inbox_event_message(json(nullptr)),
            "<background-task-event kind=\"event\" task_id=\"unknown\">\nnull\n</background-task-event>");
  EXPECT_EQ(inbox_event_message(json("done")),
            "<background-task-event kind=\"event\" task_id=\"unknown\">\n\"done\"\n</background-task-event>");
}

TEST(InboxEventMessage, PutsKindAndTaskIdInUnescapedAndTheJsonAsSerdeWritesIt) {
  // awaken formats the strings in as they are; serde_json escapes only '"', '\\' and control
  // characters (lowercase hex) and writes other text as UTF-8.
  const json ev = {{"kind", "a\"b"}, {"task_id", "<bg>"}, {"note", "é\u2028</x>\x01\t"}};
  EXPECT_EQ(inbox_event_message(ev),
            "<background-task-event kind=\"a\"b\" task_id=\"<bg>\">\n"
            "{\"kind\":\"a\\\"b\",\"note\":\"é\u2028</x>\\u0001\\t\",\"task_id\":\"<bg>\"}"
            "\n</background-task-event>");
}

// ============================================================================ a failed commit applies nothing

// A store with the task-state key and the pending-work key, both written once.
struct TwoKeyStore {
  StateStore store;
  TwoKeyStore() {
    EXPECT_TRUE(
        store
            .register_keys({KeyRegistration::of<BackgroundTaskStateKey>("p"), KeyRegistration::of<PendingWorkKey>("p")})
            .ok());
    MutationBatch b = store.begin_mutation();
    b.update<BackgroundTaskStateKey>(BackgroundTaskStateAction::upsert(make_meta("bg_0", "t", TaskStatus::Running)));
    b.update<PendingWorkKey>(true);
    EXPECT_TRUE(store.commit(std::move(b)).ok());
  }
};

TEST(StateStoreCommit, AFailingCommitHookLeavesEveryValueAndVersionUnchanged) {
  TwoKeyStore s;
  const auto version = s.store.version();
  const auto state_version = s.store.key_version<BackgroundTaskStateKey>();
  const auto pending_version = s.store.key_version<PendingWorkKey>();
  const auto state = *s.store.read<BackgroundTaskStateKey>();
  std::vector<std::string> seen;
  s.store.set_commit_hook([&seen](const std::vector<std::string_view>& keys) -> Result<void> {
    for (auto k : keys) seen.emplace_back(k);
    return errors::invalid_argument("injected commit failure");
  });

  MutationBatch b = s.store.begin_mutation();
  b.update<PendingWorkKey>(false);
  b.update<BackgroundTaskStateKey>(BackgroundTaskStateAction::upsert(make_meta("bg_1", "t", TaskStatus::Running)));
  auto r = s.store.commit(std::move(b));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "injected commit failure");
  EXPECT_EQ(seen, (std::vector<std::string>{"__runtime.pending_work", "background_task_state"}))
      << "the hook sees every key of the batch, in order";

  EXPECT_EQ(s.store.version(), version);
  EXPECT_EQ(s.store.key_version<BackgroundTaskStateKey>(), state_version);
  EXPECT_EQ(s.store.key_version<PendingWorkKey>(), pending_version);
  EXPECT_EQ(*s.store.read<BackgroundTaskStateKey>(), state);
  EXPECT_EQ(s.store.read<PendingWorkKey>(), std::optional<bool>(true));

  // The single-action paths follow the same rule.
  EXPECT_FALSE(s.store.apply<PendingWorkKey>(false).ok());
  bool changed = false;
  EXPECT_FALSE(s.store.modify<BackgroundTaskStateKey>([&](BackgroundTaskStateSnapshot&) { changed = true; }).ok());
  EXPECT_FALSE(changed);
  EXPECT_EQ(s.store.version(), version);
  EXPECT_EQ(s.store.read<PendingWorkKey>(), std::optional<bool>(true));

  // Once the hook lets it through, the same batch applies whole.
  s.store.set_commit_hook(nullptr);
  MutationBatch again = s.store.begin_mutation();
  again.update<PendingWorkKey>(false);
  again.update<BackgroundTaskStateKey>(BackgroundTaskStateAction::upsert(make_meta("bg_1", "t", TaskStatus::Running)));
  ASSERT_TRUE(s.store.commit(std::move(again)).ok());
  EXPECT_EQ(s.store.version(), version + 1);
  EXPECT_EQ(s.store.read<PendingWorkKey>(), std::optional<bool>(false));
  EXPECT_EQ(s.store.read<BackgroundTaskStateKey>()->tasks.size(), 2u);
}

// A key no plugin registered.
struct UnregisteredKey {
  static constexpr std::string_view name = "not_registered";
  using Value = int;
  using Action = int;
  static void apply(Value& v, Action a) { v = a; }
};

TEST(StateStoreCommit, AnUnregisteredKeyLaterInTheBatchAppliesNothingAndSkipsTheHook) {
  TwoKeyStore s;
  const auto version = s.store.version();
  int hook_calls = 0;
  s.store.set_commit_hook([&hook_calls](const std::vector<std::string_view>&) -> Result<void> {
    ++hook_calls;
    return {};
  });
  MutationBatch b = s.store.begin_mutation();
  b.update<PendingWorkKey>(false);
  b.update<UnregisteredKey>(1);
  auto r = s.store.commit(std::move(b));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::UnknownKey);
  EXPECT_EQ(hook_calls, 0);
  EXPECT_EQ(s.store.version(), version);
  EXPECT_EQ(s.store.read<PendingWorkKey>(), std::optional<bool>(true));
}

// ============================================================================ CancellationToken::cancel wakes

Co<void> await_token(CancellationToken token, int* woke) {
  co_await token.cancelled();
  ++*woke;
}

TEST(CancellationTokenCancel, WakesEveryBodyWaitingOnAStandaloneToken) {
  ManualClock clock{0};
  Executor exec{clock};
  CancellationToken token;
  int woke = 0;
  exec.spawn(await_token(token, &woke));
  exec.spawn(await_token(token, &woke));
  exec.run_until_idle();
  ASSERT_EQ(woke, 0);
  token.cancel();
  EXPECT_TRUE(token.is_cancelled());
  exec.run_until_idle();
  EXPECT_EQ(woke, 2);
  EXPECT_TRUE(exec.idle());
}

TEST(CancellationTokenCancel, AHandleOfAPairWakesItsTokensWaiters) {
  ManualClock clock{0};
  Executor exec{clock};
  auto [handle, token] = CancellationToken::new_pair();
  int woke = 0;
  exec.spawn(await_token(token, &woke));
  exec.run_until_idle();
  handle.cancel();
  exec.run_until_idle();
  EXPECT_EQ(woke, 1);
}

TEST(CancellationTokenCancel, ATaskTokenCancelledFromOutsideTheManagerEndsASleepAtOnce) {
  auto h = manager_with_store();
  auto slept = std::make_shared<std::optional<bool>>();
  std::optional<CancellationToken> token;
  auto id = h->manager->spawn("thread-1", "worker", std::nullopt, "sleeps", {},
                              [slept, &token](TaskContext ctx) -> Co<TaskResult> {
                                token = ctx.cancel_token();
                                *slept = co_await ctx.sleep(1'000'000);
                                co_return **slept ? TaskResult::success(nullptr) : TaskResult::cancelled();
                              });
  ASSERT_TRUE(id.ok());
  h->run_until_idle();
  ASSERT_TRUE(token.has_value());
  ASSERT_FALSE(slept->has_value());
  const auto now = h->clock.now_ms();
  token->cancel();  // the token's own cancel, not BackgroundTaskManager::cancel
  h->run_until_idle();
  ASSERT_TRUE(slept->has_value()) << "the sleeping body was not woken";
  EXPECT_FALSE(**slept);
  EXPECT_EQ(h->clock.now_ms(), now);
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Cancelled);
}

// ============================================================================ bg_+N

TEST(BgNumber, ALeadingPlusIsANumberAsRustsU64ParseReadsIt) {
  EXPECT_EQ(parse_bg_number("bg_+5"), std::optional<std::uint64_t>(5));
  EXPECT_EQ(parse_bg_number("bg_05"), std::optional<std::uint64_t>(5));
  EXPECT_EQ(parse_bg_number("bg_+18446744073709551615"), std::optional<std::uint64_t>(UINT64_MAX));
  for (const char* not_a_number : {"bg_+", "bg_++5", "bg_-5", "bg_+-5", "bg_ 5", "bg_5 ", "bg_", "bg_+5x",
                                   "bg_18446744073709551616", "BG_5", "bg5"})
    EXPECT_EQ(parse_bg_number(not_a_number), std::nullopt) << not_a_number;
}

TEST(BgNumber, RestoringBgPlusFiveMakesTheNextSpawnBgSix) {
  auto h = manager_with_store();
  BackgroundTaskStateSnapshot snap;
  snap.tasks["bg_+5"] = make_meta("bg_+5", "old", TaskStatus::Completed);
  EXPECT_EQ(h->manager->restore_for_thread("thread-1", snap), 1u);
  EXPECT_EQ(h->manager->next_task_number(), 6u);
  auto id = h->manager->spawn("thread-1", "worker", std::nullopt, "after restore", {}, finish_at_once);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, "bg_6");
  EXPECT_TRUE(h->manager->get("bg_+5").has_value()) << "the id is kept as spelled";
  EXPECT_FALSE(h->manager->get("bg_5").has_value());
}

// ============================================================================ sleep after cancel

TEST(SleepAfterCancel, ASleepOnAnAlreadyCancelledTaskReturnsFalseWithoutWaiting) {
  auto h = manager_with_store();
  auto slept = std::make_shared<std::vector<bool>>();
  auto id = h->manager->spawn("thread-1", "worker", std::nullopt, "sleeps after cancel", {},
                              [slept](TaskContext ctx) -> Co<TaskResult> {
                                slept->push_back(co_await ctx.sleep(10'000));
                                slept->push_back(co_await ctx.sleep(0));  // also for a sleep of no time
                                co_return TaskResult::success(nullptr);
                              });
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(h->manager->cancel(*id)) << "cancelled before its first step";
  const auto now = h->clock.now_ms();
  h->run_until_idle();
  EXPECT_EQ(*slept, (std::vector<bool>{false, false}));
  EXPECT_EQ(h->clock.now_ms(), now);
  EXPECT_EQ(h->exec.timer_count(), 0u) << "no timer was left armed";
  EXPECT_EQ(h->manager->get(*id)->status, TaskStatus::Cancelled);
}

// ============================================================================ send_task_inbox_message order

Co<TaskResult> agent_waiting(CancellationToken token, InboxSender, InboxReceiver) {
  co_await token.cancelled();
  co_return TaskResult::cancelled();
}

Co<TaskResult> agent_closing_inbox(CancellationToken token, InboxSender, InboxReceiver rx) {
  rx.close();
  co_await token.cancelled();
  co_return TaskResult::cancelled();
}

Co<TaskResult> agent_finishing(CancellationToken, InboxSender, InboxReceiver) {
  co_return TaskResult::success(nullptr);
}

std::string error_of(const Result<void>& r) {
  if (r.ok()) return "ok";
  return r.error().message;
}

TEST(SendTaskInboxMessageOrder, NotFoundThenNotOwnerThenTerminatedThenNoInboxThenTheSend) {
  auto h = std::make_unique<Harness>();
  ManagerOptions options;
  options.agent_inbox = InboxOptions{1, OverflowPolicy::Reject};
  h->manager = std::make_shared<BackgroundTaskManager>(h->exec, options);
  EXPECT_TRUE(h->manager->set_store(h->store).ok());
  ASSERT_TRUE(h->store->install_plugin(BackgroundTaskPlugin(h->manager)).ok());
  auto& m = *h->manager;
  auto plain_live = spawn_waiting(*h, "plain", {});
  auto plain_done = spawn_finished(*h, "plain-done", {});
  auto agent_live = m.spawn_agent("thread-1", "agent", "waits", {}, agent_waiting);
  auto agent_closed = m.spawn_agent("thread-1", "closed", "closes its inbox", {}, agent_closing_inbox);
  auto agent_done = m.spawn_agent("thread-1", "done", "ends", {}, agent_finishing);
  ASSERT_TRUE(agent_live.ok() && agent_closed.ok() && agent_done.ok());
  BackgroundTaskStateSnapshot restored;
  restored.tasks["bg_50"] = make_meta("bg_50", "thread-1", TaskStatus::Completed);
  ASSERT_EQ(m.restore_for_thread("thread-1", restored), 1u);
  h->run_until_idle();
  ASSERT_EQ(m.get(plain_done)->status, TaskStatus::Completed);
  ASSERT_EQ(m.get(*agent_done)->status, TaskStatus::Completed);

  const auto send = [&](const TaskId& id, std::string_view owner) {
    return error_of(m.send_task_inbox_message(id, owner, "parent", "hi"));
  };
  // 1. No handle: TaskNotFound, whatever the owner (a restored-only id has no handle).
  EXPECT_EQ(send("bg_404", "thread-x"), "task not found");
  EXPECT_EQ(send("bg_50", "thread-1"), "task not found");
  // 2. Another thread: NotOwner, before the status and the inbox are looked at.
  for (const auto& id : {plain_live, plain_done, *agent_live, *agent_closed, *agent_done})
    EXPECT_EQ(send(id, "thread-2"), "caller does not own this task") << id;
  // 3. Terminal: TaskTerminated, before the inbox (a finished plain task is not NoInbox).
  EXPECT_EQ(send(plain_done, "thread-1"), "task already completed");
  EXPECT_EQ(send(*agent_done, "thread-1"), "task already completed");
  // 4. A live task without an inbox: NoInbox.
  EXPECT_EQ(send(plain_live, "thread-1"), "task has no inbox (not a sub-agent)");
  // 5. The send itself: a closed inbox, then a full one.
  EXPECT_EQ(send(*agent_closed, "thread-1"), "sub-agent inbox closed");
  EXPECT_EQ(send(*agent_live, "thread-1"), "ok");
  EXPECT_EQ(send(*agent_live, "thread-1"),
            m.send_task_inbox_message(*agent_live, "thread-1", "p", "c").error().message);
  EXPECT_EQ(m.send_task_inbox_message(*agent_live, "thread-1", "p", "c").error().code, Errc::InboxFull);
  // A full inbox of a task that then ends: TaskTerminated comes first.
  ASSERT_TRUE(m.cancel(*agent_live));
  h->run_until_idle();
  EXPECT_EQ(send(*agent_live, "thread-1"), "task already cancelled");
  EXPECT_EQ(send(*agent_live, "thread-2"), "caller does not own this task");
}

}  // namespace
