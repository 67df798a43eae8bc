// The manager's derived indexes (running names per thread, finished tasks in retention order) must
// give the same answers as a scan of the store, also after writes the manager did not make.
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "support.hpp"

namespace bgtasks::testing {
namespace {

std::set<TaskId> finished_ids(BackgroundTaskManager& m, const std::string& thread) {
  std::set<TaskId> out;
  for (const auto& s : m.list(thread))
    if (is_terminal(s.status)) out.insert(s.task_id);
  return out;
}

Result<TaskId> spawn_named(BackgroundTaskManager& m, const std::string& thread, const std::string& name) {
  return m.spawn_host(thread, "job", std::optional<std::string_view>(name), "d", {});
}

Result<void> fail_commits(const std::vector<std::string_view>&) { return errors::invalid_argument("store down"); }

// ---- retention ---------------------------------------------------------------------------------
TEST(RetentionIndex, NewestPerThreadWithTiesAcrossManyThreads) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.set_retain_finished(3);
  constexpr int kThreads = 5;
  std::vector<TaskId> ids;
  std::map<TaskId, std::string> thread_of;
  for (int i = 0; i < 60; ++i) {
    const std::string thread = "t" + std::to_string(i % kThreads);
    auto id = m.spawn_host(thread, "job", std::nullopt, "d", {});
    ASSERT_TRUE(id.ok());
    ids.push_back(*id);
    thread_of[*id] = thread;
  }
  std::mt19937 rng(7);
  std::shuffle(ids.begin(), ids.end(), rng);
  // Completion order per thread is the model: time moves only every 7 completions, so most
  // completion times tie and the finish order decides.
  std::map<std::string, std::vector<TaskId>> order;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i % 7 == 6) h->exec.advance(1);
    ASSERT_TRUE(m.complete(ids[i], json(static_cast<int>(i))).ok());
    auto& o = order[thread_of[ids[i]]];
    o.push_back(ids[i]);
    const std::set<TaskId> expected(o.size() > 3 ? o.end() - 3 : o.begin(), o.end());
    ASSERT_EQ(finished_ids(m, thread_of[ids[i]]), expected) << "after completing " << ids[i];
  }
}

TEST(RetentionIndex, SeesWritesMadeOutsideTheManager) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.set_retain_finished(2);
  std::vector<TaskId> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(*m.spawn_host("t", "job", std::nullopt, "d", {}));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(m.complete(ids[i], json()).ok());
  EXPECT_EQ(finished_ids(m, "t"), (std::set<TaskId>{ids[1], ids[2]}));

  // An outside upsert of a finished task: it must count at the next retention, as older than every
  // task that ended here (whatever its completion time says).
  auto x = make_meta("x1", "t", TaskStatus::Completed);
  x.completed_at_ms = 9'000'000'000;
  ASSERT_TRUE(h->store->apply<BackgroundTaskStateKey>(BackgroundTaskStateAction::upsert(x)).ok());
  ASSERT_TRUE(m.complete(ids[3], json()).ok());
  EXPECT_EQ(finished_ids(m, "t"), (std::set<TaskId>{ids[2], ids[3]}));

  // An outside ReplaceAll drops everything; the index must not hold on to the old entries.
  ASSERT_TRUE(h->store->apply<BackgroundTaskStateKey>(BackgroundTaskStateAction::replace_all({})).ok());
  std::vector<TaskId> more;
  for (int i = 0; i < 3; ++i) more.push_back(*m.spawn_host("t", "job", std::nullopt, "d", {}));
  for (const auto& id : more) ASSERT_TRUE(m.complete(id, json()).ok());
  EXPECT_EQ(finished_ids(m, "t"), (std::set<TaskId>{more[1], more[2]}));
}

// A live task whose stored meta is already terminal (written from outside) leaves the index under
// the key it was added with when it finishes; a stale entry would make retention forget a newer
// task (found in review).
TEST(RetentionIndex, LiveTaskWithAnOutsideTerminalMetaLeavesNoStaleEntry) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.set_retain_finished(3);
  std::vector<TaskId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(*m.spawn_host("t", "job", std::nullopt, "d", {}));
  auto outside = make_meta(ids[0], "t", TaskStatus::Failed);
  ASSERT_TRUE(h->store->apply<BackgroundTaskStateKey>(BackgroundTaskStateAction::upsert(outside)).ok());
  ASSERT_TRUE(m.complete(ids[1], json()).ok());
  ASSERT_TRUE(m.complete(ids[0], json()).ok());
  ASSERT_TRUE(m.complete(ids[2], json()).ok());
  EXPECT_EQ(finished_ids(m, "t"), (std::set<TaskId>{ids[0], ids[1], ids[2]}));
  auto more = *m.spawn_host("t", "job", std::nullopt, "d", {});
  h->clock.advance(1);
  ASSERT_TRUE(m.complete(more, json()).ok());
  EXPECT_EQ(finished_ids(m, "t").size(), 3u);
  EXPECT_TRUE(finished_ids(m, "t").count(more));
}

// Retention keeps the tasks that ended last in this manager, whatever their completion times say:
// a restored task "completed" later by another machine's clock, or a system clock that stepped
// back between two ends, must not make an older end outlive a newer one.
TEST(RetentionIndex, TheNewestEndsHereAreKeptWhateverTheCompletionTimesSay) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.set_retain_finished(2);
  // Restored with a completion time far in this clock's future.
  BackgroundTaskStateSnapshot snap;
  auto future = make_meta("restored", "t", TaskStatus::Completed);
  future.completed_at_ms = h->clock.now_ms() + 1'000'000;
  snap.tasks.emplace("restored", future);
  EXPECT_EQ(m.restore_for_thread("t", snap), 1u);
  std::vector<TaskId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(*m.spawn_host("t", "job", std::nullopt, "d", {}));
  h->clock.set(5'000'000);
  ASSERT_TRUE(m.complete(ids[0], json()).ok());
  h->clock.set(2'000'000);  // stepped back
  ASSERT_TRUE(m.complete(ids[1], json()).ok());
  EXPECT_EQ(finished_ids(m, "t"), (std::set<TaskId>{ids[0], ids[1]})) << "the restored task went first";
  h->clock.set(1'000'000);  // back again
  ASSERT_TRUE(m.complete(ids[2], json()).ok());
  EXPECT_EQ(finished_ids(m, "t"), (std::set<TaskId>{ids[1], ids[2]})) << "the first to end went next";
}

TEST(RetentionIndex, RestoredFinishedTasksAreTheOldestAndForgetKeepsTheIndex) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  m.set_retain_finished(3);
  std::vector<TaskId> ids;
  for (int i = 0; i < 3; ++i) ids.push_back(*m.spawn_host("t", "job", std::nullopt, "d", {}));
  ASSERT_TRUE(m.complete(ids[0], json()).ok());
  ASSERT_TRUE(m.complete(ids[1], json()).ok());
  // Restored entries with the same completion time as the live ones: seq 0, so the oldest.
  BackgroundTaskStateSnapshot snap;
  for (const char* id : {"r1", "r2"}) {
    auto e = make_meta(id, "other", TaskStatus::Failed);
    e.completed_at_ms = h->clock.now_ms();
    snap.tasks.emplace(id, e);
  }
  EXPECT_EQ(m.restore_for_thread("t", snap), 2u);
  EXPECT_EQ(finished_ids(m, "t"), (std::set<TaskId>{"r2", ids[0], ids[1]}));
  EXPECT_TRUE(m.forget(ids[0]));
  EXPECT_EQ(finished_ids(m, "t"), (std::set<TaskId>{"r2", ids[1]}));
  ASSERT_TRUE(m.complete(ids[2], json()).ok());
  EXPECT_EQ(finished_ids(m, "t"), (std::set<TaskId>{"r2", ids[1], ids[2]}));
  auto extra = *m.spawn_host("t", "job", std::nullopt, "d", {});
  ASSERT_TRUE(m.complete(extra, json()).ok());
  EXPECT_EQ(finished_ids(m, "t"), (std::set<TaskId>{ids[1], ids[2], extra}));
}

TEST(RetentionIndex, TurnedOnLaterAndTightened) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  std::vector<TaskId> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(*m.spawn_host(i % 2 ? "a" : "b", "job", std::nullopt, "d", {}));
  for (const auto& id : ids) ASSERT_TRUE(m.complete(id, json()).ok());
  m.set_retain_finished(2);
  EXPECT_EQ(finished_ids(m, "b"), (std::set<TaskId>{ids[2], ids[4]}));
  EXPECT_EQ(finished_ids(m, "a"), (std::set<TaskId>{ids[3], ids[5]}));
  m.set_retain_finished(1);
  EXPECT_EQ(finished_ids(m, "b"), (std::set<TaskId>{ids[4]}));
  m.set_retain_finished(std::nullopt);
  auto more = *m.spawn_host("b", "job", std::nullopt, "d", {});
  ASSERT_TRUE(m.complete(more, json()).ok());
  EXPECT_EQ(finished_ids(m, "b"), (std::set<TaskId>{ids[4], more}));
}

// ---- running names -------------------------------------------------------------------------------
TEST(NameIndex, NameIsFreeOnceTheTaskEndedOrWasForgotten) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  auto first = spawn_named(m, "t", "researcher");
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(spawn_named(m, "t", "researcher").error().code, Errc::DuplicateName);
  EXPECT_TRUE(spawn_named(m, "other", "researcher").ok());  // names are per thread
  ASSERT_TRUE(m.complete(*first, json()).ok());
  auto second = spawn_named(m, "t", "researcher");
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(spawn_named(m, "t", "researcher").error().code, Errc::DuplicateName);
  ASSERT_TRUE(m.fail(*second, "boom").ok());
  EXPECT_TRUE(m.forget(*second));
  EXPECT_TRUE(m.forget(*first));
  auto third = spawn_named(m, "t", "researcher");
  ASSERT_TRUE(third.ok());
  // A coroutine task that is cancelled frees its name when its body ends, not before.
  auto co =
      m.spawn("t", "job", std::optional<std::string_view>("coder"), "d", {}, [](TaskContext ctx) -> Co<TaskResult> {
        co_await ctx.cancelled();
        co_return TaskResult::cancelled();
      });
  ASSERT_TRUE(co.ok());
  h->run_until_idle();
  EXPECT_TRUE(m.cancel(*co));
  EXPECT_EQ(spawn_named(m, "t", "coder").error().code, Errc::DuplicateName);
  h->run_until_idle();
  EXPECT_TRUE(spawn_named(m, "t", "coder").ok());
}

TEST(NameIndex, SeesRestoreAndOutsideWrites) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  // A restored running entry without a live body comes back failed: its name is free.
  BackgroundTaskStateSnapshot snap;
  auto orphan = make_meta("bg_40", "t", TaskStatus::Running);
  orphan.name = "builder";
  snap.tasks.emplace("bg_40", orphan);
  EXPECT_EQ(m.restore_for_thread("t", snap), 1u);
  auto b = spawn_named(m, "t", "builder");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*b, "bg_41");

  // A running named entry written straight into the store takes the name...
  auto outside = make_meta("ext", "t", TaskStatus::Running);
  outside.name = "watcher";
  ASSERT_TRUE(h->store->apply<BackgroundTaskStateKey>(BackgroundTaskStateAction::upsert(outside)).ok());
  EXPECT_EQ(spawn_named(m, "t", "watcher").error().code, Errc::DuplicateName);
  // ...and removing it frees the name again.
  ASSERT_TRUE(h->store->apply<BackgroundTaskStateKey>(BackgroundTaskStateAction::remove("ext")).ok());
  EXPECT_TRUE(spawn_named(m, "t", "watcher").ok());
  // An outside ReplaceAll that drops the running builder frees its name too.
  ASSERT_TRUE(h->store->apply<BackgroundTaskStateKey>(BackgroundTaskStateAction::replace_all({})).ok());
  EXPECT_TRUE(spawn_named(m, "t", "builder").ok());
}

TEST(NameIndex, FailedCompletionCommitKeepsTheNameTaken) {
  auto h = manager_with_store();
  auto& m = *h->manager;
  auto first = spawn_named(m, "t", "zombie");
  ASSERT_TRUE(first.ok());
  h->store->set_commit_hook(fail_commits);
  ASSERT_TRUE(m.complete(*first, json()).ok());  // the commit fails: the stored meta stays running
  h->store->set_commit_hook(nullptr);
  EXPECT_EQ(m.get(*first)->status, TaskStatus::Running);
  EXPECT_EQ(spawn_named(m, "t", "zombie").error().code, Errc::DuplicateName);
  // A failed spawn commit takes no name either.
  h->store->set_commit_hook(fail_commits);
  EXPECT_FALSE(spawn_named(m, "t", "ghost").ok());
  h->store->set_commit_hook(nullptr);
  EXPECT_TRUE(spawn_named(m, "t", "ghost").ok());
}

}  // namespace
}  // namespace bgtasks::testing
