// The core's small containers: the manager's open-addressing handle table, the id map that holds
// the stored metas, and the shared (reference-counted) thread-name string that events carry.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "bgtasks/bgtasks.hpp"
#include "bgtasks/id_map.hpp"
#include "bgtasks/ring_queue.hpp"
#include "bgtasks/shared_string.hpp"
#include "bgtasks/task_handle_map.hpp"
#include "support.hpp"

namespace bgtasks {
namespace {

struct Item {
  std::uint64_t n;
};
struct ItemNumber {
  std::uint64_t operator()(const Item& i) const noexcept { return i.n; }
};
using ItemTable = detail::TaskHandleMap<Item, ItemNumber>;

// Random inserts and erases against std::map, over keys drawn from a small range (so erases hit
// long probe runs and backward shifts) and from spread-out values (the top of the u64 range).
TEST(TaskHandleMap, AgreesWithAMapUnderRandomInsertsAndErases) {
  for (const std::uint64_t spread : {std::uint64_t{64}, std::uint64_t{4096}, UINT64_MAX}) {
    std::mt19937_64 rng(spread);
    ItemTable table;
    std::map<std::uint64_t, std::shared_ptr<Item>> model;
    for (int step = 0; step < 20000; ++step) {
      const std::uint64_t key = spread == UINT64_MAX ? UINT64_MAX - rng() % 512 * 977 : rng() % spread;
      if (rng() % 3 != 0) {
        if (model.count(key)) continue;
        auto item = std::make_shared<Item>(Item{key});
        model.emplace(key, item);
        table.insert(item);
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
  ItemTable table;
  EXPECT_EQ(table.find(7), nullptr);
  EXPECT_FALSE(table.erase(7));
  table.insert(item);
  EXPECT_EQ(item.use_count(), 2);
  EXPECT_TRUE(table.erase(7));
  EXPECT_EQ(item.use_count(), 1);
  EXPECT_TRUE(table.empty());
  table.insert(item);
  table.clear();
  EXPECT_TRUE(table.empty());
  EXPECT_EQ(item.use_count(), 1);
  EXPECT_EQ(table.find(7), nullptr);
  table.reserve(1000);  // reserving rehashes what is there and loses nothing
  for (std::uint64_t k = 0; k < 300; ++k) table.insert(std::make_shared<Item>(Item{k}));
  table.reserve(5000);
  for (std::uint64_t k = 0; k < 300; ++k) ASSERT_NE(table.find(k), nullptr) << k;
  EXPECT_TRUE(table.any_of([](const Item& i) { return i.n == 299; }));
  EXPECT_FALSE(table.any_of([](const Item& i) { return i.n == 300; }));
}

// A value that counts its live copies: the map must construct and destroy each exactly once.
struct Counted {
  static inline int live = 0;
  int v = 0;
  Counted() { ++live; }
  explicit Counted(int x) : v(x) { ++live; }
  Counted(const Counted& o) : v(o.v) { ++live; }
  Counted(Counted&& o) noexcept : v(o.v) { ++live; }
  Counted& operator=(const Counted&) = default;
  Counted& operator=(Counted&&) noexcept = default;
  ~Counted() { --live; }
  friend bool operator==(const Counted& a, const Counted& b) { return a.v == b.v; }
};

// Keys of every length class the hash reads differently (under 8 bytes, exactly 8, 9..16, long)
// and of every shape the task-id hash reads differently: "bg_N"; "bg_0N", whose hash equals bg_N's;
// 20 digits, past u64 (the number wraps); "bg_+N" and "bg_", which are not numbers.
std::string id_key(std::uint64_t n) {
  switch (n % 7) {
    case 0:
      return "bg_" + std::to_string(n);
    case 1:
      return "bg_" + std::to_string(10000000 + n).substr(0, 5);  // 8 bytes; repeats on purpose
    case 2:
      return "restored-" + std::to_string(n);
    case 3:
      return "bg_0" + std::to_string(n % 50);
    case 4: {
      const std::string digits = std::to_string(n);
      return "bg_" + std::string(20 - digits.size(), '9') + digits;
    }
    case 5:
      return n % 2 ? "bg_+" + std::to_string(n % 50) : std::string("bg_");
    default:
      return std::string(40, 'x') + std::to_string(n);
  }
}

// Consecutive task numbers are indexed in adjacent slots (a batch of spawns touches one line of the
// id map's index per group of 4 and of the handle table per group of 16), while the groups are
// scattered over the table.
TEST(IdMap, ConsecutiveTaskIdsGetAdjacentIndexSlots) {
  for (const unsigned bits : {4u, 10u, 21u}) {
    std::vector<std::size_t> id_groups, handle_groups;
    for (std::uint64_t n = 1600; n < 1600 + 64; ++n) {
      const std::uint64_t h = detail::id_index_hash("bg_" + std::to_string(n));
      const std::size_t home = detail::grouped_home<detail::kIdGroupBits>(static_cast<std::uint32_t>(h), bits);
      ASSERT_LT(home, std::size_t{1} << bits);
      EXPECT_EQ(home % 4, n % 4) << n;
      if (n % 4 == 0) id_groups.push_back(home);
      const std::size_t handle_home = detail::grouped_home<4>(n, bits);
      ASSERT_LT(handle_home, std::size_t{1} << bits);
      EXPECT_EQ(handle_home % 16, n % 16) << n;
      if (n % 16 == 0) handle_groups.push_back(handle_home);
    }
    if (bits == 21) {  // 16 and 4 groups, each in its own place
      for (auto* groups : {&id_groups, &handle_groups}) {
        std::sort(groups->begin(), groups->end());
        EXPECT_EQ(std::unique(groups->begin(), groups->end()), groups->end());
      }
    }
  }
  // "bg_07" hashes as "bg_7" (the keys still differ); ids that are not "bg_" and digits keep the
  // general hash.
  EXPECT_EQ(detail::id_index_hash("bg_07"), detail::id_index_hash("bg_7"));
  EXPECT_EQ(detail::id_index_hash("restored-1"), detail::hash_id("restored-1"));
  EXPECT_EQ(detail::id_index_hash("bg_+1"), detail::hash_id("bg_+1"));
  EXPECT_EQ(detail::id_index_hash("bg_"), detail::hash_id("bg_"));
  EXPECT_EQ(detail::id_index_hash("bg_123456789012345678901"), detail::hash_id("bg_123456789012345678901"));
}

// The manager inserts its ids with the hash computed from N (HashedId): the same entries as a
// text key, found by text afterwards, and a present key is not inserted twice.
TEST(IdMap, HashedKeysAreTheTextKeysHashed) {
  for (const std::uint64_t n : {std::uint64_t{0}, std::uint64_t{7}, std::uint64_t{123456}, UINT64_MAX})
    EXPECT_EQ(detail::task_number_hash(n), detail::id_index_hash("bg_" + std::to_string(n))) << n;
  detail::IdMap<int> map;
  for (std::uint64_t n = 0; n < 100; ++n) {
    const std::string id = "bg_" + std::to_string(n);
    auto [it, inserted] = map.try_emplace(detail::HashedId{id, detail::task_number_hash(n)}, static_cast<int>(n));
    EXPECT_TRUE(inserted);
    EXPECT_EQ(it->first, id);
  }
  for (std::uint64_t n = 0; n < 100; ++n) {
    const std::string id = "bg_" + std::to_string(n);
    ASSERT_TRUE(map.contains(id));
    EXPECT_EQ(map.at(id), static_cast<int>(n));
    auto [it, inserted] = map.try_emplace(detail::HashedId{id, detail::task_number_hash(n)}, -1);
    EXPECT_FALSE(inserted);
    EXPECT_EQ(it->second, static_cast<int>(n));
  }
  EXPECT_EQ(map.size(), 100u);
  EXPECT_EQ(map.erase("bg_42"), 1u);
  EXPECT_FALSE(map.contains("bg_42"));
}

// Small ranges run under several key sets (salts): whether a probe run wraps around the table's
// end, the backward shift's hard case, depends on where the keys hash to.
TEST(IdMap, AgreesWithUnorderedMapUnderRandomOperations) {
  struct Round {
    std::uint64_t range, salt;
  };
  std::vector<Round> rounds;
  for (std::uint64_t salt = 0; salt < 12; ++salt) rounds.push_back({16, salt});
  rounds.push_back({700, 0});
  rounds.push_back({50000, 0});
  for (const auto [range, salt] : rounds) {
    SCOPED_TRACE("range " + std::to_string(range) + ", salt " + std::to_string(salt));
    std::mt19937_64 rng(range + salt);
    {
      detail::IdMap<Counted> map;
      std::unordered_map<std::string, int> model;
      for (int step = 0; step < (range <= 16 ? 5000 : 30000); ++step) {
        const std::string key = id_key(rng() % range + salt * range);
        const int value = static_cast<int>(rng() % 1000);
        switch (rng() % 6) {
          case 0: {
            const bool inserted = map.try_emplace(key, value).second;
            ASSERT_EQ(inserted, model.emplace(key, value).second) << key;
            break;
          }
          case 1:
            map.insert_or_assign(key, Counted(value));
            model.insert_or_assign(key, value);
            break;
          case 2:
            map[key].v = value;
            model[key] = value;
            break;
          case 3:
            ASSERT_EQ(map.erase(key), model.erase(key)) << key;
            break;
          case 4: {
            auto it = map.find(key);
            ASSERT_EQ(it != map.end(), model.count(key) == 1) << key;
            if (it != map.end()) {
              ASSERT_EQ(it->first, key);
              ASSERT_EQ(it->second.v, model.at(key));
              map.erase(it);
              model.erase(key);
            }
            break;
          }
          default:
            ASSERT_EQ(map.count(key), model.count(key)) << key;
            ASSERT_EQ(map.contains(key), model.count(key) == 1) << key;
        }
        ASSERT_EQ(map.size(), model.size());
        ASSERT_EQ(Counted::live, static_cast<int>(model.size()));
        if (range <= 16 || step % 211 == 0) {  // small tables: everything, every step
          std::size_t seen = 0;
          for (const auto& [k, v] : map) {
            ++seen;
            ASSERT_TRUE(model.count(k)) << k;
            ASSERT_EQ(v.v, model.at(k)) << k;
          }
          ASSERT_EQ(seen, model.size());
          for (const auto& [k, v] : model) ASSERT_EQ(map.at(k).v, v) << k;
        }
      }
      // A copy equals the original and owns its own values; a move leaves the source empty.
      detail::IdMap<Counted> copy = map;
      EXPECT_EQ(copy, map);
      EXPECT_EQ(map, copy);  // == looks keys up in its right side: the copy's index is checked too
      for (const auto& [k, v] : model) ASSERT_EQ(copy.at(k).v, v) << k;
      EXPECT_EQ(Counted::live, static_cast<int>(2 * model.size()));
      detail::IdMap<Counted> moved = std::move(copy);
      EXPECT_TRUE(copy.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
      EXPECT_EQ(moved, map);
      moved.clear();
      EXPECT_TRUE(moved.empty());
      EXPECT_EQ(moved.begin(), moved.end());
      EXPECT_EQ(Counted::live, static_cast<int>(model.size()));
    }
    EXPECT_EQ(Counted::live, 0) << "the map's destructor releases every value once";
  }
}

TEST(IdMap, EntriesNeverMoveWhileTheMapGrows) {
  detail::IdMap<Counted> map;
  Counted& first = map["bg_0"];
  first.v = 42;
  const Counted* const address = &first;
  for (int i = 1; i < 5000; ++i) map.try_emplace("bg_" + std::to_string(i), i);
  map.reserve(20000);
  EXPECT_EQ(&map.at("bg_0"), address);
  EXPECT_EQ(address->v, 42);
  // An erased entry's place is reused; the others stay put.
  Counted* const second = &map.at("bg_1");
  ASSERT_EQ(map.erase("bg_0"), 1u);
  map.try_emplace("fresh", 7);
  EXPECT_EQ(&map.at("bg_1"), second);
  EXPECT_EQ(&map.at("fresh"), address) << "the freed entry is handed out first";
}

TEST(IdMap, EraseWhileIteratingVisitsEveryEntryOnce) {
  detail::IdMap<Counted> map;
  for (int i = 0; i < 3000; ++i) map.try_emplace(id_key(static_cast<std::uint64_t>(i) * 7), i);  // "bg_N": distinct
  std::size_t visited = 0;
  for (auto it = map.begin(); it != map.end();) {
    ++visited;
    if (it->second.v % 3 == 0)
      it = map.erase(it);
    else
      ++it;
  }
  EXPECT_EQ(visited, 3000u);
  EXPECT_EQ(map.size(), 2000u);
  for (const auto& [k, v] : map) EXPECT_NE(v.v % 3, 0) << k;
}

TEST(IdMap, ComparesByContentConvertsFromUnorderedMapAndReportsMissingKeys) {
  std::unordered_map<std::string, Counted> source;
  for (int i = 0; i < 100; ++i) source.emplace("bg_" + std::to_string(i), Counted(i));
  const detail::IdMap<Counted> converted = source;
  detail::IdMap<Counted> reversed;
  for (int i = 99; i >= 0; --i) reversed.emplace("bg_" + std::to_string(i), Counted(i));
  EXPECT_EQ(converted, reversed) << "equality ignores iteration order";
  reversed.at("bg_5").v = -1;
  EXPECT_FALSE(converted == reversed);
  reversed.erase("bg_5");
  reversed.emplace("bg_100", Counted(5));
  EXPECT_FALSE(converted == reversed) << "same size and values, different keys";
  EXPECT_EQ(converted.find("bg_100"), converted.end());
  EXPECT_EQ(converted.count(""), 0u);
  EXPECT_THROW((void)converted.at("bg_100"), std::out_of_range);
  const detail::IdMap<Counted> empty;
  EXPECT_EQ(empty.find("bg_0"), empty.end());
  EXPECT_FALSE(empty.contains("bg_0"));
  EXPECT_EQ(empty.begin(), empty.end());
}

// More than 2^30 entries is refused before any index size is computed (on wasm32 doubling the
// index would overflow size_t and loop forever).
TEST(IdMapDeathTest, ReservingMoreThanTheLimitAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  detail::IdMap<Counted> map;
  EXPECT_DEATH(map.reserve((std::size_t{1} << 30) + 1), "");
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

// The stored meta's optional texts (name, error, lineage ids): one pointer each; absent and a
// present empty text stay apart; they read and compare like std::optional<std::string>.
TEST(OptionalSharedString, ReadsLikeAnOptionalStringInOnePointer) {
  static_assert(sizeof(OptionalSharedString) == sizeof(void*));
  OptionalSharedString absent;
  OptionalSharedString empty("");
  EXPECT_FALSE(absent.has_value());
  EXPECT_FALSE(absent);
  EXPECT_TRUE(empty.has_value());
  EXPECT_EQ(*empty, "");
  EXPECT_NE(absent, empty);
  EXPECT_EQ(absent, std::nullopt);
  EXPECT_EQ(absent, std::optional<std::string>());
  EXPECT_EQ(absent, std::optional<std::string_view>());  // as optional<string> vs optional<string_view>
  EXPECT_EQ(empty, std::optional<std::string_view>(""));
  EXPECT_NE(empty, std::optional<std::string_view>());
  EXPECT_EQ(empty, std::optional<std::string>(""));
  EXPECT_NE(absent, "");                                // std::optional's rule: an absent value equals no string
  EXPECT_EQ(OptionalSharedString(SharedString()), "");  // an empty SharedString is a present text
  EXPECT_EQ(OptionalSharedString(std::optional<std::string>()), std::nullopt);

  OptionalSharedString run("run-0123456789abcdef-long");
  OptionalSharedString copy = run;
  EXPECT_TRUE(copy->shares(*run));
  EXPECT_EQ(copy, run);
  EXPECT_EQ(copy, std::string("run-0123456789abcdef-long"));
  EXPECT_EQ(copy, std::string_view("run-0123456789abcdef-long"));
  EXPECT_NE(copy, "run-other");
  EXPECT_EQ(copy.value_or("x"), "run-0123456789abcdef-long");
  EXPECT_EQ(absent.value_or("x"), "x");
  EXPECT_EQ(copy.to_optional(), std::optional<std::string>("run-0123456789abcdef-long"));
  EXPECT_EQ(absent.to_optional(), std::nullopt);
  copy.reset();
  EXPECT_FALSE(copy.has_value());
  EXPECT_EQ(run, "run-0123456789abcdef-long");  // the other holder keeps its text
  EXPECT_EQ(copy.emplace("call-1"), "call-1");
  EXPECT_EQ(copy, "call-1");
  copy = std::nullopt;
  EXPECT_EQ(copy, std::nullopt);
  EXPECT_THROW((void)absent.value(), std::bad_optional_access);
  EXPECT_EQ(run.value(), "run-0123456789abcdef-long");
  std::ostringstream os;
  os << run << ' ' << absent;
  EXPECT_EQ(os.str(), "\"run-0123456789abcdef-long\" nullopt");
}

// A snapshot's entries of one run share its lineage ids; a present empty name stays present
// through restore and snapshot, distinct from an absent one.
TEST(OptionalSharedString, RestoredEntriesShareRepeatedLineageIds) {
  auto h = testing::manager_with_store();
  BackgroundTaskManager& m = *h->manager;
  const std::string run = "run-with-a-name-longer-than-a-short-string";
  auto entry = [&](int n, const char* name) {
    json e{{"task_id", "bg_" + std::to_string(n)},
           {"task_type", "job"},
           {"description", ""},
           {"status", "completed"},
           {"created_at_ms", 1},
           {"completed_at_ms", 2},
           {"owner_thread_id", "t"},
           {"parent_context", {{"run_id", run}, {"task_id", "bg_0"}}}};
    if (name) e["name"] = name;
    return e;
  };
  json snap{{"tasks", {{"bg_1", entry(1, "")}, {"bg_2", entry(2, nullptr)}, {"bg_3", entry(3, "x")}}}};
  ASSERT_EQ(m.restore_json("t", dump(snap))->added, 3u);
  const auto* s = h->store->peek<BackgroundTaskStateKey>();
  ASSERT_NE(s, nullptr);
  const auto& a = s->tasks.at("bg_1");
  const auto& b = s->tasks.at("bg_2");
  const auto& c = s->tasks.at("bg_3");
  EXPECT_EQ(a.parent_context.run_id, run);
  EXPECT_TRUE(b.parent_context.run_id->shares(*a.parent_context.run_id));
  EXPECT_TRUE(c.parent_context.run_id->shares(*a.parent_context.run_id));
  EXPECT_TRUE(c.parent_context.task_id->shares(*a.parent_context.task_id));
  EXPECT_EQ(a.name, "");
  EXPECT_EQ(b.name, std::nullopt);
  EXPECT_EQ(json::parse(m.snapshot_json("t")), snap);
}

// Spawns under one tool call share its lineage ids, and the children of one body share its id
// (one copy each, not one per spawn); explicit fields are the caller's own texts.
TEST(OptionalSharedString, AmbientLineageIdsAreSharedBetweenSpawns) {
  auto h = testing::manager_with_store();
  BackgroundTaskManager& m = *h->manager;
  std::vector<TaskId> ids;
  {
    ToolLineageScope scope(ToolLineageContext{"run-0123456789-abcdef", "call-0123456789-abcdef", "agent-0123456789"});
    for (int i = 0; i < 2; ++i) ids.push_back(*m.spawn_host("t", "job", std::nullopt, "", {}));
    TaskParentContext own;
    own.run_id = "run-0123456789-abcdef";
    ids.push_back(*m.spawn_host("t", "job", std::nullopt, "", std::move(own)));
  }
  std::vector<TaskId> children;
  auto parent = m.spawn("t", "job", std::nullopt, "", {}, [&](TaskContext) -> Co<TaskResult> {
    for (int i = 0; i < 2; ++i) children.push_back(*m.spawn_host("t", "child", std::nullopt, "", {}));
    co_return TaskResult::success(nullptr);
  });
  ASSERT_TRUE(parent.ok());
  h->exec.run_until_idle();
  ASSERT_EQ(children.size(), 2u);
  const auto* s = h->store->peek<BackgroundTaskStateKey>();
  ASSERT_NE(s, nullptr);
  const TaskParentContext& a = s->tasks.at(ids[0]).parent_context;
  const TaskParentContext& b = s->tasks.at(ids[1]).parent_context;
  EXPECT_EQ(a.run_id, "run-0123456789-abcdef");
  EXPECT_EQ(a.call_id, "call-0123456789-abcdef");
  EXPECT_EQ(a.agent_id, "agent-0123456789");
  EXPECT_TRUE(b.run_id->shares(*a.run_id));
  EXPECT_TRUE(b.call_id->shares(*a.call_id));
  EXPECT_TRUE(b.agent_id->shares(*a.agent_id));
  const TaskParentContext& own = s->tasks.at(ids[2]).parent_context;
  EXPECT_EQ(own.run_id, a.run_id);
  EXPECT_FALSE(own.run_id->shares(*a.run_id));
  EXPECT_TRUE(own.call_id->shares(*a.call_id));  // filled from the scope
  const TaskParentContext& c0 = s->tasks.at(children[0]).parent_context;
  const TaskParentContext& c1 = s->tasks.at(children[1]).parent_context;
  EXPECT_EQ(c0.task_id, *parent);
  EXPECT_TRUE(c1.task_id->shares(*c0.task_id));
  EXPECT_FALSE(c0.run_id.has_value());  // no tool lineage around the body
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

TEST(RingQueue, AgreesWithADequeUnderRandomOperationsAndLeaksNothing) {
  {
    std::mt19937 rng(5);
    detail::RingQueue<Counted> ring;
    std::deque<int> model;
    for (int step = 0; step < 20000; ++step) {
      const unsigned op = rng() % 10;
      if (op < 6) {
        const int v = static_cast<int>(rng());
        ring.push_back(Counted(v));
        model.push_back(v);
      } else if (op < 8 && !model.empty()) {
        ring.pop_front();
        model.pop_front();
      } else if (op == 8 && !model.empty()) {
        const std::size_t n = rng() % (model.size() + 1);
        ring.erase_front(n);
        model.erase(model.begin(), model.begin() + static_cast<std::ptrdiff_t>(n));
      } else if (op == 9 && !model.empty() && rng() % 2 == 0) {
        const std::size_t n = rng() % (model.size() + 1);
        ring.erase_back(n);
        model.erase(model.end() - static_cast<std::ptrdiff_t>(n), model.end());
      } else if (rng() % 50 == 0) {
        ring.clear();
        model.clear();
      }
      ASSERT_EQ(ring.size(), model.size());
      ASSERT_EQ(Counted::live, static_cast<int>(model.size()));
      if (!model.empty()) {
        ASSERT_EQ(ring.front().v, model.front());
        ASSERT_EQ(ring[model.size() - 1].v, model.back());
      }
      if (step % 97 == 0) {
        std::size_t i = 0;
        for (const Counted& c : ring) ASSERT_EQ(c.v, model[i++]);
        ASSERT_EQ(i, model.size());
      }
    }
    detail::RingQueue<Counted> moved(std::move(ring));
    EXPECT_EQ(moved.size(), model.size());
    EXPECT_TRUE(ring.empty());
  }
  EXPECT_EQ(Counted::live, 0);
}

TEST(RingQueue, KeepsItsRoomBetweenFillsAndGivesBackWhatABurstLeft) {
  detail::RingQueue<int> q;
  for (int round = 0; round < 3; ++round) {  // steady fills: the room stays
    for (int i = 0; i < 1000; ++i) q.push_back(int{i});
    q.erase_front(q.size());
    EXPECT_EQ(q.capacity(), 1024u);
    q.erase_front(0);  // an empty drain (JS drain() with nothing pending) keeps it too
    q.erase_back(0);   // and a thread's drain that took nothing
    q.clear();
    EXPECT_EQ(q.capacity(), 1024u);
  }
  for (int i = 0; i < 100000; ++i) q.push_back(int{i});  // a burst, taken at once
  q.erase_front(q.size());
  EXPECT_EQ(q.capacity(), 131072u) << "the fill that emptied it used it";
  for (int i = 0; i < 10; ++i) q.push_back(int{i});  // a small fill after the burst
  q.clear();
  EXPECT_EQ(q.capacity(), 0u) << "emptied after a fill that used under a quarter";
  for (int i = 0; i < 100000; ++i) q.push_back(int{i});  // a burst that drains one at a time
  while (q.size() > 100) q.pop_front();
  EXPECT_EQ(q.capacity(), 512u) << "a backlog shrinks as it drains (to twice what it holds, above 1024 slots)";
  EXPECT_EQ(q.front(), 99900);
  EXPECT_EQ(q[99], 99999);
  q.erase_back(50);
  EXPECT_EQ(q.size(), 50u);
  EXPECT_EQ(q[49], 99949);
  // Pushing an element of the queue itself while it grows (it moves its elements).
  detail::RingQueue<std::string> strings;
  for (int i = 0; i < 16; ++i) strings.push_back(std::string(40, static_cast<char>('a' + i)));
  ASSERT_EQ(strings.size(), strings.capacity());
  strings.push_back(std::move(strings[3]));
  EXPECT_EQ(strings[16], std::string(40, 'd'));
}

// Counts how each element came to be: emplace_back builds in the slot, growing moves.
struct Built {
  static inline int constructed = 0, moved = 0, copied = 0;
  int v = 0;
  Built(int x, bool fail) : v(x) {
    if (fail) throw std::runtime_error("constructor failed");
    ++constructed;
  }
  Built(const Built& o) : v(o.v) { ++copied; }
  Built(Built&& o) noexcept : v(o.v) { ++moved; }
};

TEST(RingQueue, EmplaceBackBuildsInTheSlotAndLeavesTheQueueAsItWasWhenTheConstructorThrows) {
  detail::RingQueue<Built> q;
  EXPECT_EQ(q.emplace_back(0, false).v, 0);  // no room yet: built aside, then moved into the new room
  EXPECT_EQ(Built::moved, 1);
  for (int i = 1; i < 16; ++i) EXPECT_EQ(q.emplace_back(i, false).v, i);
  EXPECT_EQ(Built::constructed, 16);
  EXPECT_EQ(Built::moved, 1) << "with room, the element is built in place";
  EXPECT_EQ(Built::copied, 0);
  ASSERT_EQ(q.size(), q.capacity());
  EXPECT_THROW(q.emplace_back(99, true), std::runtime_error);  // full: would grow
  EXPECT_EQ(q.size(), 16u);
  EXPECT_EQ(q.capacity(), 16u);
  Built& grown = q.emplace_back(16, false);  // grows: the 16 held move, the new one moves in
  EXPECT_EQ(grown.v, 16);
  EXPECT_EQ(&grown, &q[16]);
  EXPECT_EQ(Built::moved, 1 + 16 + 1);
  q.pop_front();
  EXPECT_THROW(q.emplace_back(99, true), std::runtime_error);  // room: built in place, throws
  EXPECT_EQ(q.size(), 16u);
  EXPECT_EQ(q.front().v, 1);
  EXPECT_EQ(q[15].v, 16);
}

// send_custom is send_event(Event::custom(...)) without the moves: the same event, outcome,
// drop count and fallback message, for each way a send can go.
TEST(Inbox, SendCustomDeliversRefusesEvictsAndFallsBackExactlyAsSendEvent) {
  const SharedString thread("t");
  auto both = [&](InboxOptions options, bool close_receiver) {
    std::vector<std::string> fallback[2];
    std::vector<std::string> kept[2];
    std::vector<SendOutcome> outcomes[2];
    std::uint64_t dropped[2] = {};
    for (int way = 0; way < 2; ++way) {
      auto [tx, rx] =
          inbox_channel_with_fallback([&, way](const json& m) { fallback[way].push_back(m.dump()); }, options);
      const InboxSender sender = tx.for_thread(SharedString("sender-thread"));
      if (close_receiver) rx.close();
      for (int i = 0; i < 5; ++i) {
        const TaskId id = "bg_" + std::to_string(i);
        const SharedString owner = i % 2 == 0 ? thread : SharedString();  // empty: the sender's thread
        outcomes[way].push_back(way == 0 ? sender.send_event(Event::custom(id, owner, "progress", json{{"step", i}}))
                                         : sender.send_custom(id, owner, "progress", json{{"step", i}}));
      }
      dropped[way] = sender.dropped();
      for (const Event& e : rx.drain_events())
        kept[way].push_back(std::string(e.thread.str()) + " " + e.to_json().dump());
    }
    EXPECT_EQ(outcomes[1], outcomes[0]);
    EXPECT_EQ(kept[1], kept[0]);
    EXPECT_EQ(dropped[1], dropped[0]);
    EXPECT_EQ(fallback[1], fallback[0]);
    return std::make_pair(kept[1], fallback[1]);
  };
  auto [open, none] = both({}, false);
  ASSERT_EQ(open.size(), 5u);
  EXPECT_EQ(open[1],
            R"(sender-thread {"event_type":"progress","kind":"custom","payload":{"step":1},"task_id":"bg_1"})");
  EXPECT_EQ(open[2], R"(t {"event_type":"progress","kind":"custom","payload":{"step":2},"task_id":"bg_2"})");
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(both({2, OverflowPolicy::Reject}, false).first.size(), 2u);
  auto [newest, none2] = both({2, OverflowPolicy::DropOldest}, false);
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_NE(newest[0].find("bg_3"), std::string::npos);
  auto [nothing, fell_back] = both({}, true);
  EXPECT_TRUE(nothing.empty());
  ASSERT_EQ(fell_back.size(), 5u);
  EXPECT_EQ(fell_back[4], R"({"event_type":"progress","kind":"custom","payload":{"step":4},"task_id":"bg_4"})");
}

TEST(Inbox, ConsumeSeesTheOldestEventsInPlaceInOrderAndLeavesTheRest) {
  auto [tx, rx] = inbox_channel();
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(tx.send_event(Event::custom("bg_" + std::to_string(i), "t", "e", json(i))), SendOutcome::Delivered);
  std::vector<int> seen;
  EXPECT_EQ(rx.consume([&](const Event& e) { seen.push_back(e.data.get<int>()); }, 3), 3u);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(rx.len(), 2u);
  // A visitor that throws: nothing has left the queue.
  EXPECT_THROW(rx.consume([](const Event& e) {
    if (e.data.get<int>() == 4) throw std::runtime_error("visitor failed");
  }),
               std::runtime_error);
  EXPECT_EQ(rx.len(), 2u);
  seen.clear();
  EXPECT_EQ(rx.consume([&](const Event& e) { seen.push_back(e.data.get<int>()); }), 2u);
  EXPECT_EQ(seen, (std::vector<int>{3, 4}));
  EXPECT_EQ(rx.len(), 0u);
  EXPECT_EQ(rx.consume([](const Event&) { FAIL() << "no event is left"; }), 0u);
}

TEST(Inbox, DrainingOneThreadKeepsTheOthersInOrderInPlace) {
  auto [tx, rx] = inbox_channel();
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(tx.send_event(Event::custom("bg_" + std::to_string(i), i % 3 == 0 ? "a" : "b", "e", json(i))),
              SendOutcome::Delivered);
  auto values = [](const std::vector<Event>& events) {
    std::vector<int> out;
    for (const Event& e : events) out.push_back(e.data.get<int>());
    return out;
  };
  EXPECT_EQ(values(rx.drain_events("a", 2)), (std::vector<int>{0, 3}));
  EXPECT_EQ(values(rx.drain_events("a")), (std::vector<int>{6, 9}));
  EXPECT_EQ(values(rx.drain_events("a")), (std::vector<int>{}));
  EXPECT_EQ(rx.len(), 6u);
  EXPECT_EQ(values(rx.drain_events()), (std::vector<int>{1, 2, 4, 5, 7, 8}));
}

}  // namespace
}  // namespace bgtasks
