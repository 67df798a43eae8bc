// Ids shared with other managers and the checked restore (docs/ids-and-restore.md): the error
// codes, restore / restore_json with their report (IdConflict, skipped, highest), ids granted in
// blocks by a shared allocator, and change tracking.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "support.hpp"

namespace {

using namespace bgtasks;
using bgtasks::testing::Harness;
using bgtasks::testing::make_meta;
using bgtasks::testing::manager_with_store;
using bgtasks::testing::manager_with_store_and_inbox;

using Ids = std::vector<TaskId>;
using Threads = std::vector<std::string>;

BackgroundTaskStateSnapshot snapshot_of(const std::vector<PersistedTaskMeta>& metas) {
  BackgroundTaskStateSnapshot s;
  for (const auto& m : metas) s.tasks.insert_or_assign(m.task_id, m);
  return s;
}

std::string text_of(const std::vector<PersistedTaskMeta>& metas) { return dump(snapshot_of(metas)); }

TaskId spawn_host(BackgroundTaskManager& m, std::string_view thread, std::string_view description = "d") {
  auto id = m.spawn_host(thread, "shell", std::nullopt, description, {});
  EXPECT_TRUE(id.ok()) << (id.ok() ? "" : id.error().message);
  return id.ok() ? *id : TaskId();
}

// Everything a refused call must leave as it was.
struct Observed {
  std::string snapshot;
  std::uint64_t next;
  std::uint64_t left;
  std::string stats;
  bool operator==(const Observed&) const = default;
};
Observed observe(const BackgroundTaskManager& m) {
  return {m.snapshot_json(), m.next_task_number(), m.granted_ids_left(), dump(m.stats().to_json())};
}

// ============================================================================ error codes

TEST(ErrorCodes, NewCodesFollowInvalidArgumentInOrderWithTheirNames) {
  // The JS ERROR_CODES array is indexed by these numbers (+1): the order is part of the API.
  EXPECT_EQ(static_cast<int>(Errc::IdConflict), static_cast<int>(Errc::InvalidArgument) + 1);
  EXPECT_EQ(static_cast<int>(Errc::IdsUnavailable), static_cast<int>(Errc::InvalidArgument) + 2);
  EXPECT_EQ(static_cast<int>(Errc::StaleOwner), static_cast<int>(Errc::InvalidArgument) + 3);
  EXPECT_STREQ(errc_name(Errc::IdConflict), "IdConflict");
  EXPECT_STREQ(errc_name(Errc::IdsUnavailable), "IdsUnavailable");
  EXPECT_STREQ(errc_name(Errc::StaleOwner), "StaleOwner");
  EXPECT_EQ(errors::ids_unavailable().code, Errc::IdsUnavailable);
  EXPECT_EQ(errors::id_conflict("x").code, Errc::IdConflict);
  EXPECT_EQ(errors::stale_owner("y").message, "y");
}

// ============================================================================ checked restore

TEST(CheckedRestore, IdsOfAnotherThreadRefuseTheWholeRestoreAndChangeNothing) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  const TaskId live = spawn_host(m, "alice", "live");
  const TaskId done = spawn_host(m, "alice", "done");
  ASSERT_TRUE(m.complete(done, "ok").ok());
  h->run_until_idle();
  const auto before = observe(m);
  const std::size_t events = h->inbox->len();

  const auto snap = std::vector<PersistedTaskMeta>{make_meta(live, "x", TaskStatus::Completed),
                                                   make_meta(done, "x", TaskStatus::Failed),
                                                   make_meta("bg_5", "x", TaskStatus::Completed)};
  auto r = m.restore_json("bob", text_of(snap));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::IdConflict);
  EXPECT_EQ(r.error().message,
            "restore refused: ids held by tasks of another thread: bg_0 (thread 'alice'), bg_1 (thread 'alice')");
  EXPECT_EQ(observe(m), before);
  EXPECT_FALSE(m.get("bg_5").has_value()) << "the entry without a conflict was not added either";
  EXPECT_EQ(h->inbox->len(), events);

  // The snapshot form answers the same.
  auto r2 = m.restore("bob", snapshot_of(snap));
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error(), r.error());
  EXPECT_EQ(observe(m), before);
  // The live task is untouched and settles as usual.
  ASSERT_TRUE(m.complete(live, "still mine").ok());
  EXPECT_EQ(m.get(live)->result, std::optional<json>(json("still mine")));
}

TEST(CheckedRestore, TheMessageNamesTenIdsThenCountsTheRest) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  std::vector<PersistedTaskMeta> metas;
  for (int n = 0; n < 13; ++n) metas.push_back(make_meta("bg_" + std::to_string(n), "a", TaskStatus::Completed));
  metas.push_back(make_meta("zz", "a", TaskStatus::Completed));
  ASSERT_EQ(m.restore("a", snapshot_of(metas))->added, 14u);
  auto r = m.restore("b", snapshot_of(metas));
  ASSERT_FALSE(r.ok());
  std::string want = "restore refused: ids held by tasks of another thread: ";
  for (int n = 0; n < 10; ++n) want += (n ? ", bg_" : "bg_") + std::to_string(n) + " (thread 'a')";
  want += " and 4 more";
  EXPECT_EQ(r.error().message, want);
}

TEST(CheckedRestore, IdsOfTheSameThreadAreSkippedInIdOrderAndKept) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  ASSERT_TRUE(m.restore("t", snapshot_of({make_meta("bg_10", "t", TaskStatus::Completed, "shell", "kept ten"),
                                          make_meta("x", "t", TaskStatus::Completed, "shell", "kept x")}))
                  .ok());
  const TaskId live = spawn_host(m, "t", "live");  // bg_11
  ASSERT_EQ(live, "bg_11");
  auto r = m.restore("t", snapshot_of({make_meta("x", "t", TaskStatus::Failed, "shell", "stale"),
                                       make_meta("bg_11", "t", TaskStatus::Completed, "shell", "stale"),
                                       make_meta("bg_10", "t", TaskStatus::Failed, "shell", "stale"),
                                       make_meta("bg_9", "t", TaskStatus::Completed, "shell", "new nine"),
                                       make_meta("a", "t", TaskStatus::Completed, "shell", "new a")}));
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->added, 2u);
  EXPECT_EQ(r->skipped, (Ids{"bg_10", "bg_11", "x"}));
  EXPECT_EQ(r->highest_number, std::optional<std::uint64_t>(11));
  EXPECT_EQ(m.get("bg_10")->description, "kept ten");
  EXPECT_EQ(m.get("x")->description, "kept x");
  EXPECT_EQ(m.get(live)->status, TaskStatus::Running);
  EXPECT_EQ(m.get("bg_9")->description, "new nine");
}

TEST(CheckedRestore, HighestIsTheLargestBgNumberOfTheSnapshotSkippedOnesIncluded) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  auto none = m.restore("t", snapshot_of({make_meta("custom", "t", TaskStatus::Completed)}));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->highest_number, std::nullopt);
  auto empty = m.restore_json("t", R"({"tasks":{}})");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->added, 0u);
  EXPECT_TRUE(empty->skipped.empty());
  EXPECT_EQ(empty->highest_number, std::nullopt);

  auto some = m.restore(
      "t", snapshot_of({make_meta("bg_3", "t", TaskStatus::Completed), make_meta("bg_12", "t", TaskStatus::Completed),
                        make_meta("other", "t", TaskStatus::Completed)}));
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(some->highest_number, std::optional<std::uint64_t>(12));
  // Every entry skipped: still reported.
  auto again = m.restore("t", snapshot_of({make_meta("bg_12", "t", TaskStatus::Completed)}));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->added, 0u);
  EXPECT_EQ(again->skipped, Ids{"bg_12"});
  EXPECT_EQ(again->highest_number, std::optional<std::uint64_t>(12));
  // The last id of all.
  auto last = m.restore("t", snapshot_of({make_meta("bg_18446744073709551615", "t", TaskStatus::Completed)}));
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->highest_number, std::optional<std::uint64_t>(UINT64_MAX));
}

TEST(CheckedRestore, AnIdListedTwiceCountsOnceWithItsLastEntry) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  const std::string text =
      R"({"tasks":{"bg_1":{"task_id":"bg_1","task_type":"a","description":"first","status":"completed","created_at_ms":1},)"
      R"("bg_1":{"task_id":"bg_1","task_type":"a","description":"second","status":"completed","created_at_ms":1}}})";
  auto r = m.restore_json("t", text);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->added, 1u);
  EXPECT_EQ(m.get("bg_1")->description, "second");
  auto again = m.restore_json("t", text);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->skipped, Ids{"bg_1"}) << "listed once";
  auto other = m.restore_json("u", text);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().message, "restore refused: ids held by tasks of another thread: bg_1 (thread 't')");
}

TEST(CheckedRestore, WithoutAStoreOrItsKeyOrWhileEmptyItAnswersAsRestoreJson) {
  Harness bare;
  bare.manager = std::make_shared<BackgroundTaskManager>(bare.exec);
  auto r = bare.manager->restore("t", snapshot_of({make_meta("bg_1", "t", TaskStatus::Completed)}));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::StoreNotConfigured);

  Harness unregistered;
  unregistered.manager = std::make_shared<BackgroundTaskManager>(unregistered.exec);
  EXPECT_TRUE(unregistered.manager->set_store(unregistered.store).ok());
  auto u = unregistered.manager->restore("t", snapshot_of({make_meta("bg_1", "t", TaskStatus::Completed)}));
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().code, Errc::UnknownKey);
  auto uj = unregistered.manager->restore_json("t", R"({"tasks":{}})");
  ASSERT_FALSE(uj.ok());
  EXPECT_EQ(uj.error().code, Errc::UnknownKey);
}

TEST(CheckedRestore, AwakensRestoreForThreadStillSkipsOtherThreadsIdsSilently) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  const TaskId live = spawn_host(m, "alice");
  const std::size_t added = m.restore_for_thread(
      "bob", snapshot_of({make_meta(live, "x", TaskStatus::Completed), make_meta("bg_4", "x", TaskStatus::Completed)}));
  EXPECT_EQ(added, 1u);
  EXPECT_EQ(m.get(live)->status, TaskStatus::Running);
  EXPECT_EQ(m.list("bob").size(), 1u);
  EXPECT_EQ(m.next_task_number(), 5u);
}

// ============================================================================ granted ids

TEST(GrantedIds, OnceGrantedIdsComeOnlyFromTheBlocksInGrantOrder) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  EXPECT_FALSE(m.uses_granted_ids());
  EXPECT_EQ(spawn_host(m, "t"), "bg_0");  // the local counter, as awaken
  m.grant_ids(100, 2);
  m.grant_ids(50, 1);
  EXPECT_TRUE(m.uses_granted_ids());
  EXPECT_EQ(m.granted_ids_left(), 3u);
  EXPECT_EQ(m.next_task_number(), 100u);
  EXPECT_EQ(spawn_host(m, "t"), "bg_100");
  EXPECT_EQ(spawn_host(m, "t"), "bg_101");
  EXPECT_EQ(m.next_task_number(), 50u);
  EXPECT_EQ(m.granted_ids_left(), 1u);
  auto agent = m.spawn_agent(
      "t", std::nullopt, "agent", {},
      [](CancellationToken, InboxSender, InboxReceiver) -> Co<TaskResult> { co_return TaskResult::success(nullptr); });
  ASSERT_TRUE(agent.ok());
  EXPECT_EQ(*agent, "bg_50");
  EXPECT_EQ(m.granted_ids_left(), 0u);
  EXPECT_TRUE(m.ids_exhausted());
  EXPECT_EQ(m.next_task_number(), UINT64_MAX);
  h->run_until_idle();
  EXPECT_EQ(m.get("bg_50")->status, TaskStatus::Completed);
  // More granted later: spawning resumes from them.
  m.grant_ids(7, 1);
  EXPECT_FALSE(m.ids_exhausted());
  EXPECT_EQ(spawn_host(m, "t"), "bg_7");
}

TEST(GrantedIds, NoneLeftIsIdsUnavailableAndChangesNothing) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  m.grant_ids(0, 1);
  const TaskId only = spawn_host(m, "t");
  ASSERT_EQ(only, "bg_0");
  const auto before = observe(m);
  const std::size_t events = h->inbox->len();
  auto r = m.spawn_host("t", "shell", "named", "none left", {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, Errc::IdsUnavailable);
  EXPECT_EQ(r.error().message,
            "no task id available: every id block granted to this manager is used; reserve more before spawning");
  auto body = m.spawn("t", "shell", std::nullopt, "none left", {}, bgtasks::testing::finish_at_once);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.error().code, Errc::IdsUnavailable);
  h->run_until_idle();
  EXPECT_EQ(observe(m), before);
  EXPECT_EQ(h->inbox->len(), events);
  EXPECT_EQ(m.stats().live_bodies, 1u);
  // A refused name check still comes first, as with the counter.
  auto reserved = m.spawn_host("t", "shell", "self", "reserved", {});
  ASSERT_FALSE(reserved.ok());
  EXPECT_EQ(reserved.error().code, Errc::ReservedName);
}

TEST(GrantedIds, NumbersAlreadyStoredAreLeftOutOfAGrant) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  ASSERT_TRUE(m.restore("t", snapshot_of({make_meta("bg_5", "t", TaskStatus::Completed),
                                          make_meta("bg_7", "u", TaskStatus::Completed),
                                          make_meta("bg_07", "t", TaskStatus::Completed)}))
                  .ok());
  const TaskId live = spawn_host(m, "t");  // the counter: bg_8
  ASSERT_EQ(live, "bg_8");
  m.grant_ids(4, 6);  // 4..9: 5, 7 and 8 are taken ("bg_07" is another id than bg_7)
  EXPECT_EQ(m.granted_ids_left(), 3u);
  EXPECT_EQ(spawn_host(m, "t"), "bg_4");
  EXPECT_EQ(spawn_host(m, "t"), "bg_6");
  EXPECT_EQ(spawn_host(m, "t"), "bg_9");
  EXPECT_FALSE(m.spawn_host("t", "shell", std::nullopt, "none", {}).ok());
}

TEST(GrantedIds, RestoreLeavesTheCounterAndTakesItsNumbersOutOfTheBlocks) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.grant_ids(0, 10);
  auto r = m.restore(
      "t",
      snapshot_of({make_meta("bg_0", "t", TaskStatus::Completed), make_meta("bg_3", "t", TaskStatus::Completed),
                   make_meta("bg_9", "t", TaskStatus::Completed), make_meta("bg_500", "t", TaskStatus::Completed)}));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->added, 4u);
  EXPECT_EQ(r->highest_number, std::optional<std::uint64_t>(500));
  EXPECT_EQ(m.granted_ids_left(), 7u);
  EXPECT_EQ(m.next_task_number(), 1u) << "not 501: the counter is not used with granted ids";
  Ids got;
  for (int i = 0; i < 7; ++i) got.push_back(spawn_host(m, "t"));
  EXPECT_EQ(got, (Ids{"bg_1", "bg_2", "bg_4", "bg_5", "bg_6", "bg_7", "bg_8"}));
  EXPECT_FALSE(m.spawn_host("t", "shell", std::nullopt, "none", {}).ok());
  // awaken's form behaves alike.
  m.grant_ids(20, 3);
  EXPECT_EQ(m.restore_for_thread("t", snapshot_of({make_meta("bg_21", "t", TaskStatus::Completed)})), 1u);
  EXPECT_EQ(m.granted_ids_left(), 2u);
  EXPECT_EQ(spawn_host(m, "t"), "bg_20");
  EXPECT_EQ(spawn_host(m, "t"), "bg_22");
}

TEST(GrantedIds, NumbersStoredBehindTheManagersBackArePassedOverAtSpawn) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.grant_ids(0, 3);
  // Someone else writes the key (a commit of another writer): the manager learns of it at spawn.
  ASSERT_TRUE(h->store
                  ->apply<BackgroundTaskStateKey>(
                      BackgroundTaskStateAction::upsert(make_meta("bg_0", "other", TaskStatus::Completed)))
                  .ok());
  EXPECT_EQ(m.granted_ids_left(), 3u);
  EXPECT_EQ(spawn_host(m, "t"), "bg_1");
  EXPECT_EQ(m.granted_ids_left(), 1u);
  EXPECT_EQ(m.get("bg_0")->description, "desc") << "the other writer's entry is untouched";
}

TEST(GrantedIds, BlocksStopAtTheLastIdAndTheCountSaturates) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.grant_ids(5, 0);
  EXPECT_FALSE(m.uses_granted_ids()) << "an empty grant is ignored";
  m.grant_ids(UINT64_MAX - 1, 10);
  EXPECT_EQ(m.granted_ids_left(), 2u);
  m.grant_ids(UINT64_MAX, UINT64_MAX);
  EXPECT_EQ(m.granted_ids_left(), 3u);
  EXPECT_EQ(spawn_host(m, "t"), "bg_18446744073709551614");
  EXPECT_EQ(spawn_host(m, "t"), "bg_18446744073709551615");
  EXPECT_EQ(m.granted_ids_left(), 1u) << "the repeated last number is still counted";
  auto r = m.spawn_host("t", "shell", std::nullopt, "repeat", {});
  ASSERT_FALSE(r.ok()) << "bg_18446744073709551615 is taken: passed over";
  EXPECT_EQ(r.error().code, Errc::IdsUnavailable);
  m.grant_ids(0, UINT64_MAX);
  m.grant_ids(0, 5);
  EXPECT_EQ(m.granted_ids_left(), UINT64_MAX);
  EXPECT_EQ(spawn_host(m, "t"), "bg_0");
}

TEST(GrantedIds, ALiveTaskWhoseEntryWasReplacedAwayKeepsItsNumber) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  const TaskId live = spawn_host(m, "t");  // bg_0, counter
  // A ReplaceAll by someone else drops the entry; the task's body is still live here.
  ASSERT_TRUE(h->store->apply<BackgroundTaskStateKey>(BackgroundTaskStateAction::replace_all({})).ok());
  m.grant_ids(0, 2);
  EXPECT_EQ(m.granted_ids_left(), 1u);
  EXPECT_EQ(spawn_host(m, "t"), "bg_1");
}

// ============================================================================ change tracking

TEST(ChangeTracking, OffByDefault) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  const TaskId id = spawn_host(m, "t");
  ASSERT_TRUE(m.complete(id, 1).ok());
  EXPECT_TRUE(m.take_changed_threads().empty());
}

TEST(ChangeTracking, SpawnsRecordEachThreadOnceInFirstChangeOrder) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.track_changed_threads(true);
  spawn_host(m, "b");
  spawn_host(m, "a");
  spawn_host(m, "b");
  spawn_host(m, "");
  EXPECT_EQ(m.take_changed_threads(), (Threads{"b", "a", ""}));
  EXPECT_TRUE(m.take_changed_threads().empty()) << "taken: the record is empty";
  spawn_host(m, "a");
  EXPECT_EQ(m.take_changed_threads(), Threads{"a"});
}

TEST(ChangeTracking, TaskEndsRecordTheirThreadCoroutineAndHostBodiesAlike) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  const TaskId host = spawn_host(m, "host-thread");
  auto body = m.spawn("body-thread", "shell", std::nullopt, "d", {}, bgtasks::testing::finish_at_once);
  ASSERT_TRUE(body.ok());
  m.track_changed_threads(true);
  h->run_until_idle();
  EXPECT_EQ(m.take_changed_threads(), Threads{"body-thread"});
  ASSERT_TRUE(m.fail(host, "boom").ok());
  EXPECT_EQ(m.take_changed_threads(), Threads{"host-thread"});
}

TEST(ChangeTracking, RestoresRecordTheThreadOnlyWhenTheyWrote) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.track_changed_threads(true);
  const auto snap =
      snapshot_of({make_meta("bg_1", "x", TaskStatus::Completed), make_meta("bg_2", "x", TaskStatus::Completed)});
  ASSERT_EQ(m.restore("t", snap)->added, 2u);
  EXPECT_EQ(m.take_changed_threads(), Threads{"t"});
  ASSERT_EQ(m.restore("t", snap)->added, 0u);
  EXPECT_TRUE(m.take_changed_threads().empty()) << "all skipped: nothing written";
  ASSERT_FALSE(m.restore("u", snap).ok());
  EXPECT_TRUE(m.take_changed_threads().empty()) << "refused: nothing written";
  ASSERT_FALSE(m.restore_json("u", "{").ok());
  EXPECT_TRUE(m.take_changed_threads().empty());
  EXPECT_EQ(m.restore_for_thread("v", snapshot_of({make_meta("bg_9", "x", TaskStatus::Completed)})), 1u);
  EXPECT_EQ(m.take_changed_threads(), Threads{"v"});
}

TEST(ChangeTracking, ForgetAndRetentionRecordTheThreadOfTheDroppedEntry) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  ASSERT_EQ(m.restore("old", snapshot_of({make_meta("bg_1", "x", TaskStatus::Completed),
                                          make_meta("bg_2", "x", TaskStatus::Completed),
                                          make_meta("bg_3", "x", TaskStatus::Completed)}))
                ->added,
            3u);
  m.track_changed_threads(true);
  EXPECT_TRUE(m.forget("bg_1"));
  EXPECT_EQ(m.take_changed_threads(), Threads{"old"});
  EXPECT_FALSE(m.forget("bg_1"));
  EXPECT_FALSE(m.forget("nothing"));
  EXPECT_TRUE(m.take_changed_threads().empty()) << "nothing removed";
  m.set_retain_finished(1);  // drops bg_2
  EXPECT_EQ(m.take_changed_threads(), Threads{"old"});
  EXPECT_FALSE(m.get("bg_2").has_value());
  // A task's end that retention follows with a drop: the thread once.
  const TaskId id = spawn_host(m, "old");
  (void)m.take_changed_threads();
  ASSERT_TRUE(m.complete(id, 1).ok());
  EXPECT_EQ(m.take_changed_threads(), Threads{"old"});
  EXPECT_FALSE(m.get("bg_3").has_value());
}

TEST(ChangeTracking, ReadsAndCancelRequestsRecordNothing) {
  auto h = manager_with_store_and_inbox();
  auto& m = *h->manager;
  const TaskId a = spawn_host(m, "t");
  auto agent = m.spawn_host("t", "sub_agent", "helper", "agent", {}, true);
  ASSERT_TRUE(agent.ok());
  const TaskId waiting = bgtasks::testing::spawn_waiting(*h, std::nullopt, {}, "w");
  h->run_until_idle();
  m.track_changed_threads(true);
  (void)m.get(a);
  (void)m.list("t");
  (void)m.has_running("t");
  (void)m.persisted_snapshot();
  (void)m.snapshot_json("t");
  (void)m.stats();
  (void)m.task_tree();
  (void)m.is_cancel_requested(a);
  EXPECT_TRUE(m.send_task_inbox_message(*agent, "t", "p", "hi").ok());
  EXPECT_TRUE(m.emit(a, "progress", 1));
  EXPECT_TRUE(m.cancel(a));
  EXPECT_EQ(m.cancel_tree(*agent), 1u);
  EXPECT_EQ(m.cancel_all("t"), 2u);
  EXPECT_FALSE(m.forget(a)) << "still running";
  EXPECT_TRUE(m.take_changed_threads().empty());
  EXPECT_EQ(m.cancel(waiting), true);
  EXPECT_TRUE(m.take_changed_threads().empty()) << "the request alone writes nothing";
  h->run_until_idle();  // the body ends cancelled: its end commit is a write
  EXPECT_EQ(m.take_changed_threads(), Threads{"w"});
}

TEST(ChangeTracking, TurningItOffClearsTheRecord) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.track_changed_threads(true);
  spawn_host(m, "t");
  m.track_changed_threads(false);
  spawn_host(m, "u");
  m.track_changed_threads(true);
  EXPECT_TRUE(m.take_changed_threads().empty());
}

TEST(ChangeTracking, AFailedCommitRecordsNothing) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.track_changed_threads(true);
  h->store->set_commit_hook(
      [](const std::vector<std::string_view>&) -> Result<void> { return errors::invalid_argument("refused"); });
  EXPECT_FALSE(m.spawn_host("t", "shell", std::nullopt, "d", {}).ok());
  EXPECT_TRUE(m.take_changed_threads().empty());
}

}  // namespace
