// The core's two small containers: the manager's open-addressing handle table and the shared
// (reference-counted) thread-name string that events carry.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "bgtasks/shared_string.hpp"
#include "bgtasks/task_handle_map.hpp"
#include "support.hpp"

namespace bgtasks {
namespace {

struct Item {
  std::uint64_t n;
};

// Random inserts and erases against std::map, over keys drawn from a small range (so erases hit
// long probe runs and backward shifts) and from spread-out values (the top of the u64 range).
TEST(TaskHandleMap, AgreesWithAMapUnderRandomInsertsAndErases) {
  for (const std::uint64_t spread : {std::uint64_t{64}, std::uint64_t{4096}, UINT64_MAX}) {
    std::mt19937_64 rng(spread);
    detail::TaskHandleMap<Item> table;
    std::map<std::uint64_t, std::shared_ptr<Item>> model;
    for (int step = 0; step < 20000; ++step) {
      const std::uint64_t key = spread == UINT64_MAX ? UINT64_MAX - rng() % 512 * 977 : rng() % spread;
      if (rng() % 3 != 0) {
        if (model.count(key)) continue;
        auto item = std::make_shared<Item>(Item{key});
        model.emplace(key, item);
        table.insert(key, item);
      } else {
        ASSERT_EQ(table.erase(key), model.erase(key) == 1) << "erase " << key;
      }
      ASSERT_EQ(table.size(), model.size());
      if (step % 97 == 0) {
        for (const auto& [k, v] : model) ASSERT_EQ(table.find(k), v.get()) << "find " << k << " at step " << step;
        std::size_t seen = 0;
        table.for_each([&](std::uint64_t k, Item& item) {
          ++seen;
          EXPECT_EQ(item.n, k);
          EXPECT_TRUE(model.count(k));
        });
        ASSERT_EQ(seen, model.size());
      }
    }
    for (const auto& [k, v] : model) ASSERT_EQ(table.find(k), v.get());
    ASSERT_EQ(table.find(spread == UINT64_MAX ? 1 : spread + 1), nullptr);
  }
}

TEST(TaskHandleMap, ReleasesWhatItHolds) {
  auto item = std::make_shared<Item>(Item{7});
  detail::TaskHandleMap<Item> table;
  EXPECT_EQ(table.find(7), nullptr);
  EXPECT_FALSE(table.erase(7));
  table.insert(7, item);
  EXPECT_EQ(item.use_count(), 2);
  EXPECT_TRUE(table.erase(7));
  EXPECT_EQ(item.use_count(), 1);
  EXPECT_TRUE(table.empty());
  table.insert(7, item);
  table.clear();
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(item.use_count(), 1);
  EXPECT_EQ(table.find(7), nullptr);
  table.reserve(1000);  // reserving rehashes what is there and loses nothing
  for (std::uint64_t k = 0; k < 300; ++k) table.insert(k, std::make_shared<Item>(Item{k}));
  table.reserve(5000);
  for (std::uint64_t k = 0; k < 300; ++k) ASSERT_NE(table.find(k), nullptr) << k;
  EXPECT_TRUE(table.any_of([](const Item& i) { return i.n == 299; }));
  EXPECT_FALSE(table.any_of([](const Item& i) { return i.n == 300; }));
}

TEST(SharedString, CopiesShareOneTextAndCompareAsStrings) {
  SharedString a("agent-thread-with-a-long-name");
  SharedString b = a;
  EXPECT_TRUE(b.shares(a));
  EXPECT_EQ(b, "agent-thread-with-a-long-name");
  EXPECT_EQ(b, std::string("agent-thread-with-a-long-name"));
  EXPECT_EQ(b, std::string_view("agent-thread-with-a-long-name"));
  SharedString c(std::string("agent-thread-with-a-long-name"));
  EXPECT_FALSE(c.shares(a));
  EXPECT_EQ(c, a);  // equal text, separate storage
  EXPECT_NE(c, SharedString("other"));
  SharedString moved = std::move(b);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move): a moved-from SharedString is empty
  EXPECT_EQ(moved.str(), "agent-thread-with-a-long-name");
  EXPECT_EQ("thread " + moved, "thread agent-thread-with-a-long-name");
  EXPECT_TRUE(SharedString("").empty());
  EXPECT_EQ(SharedString(), "");
  EXPECT_EQ(SharedString(std::string_view("a\0b", 3)).size(), 3u);
  // A C string, as std::string's c_str(): NUL-terminated, "" when empty.
  EXPECT_STREQ(SharedString(std::string_view("abc", 2)).c_str(), "ab");
  EXPECT_STREQ(SharedString().c_str(), "");
  EXPECT_LT(SharedString("a"), SharedString("b"));
  EXPECT_LT(SharedString("a"), "b");
  EXPECT_EQ(std::hash<SharedString>{}(SharedString("xy")), std::hash<std::string_view>{}("xy"));
}

// One thread name per thread is shared by the manager, its tasks and every event they send.
TEST(SharedString, EventsOfOneThreadShareTheOwnerName) {
  auto h = testing::manager_with_store_and_inbox();
  BackgroundTaskManager& m = *h->manager;
  InboxReceiver& rx = *h->inbox;
  const std::string thread = "a-thread-name-longer-than-any-short-string-buffer";
  auto a = m.spawn_host(thread, "job", std::nullopt, "", {});
  auto b = m.spawn_host(thread, "job", std::nullopt, "", {});
  auto c = m.spawn_host("other", "job", std::nullopt, "", {});
  auto d = m.spawn_host(thread, "job", std::nullopt, "", {});  // A, B, A: a fresh copy, same text
  ASSERT_TRUE(a.ok() && b.ok() && c.ok() && d.ok());
  EXPECT_TRUE(m.emit(*a, "progress", 1));
  EXPECT_TRUE(m.emit(*b, "progress", 2));
  EXPECT_TRUE(m.emit(*c, "progress", 3));
  EXPECT_TRUE(m.emit(*d, "progress", 4));
  ASSERT_TRUE(m.complete(*a, nullptr).ok());
  // drain_events(thread) compares text, not storage: d's name is a separate copy.
  auto mine = rx.drain_events(thread);
  ASSERT_EQ(mine.size(), 4u);
  EXPECT_EQ(mine[0].thread, thread);
  EXPECT_TRUE(mine[1].thread.shares(mine[0].thread));
  EXPECT_FALSE(mine[2].thread.shares(mine[0].thread));
  EXPECT_EQ(mine[2].task_id, *d);
  EXPECT_TRUE(mine[3].thread.shares(mine[0].thread));  // the terminal event of a
  auto rest = rx.drain_events();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].thread, "other");
}

// The task type a task core keeps (shared between spawns like the owner) is what a completion
// writes back when an outside ReplaceAll removed the task's stored meta meanwhile.
TEST(SharedString, ACompletionRewritesARemovedMetaWithItsOwnTaskType) {
  auto h = testing::manager_with_store();
  BackgroundTaskManager& m = *h->manager;
  auto a = m.spawn_host("t", "shell", std::nullopt, "", {});
  auto b = m.spawn_host("t", "download", std::nullopt, "", {});
  auto c = m.spawn_host("u", "shell", std::nullopt, "", {});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  ASSERT_TRUE(h->store->apply<BackgroundTaskStateKey>(BackgroundTaskStateAction::replace_all({})).ok());
  for (const auto& id : {*a, *b, *c}) ASSERT_TRUE(m.complete(id, nullptr).ok());
  EXPECT_EQ(m.get(*a)->task_type, "shell");
  EXPECT_EQ(m.get(*b)->task_type, "download");
  EXPECT_EQ(m.get(*c)->task_type, "shell");
  EXPECT_EQ(m.list("t").size(), 2u);
  EXPECT_EQ(m.list("u").size(), 1u);
}

// cancel_all collects its targets first; a cancel hook that forgets a later (finished) target
// must not leave it a dangling pointer.
TEST(TaskHandleMap, CancelAllSurvivesAHookThatForgetsALaterTarget) {
  auto h = testing::manager_with_store();
  BackgroundTaskManager& m = *h->manager;
  auto first = m.spawn_host("t", "job", std::nullopt, "", {});
  auto done = m.spawn_host("t", "job", std::nullopt, "", {});
  auto last = m.spawn_host("t", "job", std::nullopt, "", {});
  ASSERT_TRUE(first.ok() && done.ok() && last.ok());
  ASSERT_TRUE(m.complete(*done, nullptr).ok());
  std::vector<std::string> hooked;
  m.set_hooks({[&](const TaskId& id) {
                 hooked.push_back(id);
                 if (id == *first) {
                   EXPECT_TRUE(m.forget(*done));
                 }
               },
               nullptr});
  EXPECT_EQ(m.cancel_all("t"), 2u);
  EXPECT_EQ(hooked, (std::vector<std::string>{*first, *last}));
  EXPECT_FALSE(m.get(*done).has_value());
}

}  // namespace
}  // namespace bgtasks
